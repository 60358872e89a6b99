"""Tests for the bigWig benchmark (tracks_benchmark) on the real RXRA gold standard."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig
import pytest

from nucflow.errors import InputError
from nucflow.tracks_benchmark import PRC_COLUMNS, SUMMARY_COLUMNS, benchmark_tracks

CHROMS = ["chr21", "chr22"]
BIN = 200


def write_bins(path: Path, sizes: dict[str, int], bins: dict[str, np.ndarray], size: int) -> Path:
    """Write per-bin values (last bin may be partial) as a bigWig."""
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(sizes.items()))
    for chrom, values in bins.items():
        starts = np.arange(values.size, dtype=np.int64) * size
        ends = np.minimum(starts + size, sizes[chrom])
        bw.addEntries([chrom] * values.size, starts, ends=ends, values=values.astype(np.float64))
    bw.close()
    return path


def write_intervals(path: Path, sizes: dict[str, int], intervals: dict[str, list]) -> Path:
    """Write (start, end, value) intervals as a bigWig."""
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(sizes.items()))
    for chrom, rows in intervals.items():
        if rows:
            s, e, v = zip(*rows, strict=True)
            bw.addEntries([chrom] * len(rows), list(s), ends=list(e), values=list(map(float, v)))
    bw.close()
    return path


def interval_bins(rows, length: int, size: int) -> np.ndarray:
    """Bins (partial last bin included) touched by any interval, computed independently."""
    hit = np.zeros(-(-length // size), dtype=bool)
    for start, end, *_ in rows:
        for b in range(start // size, (end - 1) // size + 1):
            hit[b] = True
    return hit


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """The RXRA gold standard, blacklist, and derived prediction bigWigs for chr21/chr22."""
    data = Path(__file__).resolve().parents[2] / "shared" / "data" / "maxatac"
    gold_path = data / "SK-N-SH__RXRA.bw"
    if not gold_path.is_file():
        pytest.skip("../shared/data/maxatac is not available")
    tmp = tmp_path_factory.mktemp("bench")
    gold = pyBigWig.open(str(gold_path))
    sizes = {c: gold.chroms(c) for c in CHROMS}
    intervals = {
        c: [tuple(map(int, iv[:2])) + (iv[2],) for iv in gold.intervals(c)] for c in CHROMS
    }
    gold.close()
    bed = pd.read_csv(data / "hg38_maxatac_blacklist.bed", sep="\t", header=None, usecols=[0, 1, 2])
    bed.columns = ["chrom", "start", "end"]
    gold_bins = {c: interval_bins(intervals[c], sizes[c], BIN) for c in CHROMS}
    black_bins = {
        c: interval_bins(
            bed[bed["chrom"] == c][["start", "end"]].itertuples(index=False), sizes[c], BIN
        )
        for c in CHROMS
    }
    shift = 10_000
    shifted = write_intervals(
        tmp / "shifted.bw",
        sizes,
        {c: [(s + shift, e + shift, v) for s, e, v in intervals[c]] for c in CHROMS},
    )
    rng = np.random.default_rng(7)
    shuffled = write_bins(
        tmp / "shuffled.bw",
        sizes,
        {
            c: rng.permutation(0.5 * gold_bins[c] + 0.5 * rng.random(gold_bins[c].size))
            for c in CHROMS
        },
        BIN,
    )
    noisy_blacklist = write_bins(
        tmp / "perfect_outside_blacklist.bw",
        sizes,
        {c: (gold_bins[c] | black_bins[c]).astype(float) for c in CHROMS},
        BIN,
    )
    renamed = write_bins(tmp / "renamed.bw", {c[3:]: n for c, n in sizes.items()}, {}, BIN)
    return {
        "gold": gold_path,
        "blacklist_bw": data / "hg38_maxatac_blacklist.bw",
        "blacklist_bed": bed,
        "sizes": sizes,
        "gold_bins": gold_bins,
        "black_bins": black_bins,
        "shifted": shifted,
        "shuffled": shuffled,
        "perfect_outside_blacklist": noisy_blacklist,
        "renamed": renamed,
    }


def row(summary: pd.DataFrame, chrom: str) -> pd.Series:
    """The summary row of one chromosome."""
    return summary.set_index("chrom").loc[chrom]


def test_gold_as_prediction_is_perfect_and_files_are_written(real, tmp_path) -> None:
    summary = benchmark_tracks(
        real["gold"],
        real["gold"],
        chroms=CHROMS,
        blacklist=real["blacklist_bw"],
        out_dir=tmp_path,
        prefix="rxra",
    )
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert list(summary["chrom"]) == [*CHROMS, "all"]
    np.testing.assert_allclose(summary["AUPRC"], 1.0)
    np.testing.assert_allclose(summary["average_precision"], 1.0)
    for chrom in CHROMS:
        r = row(summary, chrom)
        keep = ~real["black_bins"][chrom]
        n_bins = -(-real["sizes"][chrom] // BIN)  # the trailing partial bin is included
        assert r["bins"] + r["blacklisted_bins"] == n_bins
        assert r["bins"] == int(keep.sum())
        assert r["positives"] == int((real["gold_bins"][chrom] & keep).sum())
        assert r["random_AUPRC"] == pytest.approx(r["positives"] / r["bins"])
        assert r["log2FC"] == pytest.approx(math.log2(1.0 / r["random_AUPRC"]))
        prc = pd.read_csv(tmp_path / f"rxra_{chrom}_200bp_PRC.tsv", sep="\t")
        assert list(prc.columns) == list(PRC_COLUMNS)
        assert (prc["Total_GoldStandard_Bins"] == r["positives"]).all()
        assert prc["Random_AUPRC"].iloc[0] == pytest.approx(r["random_AUPRC"])
        assert not ((prc["Recall"] == 0) & (prc["Precision"] == 1)).any()  # end point dropped
        assert prc["Threshold"].notna().all()
    pooled = row(summary, "all")
    assert pooled["bins"] == sum(row(summary, c)["bins"] for c in CHROMS)
    assert pooled["positives"] == sum(row(summary, c)["positives"] for c in CHROMS)
    written = pd.read_csv(tmp_path / "rxra_summary.tsv", sep="\t")
    assert list(written["chrom"]) == [*CHROMS, "all"]
    png = tmp_path / "rxra_200bp_PRC.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))


def test_maxatac_area_drops_the_low_recall_segment(real, tmp_path) -> None:
    summary = benchmark_tracks(
        real["gold"],
        real["gold"],
        chroms=["chr21"],
        blacklist=None,
        out_dir=tmp_path,
        prefix="parity",
        plot=False,
        maxatac_area=True,
    )
    # the original's area misses recall [0, 1] entirely for a binary prediction
    assert row(summary, "chr21")["AUPRC"] == pytest.approx(0.0)
    assert row(summary, "chr21")["average_precision"] == pytest.approx(1.0)
    assert not (tmp_path / "parity_200bp_PRC.png").exists()


def test_shifted_and_shuffled_predictions_score_lower(real, tmp_path) -> None:
    kwargs = {"chroms": CHROMS, "blacklist": real["blacklist_bw"], "out_dir": tmp_path}
    shifted = benchmark_tracks(real["shifted"], real["gold"], prefix="shift", plot=False, **kwargs)
    kwargs["chroms"] = ["chr21"]  # continuous scores: one chromosome keeps the test fast
    shuffled = benchmark_tracks(real["shuffled"], real["gold"], prefix="shuf", **kwargs)
    for chrom in [*CHROMS, "all"]:
        s = row(shifted, chrom)
        assert s["AUPRC"] < 0.1
        assert s["average_precision"] < 0.1
    for chrom in ["chr21", "all"]:
        r = row(shuffled, chrom)
        assert r["AUPRC"] < 0.05
        assert 0.2 < r["AUPRC"] / r["random_AUPRC"] < 5  # near random
        assert abs(r["log2FC"]) < 2.5
    assert (tmp_path / "shuf_200bp_PRC.png").is_file()


def test_blacklisted_bins_are_excluded(real, tmp_path) -> None:
    pred = real["perfect_outside_blacklist"]
    from_bw = benchmark_tracks(
        pred,
        real["gold"],
        chroms=CHROMS,
        blacklist=real["blacklist_bw"],
        out_dir=tmp_path,
        prefix="bw",
        plot=False,
    )
    np.testing.assert_allclose(from_bw["AUPRC"], 1.0)
    from_table = benchmark_tracks(
        pred,
        real["gold"],
        chroms=CHROMS,
        blacklist=real["blacklist_bed"],
        out_dir=tmp_path,
        prefix="bed",
        plot=False,
    )
    pd.testing.assert_frame_equal(from_bw, from_table)
    unmasked = benchmark_tracks(
        pred,
        real["gold"],
        chroms=CHROMS,
        blacklist=None,
        out_dir=tmp_path,
        prefix="none",
        plot=False,
    )
    # a single binary operating point: the trapezoid from (0, 1) overstates (about 0.5), AP not
    assert (unmasked["AUPRC"] < 0.55).all()
    assert (unmasked["average_precision"] < 0.05).all()
    assert (unmasked["blacklisted_bins"] == 0).all()
    assert (unmasked["bins"] > from_bw["bins"]).all()


def test_missing_chromosome_and_naming_mismatch(real, tmp_path) -> None:
    with pytest.raises(InputError, match=r"SK-N-SH__RXRA\.bw.*'chrX' not found"):
        benchmark_tracks(
            real["gold"],
            real["gold"],
            chroms=["chrX"],
            blacklist=None,
            out_dir=tmp_path,
            prefix="x",
        )
    with pytest.raises(InputError, match=r"renamed\.bw.*'chr21'.*'21'.*naming"):
        benchmark_tracks(
            real["renamed"],
            real["gold"],
            chroms=["chr21"],
            blacklist=None,
            out_dir=tmp_path,
            prefix="x",
        )
    with pytest.raises(InputError, match=r"SK-N-SH__RXRA\.bw.*'21'.*'chr21'.*naming"):
        benchmark_tracks(
            real["renamed"],
            real["gold"],
            chroms=["21"],
            blacklist=None,
            out_dir=tmp_path,
            prefix="x",
        )
    with pytest.raises(InputError, match="does not exist"):
        benchmark_tracks(
            tmp_path / "nope.bw",
            real["gold"],
            chroms=["chr21"],
            blacklist=None,
            out_dir=tmp_path,
            prefix="x",
        )
    assert not list(tmp_path.glob("x_*"))


def test_positives_counted_after_masking_and_empty_chromosome(tmp_path, caplog) -> None:
    sizes = {"chrA": 1050, "chrE": 600}
    # gold positives in bins 0, 2 and the partial last bin 5; bin 2 is blacklisted
    gold = write_intervals(
        tmp_path / "gold.bw", sizes, {"chrA": [(10, 20, 1.0), (450, 460, 1.0), (1010, 1050, 1.0)]}
    )
    pred = write_bins(
        tmp_path / "pred.bw",
        sizes,
        {"chrA": np.array([0.9, 0.1, 0.8, 0.3, 0.2, 0.7]), "chrE": np.array([0.5, 0.5, 0.5])},
        200,
    )
    blacklist = pd.DataFrame({"chrom": ["chrA"], "start": [420], "end": [430]})
    with caplog.at_level(logging.WARNING, logger="nucflow.tracks_benchmark"):
        summary = benchmark_tracks(
            pred,
            gold,
            chroms=["chrA", "chrE"],
            blacklist=blacklist,
            out_dir=tmp_path,
            prefix="syn",
        )
    a = row(summary, "chrA")
    assert (a["bins"], a["positives"], a["blacklisted_bins"]) == (5, 2, 1)
    assert a["random_AUPRC"] == pytest.approx(2 / 5)
    assert a["AUPRC"] == pytest.approx(1.0)  # both positives outrank every negative
    e = row(summary, "chrE")
    assert e["positives"] == 0 and math.isnan(e["AUPRC"]) and math.isnan(e["log2FC"])
    assert "chrE" in caplog.text and "no positive" in caplog.text
    assert row(summary, "all")["positives"] == 2
    assert pd.read_csv(tmp_path / "syn_chrE_200bp_PRC.tsv", sep="\t").empty
