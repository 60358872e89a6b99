"""maxATAC's ``normalize`` done right: streaming genome statistics and an exact percentile.

The bigWig is read chromosome by chromosome in chunks of ``chunk_bases`` bases (no
genome-wide array, unlike the original, which appended every chromosome to one array), in
three passes over the chosen chromosomes:

1. NaN (no data) -> 0, blacklisted positions dropped; accumulate the minimum over all kept
   positions, and over the kept NON-ZERO values their count, mean and variance (Chan's
   pairwise update, float64) and a 65,536-bin histogram of the top 16 bits of an
   order-preserving 32-bit key of each float32 value (genome-wide and per chromosome).
2. For the bins that hold the wanted order statistics (the two neighbours of the percentile
   rank and the per-chromosome medians), a histogram of the low 16 bits: this pins down each
   order statistic EXACTLY (radix selection); the interpolation then repeats numpy's float64
   steps, so the percentile equals ``np.percentile`` (default linear method) of the same
   values as float64, bit for bit, and each median equals ``np.median``.
3. Transform and write the output bigWig chunk by chunk, atomically.

Peak memory is a few chunk-sized arrays plus one 512 KB histogram per chromosome.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyBigWig

from nucflow.errors import InputError
from nucflow.io.atomic import atomic_path, write_text_atomic
from nucflow.io.track_meta import check_chromosome_names, toggle_chr
from nucflow.io.tracks import value_runs

logger = logging.getLogger(__name__)

NORMALIZE_METHODS = ("min-max", "zscore", "arcsinh")
CHUNK_BASES = 1 << 22
"""Bases read per step (16 MB of float32)."""
_BINS = 1 << 16
_SIGN = np.uint32(0x80000000)


def _keys(values: np.ndarray) -> np.ndarray:
    """Order-preserving uint32 keys of float32 values (no NaN): a < b <=> key(a) < key(b)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    return np.where(bits & _SIGN, ~bits, bits | _SIGN)


def _value(key: int) -> float:
    """Inverse of :func:`_keys` for one key."""
    bits = key ^ 0x80000000 if key & 0x80000000 else ~key & 0xFFFFFFFF
    return float(np.array([bits], dtype=np.uint32).view(np.float32)[0])


def _lerp(low: float, high: float, t: float) -> float:
    """Linear interpolation as numpy's percentile does it (stable for t near 1)."""
    if t >= 0.5:
        return high - (high - low) * (1.0 - t)
    return low + (high - low) * t


