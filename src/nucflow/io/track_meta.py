"""Readers for maxATAC-style training inputs: the meta TSV, BED/narrowPeak intervals, chrom sizes.

Every bad-input error is an :class:`~nucflow.errors.InputError` with a one-line message naming
the file, the line (1-based, as an editor shows it) and, where it applies, the column.
Chromosome-name helpers detect the common ``chr1`` vs ``1`` naming mismatch between files.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nucflow.errors import InputError

META_COLUMNS = (
    "Cell_Line",
    "TF",
    "ATAC_Signal_File",
    "Binding_File",
    "ATAC_Peaks",
    "CHIP_Peaks",
    "Train_Test_Label",
)
"""Required columns of a maxATAC meta TSV (any order; extra columns are ignored)."""

SPLIT_LABELS = ("Train", "Test")
"""Accepted ``Train_Test_Label`` values (exact case)."""

_FILE_COLUMNS = {
    "ATAC_Signal_File": "atac",
    "Binding_File": "binding",
    "ATAC_Peaks": "atac_peaks",
    "CHIP_Peaks": "chip_peaks",
}
_SKIPPED_PREFIXES = ("#", "track", "browser")
INTERVAL_COLUMNS = ("chrom", "start", "end", "summit")
"""Columns of the table returned by :func:`read_intervals`."""


@dataclass(frozen=True)
class TrackSample:
    """One meta row: a cell line's tracks and peak files (paths resolved) and its split."""

    cell_line: str
    tf: str
    atac: Path
    binding: Path
    atac_peaks: Path
    chip_peaks: Path
    split: str  # "Train" | "Test"


def _open_text(path: Path) -> io.TextIOBase:
    """Open a plain or gzip-compressed UTF-8 text file with universal newlines (CRLF → LF)."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(2)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory; expected a file") from None
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline=None)
    return open(path, encoding="utf-8-sig", newline=None)  # noqa: SIM115 - caller's with-block


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, line without its newline)`` for every line of a text file."""
    number = 0
    with _open_text(path) as handle:
        try:
            for line in handle:
                number += 1
                yield number, line.rstrip("\n")
        except UnicodeDecodeError:
            raise InputError(
                f"{path}: near line {number + 1}: not valid UTF-8 text; expected a text file"
            ) from None
        except (OSError, EOFError) as exc:
            raise InputError(f"{path}: cannot be read as text or gzip ({exc})") from None


def read_meta(path: str | os.PathLike[str]) -> list[TrackSample]:
    """Read a maxATAC meta TSV into one :class:`TrackSample` per row, in file order.

    The file is tab-separated with a header naming at least :data:`META_COLUMNS` (any order;
    extra columns such as ``CHIP_Peak_Counts`` are ignored). Relative file paths resolve
    against the meta file's directory; absolute paths are used as given. Blank lines are
    skipped.

    Raises
    ------
    InputError
        If the file is empty or has no data rows, a column is missing, a row has the wrong
        number of fields or an empty value, a referenced file does not exist,
        ``Train_Test_Label`` is not exactly ``Train`` or ``Test``, or a ``Cell_Line`` repeats
        (the original silently collapsed duplicates).
    """
    meta = Path(path)
    base = meta.parent
    header: list[str] | None = None
    index: dict[str, int] = {}
    samples: list[TrackSample] = []
    first_line: dict[str, int] = {}
    for number, line in _lines(meta):
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split("\t")]
        if header is None:
            header = fields
            missing = [column for column in META_COLUMNS if column not in header]
            if missing:
                raise InputError(
                    f"{meta}: line {number}: header lacks column(s) {', '.join(missing)}; "
                    f"expected tab-separated columns {', '.join(META_COLUMNS)}"
                )
            for column in META_COLUMNS:
                if header.count(column) > 1:
                    raise InputError(f"{meta}: line {number}: column {column} appears twice")
                index[column] = header.index(column)
            continue
        if len(fields) != len(header):
            raise InputError(
                f"{meta}: line {number}: {len(fields)} tab-separated fields; "
                f"expected {len(header)} as in the header"
            )
        values = {column: fields[i] for column, i in index.items()}
        for column, value in values.items():
            if not value:
                raise InputError(f"{meta}: line {number}, column {column}: empty value")
        label = values["Train_Test_Label"]
        if label not in SPLIT_LABELS:
            raise InputError(
                f"{meta}: line {number}, column Train_Test_Label: {label!r}; "
                "expected exactly 'Train' or 'Test'"
            )
        cell = values["Cell_Line"]
        if cell in first_line:
            raise InputError(
                f"{meta}: line {number}, column Cell_Line: duplicate cell line {cell!r} "
                f"(first on line {first_line[cell]}); expected one row per cell line"
            )
        first_line[cell] = number
        files: dict[str, Path] = {}
        for column, field in _FILE_COLUMNS.items():
            given = Path(values[column])
            resolved = given if given.is_absolute() else (base / given).absolute()
            if not resolved.is_file():
                raise InputError(
                    f"{meta}: line {number}, column {column}: file {values[column]!r} "
                    f"does not exist (looked for {resolved})"
                )
            files[field] = resolved
        samples.append(
            TrackSample(
                cell_line=cell,
                tf=values["TF"],
                atac=files["atac"],
                binding=files["binding"],
                atac_peaks=files["atac_peaks"],
                chip_peaks=files["chip_peaks"],
                split=label,
            )
        )
    if header is None:
        raise InputError(
            f"{meta}: file is empty; expected a tab-separated header with {', '.join(META_COLUMNS)}"
        )
    if not samples:
        raise InputError(f"{meta}: header only, no rows; expected one row per cell line")
    return samples


