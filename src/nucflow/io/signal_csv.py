"""Capfinder cap-signal CSVs, streamed in bounded-memory chunks.

A signal CSV has the header ``read_id,cap_class,timeseries`` and one read per line::

    0b1c...,1,"0.12345678,-1.02345678,..."

``read_id`` is a non-empty id, ``cap_class`` an integer label (possibly negative, e.g. -99 for
"unknown") and ``timeseries`` one double-quoted field of comma-separated floats. LF or CRLF
line ends and a UTF-8 byte-order mark are accepted; blank lines are skipped. A field may be
many MB long: the file is read in binary blocks of about ``chunk_bytes`` (plus the rest of the
last line), never whole.

Parsing is vectorised: the timeseries fields of a block are joined, each followed by the
sentinel ``1e999`` (which parses to inf), and converted in one call of pandas' C tokenizer;
the sentinels give the row boundaries. Only when something is off (a parse error, a missing or
extra infinity, a non-finite float32) are the rows re-read value by value, to raise a one-line
:class:`InputError` naming the file, the line, the read and what was expected.
"""

from __future__ import annotations

import csv
import io
import math
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from nucflow.errors import InputError

HEADER = "read_id,cap_class,timeseries"
"""The exact header line of a signal CSV."""
_HEADER_BYTES = HEADER.encode()
_BOM = b"\xef\xbb\xbf"
_MAX_HEADER = 4096
_QUOTE = ord('"')
_CR = ord("\r")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_SEPARATOR = b",1e999,"  # between joined rows: the sentinel 1e999 parses to inf
_PARSE_BYTES = 8 << 20  # text per parser call (bounds the parser's working memory)


class HashLike(Protocol):
    """Anything with ``update(bytes)``, such as a :mod:`hashlib` object."""

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        """Feed ``data``."""


@dataclass(frozen=True)
class SignalChunk:
    """Consecutive rows of one signal CSV.

    ``lines`` are 1-based line numbers in the file, ``labels`` the ``cap_class`` values and
    ``values`` every row's series concatenated: row ``i`` is ``values[offsets[i]:offsets[i+1]]``.
    """

    path: str
    lines: np.ndarray  # int64 (n,)
    ids: list[str]
    labels: np.ndarray  # int64 (n,)
    values: np.ndarray  # float32 (offsets[-1],)
    offsets: np.ndarray  # int64 (n + 1,)

    def __len__(self) -> int:
        """Number of rows."""
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        """Series length of every row (int64)."""
        return np.diff(self.offsets)

    def series(self, i: int) -> np.ndarray:
        """Row ``i``'s series (a view into ``values``)."""
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    def where(self, i: int) -> str:
        """``"<path>: line <n> (read <id>)"`` for row ``i``, the prefix of error messages."""
        return f"{self.path}: line {int(self.lines[i])} (read {self.ids[i]})"


