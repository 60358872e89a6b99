"""Streaming bigWig normalization (maxATAC's ``normalize``) against numpy references."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig
import pytest

import nucflow.data.normalize as normalize_module
from nucflow.data.normalize import normalize_signal
from nucflow.errors import InputError
from nucflow.io.track_meta import read_chrom_sizes, read_intervals
from nucflow.io.tracks import write_bigwig

SIZES = {"chr1": 20_000, "chr2": 12_000, "chr3": 5_000}
BLACKLIST = pd.DataFrame(
    {
        "chrom": ["chr1", "chr1", "chr2", "chrZ"],
        "start": [500, 9000, 0, 0],
        "end": [800, 9100, 40, 9],
    }
)


def _values(seed: int = 0) -> dict[str, np.ndarray]:
    """Per-base tracks: many zeros, a NaN gap, a wide value range (lognormal), a few spikes."""
    rng = np.random.default_rng(seed)
    values = {}
    for chrom, size in SIZES.items():
        v = rng.lognormal(-2.0, 1.5, size).astype(np.float32)
        v[rng.random(size) < 0.4] = 0.0
        v = np.repeat(v[: size // 4], 4)[:size]  # runs of 4 equal values
        values[chrom] = v
    values["chr1"][3000:3500] = np.nan
    values["chr1"][600] = 1000.0  # a spike inside the blacklist: must not count
    values["chr2"][100] = 50.0
    return values


@pytest.fixture
def track(tmp_path) -> tuple[Path, dict[str, np.ndarray]]:
    path = tmp_path / "atac.bw"
    values = _values()
    write_bigwig(path, SIZES, values)
    return path, values


def _blacklisted(chrom: str, size: int) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    for row in BLACKLIST[BLACKLIST["chrom"] == chrom].itertuples():
        mask[row.start : row.end] = True
    return mask


def _reference(values: dict[str, np.ndarray], chroms: list[str]) -> np.ndarray:
    """Non-blacklisted values of ``chroms`` with NaN -> 0, concatenated (float64)."""
    kept = [
        np.nan_to_num(values[c], nan=0.0)[~_blacklisted(c, SIZES[c])].astype(np.float64)
        for c in chroms
    ]
    return np.concatenate(kept)


def _read(path: Path, chrom: str) -> np.ndarray:
    bw = pyBigWig.open(str(path))
    try:
        return np.asarray(bw.values(chrom, 0, bw.chroms()[chrom], numpy=True))
    finally:
        bw.close()


def test_min_max_matches_numpy_reference(track, tmp_path):
    path, values = track
    chroms = ["chr1", "chr2"]
    out = tmp_path / "out" / "norm.bw"
    stats_path = tmp_path / "out" / "stats.json"
    stats = normalize_signal(
        path, out, chrom_sizes=SIZES, chroms=chroms, blacklist=BLACKLIST, stats_path=stats_path
    )
    kept = _reference(values, chroms)
    nonzero = kept[kept != 0]
    p99 = np.percentile(nonzero, 99)
    assert stats["percentile"] == p99  # exact, not approximate
    assert stats["min"] == 0.0 and stats["max"] == stats["percentile"]
    assert stats["mean"] == pytest.approx(nonzero.mean(), rel=1e-9)
    assert stats["sd"] == pytest.approx(nonzero.std(), rel=1e-9)
    assert stats["n_nonzero"] == nonzero.size
    assert stats["n_nan"] == 500
    assert stats["n_blacklisted"] == 300 + 100 + 40
    assert json.loads(stats_path.read_text()) == json.loads(json.dumps(stats))

    bw = pyBigWig.open(str(out))
    try:
        assert bw.chroms() == {"chr1": SIZES["chr1"], "chr2": SIZES["chr2"]}  # chr3 not chosen
    finally:
        bw.close()
    for chrom in chroms:
        got = _read(out, chrom)
        raw = np.nan_to_num(values[chrom], nan=0.0).astype(np.float64)
        expected = (raw / p99).astype(np.float32)
        mask = _blacklisted(chrom, SIZES[chrom])
        expected[mask] = 0.0
        assert not np.isnan(got).any()  # every position written, NaN -> 0
        np.testing.assert_allclose(got, expected, rtol=1e-6)
        assert (got[mask] == 0).all()
        per = stats["per_chromosome"][chrom]
        chrom_nonzero = raw[~mask][raw[~mask] != 0]
        assert per["median"] == np.median(chrom_nonzero)
        assert per["min"] == pytest.approx(chrom_nonzero.min(), rel=1e-7)
        assert per["max"] == pytest.approx(chrom_nonzero.max(), rel=1e-7)
    assert _read(out, "chr2").max() > 1.0  # not clipped by default: the spike stays above 1


def test_clip_min_value_none_and_max_value(track, tmp_path):
    path, values = track
    values["chr3"][10:20] = -2.0  # a negative stretch sets the genome minimum
    write_bigwig(path, SIZES, values)
    out = tmp_path / "clip.bw"
    stats = normalize_signal(
        path, out, chrom_sizes=SIZES, chroms=["chr3"], blacklist=None, min_value=None, clip=True
    )
    kept = _reference(values, ["chr3"])
    assert stats["min"] == -2.0
    high = np.percentile(kept[kept != 0], 99)
    got = _read(out, "chr3")
    expected = np.clip((kept + 2.0) / (high + 2.0), 0.0, 1.0)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got.min() == 0.0 and got.max() == 1.0

    fixed = normalize_signal(
        path, out, chrom_sizes=SIZES, chroms=["chr3"], blacklist=None, max_value=4.0
    )
    assert fixed["max"] == 4.0 and fixed["min"] == 0.0
    np.testing.assert_allclose(_read(out, "chr3"), kept / 4.0, rtol=1e-6)


@pytest.mark.parametrize("method", ["zscore", "arcsinh"])
def test_zscore_and_arcsinh(track, tmp_path, method):
    path, values = track
    out = tmp_path / f"{method}.bw"
    stats = normalize_signal(
        path, out, chrom_sizes=SIZES, chroms=["chr1", "chr2"], blacklist=BLACKLIST, method=method
    )
    kept = _reference(values, ["chr1", "chr2"])
    nonzero = kept[kept != 0]
    for chrom in ("chr1", "chr2"):
        raw = np.nan_to_num(values[chrom], nan=0.0).astype(np.float64)
        zscore = (raw - nonzero.mean()) / nonzero.std()
        expected = zscore if method == "zscore" else np.arcsinh(raw)
        mask = _blacklisted(chrom, SIZES[chrom])
        expected[mask] = 0.0
        np.testing.assert_allclose(_read(out, chrom), expected, rtol=1e-5, atol=1e-6)
    assert stats["method"] == method


def test_streaming_reads_bounded_chunks_with_identical_results(track, tmp_path, monkeypatch):
    path, _ = track
    whole = normalize_signal(
        path, tmp_path / "a.bw", chrom_sizes=SIZES, chroms=list(SIZES), blacklist=BLACKLIST
    )
    reads: list[tuple[str, int, int]] = []
    original = normalize_module._read_chunk

    def spy(bigwig, chrom, start, end):
        reads.append((chrom, start, end))
        return original(bigwig, chrom, start, end)

    monkeypatch.setattr(normalize_module, "_read_chunk", spy)
    chunked = normalize_signal(
        path,
        tmp_path / "b.bw",
        chrom_sizes=SIZES,
        chroms=list(SIZES),
        blacklist=BLACKLIST,
        chunk_bases=997,
    )
    assert max(end - start for _, start, end in reads) <= 997
    # three passes, each chromosome in order, never a whole-genome array
    assert [c for c, s, _ in reads if s == 0] == ["chr1", "chr2", "chr3"] * 3
    for key in ("percentile", "mean", "sd", "n_nonzero", "min", "max", "per_chromosome"):
        if isinstance(whole[key], float):
            assert chunked[key] == pytest.approx(whole[key], rel=1e-12)
        else:
            assert chunked[key] == whole[key]
    for chrom in SIZES:
        np.testing.assert_array_equal(
            _read(tmp_path / "a.bw", chrom), _read(tmp_path / "b.bw", chrom)
        )


def test_exact_percentile_across_histogram_bins(tmp_path):
    # neighbouring order statistics in different top-16-bit bins, negative values, ties
    v = np.zeros(30_000, dtype=np.float32)
    rng = np.random.default_rng(9)
    v[:29_000] = rng.choice([-3.0, 1e-6, 0.5, 0.5000001, 2.0, 7.0, 1e9], size=29_000)
    sizes = {"c": v.size}
    path = tmp_path / "x.bw"
    write_bigwig(path, sizes, {"c": v})
    nonzero = v[v != 0].astype(np.float64)
    for q in (1.0, 50.0, 97.3, 99.0, 99.99, 100.0):
        stats = normalize_signal(
            path,
            tmp_path / "o.bw",
            chrom_sizes=sizes,
            chroms=["c"],
            blacklist=None,
            max_percentile=q,
            min_value=-5.0,
        )
        assert stats["percentile"] == np.percentile(nonzero, q)
    assert stats["per_chromosome"]["c"]["median"] == np.median(nonzero)


def test_bad_inputs(track, tmp_path):
    path, _ = track
    common = {"chrom_sizes": SIZES, "blacklist": None}
    with pytest.raises(InputError, match="normalize method 'quantile' is unknown"):
        normalize_signal(path, tmp_path / "o.bw", chroms=["chr1"], method="quantile", **common)
    with pytest.raises(InputError, match=r"chromosome 'chr9' not found"):
        normalize_signal(path, tmp_path / "o.bw", chroms=["chr9"], **common)
    bare = tmp_path / "bare.bw"
    write_bigwig(bare, {"1": 20_000}, {"1": np.ones(20_000, np.float32)})
    with pytest.raises(InputError, match=r"bare\.bw: chromosome 'chr1' not found.*naming"):
        normalize_signal(bare, tmp_path / "o.bw", chroms=["chr1"], **common)
    bare_blacklist = pd.DataFrame({"chrom": ["1"], "start": [0], "end": [10]})
    with pytest.raises(InputError, match=r"blacklist: chromosome 'chr1' not found.*naming"):
        normalize_signal(
            path, tmp_path / "o.bw", chroms=["chr1"], chrom_sizes=SIZES, blacklist=bare_blacklist
        )
    empty = tmp_path / "zeros.bw"
    write_bigwig(empty, SIZES, {"chr1": np.zeros(20_000, np.float32)})
    with pytest.raises(InputError, match="no non-zero values"):
        normalize_signal(empty, tmp_path / "o.bw", chroms=["chr1"], **common)
    assert not (tmp_path / "o.bw").exists()  # nothing half-written


def test_real_binary_track_with_real_blacklist(shared_data, tmp_path):
    maxatac = shared_data / "maxatac"
    sizes = read_chrom_sizes(maxatac / "hg38.chrom.sizes")
    blacklist = read_intervals(maxatac / "hg38_maxatac_blacklist.bed")
    source = maxatac / "SK-N-SH__RXRA.bw"
    out = tmp_path / "rxra_norm.bw"
    stats = normalize_signal(
        source, out, chrom_sizes=sizes, chroms=["chr21"], blacklist=blacklist, chunk_bases=1 << 24
    )
    # a 0/1 gold standard: percentile of the non-zero values is 1, so min-max is the identity
    assert stats["percentile"] == 1.0 and stats["min"] == 0.0
    bw = pyBigWig.open(str(source))
    try:
        peaks = bw.intervals("chr21")
    finally:
        bw.close()
    mask = _mask_from(blacklist, "chr21", sizes["chr21"])
    covered = np.zeros(sizes["chr21"], dtype=bool)
    for start, end, _ in peaks:
        covered[start:end] = True
    assert stats["n_nonzero"] == int((covered & ~mask).sum()) > 0
    got = pyBigWig.open(str(out))
    try:
        runs = [(s, e) for s, e, value in got.intervals("chr21") if value == 1.0]
    finally:
        got.close()
    assert sum(e - s for s, e in runs) == stats["n_nonzero"]


def _mask_from(table: pd.DataFrame, chrom: str, size: int) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    for row in table[table["chrom"] == chrom].itertuples():
        mask[row.start : row.end] = True
    return mask
