"""Writers for genome-track files: bigWig (via pyBigWig), BED, ENCODE narrowPeak, chrom.sizes.

Interval tables are pandas DataFrames with at least the columns ``chrom``, ``start``, ``end``
(0-based, end exclusive). Every file is written atomically.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyBigWig

from nucflow.errors import InputError
from nucflow.io.atomic import atomic_path

logger = logging.getLogger(__name__)

BED_COLUMNS = ("chrom", "start", "end", "name", "score", "strand")
NARROWPEAK_COLUMNS = (
    "chrom",
    "start",
    "end",
    "name",
    "score",
    "strand",
    "signalValue",
    "pValue",
    "qValue",
    "peak",
)
_NARROWPEAK_DEFAULTS: dict[str, object] = {
    "name": ".",
    "score": 0,
    "strand": ".",
    "signalValue": 0.0,
    "pValue": -1.0,
    "qValue": -1.0,
    "peak": -1,
}


def _check_name(path: str | os.PathLike[str], name: str) -> None:
    """Reject chromosome names that cannot be written to a tab-separated track file."""
    if not name or any(c.isspace() for c in name):
        raise InputError(f"{path}: chromosome name {name!r} is empty or contains whitespace")


def value_runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compress a per-base array into runs of equal float32 values, dropping NaN runs.

    Returns ``(starts, ends, run_values)``: int64 starts and exclusive ends, float32 values.
    """
    v = np.asarray(values, dtype=np.float32)
    if v.ndim != 1:
        raise InputError(f"expected a one-dimensional per-base array, got shape {v.shape}")
    if v.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    nan = np.isnan(v)
    changed = (v[1:] != v[:-1]) & ~(nan[1:] & nan[:-1])
    starts = np.concatenate(([0], np.flatnonzero(changed) + 1)).astype(np.int64)
    ends = np.concatenate((starts[1:], [v.size])).astype(np.int64)
    keep = ~nan[starts]
    return starts[keep], ends[keep], v[starts[keep]]


def write_bigwig(
    path: str | os.PathLike[str],
    chrom_sizes: Mapping[str, int],
    values: Mapping[str, np.ndarray],
    *,
    max_zooms: int = 10,
) -> None:
    """Write per-base ``values`` (chromosome -> float array) to a bigWig file, atomically.

    Runs of equal values become one bedGraph-style interval; NaN means "no data" and is not
    written. Chromosomes appear in the header in ``chrom_sizes`` order; a chromosome absent
    from ``values`` is in the header but has no data. Values are stored as float32.

    Raises
    ------
    InputError
        If ``chrom_sizes`` is empty or invalid, ``values`` names a chromosome not in
        ``chrom_sizes``, or an array's length differs from its chromosome size.
    """
    sizes = _checked_sizes(path, chrom_sizes)
    unknown = [chrom for chrom in values if chrom not in sizes]
    if unknown:
        raise InputError(f"{path}: chromosome {unknown[0]!r} has values but is not in chrom sizes")
    runs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for chrom, size in sizes.items():
        if chrom not in values:
            continue
        array = np.asarray(values[chrom])
        if array.shape != (size,):
            raise InputError(
                f"{path}: values for {chrom!r} have shape {array.shape}; expected ({size},)"
            )
        runs[chrom] = value_runs(array)
    n_entries = 0
    with atomic_path(path) as tmp:
        writer = pyBigWig.open(str(tmp), "w")
        if writer is None:
            raise OSError(f"{path}: pyBigWig could not open {tmp} for writing")
        try:
            writer.addHeader(list(sizes.items()), maxZooms=max_zooms)
            for chrom, (starts, ends, run_values) in runs.items():
                if starts.size == 0:
                    continue
                writer.addEntries(
                    [chrom] * starts.size,
                    starts,
                    ends=ends,
                    values=run_values.astype(np.float64),
                )
                n_entries += starts.size
        finally:
            writer.close()
    logger.info("wrote %d bigWig intervals on %d chromosomes to %s", n_entries, len(runs), path)


def _checked_sizes(path: str | os.PathLike[str], chrom_sizes: Mapping[str, int]) -> dict[str, int]:
    """Validate a chromosome -> length mapping and return it as a plain dict of ints."""
    if not chrom_sizes:
        raise InputError(f"{path}: no chromosome sizes given")
    sizes: dict[str, int] = {}
    for chrom, size in chrom_sizes.items():
        _check_name(path, chrom)
        if int(size) != size or int(size) <= 0:
            raise InputError(f"{path}: chromosome {chrom!r} has size {size!r}; expected an int > 0")
        sizes[chrom] = int(size)
    return sizes