class _Moments:
    """Count, mean and sum of squared deviations, merged chunk by chunk (Chan et al.)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    def add(self, values: np.ndarray) -> None:
        """Merge a chunk of values."""
        n_b = int(values.size)
        if not n_b:
            return
        mean_b = float(values.mean(dtype=np.float64))
        m2_b = float(np.square(values.astype(np.float64) - mean_b).sum())
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * self.n * n_b / n
        self.n = n

    @property
    def sd(self) -> float:
        """Population standard deviation (ddof 0), NaN when empty."""
        return math.sqrt(self.m2 / self.n) if self.n else math.nan


class _Selector:
    """Exact order statistics of a value set seen in two passes (radix select on 32-bit keys)."""

    def __init__(self) -> None:
        self.high = np.zeros(_BINS, dtype=np.int64)
        self.count = 0
        self.wanted: dict[int, tuple[int, int]] = {}  # rank -> (top bin, rank inside the bin)
        self.low: dict[int, np.ndarray] = {}  # top bin -> low-bits histogram

    def first_pass(self, keys: np.ndarray) -> None:
        """Histogram the top 16 bits of a chunk of keys."""
        self.high += np.bincount(keys >> 16, minlength=_BINS)
        self.count += int(keys.size)

    def want(self, ranks: Sequence[int]) -> None:
        """Declare the 0-based ranks to select (after the first pass)."""
        cumulative = np.cumsum(self.high)
        for rank in ranks:
            top = int(np.searchsorted(cumulative, rank, side="right"))
            before = int(cumulative[top - 1]) if top else 0
            self.wanted[rank] = (top, rank - before)
            self.low.setdefault(top, np.zeros(_BINS, dtype=np.int64))

    def second_pass(self, keys: np.ndarray) -> None:
        """Histogram the low 16 bits of the keys that fall in a wanted top bin."""
        if not self.low:
            return
        top = keys >> 16
        for bin_, histogram in self.low.items():
            inside = keys[top == bin_]
            if inside.size:
                histogram += np.bincount(inside & 0xFFFF, minlength=_BINS)

    def value(self, rank: int) -> float:
        """The value of a wanted rank (after the second pass)."""
        top, inner = self.wanted[rank]
        low = int(np.searchsorted(np.cumsum(self.low[top]), inner, side="right"))
        return _value((top << 16) | low)

    def percentile_ranks(self, q: float) -> tuple[int, int, float]:
        """The two ranks around percentile ``q`` and the interpolation weight, computed in the
        same floating-point steps as ``np.percentile(..., method="linear")``."""
        h = (self.count - 1) * (q / 100.0)
        if h >= self.count - 1:
            return self.count - 1, self.count - 1, 0.0
        low = max(int(math.floor(h)), 0)
        return low, low + 1, h - math.floor(h)

    def percentile(self, q: float) -> float:
        """Linear-interpolation percentile (numpy's default) from the selected ranks."""
        low, high, t = self.percentile_ranks(q)
        return _lerp(self.value(low), self.value(high), t)


def _blacklist_by_chrom(
    blacklist: pd.DataFrame | None, chroms: Sequence[str]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Sorted (starts, ends) of blacklist intervals per chosen chromosome."""
    if blacklist is None:
        return {}
    missing = [c for c in ("chrom", "start", "end") if c not in blacklist.columns]
    if missing:
        raise InputError(f"blacklist table lacks column(s) {', '.join(missing)}")
    wanted = set(chroms)
    named = {str(c) for c in pd.unique(blacklist["chrom"])}
    if named and not named & wanted:
        twins = sorted(c for c in named if toggle_chr(c) in wanted)
        if twins:
            raise InputError(
                f"blacklist: chromosome {toggle_chr(twins[0])!r} not found; the blacklist names "
                f"chromosomes like {twins[0]!r} (naming mismatch between files)"
            )
    result: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for chrom, group in blacklist.groupby("chrom", sort=False):
        if chrom not in wanted:
            continue
        order = np.argsort(group["start"].to_numpy(), kind="stable")
        starts = group["start"].to_numpy(np.int64)[order]
        ends = group["end"].to_numpy(np.int64)[order]
        result[str(chrom)] = (starts, ends)
    return result


def _mask(intervals: tuple[np.ndarray, np.ndarray] | None, start: int, end: int) -> np.ndarray:
    """Boolean blacklist mask of positions ``[start, end)``."""
    mask = np.zeros(end - start, dtype=bool)
    if intervals is None:
        return mask
    starts, ends = intervals
    for s, e in zip(starts[starts < end], ends[starts < end], strict=True):
        if e > start:
            mask[max(int(s), start) - start : min(int(e), end) - start] = True
    return mask


def _read_chunk(bigwig: Any, chrom: str, start: int, end: int) -> np.ndarray:
    """Values of ``[start, end)`` as float32 (NaN where the file has no data)."""
    return np.asarray(bigwig.values(chrom, start, end, numpy=True), dtype=np.float32)


def _chunks(
    bigwig: Any,
    chrom: str,
    size: int,
    chunk_bases: int,
    blacklist: tuple[np.ndarray, np.ndarray] | None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray, int]]:
    """Yield ``(start, values with NaN -> 0, blacklist mask, NaN count)`` chunk by chunk."""
    for start in range(0, size, chunk_bases):
        end = min(start + chunk_bases, size)
        values = _read_chunk(bigwig, chrom, start, end)
        nan = np.isnan(values)
        n_nan = int(nan.sum())
        if n_nan:
            values[nan] = 0.0
        yield start, values, _mask(blacklist, start, end), n_nan


def _open_bigwig(path: Path) -> Any:
    """Open a bigWig for reading (InputError when it is missing or not a bigWig)."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        handle = pyBigWig.open(str(path))
    except RuntimeError:
        handle = None
    if handle is None or not handle.isBigWig():
        raise InputError(f"{path}: cannot be opened as a bigWig file")
    return handle


def _check_args(
    method: str, max_percentile: float, chroms: Sequence[str], chrom_sizes: Mapping[str, int]
) -> list[str]:
    """Validate the options; return the chosen chromosomes (in order, duplicates dropped)."""
    if method not in NORMALIZE_METHODS:
        raise InputError(
            f"normalize method {method!r} is unknown; "
            f"expected one of {', '.join(NORMALIZE_METHODS)}"
        )
    if not 0.0 < float(max_percentile) <= 100.0:
        raise InputError(f"max_percentile {max_percentile!r}; expected a number in (0, 100]")
    if isinstance(chroms, str):
        raise InputError(f"chroms must be a list of chromosome names, got the string {chroms!r}")
    wanted = list(dict.fromkeys(str(c) for c in chroms))
    if not wanted:
        raise InputError("no chromosomes chosen to normalize")
    check_chromosome_names(wanted, chrom_sizes, what="chromosome", source="chromosome sizes")
    return wanted


def normalize_signal(
    bigwig_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    chrom_sizes: Mapping[str, int],
    chroms: Sequence[str],
    blacklist: pd.DataFrame | None,
    method: str = "min-max",
    max_percentile: float = 99.0,
    min_value: float | None = 0.0,
    max_value: float | None = None,
    clip: bool = False,
    stats_path: str | os.PathLike[str] | None = None,
    chunk_bases: int = CHUNK_BASES,
) -> dict[str, Any]:
    """Normalize a bigWig over ``chroms`` and write it (1-bp runs) to ``out_path``; return stats.

    Statistics use the non-blacklisted positions of ``chroms`` with NaN (no data) as 0:
    ``min`` is ``min_value`` (maxATAC's ``--min``, default 0) or, when None, the minimum over
    those positions; ``max`` is ``max_value`` or, when None, the ``max_percentile`` percentile
    (exact, linear interpolation as ``np.percentile``) of the NON-ZERO values; ``mean`` and
    ``sd`` (population) are over the non-zero values.

    Methods: ``min-max`` = (x - min) / (max - min), clipped to [0, 1] only when ``clip``;
    ``zscore`` = (x - mean) / sd; ``arcsinh`` = asinh(x). Blacklisted positions are written as
    0 whatever the method. The output has the chosen chromosomes, in ``chroms`` order, with
    their ``chrom_sizes`` lengths. The stats dict (also written as JSON to ``stats_path`` when
    given) holds min, max, percentile, mean, sd, counts and, per chromosome, the min, max and
    median of the non-zero values (None where a chromosome has none).

    Raises
    ------
    InputError
        Unknown method, bad percentile, a chromosome missing from the sizes or the bigWig
        (naming mismatches reported as such), a length differing from the sizes, no non-zero
        values where the statistics need them, or ``max <= min`` / ``sd == 0``.
    """
    source = Path(bigwig_path)
    wanted = _check_args(method, max_percentile, chroms, chrom_sizes)
    chunk = int(chunk_bases)
    if chunk <= 0:
        raise InputError(f"chunk_bases {chunk_bases!r}; expected a positive integer")
    sizes = {chrom: int(chrom_sizes[chrom]) for chrom in wanted}
    masks = _blacklist_by_chrom(blacklist, wanted)
    bigwig = _open_bigwig(source)
    try:
        header = {str(k): int(v) for k, v in bigwig.chroms().items()}
        check_chromosome_names(wanted, header, what="chromosome", source=source)
        for chrom, size in sizes.items():
            if header[chrom] != size:
                raise InputError(
                    f"{source}: chromosome {chrom!r} has {header[chrom]} bp in the bigWig but "
                    f"{size} bp in the chromosome sizes; expected the same genome build"
                )
        stats = _statistics(bigwig, source, sizes, masks, max_percentile, chunk)
        low, high = _scale(stats, method, min_value, max_value, source)
        stats.update(
            {
                "source": str(source),
                "output": str(out_path),
                "method": method,
                "clip": bool(clip),
                "max_percentile": float(max_percentile),
                "min": low,
                "max": high,
            }
        )
        _write(bigwig, Path(out_path), sizes, masks, method, low, high, stats, clip, chunk)
    finally:
        bigwig.close()
    if stats_path is not None:
        write_text_atomic(stats_path, json.dumps(stats, indent=2) + "\n")
    logger.info(
        "normalized %s (%s, min %s, max %s) over %d chromosomes to %s",
        source,
        method,
        stats["min"],
        stats["max"],
        len(sizes),
        out_path,
    )
    return stats


def _statistics(
    bigwig: Any,
    source: Path,
    sizes: Mapping[str, int],
    masks: Mapping[str, tuple[np.ndarray, np.ndarray]],
    max_percentile: float,
    chunk_bases: int,
) -> dict[str, Any]:
    """Passes 1 and 2: genome-wide and per-chromosome statistics (see the module docstring)."""
    genome = _Selector()
    moments = _Moments()
    per_chrom: dict[str, _Selector] = {}
    extremes: dict[str, tuple[float, float]] = {}
    position_min = math.inf
    n_positions = n_nan = n_blacklisted = 0
    for chrom, size in sizes.items():
        selector = _Selector()
        chrom_min, chrom_max = math.inf, -math.inf
        for _, values, mask, chunk_nan in _chunks(
            bigwig, chrom, size, chunk_bases, masks.get(chrom)
        ):
            kept = values[~mask]
            n_positions += kept.size
            n_nan += chunk_nan
            n_blacklisted += int(mask.sum())
            if kept.size:
                position_min = min(position_min, float(kept.min()))
            nonzero = kept[kept != 0]
            if nonzero.size:
                chrom_min = min(chrom_min, float(nonzero.min()))
                chrom_max = max(chrom_max, float(nonzero.max()))
                moments.add(nonzero)
                keys = _keys(nonzero)
                selector.first_pass(keys)
        genome.high += selector.high
        genome.count += selector.count
        per_chrom[chrom] = selector
        extremes[chrom] = (chrom_min, chrom_max)
        logger.info(
            "%s: %s: %d non-zero values outside the blacklist", source, chrom, selector.count
        )
    if genome.count:
        genome.want(genome.percentile_ranks(max_percentile)[:2])
    for selector in per_chrom.values():
        if selector.count:
            selector.want(selector.percentile_ranks(50.0)[:2])
    if genome.count:  # pass 2 is needed only when some value exists
        for chrom, size in sizes.items():
            selector = per_chrom[chrom]
            if not selector.count:
                continue
            for _, values, mask, _ in _chunks(bigwig, chrom, size, chunk_bases, masks.get(chrom)):
                kept = values[~mask]
                keys = _keys(kept[kept != 0])
                genome.second_pass(keys)
                selector.second_pass(keys)
    chromosomes: dict[str, dict[str, Any]] = {}
    for chrom, selector in per_chrom.items():
        if selector.count:
            low_rank, high_rank, _ = selector.percentile_ranks(50.0)
            median = (selector.value(low_rank) + selector.value(high_rank)) / 2.0
            chrom_min, chrom_max = extremes[chrom]
            chromosomes[chrom] = {
                "min": chrom_min,
                "max": chrom_max,
                "median": median,
                "n_nonzero": selector.count,
            }
        else:
            chromosomes[chrom] = {"min": None, "max": None, "median": None, "n_nonzero": 0}
    nonzero_min = min((c["min"] for c in chromosomes.values() if c["n_nonzero"]), default=None)
    nonzero_max = max((c["max"] for c in chromosomes.values() if c["n_nonzero"]), default=None)
    return {
        "chromosomes": list(sizes),
        "position_min": position_min if n_positions else None,
        "percentile": genome.percentile(max_percentile) if genome.count else None,
        "mean": moments.mean if moments.n else None,
        "sd": moments.sd if moments.n else None,
        "nonzero_min": nonzero_min,
        "nonzero_max": nonzero_max,
        "n_positions": n_positions,
        "n_nonzero": genome.count,
        "n_nan": n_nan,
        "n_blacklisted": n_blacklisted,
        "per_chromosome": chromosomes,
    }


def _scale(
    stats: Mapping[str, Any],
    method: str,
    min_value: float | None,
    max_value: float | None,
    source: Path,
) -> tuple[float | None, float | None]:
    """The (min, max) used by min-max scaling (also reported for the other methods; None
    where there is no value to report)."""
    where = f"{source} on {', '.join(stats['chromosomes'])}"
    low = float(min_value) if min_value is not None else stats["position_min"]
    high = float(max_value) if max_value is not None else stats["percentile"]
    if method == "min-max":
        if low is None or high is None:
            raise InputError(
                f"{where}: no non-zero values outside the blacklist; cannot compute the "
                "percentile maximum (give max_value)"
            )
        if not high > low:
            raise InputError(
                f"{where}: max {high:.6g} <= min {low:.6g}; expected max > min for min-max"
            )
    if method == "zscore" and not (stats["sd"] or 0.0) > 0.0:
        raise InputError(
            f"{where}: the non-zero values have no spread (sd {stats['sd']}); cannot z-score"
        )
    return (None if low is None else float(low), None if high is None else float(high))


def _transform(
    values: np.ndarray,
    method: str,
    low: float | None,
    high: float | None,
    stats: Mapping[str, Any],
    clip: bool,
) -> np.ndarray:
    """Apply the normalization to a chunk (float64 arithmetic, float32 result)."""
    x = values.astype(np.float64)
    if method == "min-max":
        assert low is not None and high is not None  # checked by _scale
        x = (x - low) / (high - low)
        if clip:
            np.clip(x, 0.0, 1.0, out=x)
    elif method == "zscore":
        x = (x - stats["mean"]) / stats["sd"]
    else:
        x = np.arcsinh(x)
    return x.astype(np.float32)


def _write(
    bigwig: Any,
    out_path: Path,
    sizes: Mapping[str, int],
    masks: Mapping[str, tuple[np.ndarray, np.ndarray]],
    method: str,
    low: float | None,
    high: float | None,
    stats: Mapping[str, Any],
    clip: bool,
    chunk_bases: int,
) -> None:
    """Pass 3: transform chunk by chunk and stream runs of equal values into a bigWig."""
    n_entries = 0
    with atomic_path(out_path) as tmp:
        writer = pyBigWig.open(str(tmp), "w")
        if writer is None:
            raise OSError(f"{out_path}: pyBigWig could not open {tmp} for writing")
        try:
            writer.addHeader(list(sizes.items()), maxZooms=10)
            for chrom, size in sizes.items():
                for start, values, mask, _ in _chunks(
                    bigwig, chrom, size, chunk_bases, masks.get(chrom)
                ):
                    out = _transform(values, method, low, high, stats, clip)
                    out[mask] = 0.0
                    starts, ends, run_values = value_runs(out)
                    if starts.size:
                        writer.addEntries(
                            [chrom] * starts.size,
                            starts + start,
                            ends=ends + start,
                            values=run_values.astype(np.float64),
                        )
                        n_entries += starts.size
        finally:
            writer.close()
    logger.info("wrote %d bigWig intervals to %s", n_entries, out_path)
