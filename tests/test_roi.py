"""ROI pools and random windows (nucflow.data.roi), on the real hg38 blacklist where it matters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nucflow.data.roi import (
    POOL_COLUMNS,
    TRAIN_CHROMS,
    VALID_CHROMS,
    overlaps_blacklist,
    pool_counts,
    random_windows,
    read_pool,
    roi_pool,
    window_around,
    write_pool,
)
from nucflow.errors import InputError

NO_BLACKLIST = pd.DataFrame({"chrom": [], "start": [], "end": []})


@pytest.fixture
def hg38(shared_data: Path) -> tuple[dict[str, int], pd.DataFrame]:
    """Real hg38 chromosome sizes and the maxATAC blacklist (chr start end 1)."""
    folder = shared_data / "maxatac"
    sizes_file = folder / "hg38.chrom.sizes"
    bed = folder / "hg38_maxatac_blacklist.bed"
    if not sizes_file.is_file() or not bed.is_file():
        pytest.skip("hg38 maxATAC reference files are not available")
    sizes = pd.read_csv(sizes_file, sep="\t", header=None, names=["chrom", "size"])
    blacklist = pd.read_csv(bed, sep="\t", header=None, names=["chrom", "start", "end", "value"])
    assert len(blacklist) == 376
    return dict(zip(sizes["chrom"], sizes["size"].astype(int), strict=True)), blacklist


def peaks(chrom: str, starts: list[int], ends: list[int], **extra: list[int]) -> pd.DataFrame:
    """A small peak table."""
    return pd.DataFrame({"chrom": chrom, "start": starts, "end": ends, **extra})


def brute_overlap(
    blacklist: pd.DataFrame, chrom: str, starts: np.ndarray, width: int
) -> np.ndarray:
    """Reference overlap test: any blacklist interval sharing >= 1 bp with the window."""
    b = blacklist[blacklist["chrom"] == chrom]
    bs = b["start"].to_numpy()[None, :]
    be = b["end"].to_numpy()[None, :]
    s = np.asarray(starts)[:, None]
    return ((bs < s + width) & (be > s)).any(axis=1)


def test_default_chromosome_splits() -> None:
    assert len(TRAIN_CHROMS) == 18
    assert VALID_CHROMS == ("chr2", "chr19")
    assert not set(TRAIN_CHROMS) & set(VALID_CHROMS)
    assert not {"chr1", "chr8", "chrX"} & set(TRAIN_CHROMS + VALID_CHROMS)


def test_window_around() -> None:
    starts, ends = window_around(np.array([512, 1000]))
    assert starts.tolist() == [0, 488]
    assert ends.tolist() == [1024, 1512]
    assert starts.dtype == np.int64
    s, e = window_around(np.array([10]), width=5)
    assert (s[0], e[0]) == (8, 13)


def test_centring_odd_and_even_lengths() -> None:
    table = peaks("chr3", [100_000, 100_000, 200_000], [100_100, 100_101, 200_001])
    pool = roi_pool([("K562", "ATAC", table)], ["chr3"], {"chr3": 1_000_000}, NO_BLACKLIST)
    centres = (pool["start"] + 512).tolist()
    assert centres == [100_050, 100_050, 200_000]  # floor(start + (end - start) / 2)
    assert ((pool["end"] - pool["start"]) == 1024).all()
    assert list(pool.columns) == list(POOL_COLUMNS)


def test_summit_centring_with_fallback() -> None:
    table = peaks("chr3", [100_000, 300_000], [100_400, 300_400], summit=[100_010, -1])
    sizes = {"chr3": 1_000_000}
    pool = roi_pool([("K562", "CHIP", table)], ["chr3"], sizes, NO_BLACKLIST, centre="summit")
    assert (pool["start"] + 512).tolist() == [100_010, 300_200]
    mid = roi_pool([("K562", "CHIP", table)], ["chr3"], sizes, NO_BLACKLIST)
    assert (mid["start"] + 512).tolist() == [100_200, 300_200]
    with pytest.raises(InputError, match="summit"):
        roi_pool(
            [("K562", "CHIP", table.drop(columns="summit"))],
            ["chr3"],
            sizes,
            NO_BLACKLIST,
            centre="summit",
        )


def test_chromosome_edges_are_inclusive() -> None:
    size = 10_000
    centres = [512, 511, size - 512, size - 511]
    table = peaks("chr3", centres, [c + 1 for c in centres])
    pool = roi_pool([("K562", "ATAC", table)], ["chr3"], {"chr3": size}, NO_BLACKLIST)
    assert pool["start"].tolist() == [0, size - 1024]  # start 0 and end == size are inside
    assert pool["end"].max() == size


def _isolated_interval(blacklist: pd.DataFrame, chrom: str, size: int) -> tuple[int, int]:
    """A blacklist interval on ``chrom`` with >= 2048 bp of clear sequence on both sides."""
    b = blacklist[blacklist["chrom"] == chrom].sort_values("start")
    starts, ends = b["start"].to_numpy(), b["end"].to_numpy()
    for i in range(len(b)):
        left = ends[:i].max() if i else 0
        right = starts[i + 1] if i + 1 < len(b) else size
        if starts[i] - left > 2048 and right - ends[i] > 2048 and starts[i] > 2048:
            return int(starts[i]), int(ends[i])
    raise AssertionError(f"no isolated blacklist interval on {chrom}")


def test_blacklist_filter_on_real_hg38(hg38: tuple[dict[str, int], pd.DataFrame]) -> None:
    sizes, blacklist = hg38
    bs, be = _isolated_interval(blacklist, "chr3", sizes["chr3"])
    # window starts: touching on the left, 1 bp overlap left, 1 bp overlap right, touching right
    window_starts = [bs - 1024, bs - 1023, be - 1, be]
    centres = [s + 512 for s in window_starts]
    table = peaks("chr3", centres, [c + 1 for c in centres])
    pool = roi_pool([("K562", "ATAC", table)], TRAIN_CHROMS, sizes, blacklist)
    assert pool["start"].tolist() == [bs - 1024, be]
    assert pool["end"].tolist()[0] == bs  # end == blacklist start is kept


def test_vectorised_overlap_matches_brute_force(hg38: tuple[dict[str, int], pd.DataFrame]) -> None:
    sizes, blacklist = hg38
    rng = np.random.default_rng(0)
    for chrom in ("chr1", "chr9", "chr21"):
        # half uniform, half near blacklist edges, so both outcomes occur often
        b = blacklist[blacklist["chrom"] == chrom]
        near = rng.choice(np.concatenate([b["start"], b["end"]]), 2000) + rng.integers(
            -1100, 100, 2000
        )
        starts = np.concatenate([rng.integers(0, sizes[chrom] - 1024, 2000), near])
        fast = overlaps_blacklist(blacklist, chrom, starts, starts + 1024)
        slow = brute_overlap(blacklist, chrom, starts, 1024)
        assert np.array_equal(fast, slow)
        assert fast.any() and not fast.all()
    # nested intervals: the wide one must still be found behind a later, shorter one
    nested = pd.DataFrame({"chrom": ["c", "c"], "start": [0, 100], "end": [1000, 200]})
    assert overlaps_blacklist(nested, "c", np.array([500]), np.array([600])).tolist() == [True]
    assert overlaps_blacklist(nested, "chrZ", np.array([5]), np.array([6])).tolist() == [False]


def test_chromosome_filtering_and_pool_order() -> None:
    sizes = {c: 1_000_000 for c in ("chr1", "chr2", "chr3", "chr8", "chr19", "chrX")}
    table = pd.DataFrame(
        {
            "chrom": ["chr1", "chr2", "chr3", "chr8", "chr19", "chrX"],
            "start": [50_000] * 6,
            "end": [50_100] * 6,
        }
    )
    entries = [("B", "CHIP", table), ("A", "ATAC", table), ("B", "ATAC", table)]
    train = roi_pool(entries, TRAIN_CHROMS, sizes, NO_BLACKLIST)
    assert set(train["chrom"]) == {"chr3"}
    valid = roi_pool(entries, VALID_CHROMS, sizes, NO_BLACKLIST)
    assert sorted(set(valid["chrom"])) == ["chr19", "chr2"]
    # ATAC rows (in input order) then CHIP rows; the shared peak is kept once per cell line
    assert list(zip(train["roi_type"], train["cell_line"], strict=True)) == [
        ("ATAC", "A"),
        ("ATAC", "B"),
        ("CHIP", "B"),
    ]


def test_bad_peaks_are_rejected() -> None:
    sizes = {"chr3": 1_000_000}
    with pytest.raises(InputError, match="ROI type"):
        roi_pool([("A", "DNASE", peaks("chr3", [1], [2]))], ["chr3"], sizes, NO_BLACKLIST)
    with pytest.raises(InputError, match="row 1"):
        roi_pool(
            [("A", "ATAC", peaks("chr3", [5000, 9000], [6000, 8000]))],
            ["chr3"],
            sizes,
            NO_BLACKLIST,
        )
    with pytest.raises(InputError, match="chr4"):
        roi_pool([("A", "ATAC", peaks("chr4", [1], [2]))], ["chr4"], sizes, NO_BLACKLIST)
    empty = roi_pool([("A", "ATAC", peaks("chr5", [1], [2]))], ["chr3"], sizes, NO_BLACKLIST)
    assert empty.empty and list(empty.columns) == list(POOL_COLUMNS)


def _small_pool() -> pd.DataFrame:
    sizes = {"chr3": 1_000_000, "chr4": 1_000_000}
    entries = [
        ("A", "ATAC", peaks("chr3", [10_000, 20_000], [10_100, 20_100])),
        ("A", "CHIP", peaks("chr4", [30_000], [30_100])),
        ("B", "ATAC", peaks("chr3", [40_000], [40_100])),
        ("B", "ATAC", peaks("chr4", [50_000], [50_100])),
    ]
    return roi_pool(entries, ["chr3", "chr4"], sizes, NO_BLACKLIST)


def test_pool_counts() -> None:
    counts = pool_counts(_small_pool()).set_index(["chrom", "cell_line", "roi_type"])["count"]
    assert counts[("chr3", "A", "ATAC")] == 2
    assert counts[("chr4", "A", "CHIP")] == 1
    assert counts[("all", "A", "all")] == 3
    assert counts[("all", "B", "ATAC")] == 2
    assert counts[("chr3", "all", "all")] == 3
    assert counts[("all", "all", "ATAC")] == 4
    assert counts[("all", "all", "CHIP")] == 1
    assert counts[("all", "all", "all")] == 5
    assert ("chr3", "A", "CHIP") not in counts.index
    assert pool_counts(_small_pool().iloc[:0])["count"].tolist() == [0]


def test_write_read_round_trip(tmp_path: Path) -> None:
    pool = _small_pool()
    path = tmp_path / "sub" / "train_roi.tsv"
    write_pool(pool, path)
    assert path.read_text().splitlines()[0] == "chrom\tstart\tend\troi_type\tcell_line"
    back = read_pool(path)
    pd.testing.assert_frame_equal(back, pool)
    write_pool(pool.iloc[:0], tmp_path / "empty.tsv")
    assert read_pool(tmp_path / "empty.tsv").empty


def test_read_pool_accepts_original_header_and_rejects_bad_rows(tmp_path: Path) -> None:
    original = tmp_path / "orig.tsv"
    original.write_text("Chr\tStart\tStop\tROI_Type\tCell_Line\nchr3\t0\t1024\tATAC\tK562\n")
    pool = read_pool(original)
    assert pool.iloc[0].tolist() == ["chr3", 0, 1024, "ATAC", "K562"]
    headless = tmp_path / "headless.tsv"
    headless.write_text("chr3\t0\t1024\tATAC\tK562\n")
    with pytest.raises(InputError, match="header"):
        read_pool(headless)
    bad = tmp_path / "bad.tsv"
    bad.write_text("chrom\tstart\tend\troi_type\tcell_line\nchr3\tx\t1024\tATAC\tK562\n")
    with pytest.raises(InputError, match="start"):
        read_pool(bad)


def test_random_windows_avoid_real_blacklist(hg38: tuple[dict[str, int], pd.DataFrame]) -> None:
    sizes, blacklist = hg38
    rng = np.random.default_rng(1)
    chroms = ["chr21", "chr22", "chr9"]  # heavily blacklisted chromosomes
    windows = random_windows(rng, 5000, sizes, chroms, blacklist)
    assert len(windows) == 5000
    assert set(windows["chrom"]) == set(chroms)
    assert ((windows["end"] - windows["start"]) == 1024).all()
    assert (windows["start"] >= 0).all()
    assert (windows["end"] <= windows["chrom"].map(sizes)).all()
    for chrom, part in windows.groupby("chrom"):
        assert not brute_overlap(blacklist, str(chrom), part["start"].to_numpy(), 1024).any()
    again = random_windows(np.random.default_rng(1), 5000, sizes, chroms, blacklist)
    pd.testing.assert_frame_equal(windows, again)


def test_random_window_frequencies_follow_length(hg38: tuple[dict[str, int], pd.DataFrame]) -> None:
    sizes, _ = hg38
    n = 40_000
    windows = random_windows(np.random.default_rng(2), n, sizes, TRAIN_CHROMS, NO_BLACKLIST)
    spans = np.array([sizes[c] - 1023 for c in TRAIN_CHROMS], dtype=float)
    expected = spans / spans.sum()
    observed = windows["chrom"].value_counts().reindex(TRAIN_CHROMS, fill_value=0).to_numpy()
    sigma = np.sqrt(n * expected * (1 - expected))
    assert (np.abs(observed - n * expected) < 5 * sigma).all()
    # the start is uniform along the chromosome: the mean relative position is about 0.5
    rel = windows["start"] / (windows["chrom"].map(sizes) - 1024)
    assert abs(rel.mean() - 0.5) < 0.01


def test_random_windows_honour_n_fraction() -> None:
    sizes = {"chrA": 100_000, "chrB": 50_000, "chrTiny": 500}
    calls: list[tuple[str, int]] = []

    def n_fraction(chrom: str, starts: np.ndarray) -> np.ndarray:
        calls.append((chrom, len(starts)))
        # the first half of each chromosome is all N; the boundary value 0.1 is still accepted
        return np.where(starts < sizes[chrom] // 2, 1.0, 0.1)

    chroms = ["chrA", "chrB", "chrTiny"]
    rng = np.random.default_rng(3)
    windows = random_windows(rng, 500, sizes, chroms, NO_BLACKLIST, n_fraction=n_fraction)
    assert len(windows) == 500
    assert (windows["start"] >= windows["chrom"].map(sizes) // 2).all()
    assert {c for c, _ in calls} == {"chrA", "chrB"}  # chrTiny cannot hold a window
    with pytest.raises(InputError, match="after 5 rounds"):
        random_windows(
            np.random.default_rng(3),
            10,
            sizes,
            chroms,
            NO_BLACKLIST,
            n_fraction=lambda chrom, starts: np.ones(len(starts)),
            max_tries=5,
        )
    with pytest.raises(InputError, match="chrQ"):
        random_windows(np.random.default_rng(3), 10, sizes, ["chrQ"], NO_BLACKLIST)
    with pytest.raises(InputError, match="at least 1024"):
        random_windows(np.random.default_rng(3), 10, sizes, ["chrTiny"], NO_BLACKLIST)
    assert random_windows(np.random.default_rng(3), 0, sizes, chroms, NO_BLACKLIST).empty
