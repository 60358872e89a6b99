"""Genome-wide track prediction in the maxATAC style: tile, predict, average overlaps, write.

A chromosome is tiled with ``window``-bp windows every ``step`` bp (:func:`tile_starts`); a
model maps each window to ``bins`` scores, output ``k`` of the window starting at ``s`` covering
``[s + k*w, s + (k + 1)*w)`` with ``w = window // bins`` (32 bp for maxATAC). Every output
value is the mean over all windows that cover it (:func:`predict_chromosome`), written as a
bigWig of ``w``-bp bins on a fixed grid starting at 0 (:func:`predict_bigwig`), optionally
with thresholded, merged peaks (:func:`call_peaks`).

Deviations from maxATAC (reference sections 8 and 14), on purpose:

* Every base is predicted. The original floored the batch count and silently dropped up to
  ``batch_size - 1`` windows at each chromosome end; here one extra window ending exactly at
  the chromosome end is added when the regular tiling stops short of it, and the trailing
  partial grid bin is written (it ends at the chromosome length).
* Off-grid windows (that tail window, or any window when ``step`` is not a multiple of ``w``)
  are averaged exactly: a window bin contributes to each grid bin it overlaps with weight
  ``overlap_bp / w``; a grid bin's value is the weighted mean. For grid-aligned windows every
  weight is 1, so this is maxATAC's plain mean over covering windows.
* Strand averaging is available through :func:`average_strands` (the original predicted the
  forward strand only).

Windows are not filtered against a blacklist here: the caller's ``predict`` sees every window.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyBigWig

from nucflow.errors import InputError
from nucflow.io.atomic import atomic_path

logger = logging.getLogger(__name__)

PredictFn = Callable[[str, np.ndarray], np.ndarray]
"""``predict(chrom, starts)``: window starts of shape ``(n,)`` -> scores of shape ``(n, bins)``."""

PEAK_COLUMNS = ("chrom", "start", "end", "score")


def _check_geometry(window: int, bins: int, step: int, batch_size: int) -> int:
    """Validate the tiling parameters; return the output bin width ``window // bins``."""
    for name, value in (("window", window), ("bins", bins), ("step", step)):
        if int(value) != value or value <= 0:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    if int(batch_size) != batch_size or batch_size <= 0:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    if window % bins:
        raise InputError(f"window ({window}) must be a multiple of bins ({bins})")
    return window // bins


def tile_starts(
    length: int, window: int = 1024, step: int = 256, *, chrom: str = "chromosome"
) -> np.ndarray:
    """Window starts ``0, step, 2*step, ...`` plus, if needed, one window ending at ``length``.

    The regular windows are those that fit entirely (``start + window <= length``). If the last
    of them ends before ``length``, one more window starting at ``length - window`` is appended
    so that every base is covered (the original dropped the tail). Returns sorted, unique int64
    starts. ``chrom`` only names the chromosome in error messages.

    Raises
    ------
    InputError
        If the chromosome is shorter than one window (no padded policy: such chromosomes
        cannot be predicted and must be left out by the caller), or the parameters are invalid.
    """
    if int(window) != window or window <= 0 or int(step) != step or step <= 0:
        raise InputError(f"window and step must be positive integers, got {window!r}, {step!r}")
    if int(length) != length or length < window:
        raise InputError(
            f"{chrom}: length {length} is shorter than one {window}-bp window; "
            "leave this chromosome out of the prediction"
        )
    starts = np.arange(0, int(length) - int(window) + 1, int(step), dtype=np.int64)
    if starts[-1] + window < length:
        starts = np.append(starts, np.int64(length - window))
    return starts