def signal_csv_files(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *, must_exist: bool = True
) -> list[str]:
    """The files listed and every ``*.csv`` directly inside the directories listed (sorted),
    as given (not resolved), in order.

    Raises :class:`InputError` for a directory without CSV files, no input, or a missing path
    unless ``must_exist`` is false (the workflow: another rule may make the file).
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    files: list[str] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            found = sorted(str(p) for p in path.glob("*.csv") if p.is_file())
            if not found:
                raise InputError(f"{path}: directory holds no *.csv files (expected signal CSVs)")
            files += found
        elif path.is_file() or not must_exist:
            files.append(str(path))
        else:
            raise InputError(f"{path}: no such file or directory (expected a signal CSV)")
    if not files:
        raise InputError("no signal CSV given (expected at least one file or directory)")
    return files


def expand_signal_paths(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
) -> list[Path]:
    """:func:`signal_csv_files`, resolved, de-duplicated and sorted."""
    return sorted({Path(path).resolve() for path in signal_csv_files(paths)})


def _check_header(path: str, raw: bytes) -> None:
    """Raise :class:`InputError` unless ``raw`` (the first line, with its end) is the header."""
    if not raw:
        raise InputError(f"{path}: line 1: empty file, expected the header {HEADER!r}")
    text = raw.removeprefix(_BOM)
    if text.endswith(b"\n"):
        text = text[:-1]
    if text.endswith(b"\r"):
        text = text[:-1]
    if text == _HEADER_BYTES:
        return
    shown = text[:80].decode("utf-8", errors="replace")
    more = "..." if len(text) > 80 or not raw.endswith(b"\n") and len(raw) >= _MAX_HEADER else ""
    raise InputError(f"{path}: line 1: header is {shown + more!r}, expected {HEADER!r}")


def _short(token: bytes | bytearray) -> str:
    """A value for an error message (at most 40 characters)."""
    text = token.decode("utf-8", errors="replace")
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _parse_label(raw: bytes | bytearray) -> int | None:
    """The integer in ``raw`` (optionally double-quoted), or None if it is not one."""
    if len(raw) >= 2 and raw[0] == _QUOTE and raw[-1] == _QUOTE:
        raw = raw[1:-1]
    digits = raw[1:] if raw[:1] in (b"-", b"+") else raw
    if not digits.isdigit():
        return None
    value = int(raw)
    return value if _INT64_MIN <= value <= _INT64_MAX else None


def _fast_values(joined: bytes) -> np.ndarray | None:
    """Parse comma-separated floats to float32 in one call of pandas' C tokenizer (values beyond
    the float32 range become inf); None if it fails."""
    if not joined:
        return np.empty(0, dtype=np.float32)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = pd.read_csv(
                io.BytesIO(joined),
                header=None,
                sep="\n",
                lineterminator=",",
                dtype=np.float32,
                engine="c",
                quoting=csv.QUOTE_NONE,
                skip_blank_lines=False,
                na_filter=False,
            )
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    if frame.shape[1] != 1:
        return None
    return frame.iloc[:, 0].to_numpy(dtype=np.float32)


def _slow_row(where: str, field: bytes | bytearray) -> np.ndarray:
    """Parse one timeseries field value by value; raise :class:`InputError` on the first bad one."""
    tokens = field.split(b",")
    out = np.empty(len(tokens), dtype=np.float32)
    for j, token in enumerate(tokens):
        position = f"value {j + 1} of {len(tokens)}"
        if not token.strip():
            raise InputError(f"{where}: empty {position} in timeseries (expected a number)")
        if b'"' in token:
            raise InputError(
                f"{where}: stray '\"' in {position} of timeseries (expected 3 fields: read_id, "
                'cap_class and one double-quoted timeseries "v1,v2,...")'
            )
        try:
            if b"_" in token:
                raise ValueError(token)
            value = float(token)
        except ValueError:
            raise InputError(
                f"{where}: non-numeric {position} {_short(token)} in timeseries "
                "(expected a decimal number)"
            ) from None
        if math.isnan(value):
            raise InputError(f"{where}: NaN {position} {_short(token)} (expected finite numbers)")
        if math.isinf(value) or abs(value) > _FLOAT32_MAX:
            raise InputError(
                f"{where}: infinite or float32-overflowing {position} {_short(token)} "
                "(expected finite numbers)"
            )
        out[j] = value
    return out


@dataclass
class _Block:
    """Rows collected from one block of complete lines, before their values are parsed."""

    lines: list[int]
    ids: list[str]
    labels: list[int]
    starts: list[int]  # byte span of each timeseries field without its quotes
    stops: list[int]
    next_line: int = 0  # number of the line after the block


def _scan(
    path: str, data: bytes | bytearray, end: int, first_line: int
) -> tuple[_Block, InputError | None]:
    """Split ``data[:end]`` (complete lines) into rows and check their structure.

    Returns the rows before the first structural error, and that error (or None), so that a
    value error on an earlier line can be reported first.
    """
    block = _Block([], [], [], [], [])
    find = data.find
    pos, line = 0, first_line - 1
    while pos < end:
        line += 1
        newline = find(b"\n", pos, end)
        if newline < 0:
            newline = end
        stop = newline
        if stop > pos and data[stop - 1] == _CR:
            stop -= 1
        start, pos = pos, newline + 1
        if stop == start:
            continue  # blank line
        c1 = find(b",", start, stop)
        c2 = find(b",", c1 + 1, stop) if c1 >= 0 else -1
        where = f"{path}: line {line}"
        raw_id = data[start : c1 if c1 >= 0 else stop]
        if len(raw_id) >= 2 and raw_id[0] == _QUOTE and raw_id[-1] == _QUOTE:
            raw_id = raw_id[1:-1]
        try:
            read_id = raw_id.decode("utf-8")
        except UnicodeDecodeError:
            return block, InputError(f"{where}: read_id is not valid UTF-8")
        if read_id:
            where += f" (read {read_id})"
        if c2 < 0:
            fields = 1 if c1 < 0 else 2
            return block, InputError(
                f"{where}: {fields} field(s), expected 3: read_id, cap_class and a double-quoted "
                'timeseries "v1,v2,..."'
            )
        if not read_id:
            return block, InputError(f"{where}: empty read_id (expected a read id)")
        label = _parse_label(data[c1 + 1 : c2])
        if label is None:
            return block, InputError(
                f"{where}: cap_class {_short(data[c1 + 1 : c2])} is not an integer "
                "(expected an integer class label such as 0 or -99)"
            )
        q = c2 + 1
        if q >= stop or data[q] != _QUOTE:
            return block, InputError(
                f"{where}: timeseries is not double-quoted (expected 3 fields: read_id, cap_class "
                'and "v1,v2,..." in double quotes)'
            )
        if stop - q < 2 or data[stop - 1] != _QUOTE:
            if find(b'"', q + 1, stop) >= 0:
                return block, InputError(
                    f"{where}: text after the quoted timeseries (expected 3 fields: read_id, "
                    'cap_class and "v1,v2,..." ending the line)'
                )
            return block, InputError(
                f"{where}: unterminated timeseries (expected a closing '\"' at the end of the line)"
            )
        if stop - q == 2:
            return block, InputError(f"{where}: empty timeseries (expected at least one value)")
        block.lines.append(line)
        block.ids.append(read_id)
        block.labels.append(label)
        block.starts.append(q + 1)
        block.stops.append(stop - 1)
    block.next_line = line + 1
    return block, None


def _split_marked(parsed: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Values and row offsets from the parse of the rows joined with :data:`_SEPARATOR`.

    Every row is followed by one sentinel (``1e999`` parses to inf); None unless there are
    exactly ``rows`` infinities and the last value is one (so a data value that is infinite,
    or a dropped trailing empty value, sends the chunk to the slow path).
    """
    marks = np.flatnonzero(np.isinf(parsed))
    if marks.size != rows or rows == 0 or marks[-1] != parsed.size - 1:
        return None
    offsets = np.empty(rows + 1, dtype=np.int64)
    offsets[0] = 0
    offsets[1:] = marks - np.arange(rows)
    return np.delete(parsed, marks), offsets


