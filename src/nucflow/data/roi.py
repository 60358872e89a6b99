"""maxATAC regions of interest: peak-centred 1024-bp windows and random genomic windows.

The ROI pool follows maxATAC (reference §4): every ATAC and ChIP peak of the Train cell lines
on the pool's chromosomes is centred on its midpoint and widened to a 1024-bp window; windows
leaving the chromosome or overlapping the blacklist are dropped. ATAC rows come first, then ChIP
rows, with no de-duplication (a peak shared by k cell lines appears k times, as in maxATAC).

Deliberate deviations (reference §13/§14), each documented where it happens:

- the chromosome-edge rule is inclusive: a window is inside when ``start >= 0`` and
  ``end <= size`` (maxATAC keeps only ``start > 0`` and ``end < size``, losing two windows for
  no reason);
- narrowPeak summits can be used as centres (``centre="summit"``);
- saved pools carry a header, so :func:`read_pool` can reuse them (the original's saved pools
  were headerless and could not be read back);
- random windows are filtered against the blacklist and, through a caller-supplied function,
  against N runs.

Coordinates are 0-based with exclusive ends throughout.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from nucflow.errors import InputError
from nucflow.io.atomic import atomic_path

TRAIN_CHROMS: tuple[str, ...] = (
    "chr3",
    "chr4",
    "chr5",
    "chr6",
    "chr7",
    "chr9",
    "chr10",
    "chr11",
    "chr12",
    "chr13",
    "chr14",
    "chr15",
    "chr16",
    "chr17",
    "chr18",
    "chr20",
    "chr21",
    "chr22",
)
"""maxATAC's default training chromosomes (``--tchroms``, 18 chromosomes)."""

VALID_CHROMS: tuple[str, ...] = ("chr2", "chr19")
"""maxATAC's default validation chromosomes (``--vchroms``)."""

ROI_TYPES: tuple[str, ...] = ("ATAC", "CHIP")
"""Peak origins of ROI rows, in pool order."""

POOL_COLUMNS: tuple[str, ...] = ("chrom", "start", "end", "roi_type", "cell_line")
"""Columns of an ROI pool table (and the header of a saved pool)."""

_ORIGINAL_HEADER = {
    "Chr": "chrom",
    "Start": "start",
    "Stop": "end",
    "ROI_Type": "roi_type",
    "Cell_Line": "cell_line",
}
"""The original maxATAC ``--train_roi`` header, accepted by :func:`read_pool` as well."""

_CENTRES = ("midpoint", "summit")
_ALL = "all"


