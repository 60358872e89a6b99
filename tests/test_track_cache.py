"""Memory-mapped genome / bigWig caches and the vectorised window loader."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import py2bit
import pyBigWig
import pytest

from nucflow.data.simulate_tracks import simulate_genome
from nucflow.data.track_cache import (
    BASE_CODES,
    WindowLoader,
    cache_genome,
    cache_signal,
    encode_bases,
    model_input,
    one_hot,
)
from nucflow.errors import InputError
from nucflow.io.track_meta import read_chrom_sizes
from nucflow.io.tracks import write_bigwig
from nucflow.io.twobit import write_2bit

SIZES = {"chrA": 5000, "chrB": 3000}


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> dict[str, Path]:
    """A small simulated genome (soft-masked 2bit with N blocks, float and binary bigWigs)."""
    out = tmp_path_factory.mktemp("sim")
    return simulate_genome(out, chromosome_lengths={"chr1": 60_000, "chr2": 40_000}, seed=5)


def _bigwig_values(path: Path, chrom: str, size: int) -> np.ndarray:
    bw = pyBigWig.open(str(path))
    try:
        return np.asarray(bw.values(chrom, 0, size, numpy=True), dtype=np.float32)
    finally:
        bw.close()


def _gappy_bigwig(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """A bigWig over SIZES with NaN gaps (no entries); returns the arrays written."""
    rng = np.random.default_rng(seed)
    values = {c: rng.random(n).astype(np.float32) for c, n in SIZES.items()}
    values["chrA"][100:350] = np.nan  # 250 bp without data
    values["chrA"][4990:] = np.nan  # 10 bp at the end
    values["chrB"][:7] = np.nan
    write_bigwig(path, SIZES, values)
    return values


def test_codes_match_py2bit_for_random_windows(sim, tmp_path):
    sizes = read_chrom_sizes(sim["chrom_sizes"])
    loader = WindowLoader(tmp_path / "cache", sim["genome"], sizes)
    genome = py2bit.open(str(sim["genome"]), True)  # soft-masked: lower case present
    rng = np.random.default_rng(0)
    lookup = {"A": 0, "C": 1, "G": 2, "T": 3}
    try:
        for chrom, size in sizes.items():
            starts = rng.integers(0, size - 1024 + 1, size=50)
            starts[0] = 0  # the N block at the chromosome start
            codes = loader.codes(chrom, starts)
            assert codes.shape == (50, 1024) and codes.dtype == np.uint8
            for row, start in zip(codes, starts, strict=True):
                text = genome.sequence(chrom, int(start), int(start) + 1024)
                expected = [lookup.get(base, 4) for base in text.upper()]
                assert row.tolist() == expected
            assert (codes[0] == 4).any()  # N coded 4
        whole = genome.sequence("chr1")
        assert any(c.islower() for c in whole)  # the check above covered soft-masked bases
    finally:
        genome.close()
    assert loader.opened == [sim["genome"].resolve()] * 2  # once per chromosome cached


def test_signal_windows_equal_bigwig_values_with_nan_as_zero(tmp_path, caplog):
    bw_path = tmp_path / "gappy.bw"
    written = _gappy_bigwig(bw_path)
    genome = tmp_path / "g.2bit"
    write_2bit(genome, {c: "ACGT" * (n // 4) for c, n in SIZES.items()})
    loader = WindowLoader(tmp_path / "cache", genome, SIZES)
    starts = np.array([0, 50, 99, 100, 2000, 5000 - 64])
    with caplog.at_level(logging.INFO, logger="nucflow.data.track_cache"):
        windows = loader.signal(bw_path, "chrA", starts, width=64)
    reference = np.nan_to_num(_bigwig_values(bw_path, "chrA", SIZES["chrA"]), nan=0.0)
    assert windows.dtype == np.float32 and windows.shape == (6, 64)
    for row, start in zip(windows, starts, strict=True):
        np.testing.assert_array_equal(row, reference[start : start + 64])
    assert not np.isnan(windows).any()
    assert (windows[3] == 0).all()  # inside the gap
    np.testing.assert_array_equal(windows[4], written["chrA"][2000:2064])
    assert "'chrA': 260 NaN (no-data) positions set to 0" in caplog.text
    assert loader.opened == [bw_path.resolve()]


def test_second_loader_reuses_cache_and_rewrite_is_reread(tmp_path):
    bw_path = tmp_path / "track.bw"
    _gappy_bigwig(bw_path, seed=1)
    genome = tmp_path / "g.2bit"
    write_2bit(genome, {c: "ACGTN" * (n // 5) for c, n in SIZES.items()})
    starts = np.array([0, 1000, 4000])
    first = WindowLoader(tmp_path / "cache", genome, SIZES)
    codes = first.codes("chrA", starts, 500)
    signal = first.signal(bw_path, "chrA", starts, 500)
    first.signal(bw_path, "chrB", starts[:2], 500)
    assert first.opened == [genome.resolve(), bw_path.resolve(), bw_path.resolve()]

    second = WindowLoader(tmp_path / "cache", genome, SIZES)
    np.testing.assert_array_equal(second.codes("chrA", starts, 500), codes)
    np.testing.assert_array_equal(second.signal(bw_path, "chrA", starts, 500), signal)
    assert second.opened == []

    new_values = {c: np.full(n, 7.0, dtype=np.float32) for c, n in SIZES.items()}
    write_bigwig(bw_path, SIZES, new_values)  # atomic rewrite: new inode, mtime, size
    third = WindowLoader(tmp_path / "cache", genome, SIZES)
    assert (third.signal(bw_path, "chrA", starts, 500) == 7.0).all()
    assert third.opened == [bw_path.resolve()]
    # the cached arrays of the old version stay in their own directory
    assert len(list((tmp_path / "cache" / "signal").iterdir())) == 2


def test_in_place_rewrite_same_size_is_reread(tmp_path):
    bw_path = tmp_path / "track.bw"
    write_bigwig(bw_path, SIZES, {c: np.full(n, 1.0, np.float32) for c, n in SIZES.items()})
    cache_signal(bw_path, ["chrA"], SIZES, tmp_path / "cache")
    other = tmp_path / "other.bw"
    write_bigwig(other, SIZES, {c: np.full(n, 2.0, np.float32) for c, n in SIZES.items()})
    stat = bw_path.stat()
    bw_path.write_bytes(other.read_bytes())  # same inode, maybe same size
    os.utime(bw_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    record: list[Path] = []
    paths = cache_signal(bw_path, ["chrA"], SIZES, tmp_path / "cache", record=record)
    assert record == [bw_path.resolve()]
    assert (np.load(paths["chrA"]) == 2.0).all()


def test_missing_chromosome_error_vs_zero_policy(tmp_path, caplog):
    bw_path = tmp_path / "only_a.bw"
    write_bigwig(bw_path, {"chrA": 5000}, {"chrA": np.ones(5000, np.float32)})
    genome = tmp_path / "g.2bit"
    write_2bit(genome, {"chrA": "A" * 5000})
    strict = WindowLoader(tmp_path / "cache", genome, SIZES)
    with pytest.raises(InputError, match=r"only_a\.bw: chromosome 'chrB' not found"):
        strict.signal(bw_path, "chrB", np.array([0]), 100)
    with pytest.raises(InputError, match=r"g\.2bit: chromosome 'chrB' not found"):
        strict.codes("chrB", np.array([0]), 100)

    lenient = WindowLoader(tmp_path / "cache", genome, SIZES, missing="zero")
    with caplog.at_level(logging.WARNING, logger="nucflow.data.track_cache"):
        zeros = lenient.signal(bw_path, "chrB", np.array([0, 2900]), 100)
        ns = lenient.codes("chrB", np.array([5]), 100)
    assert zeros.shape == (2, 100) and (zeros == 0).all()
    assert (ns == 4).all()
    assert "only_a.bw: chromosome 'chrB' not found; using zeros (3000 bp)" in caplog.text
    assert "g.2bit: chromosome 'chrB' not found; using N (3000 bp)" in caplog.text
    # a later strict loader must not silently pick up the zero-filled cache
    with pytest.raises(InputError, match="'chrB' not found"):
        WindowLoader(tmp_path / "cache", genome, SIZES).signal(bw_path, "chrB", np.array([0]), 9)
    with pytest.raises(InputError, match="unknown|expected one of"):
        WindowLoader(tmp_path / "cache", genome, SIZES, missing="skip")


def test_naming_mismatch_is_reported_even_with_zero_policy(tmp_path):
    bw_path = tmp_path / "bare.bw"
    write_bigwig(bw_path, {"A": 5000, "B": 3000}, {"A": np.ones(5000, np.float32)})
    for missing in ("error", "zero"):
        with pytest.raises(InputError, match=r"bare\.bw: chromosome 'chrA' not found.*naming"):
            cache_signal(bw_path, ["chrA"], SIZES, tmp_path / "cache", missing=missing)


def test_length_mismatch_and_unknown_chromosome(tmp_path):
    bw_path = tmp_path / "short.bw"
    write_bigwig(bw_path, {"chrA": 4000}, {"chrA": np.ones(4000, np.float32)})
    with pytest.raises(InputError, match=r"'chrA' has 4000 bp in the file but 5000 bp"):
        cache_signal(bw_path, ["chrA"], SIZES, tmp_path / "cache")
    genome = tmp_path / "g.2bit"
    write_2bit(genome, {"chrA": "A" * 5000, "chrB": "C" * 3000})
    loader = WindowLoader(tmp_path / "cache", genome, SIZES)
    with pytest.raises(InputError, match=r"chromosome sizes: chromosome 'A' not found.*naming"):
        loader.codes("A", np.array([0]), 10)
    with pytest.raises(InputError, match="file not found"):
        cache_genome(tmp_path / "none.2bit", ["chrA"], tmp_path / "cache")


def test_windows_at_chromosome_edges(tmp_path):
    genome = tmp_path / "g.2bit"
    write_2bit(genome, {"chrA": "ACGTN" * 1000, "chrB": "acgt" * 750})
    loader = WindowLoader(tmp_path / "cache", genome, SIZES)
    last = loader.codes("chrA", np.array([5000 - 1024]))
    assert last.shape == (1, 1024)
    assert last[0, -5:].tolist() == [0, 1, 2, 3, 4]
    assert loader.codes("chrB", np.array([0]), 8)[0].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    with pytest.raises(InputError, match=r"window start 3977 on 'chrA' \(5000 bp\)"):
        loader.codes("chrA", np.array([0, 5000 - 1023]))
    with pytest.raises(InputError, match=r"window start -1 on 'chrA'"):
        loader.codes("chrA", np.array([-1]))
    with pytest.raises(InputError, match="1-D integer array"):
        loader.codes("chrA", np.array([1.5]))
    assert loader.codes("chrA", np.array([], dtype=np.int64)).shape == (0, 1024)


def test_one_hot_and_model_input():
    codes = encode_bases("ACGTNacgtnRY-")
    assert codes.tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 4, 4, 4]
    assert BASE_CODES == {"A": 0, "C": 1, "G": 2, "T": 3, "N": 4}
    hot = one_hot(codes[None, :])
    assert hot.shape == (1, 13, 4) and hot.dtype == np.float32
    expected = np.zeros((13, 4), np.float32)
    for i, code in enumerate(codes):
        if code < 4:
            expected[i, code] = 1.0
    np.testing.assert_array_equal(hot[0], expected)
    assert (hot[0, 4] == 0).all() and (hot[0, 10:] == 0).all()
    strided = np.full((1, 13, 5), 9.0, np.float32)
    one_hot(codes[None, :], out=strided[..., :4])
    np.testing.assert_array_equal(strided[0, :, :4], expected)
    assert (strided[..., 4] == 9.0).all()

    rng = np.random.default_rng(2)
    batch = rng.integers(0, 5, size=(3, 16)).astype(np.uint8)
    batch[0, :3] = [4, 9, 255]  # N and out-of-range codes are all zero
    signal = rng.random((3, 16)).astype(np.float32)
    x = model_input(batch, signal)
    assert x.shape == (3, 16, 5)
    np.testing.assert_array_equal(x[..., :4], one_hot(batch))
    assert (x[0, :3, :4] == 0).all() and (x[0, 3:, :4].sum(axis=-1) == (batch[0, 3:] < 4)).all()
    np.testing.assert_array_equal(x[..., 4], signal)
    buffer = np.empty((3, 16, 5), np.float32)
    assert model_input(batch, signal, out=buffer) is buffer
    np.testing.assert_array_equal(buffer, x)
