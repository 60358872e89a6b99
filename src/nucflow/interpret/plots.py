"""Plots of leave-one-out (LOO) scores: one PNG per sequence.

A LOO table (:func:`nucflow.interpret.loo_columns`) holds one row per scored unit (and per
replacement in replace mode) with the unit's character span ``[start_offset, end_offset)`` in
the input sequence. The plots spread each row's score over the characters its unit covers.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from nucflow.errors import InputError
from nucflow.io.atomic import atomic_path

NO_REPLACEMENT = "loo"
"""The one series name of a table without a ``replacement`` column (remove / mask mode)."""

_REQUIRED = ("sequence", "label", "pred", "start_offset", "end_offset", "loo")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_LETTER_COLOURS = {"A": "tab:green", "C": "tab:blue", "G": "tab:orange", "T": "tab:red"}
_LETTER_COLOURS["U"] = _LETTER_COLOURS["T"]
_BAR_LIMIT = 500  # positions up to which the overview draws bars (stems beyond: faster)


def replacement_names(table: pd.DataFrame) -> list[str]:
    """Distinct replacements in order of first appearance, or ``["loo"]`` without the column."""
    if "replacement" not in table:
        return [NO_REPLACEMENT]
    return [str(name) for name in pd.unique(table["replacement"].astype(str))]


def _replacement_codes(table: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    """Index into ``names`` of each row's replacement (0 for every row without the column)."""
    if "replacement" not in table:
        return np.zeros(len(table), dtype=np.int64)
    lookup = {name: i for i, name in enumerate(names)}
    return np.array([lookup[str(r)] for r in table["replacement"].astype(str)], dtype=np.int64)