def write_chrom_sizes(path: str | os.PathLike[str], sizes: Mapping[str, int]) -> None:
    """Write a UCSC ``chrom.sizes`` file (``chrom<TAB>length`` per line, in mapping order)."""
    checked = _checked_sizes(path, sizes)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{chrom}\t{size}\n" for chrom, size in checked.items()))


def _checked_intervals(path: str | os.PathLike[str], intervals: pd.DataFrame) -> pd.DataFrame:
    """Validate the chrom/start/end columns of an interval table; return a copy with int coords."""
    missing = [c for c in ("chrom", "start", "end") if c not in intervals.columns]
    if missing:
        raise InputError(f"{path}: interval table lacks column(s) {missing}")
    table = intervals.copy()
    for column in ("start", "end"):
        numeric = pd.to_numeric(table[column], errors="coerce")
        if numeric.isna().any() or (numeric != numeric.round()).any():
            row = int(np.flatnonzero((numeric.isna() | (numeric != numeric.round())).to_numpy())[0])
            raise InputError(f"{path}: row {row}: {column} must be an integer")
        table[column] = numeric.astype(np.int64)
    bad = np.flatnonzero(((table["start"] < 0) | (table["end"] <= table["start"])).to_numpy())
    if bad.size:
        row = int(bad[0])
        raise InputError(
            f"{path}: row {row}: interval {table['start'].iloc[row]}-{table['end'].iloc[row]} "
            "is invalid; expected 0 <= start < end"
        )
    for chrom in pd.unique(table["chrom"]):
        _check_name(path, str(chrom))
    return table


def _format_float(value: float) -> str:
    """Format a float compactly and reproducibly for text track files."""
    return format(float(value), ".6g")


def write_bed(path: str | os.PathLike[str], intervals: pd.DataFrame) -> None:
    """Write a BED file (no header) from a table with ``chrom``, ``start``, ``end`` columns.

    The optional columns ``name``, ``score``, ``strand`` are written too (BED4/5/6) when present,
    as long as the ones before them are present. Rows are written in the given order.
    """
    table = _checked_intervals(path, intervals)
    columns = ["chrom", "start", "end"]
    for column in BED_COLUMNS[3:]:
        if column not in table.columns:
            break
        columns.append(column)
    lines = [
        "\t".join(str(value) for value in row) + "\n"
        for row in table[columns].itertuples(index=False, name=None)
    ]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(lines))


def write_narrowpeak(path: str | os.PathLike[str], peaks: pd.DataFrame) -> None:
    """Write an ENCODE narrowPeak file (BED6+4, 10 columns, no header).

    ``peaks`` needs ``chrom``, ``start``, ``end``; missing columns get ENCODE defaults
    (name ``.``, score 0, strand ``.``, signalValue 0, pValue/qValue -1, peak -1). ``peak`` is
    the summit offset from ``start`` (or -1 for none) and must lie inside the interval;
    ``score`` must be an integer in 0..1000.
    """
    table = _checked_intervals(path, peaks)
    for column, default in _NARROWPEAK_DEFAULTS.items():
        if column not in table.columns:
            table[column] = default
    score = pd.to_numeric(table["score"], errors="coerce")
    summit = pd.to_numeric(table["peak"], errors="coerce")
    width = table["end"] - table["start"]
    bad_score = score.isna() | (score != score.round()) | (score < 0) | (score > 1000)
    bad_summit = summit.isna() | (summit != summit.round()) | (summit < -1) | (summit >= width)
    for bad, what in (
        (bad_score, "score must be an integer in 0..1000"),
        (bad_summit, "peak (summit offset) must be -1 or in [0, end - start)"),
    ):
        rows = np.flatnonzero(bad.to_numpy())
        if rows.size:
            raise InputError(f"{path}: row {int(rows[0])}: {what}")
    table["score"] = score.astype(np.int64)
    table["peak"] = summit.astype(np.int64)
    lines = []
    for row in table[list(NARROWPEAK_COLUMNS)].itertuples(index=False, name=None):
        chrom, start, end, name, score_value, strand, signal, p_value, q_value, peak = row
        fields = [
            str(chrom),
            str(start),
            str(end),
            str(name),
            str(score_value),
            str(strand),
            _format_float(signal),
            _format_float(p_value),
            _format_float(q_value),
            str(peak),
        ]
        lines.append("\t".join(fields) + "\n")
    with atomic_path(path) as tmp:
        tmp.write_text("".join(lines))