def window_around(centers: np.ndarray, width: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Windows of ``width`` bp around ``centers``: ``start = center - width // 2``.

    Returns int64 ``(starts, ends)`` with ``end = start + width``.
    """
    if width <= 0:
        raise ValueError(f"window width must be positive, got {width}")
    c = np.asarray(centers, dtype=np.int64)
    starts = c - width // 2
    return starts, starts + width


def _empty_pool() -> pd.DataFrame:
    """A pool with no rows and the pool dtypes."""
    return pd.DataFrame(
        {
            "chrom": pd.Series([], dtype=str),
            "start": pd.Series([], dtype=np.int64),
            "end": pd.Series([], dtype=np.int64),
            "roi_type": pd.Series([], dtype=str),
            "cell_line": pd.Series([], dtype=str),
        }
    )


def _blacklist_index(blacklist: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per chromosome: blacklist starts sorted, and the running maximum of their ends."""
    missing = [c for c in ("chrom", "start", "end") if c not in blacklist.columns]
    if missing:
        raise InputError(f"blacklist table: missing column(s) {', '.join(missing)}")
    index: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for chrom, part in blacklist.groupby(blacklist["chrom"].astype(str), sort=False):
        starts = part["start"].to_numpy(dtype=np.int64)
        ends = part["end"].to_numpy(dtype=np.int64)
        order = np.argsort(starts, kind="stable")
        index[str(chrom)] = (starts[order], np.maximum.accumulate(ends[order]))
    return index


def _overlaps(
    index: Mapping[str, tuple[np.ndarray, np.ndarray]],
    chrom: str,
    starts: np.ndarray,
    ends: np.ndarray,
) -> np.ndarray:
    """True where ``[start, end)`` overlaps an indexed interval by at least 1 bp.

    Intervals ``[bs, be)`` with ``bs < end`` are a prefix of the sorted starts; one of them
    overlaps exactly when the largest ``be`` among them exceeds ``start``.
    """
    s = np.asarray(starts, dtype=np.int64)
    if chrom not in index:
        return np.zeros(s.shape, dtype=bool)
    b_starts, b_max_ends = index[chrom]
    k = np.searchsorted(b_starts, np.asarray(ends, dtype=np.int64), side="left")
    hit = np.zeros(s.shape, dtype=bool)
    has = k > 0
    hit[has] = b_max_ends[k[has] - 1] > s[has]
    return hit


def overlaps_blacklist(
    blacklist: pd.DataFrame, chrom: str, starts: np.ndarray, ends: np.ndarray
) -> np.ndarray:
    """Boolean mask: which windows ``[starts, ends)`` on ``chrom`` overlap ``blacklist`` (>= 1 bp).

    Touching is not overlapping: a window ending exactly at a blacklist start is clear.
    """
    return _overlaps(_blacklist_index(blacklist), chrom, starts, ends)


def _centres(frame: pd.DataFrame, centre: str, what: str) -> np.ndarray:
    """Window centres of peak intervals: the floored midpoint, or the summit when asked."""
    starts = frame["start"].to_numpy(dtype=np.int64)
    ends = frame["end"].to_numpy(dtype=np.int64)
    mid = starts + (ends - starts) // 2
    if centre == "midpoint":
        return mid
    if "summit" not in frame.columns:
        raise InputError(f"{what}: centre='summit' needs a 'summit' column (absolute position)")
    summit = pd.to_numeric(frame["summit"], errors="coerce").to_numpy(dtype=np.float64)
    use = np.isfinite(summit) & (summit >= 0)
    return np.where(use, np.nan_to_num(summit, nan=-1.0).astype(np.int64), mid)


def _checked_peaks(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """Peak intervals with integer coordinates and ``0 <= start < end``."""
    missing = [c for c in ("chrom", "start", "end") if c not in frame.columns]
    if missing:
        raise InputError(f"{what}: missing column(s) {', '.join(missing)}")
    out = frame.copy()
    out["chrom"] = out["chrom"].astype(str)
    for col in ("start", "end"):
        values = pd.to_numeric(out[col], errors="coerce")
        bad = values.isna() | (values % 1 != 0)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{what}: row {row} has a non-integer {col} (expected an integer)")
        out[col] = values.astype(np.int64)
    bad = (out["start"] < 0) | (out["end"] <= out["start"])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{what}: row {row} has start {out['start'].iat[row]}, end {out['end'].iat[row]} "
            "(expected 0 <= start < end)"
        )
    return out


def roi_pool(
    peaks: Sequence[tuple[str, str, pd.DataFrame]],
    chroms: Sequence[str],
    chrom_sizes: Mapping[str, int],
    blacklist: pd.DataFrame,
    *,
    width: int = 1024,
    centre: str = "midpoint",
) -> pd.DataFrame:
    """Build an ROI pool from ``(cell_line, roi_type, intervals)`` peak tables.

    ``roi_type`` is ``"ATAC"`` or ``"CHIP"``; ``intervals`` has ``chrom``, ``start``, ``end``
    and, for ``centre="summit"``, an absolute ``summit`` column (rows with a negative or missing
    summit fall back to the midpoint). The caller passes only Train cell lines.

    Rows on ``chroms`` are centred (``floor(start + (end - start) / 2)``) and widened to
    ``[center - width // 2, center - width // 2 + width)``. A window is kept when it lies on the
    chromosome, ``start >= 0`` and ``end <= size`` (a window ending exactly at the chromosome end
    is inside), and overlaps no blacklist interval by 1 bp or more.

    Returns columns ``chrom, start, end, roi_type, cell_line``: all ATAC rows (in input order),
    then all CHIP rows, without de-duplication (as maxATAC).
    """
    if centre not in _CENTRES:
        raise ValueError(f"centre must be one of {', '.join(_CENTRES)}, got {centre!r}")
    wanted = set(chroms)
    index = _blacklist_index(blacklist)
    parts: dict[str, list[pd.DataFrame]] = {t: [] for t in ROI_TYPES}
    for cell_line, roi_type, intervals in peaks:
        what = f"{roi_type} peaks of cell line {cell_line}"
        if roi_type not in ROI_TYPES:
            raise InputError(f"{what}: ROI type {roi_type!r} (expected ATAC or CHIP)")
        frame = _checked_peaks(intervals, what)
        frame = frame[frame["chrom"].isin(wanted)]
        unknown = sorted(set(frame["chrom"]) - set(chrom_sizes))
        if unknown:
            raise InputError(
                f"{what}: chromosome {unknown[0]} is not in the chromosome sizes "
                "(expected every pool chromosome to have a size)"
            )
        if frame.empty:
            continue
        starts, ends = window_around(_centres(frame, centre, what), width)
        chrom = frame["chrom"].to_numpy(dtype=object)
        sizes = np.array([int(chrom_sizes[c]) for c in chrom], dtype=np.int64)
        keep = (starts >= 0) & (ends <= sizes)
        for name in np.unique(chrom):
            on = chrom == name
            keep[on] &= ~_overlaps(index, str(name), starts[on], ends[on])
        parts[roi_type].append(
            pd.DataFrame(
                {
                    "chrom": pd.Series(chrom[keep], dtype=str),
                    "start": starts[keep],
                    "end": ends[keep],
                    "roi_type": roi_type,
                    "cell_line": str(cell_line),
                }
            )
        )
    frames = [f for t in ROI_TYPES for f in parts[t]]
    if not frames:
        return _empty_pool()
    pool = pd.concat(frames, ignore_index=True)
    return pool.astype({"chrom": str, "roi_type": str, "cell_line": str})


def pool_counts(pool: pd.DataFrame) -> pd.DataFrame:
    """Counts of pool rows per ``chrom`` x ``cell_line`` x ``roi_type``, with totals.

    Long table ``chrom, cell_line, roi_type, count``. Totals are rows where one or more of the
    three keys is ``"all"`` (every combination, as a data cube), ending with the grand total
    ``all, all, all``.
    """
    keys = ["chrom", "cell_line", "roi_type"]
    frames = []
    for mask in range(8):  # bit i set: key i aggregated to "all"
        grouped = [k for i, k in enumerate(keys) if not mask & (1 << i)]
        if grouped:
            counts = pool.groupby(grouped, sort=True).size().rename("count").reset_index()
        else:
            counts = pd.DataFrame({"count": [len(pool)]})
        for i, k in enumerate(keys):
            if mask & (1 << i):
                counts[k] = _ALL
        frames.append(counts[[*keys, "count"]])
    table = pd.concat(frames, ignore_index=True)
    table = table.astype({"chrom": str, "cell_line": str, "roi_type": str, "count": np.int64})
    return table.reset_index(drop=True)


def write_pool(pool: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write ``pool`` atomically as TSV with the header ``chrom start end roi_type cell_line``."""
    missing = [c for c in POOL_COLUMNS if c not in pool.columns]
    if missing:
        raise ValueError(f"ROI pool for {path}: missing column(s) {', '.join(missing)}")
    with atomic_path(path) as tmp:
        pool[list(POOL_COLUMNS)].to_csv(tmp, sep="\t", index=False)


def read_pool(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a pool written by :func:`write_pool` (or with maxATAC's ``Chr Start Stop ...`` header).

    The rows are used as given: no re-centring, no length check and no blacklist filter (as
    maxATAC's ``--train_roi``); coordinates must be integers with ``0 <= start < end``.
    """
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{path}: cannot read the ROI table ({exc})") from exc
    table = table.rename(columns=_ORIGINAL_HEADER)
    missing = [c for c in POOL_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(
            f"{path}: header lacks {', '.join(missing)} "
            f"(expected the header {' '.join(POOL_COLUMNS)})"
        )
    if table.empty:
        return _empty_pool()
    out = _checked_peaks(table[list(POOL_COLUMNS)], str(path))
    return out.astype({"chrom": str, "roi_type": str, "cell_line": str}).reset_index(drop=True)


def random_windows(
    rng: np.random.Generator,
    n: int,
    chrom_sizes: Mapping[str, int],
    chroms: Sequence[str],
    blacklist: pd.DataFrame,
    *,
    width: int = 1024,
    n_fraction: Callable[[str, np.ndarray], np.ndarray] | None = None,
    max_n_fraction: float = 0.1,
    max_tries: int = 50,
) -> pd.DataFrame:
    """Draw ``n`` random windows of ``width`` bp on ``chroms``: columns ``chrom, start, end``.

    A chromosome is drawn with probability proportional to its number of window starts
    (``size - width + 1``; chromosomes shorter than ``width`` are skipped), the start uniformly
    in ``[0, size - width]``. Windows overlapping the blacklist by >= 1 bp, or whose fraction of
    N bases ``n_fraction(chrom, starts)`` exceeds ``max_n_fraction``, are rejected and redrawn in
    vectorised rounds. Raises :class:`InputError` if ``max_tries`` rounds give fewer than ``n``.
    """
    if n < 0:
        raise ValueError(f"number of random windows must be >= 0, got {n}")
    if width <= 0:
        raise ValueError(f"window width must be positive, got {width}")
    unknown = [c for c in chroms if c not in chrom_sizes]
    if unknown:
        raise InputError(
            f"random windows: chromosome {unknown[0]} is not in the chromosome sizes "
            "(expected every chromosome to have a size)"
        )
    names = [c for c in dict.fromkeys(chroms) if int(chrom_sizes[c]) >= width]
    if not names:
        raise InputError(
            f"random windows: no chromosome among {', '.join(chroms) or '(none)'} "
            f"is at least {width} bp long"
        )
    spans = np.array([int(chrom_sizes[c]) - width + 1 for c in names], dtype=np.int64)
    prob = spans / spans.sum()
    index = _blacklist_index(blacklist)
    got_chrom: list[np.ndarray] = []
    got_start: list[np.ndarray] = []
    have = 0
    for _ in range(max_tries):
        if have >= n:
            break
        m = 2 * (n - have) + 16  # oversample; accepted draws stay i.i.d.
        which = rng.choice(len(names), size=m, p=prob)
        starts = rng.integers(0, spans[which])
        ok = np.ones(m, dtype=bool)
        for c in np.unique(which):
            on = which == c
            chrom = names[c]
            ok[on] &= ~_overlaps(index, chrom, starts[on], starts[on] + width)
            if n_fraction is not None:
                sel = on & ok
                if sel.any():
                    frac = np.asarray(n_fraction(chrom, starts[sel]), dtype=np.float64)
                    if frac.shape != (int(sel.sum()),):
                        raise ValueError(
                            f"n_fraction returned shape {frac.shape} for {int(sel.sum())} starts"
                        )
                    ok[sel] = frac <= max_n_fraction
        take = np.flatnonzero(ok)[: n - have]
        got_chrom.append(which[take])
        got_start.append(starts[take])
        have += take.size
    if have < n:
        raise InputError(
            f"random windows: only {have} of {n} windows on {', '.join(names)} passed the "
            f"blacklist and N-fraction (<= {max_n_fraction}) filters after {max_tries} rounds"
        )
    which = np.concatenate(got_chrom) if got_chrom else np.zeros(0, dtype=np.int64)
    starts = np.concatenate(got_start) if got_start else np.zeros(0, dtype=np.int64)
    starts = starts.astype(np.int64)
    return pd.DataFrame(
        {
            "chrom": pd.Series(np.asarray(names, dtype=object)[which], dtype=str),
            "start": starts,
            "end": starts + width,
        }
    )
