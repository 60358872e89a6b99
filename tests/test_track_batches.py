"""maxATAC batches (nucflow.data.track_batches) against an in-memory, recording track source."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nucflow.data.roi import random_windows
from nucflow.data.track_batches import (
    TrackBatches,
    bin_targets,
    fixed_validation_plans,
    fixed_validation_set,
    one_hot_codes,
    reverse_complement,
)
from nucflow.errors import InputError

SIZES = {"chrA": 40_000, "chrB": 30_000, "chrR": 20_000}
CELLS = ("K562", "HepG2", "TEST")


class FakeSource:
    """Numpy arrays per chromosome and per bigWig path; records every read."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.genome = {c: rng.integers(0, 5, n).astype(np.uint8) for c, n in SIZES.items()}
        self.tracks: dict[str, dict[str, np.ndarray]] = {}
        for i, cell in enumerate(CELLS):
            self.tracks[f"{cell}.atac.bw"] = {
                c: (i + 1 + rng.random(n)).astype(np.float32) for c, n in SIZES.items()
            }
            self.tracks[f"{cell}.binding.bw"] = {
                c: (rng.random(n) < 0.5).astype(np.float32) * (i + 1) for c, n in SIZES.items()
            }
        self.reads: list[tuple[str, str, int]] = []  # (path or "2bit", chrom, n windows)

    @staticmethod
    def _take(array: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
        return array[np.asarray(starts)[:, None] + np.arange(width)]

    def codes(self, chrom: str, starts: np.ndarray, width: int = 1024) -> np.ndarray:
        self.reads.append(("2bit", chrom, len(starts)))
        return self._take(self.genome[chrom], starts, width)

    def signal(
        self, bigwig_path: str | os.PathLike[str], chrom: str, starts: np.ndarray, width: int = 1024
    ) -> np.ndarray:
        self.reads.append((str(bigwig_path), chrom, len(starts)))
        return self._take(self.tracks[str(bigwig_path)][chrom], starts, width)


def cell_files(*cells: str) -> dict[str, tuple[Path, Path]]:
    return {c: (Path(f"{c}.atac.bw"), Path(f"{c}.binding.bw")) for c in cells}


def make_pool(cell_lines: tuple[str, ...] = ("K562", "HepG2"), per_chrom: int = 60) -> pd.DataFrame:
    """Distinct 1024-bp ROI windows on chrA and chrB, cycling through ``cell_lines``."""
    rows = []
    for chrom in ("chrA", "chrB"):
        for k in range(per_chrom):
            start = 100 + 300 * k
            rows.append((chrom, start, start + 1024, "ATAC", cell_lines[k % len(cell_lines)]))
    return pd.DataFrame(rows, columns=["chrom", "start", "end", "roi_type", "cell_line"])


def random_on_r(rng: np.random.Generator, n: int) -> pd.DataFrame:
    empty = pd.DataFrame({"chrom": [], "start": [], "end": []})
    return random_windows(rng, n, SIZES, ["chrR"], empty)


def make_batches(source: FakeSource, **kwargs: object) -> TrackBatches:
    options: dict[str, object] = {"batch_size": 64}
    options.update(kwargs)
    pool = options.pop("pool", make_pool())
    cells = options.pop("cells", cell_files("K562", "HepG2"))
    return TrackBatches(pool=pool, cells=cells, source=source, **options)  # type: ignore[arg-type]


def expected_rows(source: FakeSource, plan: pd.DataFrame, kind: str) -> np.ndarray:
    """Per-example track rows straight from the fake source."""
    return np.stack(
        [
            source.tracks[f"{cell}.{kind}.bw"][chrom][start : start + 1024]
            for chrom, start, cell in zip(
                plan["chrom"], plan["start"], plan["cell_line"], strict=True
            )
        ]
    )


def test_one_hot_codes() -> None:
    codes = np.array([[0, 1, 2, 3, 4]], dtype=np.uint8)
    hot = one_hot_codes(codes)
    assert hot.shape == (1, 5, 4) and hot.dtype == np.float32
    assert np.array_equal(hot[0, :4], np.eye(4, dtype=np.float32))
    assert not hot[0, 4].any()


def test_bin_targets_threshold_16_vs_17() -> None:
    binding = np.zeros((1, 1024), dtype=np.float32)
    binding[0, 0:16] = 1  # bin 0: 16 of 32 -> 0
    binding[0, 32:49] = 1  # bin 1: 17 of 32 -> 1
    binding[0, 64:96] = 0.5  # bin 2: all positive (sum 16) -> 1 under the count rule
    binding[0, 96:113] = np.nan  # bin 3: NaN counts as 0
    y = bin_targets(binding)
    assert y.shape == (1, 32) and y.dtype == np.float32
    assert y[0, :4].tolist() == [0.0, 1.0, 1.0, 0.0]
    assert y[0, 4:].sum() == 0


def test_bin_targets_quantitative() -> None:
    rng = np.random.default_rng(0)
    binding = rng.random((3, 1024)).astype(np.float32)
    y = bin_targets(binding, quantitative=True, scale=2.5)
    expected = binding.reshape(3, 32, 32).mean(axis=2) * 2.5
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="bins"):
        bin_targets(np.zeros((1, 1000)))