def _spans(table: pd.DataFrame, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Checked integer start and end offsets of the rows (within ``0 … length``)."""
    where = ""
    if "sequence" in table and len(table):
        where = f"sequence {table['sequence'].iloc[0]!r}: "
    starts = pd.to_numeric(table["start_offset"], errors="coerce").to_numpy(dtype=float)
    ends = pd.to_numeric(table["end_offset"], errors="coerce").to_numpy(dtype=float)
    bad = np.isnan(starts) | np.isnan(ends)
    if bad.any():
        raise InputError(f"{where}a LOO row has a missing or non-numeric offset")
    if len(ends) and ends.max() > length:
        raise InputError(
            f"{where}end_offset {int(ends.max())} is beyond the sequence's length {length}"
        )
    if len(starts) and (starts.min() < 0 or (starts > ends).any()):
        raise InputError(f"{where}a LOO row has start_offset < 0 or start_offset > end_offset")
    return starts.astype(np.int64), ends.astype(np.int64)


def _scan(
    starts: np.ndarray, ends: np.ndarray, values: np.ndarray, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per position the signed value of largest magnitude over covering rows, and its row."""
    best = np.zeros(length, dtype=float)
    row = np.full(length, -1, dtype=np.int64)
    for i, (start, end, value) in enumerate(zip(starts, ends, values, strict=True)):
        if np.isnan(value) or end <= start:
            continue
        span = slice(int(start), int(end))
        wins = (row[span] < 0) | (abs(value) > np.abs(best[span]))  # ties: earlier row kept
        best[span] = np.where(wins, value, best[span])
        row[span] = np.where(wins, i, row[span])
    return best, row


def position_scores(table: pd.DataFrame, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Per character position of one sequence: the strongest LOO score and its replacement.

    For each position ``0 … length-1`` the rows whose ``[start_offset, end_offset)`` covers it
    are compared by ``|loo|``; the *signed* ``loo`` of the winning row is returned (0 where no
    row covers the position), with the index of its replacement in
    :func:`replacement_names` (-1 where none covers it; 0 everywhere covered when the table has
    no ``replacement`` column). Ties keep the earlier row; rows with a missing ``loo`` are
    skipped. Raises :class:`~nucflow.errors.InputError` for offsets outside ``0 … length``.
    """
    if "sequence" in table and table["sequence"].nunique() > 1:
        ids = ", ".join(repr(i) for i in pd.unique(table["sequence"])[:3])
        raise InputError(f"position_scores expects the rows of one sequence, got ids {ids} …")
    starts, ends = _spans(table, length)
    values = pd.to_numeric(table["loo"], errors="coerce").to_numpy(dtype=float)
    best, row = _scan(starts, ends, values, length)
    codes = _replacement_codes(table, replacement_names(table))
    index = np.where(row >= 0, codes[np.maximum(row, 0)] if len(codes) else -1, -1)
    return best, index.astype(np.int64)


def strongest_window(scores: np.ndarray, width: int) -> tuple[int, int]:
    """``(start, stop)`` of the ``width`` consecutive positions with the largest sum of |scores|.

    The width is clipped to the sequence (a shorter sequence gives its whole range); ties keep
    the leftmost window; missing scores count as 0.
    """
    if width < 1:
        raise ValueError(f"window width must be ≥ 1, got {width}")
    magnitude = np.nan_to_num(np.abs(np.asarray(scores, dtype=float)))
    width = min(width, len(magnitude))
    if width == 0:
        return 0, 0
    cumulative = np.concatenate([[0.0], np.cumsum(magnitude)])
    start = int(np.argmax(cumulative[width:] - cumulative[:-width]))
    return start, start + width


def _colours(count: int) -> list:
    """One distinct colour per replacement."""
    if count <= 10:
        return [colormaps["tab10"](i) for i in range(count)]
    if count <= 20:
        return [colormaps["tab20"](i) for i in range(count)]
    return [colormaps["turbo"](i / (count - 1)) for i in range(count)]


def _describe(value: object) -> str:
    """A prediction or label for a title: 4 significant digits, ``n/a`` when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return f"{float(value):.4g}"
    return str(value)


def _overview(
    axis: Axes, best: np.ndarray, index: np.ndarray, colours: list, window: tuple[int, int]
) -> None:
    """Signed LOO along the whole sequence, coloured by replacement, strongest window shaded."""
    length = len(best)
    positions = np.arange(length)
    for code, colour in enumerate(colours):
        chosen = index == code
        if not chosen.any():
            continue
        if length <= _BAR_LIMIT:
            axis.bar(positions[chosen], best[chosen], width=1.0, color=colour, linewidth=0)
        else:
            axis.vlines(positions[chosen], 0.0, best[chosen], colors=[colour], linewidth=0.8)
    axis.axhline(0.0, color="grey", linewidth=0.6)
    if window[1] > window[0]:
        axis.axvspan(
            window[0] - 0.5, window[1] - 0.5, color="gold", alpha=0.3, linewidth=0, zorder=0
        )
    axis.set_xlim(-0.5, max(length, 1) - 0.5)
    axis.set_xlabel("position (zero-based)")
    axis.set_ylabel("LOO (edited − original)")


def _zoom(
    axis: Axes,
    table: pd.DataFrame,
    letters: str,
    names: Sequence[str],
    colours: list,
    window: tuple[int, int],
) -> None:
    """Grouped bars of each replacement's LOO per position of the window, letters on the axis."""
    start, stop = window
    positions = np.arange(start, stop)
    starts, ends = _spans(table, len(letters))
    values = pd.to_numeric(table["loo"], errors="coerce").to_numpy(dtype=float)
    codes = _replacement_codes(table, names)
    inside = (starts < stop) & (ends > start)
    width = 0.8 / len(names)
    for code, (name, colour) in enumerate(zip(names, colours, strict=True)):
        chosen = inside & (codes == code)
        best, row = _scan(starts[chosen], ends[chosen], values[chosen], len(letters))
        shown = row[start:stop] >= 0
        offset = (code - (len(names) - 1) / 2) * width
        axis.bar(
            positions[shown] + offset,
            best[start:stop][shown],
            width=width,
            color=colour,
            linewidth=0,
            label=name,
        )
    if inside.any() and (ends[inside] - starts[inside]).max() > 1:  # k-mers, BPE pieces, atoms
        for boundary in sorted({int(s) for s in starts[inside] if start < s < stop}):
            axis.axvline(boundary - 0.5, color="lightgrey", linewidth=0.6, zorder=0)
    axis.axhline(0.0, color="grey", linewidth=0.6)
    axis.set_xlim(start - 0.5, max(stop, start + 1) - 0.5)
    axis.set_xticks(positions)
    size = 9.0 if len(positions) <= 40 else max(4.0, 9.0 * 40 / len(positions))
    labels = [f"{letters[p]}\n{p}" if p % 10 == 0 or p == start else letters[p] for p in positions]
    axis.set_xticklabels(labels, fontsize=size, family="monospace")
    for tick, position in zip(axis.get_xticklabels(), positions, strict=True):
        tick.set_color(_LETTER_COLOURS.get(letters[position].upper(), "black"))
    axis.set_xlabel(f"strongest window: positions {start}–{max(stop - 1, start)}")
    axis.set_ylabel("LOO per replacement")


def plot_loo(
    table: pd.DataFrame,
    sequence: str | Sequence[str],
    path: str | os.PathLike[str],
    *,
    window: int = 40,
    title: str | None = None,
) -> None:
    """One PNG of one sequence's LOO scores, written atomically to ``path``.

    ``table`` holds the rows of one sequence id; ``sequence`` is the text its offsets index into
    (a list of atoms is joined). Top: the signed LOO of the strongest row per position
    (:func:`position_scores`) along the whole sequence, coloured by replacement; bottom: the
    strongest ``window`` positions (:func:`strongest_window`) with one bar per replacement and
    the sequence's letters on the axis. The default title names the id, pred and label.
    """
    letters = sequence if isinstance(sequence, str) else "".join(sequence)
    missing = [c for c in _REQUIRED if c not in table]
    if missing:
        raise InputError(f"LOO table lacks column(s): {', '.join(missing)}")
    if table.empty:
        raise InputError("plot_loo got a LOO table without rows")
    names = replacement_names(table)
    colours = _colours(len(names))
    best, index = position_scores(table, len(letters))
    strongest = strongest_window(best, window)
    first = table.iloc[0]
    if title is None:
        title = (
            f"{first['sequence']}   pred {_describe(first['pred'])}   "
            f"label {_describe(first['label'])}"
        )
    figure = Figure(figsize=(12, 6.5), layout="constrained")
    overview, zoom = figure.subplots(2, 1)
    _overview(overview, best, index, colours, strongest)
    _zoom(zoom, table, letters, names, colours, strongest)
    handles = [Patch(color=c, label=n) for n, c in zip(names, colours, strict=True)]
    figure.legend(
        handles=handles,
        title="replacement" if "replacement" in table else None,
        fontsize="small",
        ncol=1 + (len(names) - 1) // 20,
        loc="outside right upper",
    )
    figure.suptitle(title)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)


def safe_name(identifier: object) -> str:
    """``identifier`` with every character outside ``[A-Za-z0-9._-]`` replaced by ``_``."""
    name = _UNSAFE.sub("_", str(identifier))
    return name if name.strip(".") else f"_{name}"


def plot_loo_tables(
    table: pd.DataFrame,
    sequences: Mapping[str, str],
    directory: str | os.PathLike[str],
    *,
    window: int = 40,
) -> list[Path]:
    """One PNG per sequence id of ``table`` (:func:`plot_loo`) in ``directory``.

    Files are named ``<safe id>.png`` (:func:`safe_name`; ids that collide after that, also
    case-insensitively, get ``_2``, ``_3`` …). ``sequences`` maps each id to the text its
    offsets index into. Everything is checked before any file is written:
    :class:`~nucflow.errors.InputError` for an id missing from ``sequences`` or an end_offset
    beyond its sequence. Returns the written paths in the table's order of ids.
    """
    missing = [c for c in _REQUIRED if c not in table]
    if missing:
        raise InputError(f"LOO table lacks column(s): {', '.join(missing)}")
    groups: list[tuple[object, pd.DataFrame, str]] = []
    for identifier, rows in table.groupby("sequence", sort=False, dropna=False):
        key = identifier if identifier in sequences else str(identifier)
        if key not in sequences:
            raise InputError(f"LOO table: sequence id {identifier!r} has no sequence to plot")
        letters = sequences[key]
        letters = letters if isinstance(letters, str) else "".join(letters)
        _spans(rows, len(letters))  # raises for offsets beyond the sequence
        groups.append((identifier, rows, letters))
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    written = []
    for identifier, rows, letters in groups:
        base = safe_name(identifier)
        name, number = base, 1
        while name.lower() in taken:
            number += 1
            name = f"{base}_{number}"
        taken.add(name.lower())
        path = target / f"{name}.png"
        plot_loo(rows, letters, path, window=window)
        written.append(path)
    return written
