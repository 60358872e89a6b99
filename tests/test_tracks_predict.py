"""Tests for genome tiling, overlap averaging, bigWig and peak writing (tracks_predict)."""

from __future__ import annotations

import numpy as np
import pyBigWig
import pytest

from nucflow.errors import InputError
from nucflow.tracks_predict import (
    average_strands,
    call_peaks,
    iter_chromosome_bins,
    predict_bigwig,
    predict_chromosome,
    tile_starts,
)


def covered(starts: np.ndarray, length: int, window: int) -> np.ndarray:
    """Per-base count of windows covering each base."""
    delta = np.zeros(length + 1, dtype=np.int64)
    np.add.at(delta, starts, 1)
    np.add.at(delta, starts + window, -1)
    return np.cumsum(delta[:-1])


@pytest.mark.parametrize("length", [1024, 1025, 1280, 5000, 5017, 1024 + 256 * 7])
def test_tile_starts_cover_every_base(length: int) -> None:
    starts = tile_starts(length, 1024, 256)
    assert starts[0] == 0
    assert starts[-1] + 1024 == length  # the last window ends exactly at the chromosome end
    assert (starts + 1024 <= length).all()
    assert (covered(starts, length, 1024) > 0).all()
    gaps = np.diff(starts)
    assert (gaps[:-1] == 256).all()
    assert gaps.size == 0 or 0 < gaps[-1] <= 256


def test_tile_starts_adds_one_tail_window_only_when_needed() -> None:
    exact = tile_starts(1024 + 256 * 3, 1024, 256)
    np.testing.assert_array_equal(exact, [0, 256, 512, 768])
    tail = tile_starts(5000, 1024, 256)
    np.testing.assert_array_equal(tail[-3:], [3584, 3840, 3976])
    assert tail.size == 17


def test_tile_starts_rejects_short_chromosome() -> None:
    with pytest.raises(InputError, match="chrM.*shorter than one 1024-bp window"):
        tile_starts(1000, 1024, 256, chrom="chrM")