def test_reverse_complement_hand_made() -> None:
    seq = "ACGTNAAC"
    codes = np.array([["ACGTN".index(b) for b in seq]], dtype=np.uint8)
    x = np.zeros((1, 8, 5), dtype=np.float32)
    x[..., :4] = one_hot_codes(codes)
    x[0, :, 4] = np.arange(8)
    y = np.array([[1.0, 0.0, 0.0, 0.5]], dtype=np.float32)
    x_rc, y_rc = reverse_complement(x, y)
    decoded = "".join("ACGT"[int(np.argmax(r[:4]))] if r[:4].any() else "N" for r in x_rc[0])
    assert decoded == "GTTNACGT"  # reverse complement of ACGTNAAC
    assert x_rc[0, :, 4].tolist() == list(range(7, -1, -1))
    assert y_rc.tolist() == [[0.5, 0.0, 0.0, 1.0]]
    x2, y2 = reverse_complement(x_rc, y_rc)
    assert np.array_equal(x2, x) and np.array_equal(y2, y)


def test_batch_shapes_channels_and_targets() -> None:
    source = FakeSource()
    batches = make_batches(source)
    plan = batches.draw(np.random.default_rng(5))
    x, y = batches.assemble(plan)
    assert x.shape == (64, 1024, 5) and x.dtype == np.float32
    assert y.shape == (64, 32) and y.dtype == np.float32
    codes = np.stack(
        [source.genome[c][s : s + 1024] for c, s in zip(plan["chrom"], plan["start"], strict=True)]
    )
    assert np.array_equal(x[..., :4].sum(axis=2), (codes != 4).astype(np.float32))
    assert np.array_equal(x[..., :4].argmax(axis=2)[codes != 4], codes[codes != 4])
    assert np.array_equal(x[..., 4], expected_rows(source, plan, "atac"))
    assert np.array_equal(y, bin_targets(expected_rows(source, plan, "binding")))
    assert 0 < y.mean() < 1
    # ROI rows are drawn without replacement
    assert not plan.duplicated(["chrom", "start"]).any()
    # one sequence read per chromosome, one read per bigWig per (chromosome, cell line)
    source.reads.clear()
    batches.assemble(plan)
    groups = plan.groupby(["chrom", "cell_line"]).ngroups
    assert sum(r[0] == "2bit" for r in source.reads) == plan["chrom"].nunique()
    assert sum(r[0] != "2bit" for r in source.reads) == 2 * groups
    assert sum(r[2] for r in source.reads if r[0] == "2bit") == 64


def test_batch_is_reproducible_and_fresh_per_draw() -> None:
    batches = make_batches(FakeSource())
    x1, y1 = batches.batch(np.random.default_rng(9))
    x2, y2 = batches.batch(np.random.default_rng(9))
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    rng = np.random.default_rng(9)
    assert not batches.draw(rng).equals(batches.draw(rng))


def test_shuffle_cell_type_uses_all_given_cells_only() -> None:
    source = FakeSource()
    pool = make_pool(("K562",))
    batches = make_batches(source, pool=pool, batch_size=100)
    plan = batches.draw(np.random.default_rng(0))
    assert set(plan["cell_line"]) == {"K562", "HepG2"}


def test_without_shuffle_each_roi_keeps_its_cell() -> None:
    pool = make_pool(("K562", "HepG2"))
    batches = make_batches(FakeSource(), pool=pool, shuffle_cell_type=False, batch_size=100)
    plan = batches.draw(np.random.default_rng(0))
    own = pool.set_index(["chrom", "start"])["cell_line"]
    assert [own[(c, s)] for c, s in zip(plan["chrom"], plan["start"], strict=True)] == list(
        plan["cell_line"]
    )
    with pytest.raises(InputError, match="TEST"):
        make_batches(FakeSource(), pool=make_pool(("K562", "TEST")), shuffle_cell_type=False)


def test_test_cell_files_are_never_read() -> None:
    source = FakeSource()
    # the pool even holds TEST peaks; with the shuffle they are relabelled to Train cells
    batches = make_batches(
        source,
        pool=make_pool(("K562", "HepG2", "TEST")),
        rand_ratio=0.5,
        random_region=random_on_r,
        test_cells={"TEST"},
    )
    rng = np.random.default_rng(0)
    for _ in range(5):
        batches.batch(rng)
    read_paths = {path for path, _, _ in source.reads}
    assert {"K562.atac.bw", "HepG2.binding.bw"} <= read_paths
    assert not any(path.startswith("TEST") for path in read_paths)
    with pytest.raises(InputError, match="Test cell"):
        make_batches(FakeSource(), cells=cell_files("K562", "TEST"), test_cells={"TEST"})