def _chunk(path: str, data: bytes | bytearray, block: _Block) -> SignalChunk:
    """Parse the values of ``block`` (spans into ``data``) into a :class:`SignalChunk`.

    Fast path: the timeseries fields of about :data:`_PARSE_BYTES` of rows at a time are
    joined, each followed by a sentinel, and parsed in one call. Any irregularity sends the
    rows, from the first suspect one, to a per-value parse that raises the precise error.
    """
    n = len(block.ids)
    view = memoryview(data)
    sizes = np.asarray(block.stops, dtype=np.int64) - np.asarray(block.starts, dtype=np.int64)
    ends = np.cumsum(sizes + len(_SEPARATOR))
    values_parts: list[np.ndarray] = []
    length_parts: list[np.ndarray] = []
    suspect = None  # first row to re-parse value by value
    a = 0
    while a < n:
        limit = (int(ends[a - 1]) if a else 0) + _PARSE_BYTES
        b = min(n, max(a + 1, int(np.searchsorted(ends, limit, side="right"))))
        fields: list[memoryview | bytes] = [
            view[s:e] for s, e in zip(block.starts[a:b], block.stops[a:b], strict=True)
        ]
        fields.append(b"")
        parsed = _fast_values(_SEPARATOR.join(fields))
        del fields
        split = None if parsed is None else _split_marked(parsed, b - a)
        del parsed
        if split is None:
            suspect = a
            break
        values, offsets = split
        finite = np.isfinite(values)
        if not finite.all():
            bad = int(np.searchsorted(offsets, int(np.argmin(finite)), side="right")) - 1
            values_parts.append(values[: offsets[bad]])
            length_parts.append(np.diff(offsets[: bad + 1]))
            suspect = a + bad
            break
        values_parts.append(values)
        length_parts.append(np.diff(offsets))
        a = b
    if suspect is not None:
        for i in range(suspect, n):
            where = f"{path}: line {block.lines[i]} (read {block.ids[i]})"
            row = _slow_row(where, data[block.starts[i] : block.stops[i]])  # raises if bad
            values_parts.append(row)  # reached only if the fast parser was stricter
            length_parts.append(np.array([row.size], dtype=np.int64))
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.concatenate(length_parts), out=offsets[1:])
    return SignalChunk(
        path=path,
        lines=np.asarray(block.lines, dtype=np.int64),
        ids=block.ids,
        labels=np.asarray(block.labels, dtype=np.int64),
        values=values_parts[0] if len(values_parts) == 1 else np.concatenate(values_parts),
        offsets=offsets,
    )