def _parse_int(path: Path, number: int, column: str, text: str) -> int:
    """Parse an integer field or raise an InputError naming file, line and column."""
    try:
        return int(text)
    except ValueError:
        raise InputError(
            f"{path}: line {number}, column {column}: {text!r} is not an integer"
        ) from None


def read_intervals(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a BED or narrowPeak file (plain or gzip) into ``chrom, start, end, summit`` columns.

    Coordinates are 0-based, end exclusive. ``summit`` is the absolute summit position
    (``start`` + narrowPeak column 10) for 10-column rows whose column 10 is >= 0, else -1.
    Blank lines and lines starting with ``#``, ``track`` or ``browser`` are skipped. An empty
    file gives an empty table.

    Raises
    ------
    InputError
        If a row has fewer than 3 tab-separated fields, a non-integer or negative coordinate,
        ``end <= start``, or a narrowPeak summit offset outside ``[-1, end - start)``.
    """
    source = Path(path)
    chroms: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    summits: list[int] = []
    for number, line in _lines(source):
        if not line.strip() or line.startswith(_SKIPPED_PREFIXES):
            continue
        fields = line.split("\t")
        if len(fields) < 3:
            raise InputError(
                f"{source}: line {number}: {len(fields)} tab-separated field(s); "
                "expected at least 3 (chrom, start, end)"
            )
        chrom = fields[0].strip()
        start = _parse_int(source, number, "start (2)", fields[1].strip())
        end = _parse_int(source, number, "end (3)", fields[2].strip())
        if not chrom or start < 0 or end <= start:
            raise InputError(
                f"{source}: line {number}: interval {chrom!r}:{start}-{end} is invalid; "
                "expected a chromosome name and 0 <= start < end"
            )
        summit = -1
        if len(fields) == 10:
            offset = _parse_int(source, number, "peak (10)", fields[9].strip())
            if offset < -1 or offset >= end - start:
                raise InputError(
                    f"{source}: line {number}, column peak (10): summit offset {offset} lies "
                    f"outside the peak of {end - start} bp; expected -1 or 0..{end - start - 1}"
                )
            if offset >= 0:
                summit = start + offset
        chroms.append(chrom)
        starts.append(start)
        ends.append(end)
        summits.append(summit)
    return pd.DataFrame(
        {
            "chrom": pd.Series(chroms, dtype=object),
            "start": np.asarray(starts, dtype=np.int64),
            "end": np.asarray(ends, dtype=np.int64),
            "summit": np.asarray(summits, dtype=np.int64),
        }
    )


def read_chrom_sizes(path: str | os.PathLike[str]) -> dict[str, int]:
    """Read a UCSC ``chrom.sizes`` file (``name<TAB>length``; extra columns ignored), in order.

    Raises
    ------
    InputError
        If the file has no chromosomes, a line has fewer than 2 fields, a length is not a
        positive integer, or a name repeats.
    """
    source = Path(path)
    sizes: dict[str, int] = {}
    for number, line in _lines(source):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) < 2:
            raise InputError(
                f"{source}: line {number}: expected 'chromosome<TAB>length', got {line!r}"
            )
        name = fields[0]
        size = _parse_int(source, number, "length (2)", fields[1])
        if size <= 0:
            raise InputError(f"{source}: line {number}: length {size} of {name!r}; expected > 0")
        if name in sizes:
            raise InputError(f"{source}: line {number}: chromosome {name!r} is listed twice")
        sizes[name] = size
    if not sizes:
        raise InputError(f"{source}: no chromosomes; expected 'chromosome<TAB>length' lines")
    return sizes


def chromosome_style(names: Iterable[str]) -> str:
    """Naming style of chromosome names: ``"chr"`` (all start with ``chr``), ``"bare"`` (none
    does; also for no names) or ``"mixed"``."""
    flags = {str(name).startswith("chr") for name in names}
    if flags == {True}:
        return "chr"
    if flags == {True, False}:
        return "mixed"
    return "bare"


def toggle_chr(name: str) -> str:
    """``chr1`` -> ``1`` and ``1`` -> ``chr1``: the same chromosome in the other naming style."""
    return name[3:] if name.startswith("chr") else f"chr{name}"


def check_chromosome_names(
    expected: Iterable[str],
    found: Iterable[str],
    *,
    what: str,
    source: str | os.PathLike[str],
    allow_missing: bool = False,
) -> list[str]:
    """Check that every ``expected`` chromosome name is in ``found`` (the names in ``source``).

    ``what`` names the requested thing in messages (e.g. ``"chromosome"``). A name missing
    from ``found`` whose ``chr``-toggled form (``chr1`` <-> ``1``) is present, or whose style
    is the opposite of every name in ``found``, is always an error reporting a naming
    mismatch. Other missing names are an error unless ``allow_missing``; then they are
    returned (in ``expected`` order) for the caller to handle. Returns ``[]`` when all exist.
    """
    present = set(found)
    style = chromosome_style(present)
    missing: list[str] = []
    for name in expected:
        if name in present:
            continue
        toggled = toggle_chr(name)
        opposite = style != "mixed" and present and style != chromosome_style([name])
        if toggled in present or opposite:
            example = toggled if toggled in present else sorted(present)[0]
            raise InputError(
                f"{source}: {what} {name!r} not found; the file names chromosomes like "
                f"{example!r} (naming mismatch between files)"
            )
        missing.append(name)
    if missing and not allow_missing:
        shown = ", ".join(repr(name) for name in sorted(present)[:5])
        more = "" if len(present) <= 5 else f", ... ({len(present)} in all)"
        raise InputError(
            f"{source}: {what} {missing[0]!r} not found"
            + (f" ({len(missing)} missing)" if len(missing) > 1 else "")
            + f"; the file has {shown or 'no chromosomes'}{more}"
        )
    return missing