def test_rand_ratio_half_random_windows() -> None:
    source = FakeSource()
    batches = make_batches(source, rand_ratio=0.5, random_region=random_on_r)
    assert (batches.n_roi, batches.n_rand) == (32, 32)
    plan = batches.draw(np.random.default_rng(1))
    assert plan["random"].sum() == 32
    assert (plan.loc[plan["random"], "chrom"] == "chrR").all()
    assert not (plan.loc[~plan["random"], "chrom"] == "chrR").any()
    # the batch order is shuffled: random windows are not all at the end
    assert plan["random"].iloc[:32].any()
    source.reads.clear()
    x, _ = batches.assemble(plan)
    assert sum(n for path, chrom, n in source.reads if path == "2bit" and chrom == "chrR") == 32
    assert np.array_equal(x[..., 4], expected_rows(source, plan, "atac"))
    with pytest.raises(ValueError, match="random_region"):
        make_batches(FakeSource(), rand_ratio=0.5)


def test_rev_comp_flips_about_half_exactly() -> None:
    source = FakeSource()
    batches = make_batches(source, rev_comp=True, batch_size=100)
    plan = batches.draw(np.random.default_rng(4))
    flip = plan["rev_comp"].to_numpy()
    assert 25 < flip.sum() < 75
    x, y = batches.assemble(plan)
    x_fwd, y_fwd = batches.assemble(plan.assign(rev_comp=False))
    x_rc, y_rc = reverse_complement(x_fwd[flip], y_fwd[flip])
    assert np.array_equal(x[flip], x_rc) and np.array_equal(y[flip], y_rc)
    assert np.array_equal(x[~flip], x_fwd[~flip]) and np.array_equal(y[~flip], y_fwd[~flip])
    assert not np.array_equal(x[flip], x_fwd[flip])


def test_quantitative_targets_are_scaled_bin_means() -> None:
    source = FakeSource()
    batches = make_batches(source, quantitative=True, target_scale=3.0)
    plan = batches.draw(np.random.default_rng(2))
    _, y = batches.assemble(plan)
    binding = expected_rows(source, plan, "binding")
    np.testing.assert_allclose(y, binding.reshape(-1, 32, 32).mean(axis=2) * 3.0, rtol=1e-6)
    assert y.max() > 1.0  # HepG2 binding is 0/2: really a mean, not a label


def test_fixed_validation_set_memory_mapped_in_a_directory(tmp_path) -> None:
    batches = make_batches(FakeSource(), batch_size=16, rev_comp=True)
    x, y = fixed_validation_set(batches, 3, seed=7)
    x_map, y_map = fixed_validation_set(batches, 3, seed=7, directory=tmp_path)
    assert isinstance(x_map, np.memmap) and isinstance(y_map, np.memmap)
    assert np.array_equal(x_map, x) and np.array_equal(y_map, y)
    assert np.array_equal(np.load(tmp_path / "validation_x.npy", mmap_mode="r"), x)


def test_fixed_validation_set_is_reproducible() -> None:
    batches = make_batches(FakeSource(), batch_size=16, rev_comp=True)
    x1, y1 = fixed_validation_set(batches, 3, seed=7)
    x2, y2 = fixed_validation_set(batches, 3, seed=7)
    assert x1.shape == (48, 1024, 5) and y1.shape == (48, 32)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    x3, _ = fixed_validation_set(batches, 3, seed=8)
    assert not np.array_equal(x1, x3)
    plans = fixed_validation_plans(batches, 3, seed=7)
    again = np.concatenate([batches.assemble(p)[0] for p in plans])
    assert np.array_equal(again, x1)


def test_configuration_errors() -> None:
    with pytest.raises(InputError, match="fewer than"):
        make_batches(FakeSource(), pool=make_pool(per_chrom=10), batch_size=64)
    with pytest.raises(InputError, match="no Train cell"):
        make_batches(FakeSource(), cells={})
    with pytest.raises(ValueError, match="rand_ratio"):
        make_batches(FakeSource(), rand_ratio=1.5)
    # a pool row of another width is re-centred on its midpoint
    odd = pd.DataFrame({"chrom": ["chrA"], "start": [5000], "end": [5100], "cell_line": ["K562"]})
    batches = make_batches(FakeSource(), pool=odd, batch_size=1)
    assert batches.draw(np.random.default_rng(0))["start"].tolist() == [5050 - 512]