def _parse(
    path: str, data: bytes | bytearray, end: int, first_line: int
) -> tuple[SignalChunk | None, int]:
    """Rows of the complete lines ``data[:end]`` and the number of the next line; the first bad
    line raises :class:`InputError`."""
    block, error = _scan(path, data, end, first_line)
    chunk = _chunk(path, data, block) if block.ids else None  # raises earlier value errors
    if error is not None:
        raise error
    return chunk, block.next_line


def read_signal_chunks(
    path: str | os.PathLike[str],
    *,
    chunk_bytes: int = 32 << 20,
    digest: HashLike | None = None,
) -> Iterator[SignalChunk]:
    """Stream a signal CSV as :class:`SignalChunk` s of about ``chunk_bytes`` of text each.

    Memory stays bounded by a few times ``chunk_bytes`` plus the longest line. Every bad line
    raises a one-line :class:`InputError` (file, line, read id, expectation): wrong header,
    wrong field count, unquoted or unterminated timeseries, non-integer cap_class, empty
    timeseries, empty or non-numeric values, NaN or infinite values. ``digest`` (e.g. a
    ``hashlib.sha256()``), if given, is updated with every byte read, so that a complete
    iteration also hashes the file without reading it twice.
    """
    if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes < 1:
        raise InputError(f"chunk_bytes must be a positive integer, got {chunk_bytes!r}")
    name = str(path)
    if not Path(path).is_file():
        raise InputError(f"{name}: file not found (expected a signal CSV with header {HEADER!r})")
    with open(path, "rb") as handle:
        header = handle.readline(_MAX_HEADER)
        if digest is not None:
            digest.update(header)
        _check_header(name, header)
        line = 2  # number of the next line to parse
        # One buffer for the whole file: the text after the last complete line is moved to its
        # start and the next block is read behind it; it doubles when one line does not fit.
        left = os.fstat(handle.fileno()).st_size - handle.tell()
        buffer = bytearray(max(1, min(chunk_bytes, left + 1)))  # small files, small buffer
        filled = 0
        while True:
            if filled == len(buffer):
                buffer.extend(bytes(len(buffer)))
            with memoryview(buffer) as view:
                count = handle.readinto(view[filled:])
                if count and digest is not None:
                    digest.update(view[filled : filled + count])
            if not count:
                break
            total = filled + count
            cut = buffer.rfind(b"\n", filled, total)
            if cut < 0:
                filled = total
                continue
            chunk, line = _parse(name, buffer, cut + 1, line)
            buffer[: total - cut - 1] = buffer[cut + 1 : total]
            filled = total - cut - 1
            if chunk is not None:
                yield chunk
        if filled:
            chunk, line = _parse(name, buffer, filled, line)
            if chunk is not None:
                yield chunk