def iter_chromosome_bins(
    predict: PredictFn,
    chrom: str,
    length: int,
    *,
    window: int = 1024,
    bins: int = 32,
    step: int = 256,
    batch_size: int = 256,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Predict one chromosome, yielding ``(starts, ends, values)`` of output bins as they finish.

    ``predict(chrom, starts)`` gets at most ``batch_size`` window starts at a time (int64, in
    increasing order; every start of :func:`tile_starts` exactly once) and returns scores of
    shape ``(n, bins)``. The caller builds the inputs from its loader, runs the model and,
    if wanted, averages the strands (:func:`average_strands`).

    The output is the fixed ``w = window // bins`` grid from 0: ``ceil(length / w)`` contiguous
    intervals, the last one ending at ``length``, so every base lies in exactly one interval;
    the yielded pieces are consecutive, in order, and together cover that grid once. Each value
    is the mean over the window bins covering the grid bin, weighted by overlap in bp (weight 1
    for grid-aligned windows, i.e. maxATAC's mean over 4 windows at step 256).

    Windows come in increasing order, so once a batch is done every grid bin before the next
    window's start is final and is yielded: memory is one batch of scores plus accumulators
    spanning one batch of windows, whatever the chromosome length.

    Raises
    ------
    InputError
        If the chromosome is shorter than one window or the parameters are invalid.
    ValueError
        If ``predict`` returns an array of the wrong shape or a non-finite score.
    """
    width = _check_geometry(window, bins, step, batch_size)
    starts = tile_starts(length, window, step, chrom=chrom)
    n_grid = -(-int(length) // width)
    offsets = np.arange(bins, dtype=np.int64) * width
    base = 0  # grid index of the first pending (not yet final) grid bin
    sums = np.zeros(0, dtype=np.float64)
    weights = np.zeros(0, dtype=np.float64)
    for first in range(0, starts.size, batch_size):
        batch = starts[first : first + batch_size]
        scores = np.asarray(predict(chrom, batch), dtype=np.float64)
        if scores.shape != (batch.size, bins):
            raise ValueError(
                f"{chrom}: predict returned shape {scores.shape} for {batch.size} windows; "
                f"expected ({batch.size}, {bins})"
            )
        if not np.isfinite(scores).all():
            raise ValueError(f"{chrom}: predict returned a non-finite score near {batch[0]}")
        bin_starts = batch[:, None] + offsets[None, :]
        grid = (bin_starts // width).ravel() - base
        shift = (bin_starts % width).ravel()
        flat = scores.ravel()
        size = min(int(grid.max()) + 2, n_grid - base)
        sums = np.pad(sums, (0, max(size - sums.size, 0)))
        weights = np.pad(weights, (0, max(size - weights.size, 0)))
        w_first = (width - shift) / width
        sums += np.bincount(grid, weights=w_first * flat, minlength=sums.size)
        weights += np.bincount(grid, weights=w_first, minlength=weights.size)
        spill = shift > 0  # an off-grid bin also covers the start of the next grid bin
        if spill.any():
            w_next = shift[spill] / width
            sums += np.bincount(grid[spill] + 1, weights=w_next * flat[spill], minlength=sums.size)
            weights += np.bincount(grid[spill] + 1, weights=w_next, minlength=weights.size)
        later = first + batch_size
        final = (int(starts[later]) // width if later < starts.size else n_grid) - base
        if final > 0:
            # tile_starts covers every base, so every final grid bin has a positive weight
            out_starts = (base + np.arange(final, dtype=np.int64)) * width
            yield (
                out_starts,
                np.minimum(out_starts + width, int(length)),
                sums[:final] / weights[:final],
            )
            sums, weights, base = sums[final:], weights[final:], base + final


def predict_chromosome(
    predict: PredictFn,
    chrom: str,
    length: int,
    *,
    window: int = 1024,
    bins: int = 32,
    step: int = 256,
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The whole chromosome's ``(starts, ends, values)`` from :func:`iter_chromosome_bins`.

    Holds every bin in memory (3 arrays of ``ceil(length / (window // bins))``); streaming
    writers use :func:`iter_chromosome_bins` directly.
    """
    pieces = list(
        iter_chromosome_bins(
            predict, chrom, length, window=window, bins=bins, step=step, batch_size=batch_size
        )
    )
    return tuple(np.concatenate(parts) for parts in zip(*pieces, strict=True))  # type: ignore[return-value]


def average_strands(forward_scores: np.ndarray, reverse_scores: np.ndarray) -> np.ndarray:
    """Mean of forward scores and reverse-complement scores flipped back to forward order.

    ``reverse_scores`` are the model outputs for the reverse-complemented windows, in the
    reverse-complement orientation (output 0 is the window's 3' end), shape ``(n, bins)`` like
    ``forward_scores``; their bins are reversed before averaging.
    """
    forward = np.asarray(forward_scores, dtype=np.float64)
    reverse = np.asarray(reverse_scores, dtype=np.float64)
    if forward.shape != reverse.shape or forward.ndim != 2:
        raise ValueError(
            f"strand scores must both have shape (n, bins); got {forward.shape}, {reverse.shape}"
        )
    return (forward + reverse[:, ::-1]) / 2.0


def call_peaks(
    starts: np.ndarray,
    ends: np.ndarray,
    values: np.ndarray,
    threshold: float,
    *,
    chrom: str = ".",
) -> pd.DataFrame:
    """Merge bins with ``value >= threshold`` into peaks (maxATAC ``_peaks.bed`` semantics).

    Kept bins are sorted by start; overlapping or adjacent bins (next start <= current end)
    are merged, and a peak's score is the maximum of its bins. NaN values are never kept.
    Returns a DataFrame with columns ``chrom``, ``start``, ``end``, ``score`` (float).
    """
    s = np.asarray(starts, dtype=np.int64)
    e = np.asarray(ends, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    if not (s.shape == e.shape == v.shape) or s.ndim != 1:
        raise ValueError(f"starts, ends, values must be 1-D of one length: {s.shape}, {e.shape}")
    keep = v >= threshold
    s, e, v = s[keep], e[keep], v[keep]
    if s.size == 0:
        return pd.DataFrame(
            {
                "chrom": pd.Series([], dtype=object),
                "start": np.zeros(0, np.int64),
                "end": np.zeros(0, np.int64),
                "score": np.zeros(0, np.float64),
            }
        )
    order = np.argsort(s, kind="stable")
    s, e, v = s[order], e[order], v[order]
    reach = np.maximum.accumulate(e)
    first = np.concatenate(([0], np.flatnonzero(s[1:] > reach[:-1]) + 1))
    return pd.DataFrame(
        {
            "chrom": [chrom] * first.size,
            "start": s[first],
            "end": np.maximum.reduceat(e, first),
            "score": np.maximum.reduceat(v, first),
        }
    )


def _peak_lines(peaks: pd.DataFrame) -> str:
    """Render a peak table as headerless BED4 text (score with 6 significant digits)."""
    return "".join(
        f"{chrom}\t{start}\t{end}\t{score:.6g}\n"
        for chrom, start, end, score in peaks[list(PEAK_COLUMNS)].itertuples(index=False)
    )


def predict_bigwig(
    predict: PredictFn,
    chrom_sizes: Mapping[str, int],
    chroms: Sequence[str],
    out_path: str | os.PathLike[str],
    *,
    window: int = 1024,
    bins: int = 32,
    step: int = 256,
    batch_size: int = 256,
    peaks_path: str | os.PathLike[str] | None = None,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Predict ``chroms`` and write the averaged bins to a bigWig, one chromosome at a time.

    The bigWig header lists exactly ``chroms`` in the given order with their ``chrom_sizes``;
    bins are added as the tiling finishes them (:func:`iter_chromosome_bins`), so memory does
    not grow with the chromosome (peaks keep only the bins above the threshold). With
    ``peaks_path`` and ``threshold`` a BED4 of merged peaks (:func:`call_peaks`) is written too.
    Both files are written atomically (temporary name, then rename); the bigWig is renamed only
    after the peaks file is in place.

    Returns ``{"bigwig": str, "peaks": str | None, "chromosomes": {chrom: {"length",
    "windows", "bins", "peaks"}}}`` (``peaks`` is None when no peaks were called).

    Raises
    ------
    InputError
        If ``chroms`` is empty, repeats a name, names a chromosome missing from
        ``chrom_sizes`` or shorter than one window, or only one of ``peaks_path`` and
        ``threshold`` is given.
    """
    width = _check_geometry(window, bins, step, batch_size)
    if (peaks_path is None) != (threshold is None):
        raise InputError("peaks need both peaks_path and threshold (got only one of them)")
    chrom_list = [str(c) for c in chroms]
    if not chrom_list:
        raise InputError(f"{out_path}: no chromosomes to predict")
    seen: set[str] = set()
    for chrom in chrom_list:
        if chrom in seen:
            raise InputError(f"{out_path}: chromosome {chrom!r} is listed twice")
        seen.add(chrom)
        if chrom not in chrom_sizes:
            raise InputError(f"{out_path}: chromosome {chrom!r} is not in the chromosome sizes")
        if int(chrom_sizes[chrom]) < window:
            raise InputError(
                f"{out_path}: chromosome {chrom!r} (length {chrom_sizes[chrom]}) is shorter "
                f"than one {window}-bp window"
            )
    header = [(chrom, int(chrom_sizes[chrom])) for chrom in chrom_list]
    summary: dict[str, Any] = {
        "bigwig": str(out_path),
        "peaks": None if peaks_path is None else str(peaks_path),
        "chromosomes": {},
    }
    peak_tables: list[pd.DataFrame] = []
    with atomic_path(out_path) as tmp:
        writer = pyBigWig.open(str(tmp), "w")
        if writer is None:
            raise OSError(f"{out_path}: pyBigWig could not open {tmp} for writing")
        try:
            writer.addHeader(header, maxZooms=10)
            for chrom, length in header:
                kept: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
                n_bins = 0
                for starts, ends, values in iter_chromosome_bins(
                    predict,
                    chrom,
                    length,
                    window=window,
                    bins=bins,
                    step=step,
                    batch_size=batch_size,
                ):
                    _add_grid_entries(writer, chrom, starts, ends, values, width)
                    n_bins += starts.size
                    if threshold is not None:
                        keep = values >= threshold
                        kept.append((starts[keep], ends[keep], values[keep]))
                info = {
                    "length": length,
                    "windows": int(tile_starts(length, window, step, chrom=chrom).size),
                    "bins": n_bins,
                    "peaks": None,
                }
                if threshold is not None:
                    peaks = call_peaks(
                        *(np.concatenate(p) for p in zip(*kept, strict=True)),
                        threshold,
                        chrom=chrom,
                    )
                    info["peaks"] = len(peaks)
                    peak_tables.append(peaks)
                summary["chromosomes"][chrom] = info
                logger.info("predicted %s: %d windows, %d bins", chrom, info["windows"], n_bins)
        finally:
            writer.close()
        if peaks_path is not None:
            with atomic_path(peaks_path) as peaks_tmp:
                peaks_tmp.write_text("".join(_peak_lines(t) for t in peak_tables))
    return summary


def _add_grid_entries(
    writer: Any,
    chrom: str,
    starts: np.ndarray,
    ends: np.ndarray,
    values: np.ndarray,
    width: int,
) -> None:
    """Add consecutive grid bins: full ``width`` bins as one fixed-step run from ``starts[0]``,
    a short last bin (the chromosome end) separately."""
    full = int(np.count_nonzero(ends - starts == width))
    if full:
        writer.addEntries(
            chrom, int(starts[0]), values=values[:full].astype(np.float64), span=width, step=width
        )
    if full < starts.size:
        writer.addEntries(
            [chrom] * (starts.size - full),
            starts[full:],
            ends=ends[full:],
            values=values[full:].astype(np.float64),
        )