def brute_force(score_of, starts: np.ndarray, length: int, window: int, bins: int) -> np.ndarray:
    """Per-grid-bin value from per-base sums: sum over bases of scores / sum of coverage."""
    width = window // bins
    total = np.zeros(length)
    count = np.zeros(length)
    for s in starts:
        per_bin = score_of(int(s))
        total[s : s + window] += np.repeat(per_bin, width)
        count[s : s + window] += 1
    n_grid = -(-length // width)
    edges = np.append(np.arange(n_grid) * width, length)
    return np.array(
        [total[a:b].sum() / count[a:b].sum() for a, b in zip(edges[:-1], edges[1:], strict=True)]
    )


def window_index_predict(calls: list[np.ndarray]):
    """A fake model: every bin of the window at s scores s / 256 (the window index)."""

    def predict(chrom: str, starts: np.ndarray) -> np.ndarray:
        calls.append(np.array(starts))
        return np.repeat((starts / 256.0)[:, None], 32, axis=1)

    return predict


def test_predict_chromosome_averages_four_windows_and_batches() -> None:
    calls: list[np.ndarray] = []
    starts, ends, values = predict_chromosome(
        window_index_predict(calls), "chrT", 8192, batch_size=5
    )
    assert all(len(c) <= 5 for c in calls)
    np.testing.assert_array_equal(np.concatenate(calls), tile_starts(8192))
    assert starts.size == 8192 // 32
    # bin at 4096..4128 is covered by windows starting at 3328, 3584, 3840, 4096 -> indices 13..16
    k = 4096 // 32
    assert values[k] == pytest.approx((13 + 14 + 15 + 16) / 4)
    # the first bin is covered only by the window at 0; bin at 300 by windows 0 and 256
    assert values[0] == pytest.approx(0.0)
    assert values[300 // 32] == pytest.approx(0.5)


def test_predict_chromosome_tail_and_partition() -> None:
    length = 5017  # neither a multiple of the step nor of the 32-bp bin

    def score_of(s: int) -> np.ndarray:
        return ((s // 7 + np.arange(32)) % 5) / 4.0  # varies per window and per bin

    def predict(chrom: str, starts: np.ndarray) -> np.ndarray:
        assert chrom == "chrT"
        return np.stack([score_of(int(s)) for s in starts])

    starts, ends, values = predict_chromosome(predict, "chrT", length, batch_size=3)
    # every base in exactly one interval, last interval ends at the chromosome end
    assert starts[0] == 0 and ends[-1] == length
    np.testing.assert_array_equal(starts[1:], ends[:-1])
    assert (ends > starts).all()
    assert ends[-1] - starts[-1] == length % 32
    expected = brute_force(score_of, tile_starts(length), length, 1024, 32)
    np.testing.assert_allclose(values, expected, rtol=1e-12)
    # the off-grid tail window (start 3993) really contributes to the last bins
    assert values[-1] == pytest.approx(score_of(length - 1024)[-1])


def test_predict_chromosome_off_grid_step_matches_brute_force() -> None:
    def score_of(s: int) -> np.ndarray:
        return np.linspace(0, 1, 8) * ((s % 3) + 1) / 3

    def predict(chrom: str, starts: np.ndarray) -> np.ndarray:
        return np.stack([score_of(int(s)) for s in starts])

    length = 1000
    starts, ends, values = predict_chromosome(
        predict, "c", length, window=256, bins=8, step=100, batch_size=4
    )
    expected = brute_force(score_of, tile_starts(length, 256, 100), length, 256, 8)
    np.testing.assert_allclose(values, expected, rtol=1e-12)


def test_iter_chromosome_bins_streams_consecutive_bounded_pieces() -> None:
    length, batch_size = 20_000, 4
    calls: list[np.ndarray] = []
    pieces = list(
        iter_chromosome_bins(window_index_predict(calls), "chrT", length, batch_size=batch_size)
    )
    assert len(pieces) == len(calls) > 10  # one finished piece per batch
    # each piece is bounded by one batch of windows, not by the chromosome
    assert max(p[0].size for p in pieces) <= batch_size * 256 // 32 + 1024 // 32
    starts = np.concatenate([p[0] for p in pieces])
    ends = np.concatenate([p[1] for p in pieces])
    np.testing.assert_array_equal(starts, np.arange(0, length, 32))
    assert ends[-1] == length
    whole = predict_chromosome(window_index_predict([]), "chrT", length, batch_size=1000)
    np.testing.assert_allclose(np.concatenate([p[2] for p in pieces]), whole[2], rtol=1e-12)


def test_predict_bigwig_merges_peaks_across_streamed_pieces(tmp_path) -> None:
    def predict(chrom: str, starts: np.ndarray) -> np.ndarray:
        return np.ones((len(starts), 32))  # one peak over the whole chromosome

    peaks = tmp_path / "p.bed"
    predict_bigwig(
        predict,
        {"chrA": 9000},
        ["chrA"],
        tmp_path / "p.bw",
        batch_size=2,
        peaks_path=peaks,
        threshold=0.5,
    )
    assert peaks.read_text().splitlines() == ["chrA\t0\t9000\t1"]


def test_predict_chromosome_rejects_bad_model_output() -> None:
    with pytest.raises(ValueError, match="shape"):
        predict_chromosome(lambda c, s: np.zeros((len(s), 31)), "c", 2048)
    with pytest.raises(ValueError, match="non-finite"):
        predict_chromosome(lambda c, s: np.full((len(s), 32), np.nan), "c", 2048)


def test_average_strands_reverses_reverse_complement_bins() -> None:
    forward = np.array([[0.0, 0.2, 0.4, 0.6]])
    reverse = np.array([[1.0, 0.8, 0.6, 0.4]])  # RC orientation: bin 0 = window's 3' end
    np.testing.assert_allclose(average_strands(forward, reverse), [[0.2, 0.4, 0.6, 0.8]])
    with pytest.raises(ValueError):
        average_strands(forward, reverse[:, :3])


def test_call_peaks_merges_adjacent_and_overlapping_bins() -> None:
    starts = np.array([0, 32, 64, 96, 128, 160, 192, 300])
    ends = np.array([32, 64, 96, 128, 160, 192, 224, 400])
    values = np.array([0.1, 0.5, 0.9, 0.2, 0.5, 0.7, np.nan, 0.6])
    peaks = call_peaks(starts, ends, values, 0.5, chrom="chr9")
    assert list(peaks.columns) == ["chrom", "start", "end", "score"]
    assert peaks[["start", "end"]].to_numpy().tolist() == [[32, 96], [128, 192], [300, 400]]
    np.testing.assert_allclose(peaks["score"], [0.9, 0.7, 0.6])
    assert set(peaks["chrom"]) == {"chr9"}
    # overlapping intervals given out of order are merged too
    over = call_peaks(np.array([50, 0]), np.array([150, 100]), np.array([0.8, 0.6]), 0.5)
    assert over[["start", "end", "score"]].to_numpy().tolist() == [[0, 150, 0.8]]
    assert call_peaks(starts, ends, values, 0.95).empty


def test_predict_bigwig_writes_streamed_track_and_peaks(tmp_path) -> None:
    sizes = {"chrA": 3000, "chrB": 2100, "chrC": 5000}

    def predict(chrom: str, starts: np.ndarray) -> np.ndarray:
        base = 0.25 if chrom == "chrB" else 0.75
        return np.tile(np.linspace(0, base, 32), (len(starts), 1))

    out = tmp_path / "sub" / "pred.bw"
    peaks = tmp_path / "pred_peaks.bed"
    summary = predict_bigwig(
        predict, sizes, ["chrB", "chrA"], out, batch_size=2, peaks_path=peaks, threshold=0.7
    )
    assert summary["chromosomes"]["chrB"]["windows"] == tile_starts(2100).size
    assert summary["chromosomes"]["chrA"]["bins"] == -(-3000 // 32)
    assert summary["chromosomes"]["chrB"]["peaks"] == 0
    assert list(summary["chromosomes"]) == ["chrB", "chrA"]
    bw = pyBigWig.open(str(out))
    try:
        assert bw.chroms() == {"chrA": 3000, "chrB": 2100}
        for chrom in ("chrA", "chrB"):
            s, e, v = predict_chromosome(predict, chrom, sizes[chrom])
            intervals = np.array(bw.intervals(chrom))
            np.testing.assert_array_equal(intervals[:, 0], s)
            np.testing.assert_array_equal(intervals[:, 1], e)
            np.testing.assert_allclose(intervals[:, 2], v, rtol=1e-6)
        assert bw.intervals("chrA")[-1][1] == 3000
    finally:
        bw.close()
    lines = peaks.read_text().splitlines()
    assert lines and all(line.startswith("chrA\t") for line in lines)
    assert all(float(line.split("\t")[3]) >= 0.7 for line in lines)
    assert not list(tmp_path.rglob("*.tmp"))


def test_predict_bigwig_validates_inputs(tmp_path) -> None:
    sizes = {"chrA": 3000, "chrS": 500}

    def predict(chrom: str, starts: np.ndarray) -> np.ndarray:
        return np.zeros((len(starts), 32))

    with pytest.raises(InputError, match="chrZ"):
        predict_bigwig(predict, sizes, ["chrZ"], tmp_path / "x.bw")
    with pytest.raises(InputError, match="chrS"):
        predict_bigwig(predict, sizes, ["chrS"], tmp_path / "x.bw")
    with pytest.raises(InputError, match="twice"):
        predict_bigwig(predict, sizes, ["chrA", "chrA"], tmp_path / "x.bw")
    with pytest.raises(InputError, match="threshold"):
        predict_bigwig(predict, sizes, ["chrA"], tmp_path / "x.bw", peaks_path=tmp_path / "p")
    assert not (tmp_path / "x.bw").exists()
