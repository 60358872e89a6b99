"""Delimited tables of token sequences (biolm's tabular input), plain or gzip, LF or CRLF.

One record per line; columns are picked by 1-based position (:class:`TableFormat`). The
sequence field is a list of atoms separated by ``tokensep`` (``""``: every character is an
atom). With ``specifiersep`` set, an atom may carry floats: ``a#2.5#0.2`` is the atom ``a``
with the specifiers ``(2.5, 0.2)``; an undecorated atom has none (``()``). Double quotes
around fields are stripped; blank lines are skipped. Every bad line raises a one-line
:class:`InputError` naming the file, the 1-based line and, where known, the record id.
"""

from __future__ import annotations

import gzip
import io
import logging
import math
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np

from nucflow.errors import InputError

logger = logging.getLogger(__name__)

LabelKind = Literal["float", "string"]
"""How labels are read: ``"float"`` (regression) or ``"string"`` (class names)."""
POSITION_KEYS: tuple[str, ...] = ("idpos", "seqpos", "labelpos", "splitpos", "weightpos")
"""Column-position options (1-based; all but ``idpos`` and ``seqpos`` may be null)."""


def _position(name: str, value: object, *, optional: bool) -> None:
    """Raise :class:`InputError` unless ``value`` is a 1-based column position (or null)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        allowed = "an integer ≥ 1 or null" if optional else "an integer ≥ 1"
        raise InputError(f"{name} must be {allowed} (1-based column), got {value!r}")


@dataclass(frozen=True, kw_only=True)
class TableFormat:
    """Column layout of a table (biolm option names; positions are 1-based).

    ``columnsep`` separates fields, ``tokensep`` atoms inside the sequence field (``""``: each
    character is an atom) and ``specifiersep`` (``None``: no specifiers) an atom from its
    floats. ``stripheader`` drops the first line. The three separators must differ, and
    specifiers need a non-empty ``tokensep``.
    """

    idpos: int
    seqpos: int
    columnsep: str = "\t"
    tokensep: str = ""
    specifiersep: str | None = None
    labelpos: int | None = None
    splitpos: int | None = None
    weightpos: int | None = None
    stripheader: bool = False

    def __post_init__(self) -> None:
        """Validate the layout."""
        for name in POSITION_KEYS:
            _position(name, getattr(self, name), optional=name not in ("idpos", "seqpos"))
        used = self.positions()
        clashes = sorted({p for p in used.values() if list(used.values()).count(p) > 1})
        if clashes:
            names = [n for n, p in used.items() if p in clashes]
            raise InputError(
                f"column positions must differ, but {' and '.join(names)} share column {clashes[0]}"
            )
        if not isinstance(self.columnsep, str) or not self.columnsep:
            raise InputError(f"columnsep must be a non-empty string, got {self.columnsep!r}")
        if not isinstance(self.tokensep, str):
            raise InputError(
                f"tokensep must be a string ('' = one atom per character), got {self.tokensep!r}"
            )
        if self.tokensep == self.columnsep:
            raise InputError(f"tokensep and columnsep must differ, both are {self.tokensep!r}")
        if self.specifiersep is not None:
            if not isinstance(self.specifiersep, str) or not self.specifiersep:
                raise InputError(
                    f"specifiersep must be a non-empty string or null, got {self.specifiersep!r}"
                )
            if not self.tokensep:
                raise InputError(
                    "specifiersep needs a non-empty tokensep (with tokensep '' every character "
                    "is an atom, so atoms cannot carry specifiers)"
                )
            if self.specifiersep in (self.tokensep, self.columnsep):
                raise InputError(
                    f"specifiersep {self.specifiersep!r} must differ from tokensep and columnsep"
                )
        if not isinstance(self.stripheader, bool):
            raise InputError(f"stripheader must be true or false, got {self.stripheader!r}")

    def positions(self) -> dict[str, int]:
        """The configured (non-null) column positions by option name."""
        values = {name: getattr(self, name) for name in POSITION_KEYS}
        return {name: value for name, value in values.items() if value is not None}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], source: str = "table format") -> TableFormat:
        """Build from a config mapping holding the option names as keys.

        Keys that are not format options (e.g. a data section's ``path``) are ignored; a null
        ``tokensep`` means ``""``. Missing ``idpos``/``seqpos`` or a bad value raises
        :class:`InputError` prefixed with ``source``.
        """
        if not isinstance(config, Mapping):
            raise InputError(f"{source}: expected a mapping, got {type(config).__name__}")
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in config.items() if key in known}
        missing = [key for key in ("idpos", "seqpos") if values.get(key) is None]
        if missing:
            raise InputError(f"{source}: {' and '.join(missing)} must be set for a table")
        if values.get("tokensep", "") is None:
            values["tokensep"] = ""
        if values.get("columnsep", "\t") is None:
            values["columnsep"] = "\t"
        try:
            return cls(**values)
        except InputError as err:
            raise InputError(f"{source}: {err}") from None


@dataclass(frozen=True)
class TableRecords:
    """Parsed table content, one entry per data line, in file order.

    ``tokens[i]`` are the atoms of record ``i``; ``specifiers[i][j]`` the floats of its
    ``j``-th atom (``()`` when undecorated; ``specifiers`` is None without ``specifiersep``).
    ``labels`` is a float64 array (regression), a list of strings (classification) or None;
    ``splits`` an int64 array or None; ``weights`` the raw quality labels or None;
    ``line_numbers`` the 1-based line of each record.
    """

    path: Path
    ids: list[str]
    tokens: list[list[str]]
    specifiers: list[list[tuple[float, ...]]] | None
    labels: np.ndarray | list[str] | None
    splits: np.ndarray | None
    weights: list[str] | None
    line_numbers: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def max_specifiers(self) -> int:
        """Most floats on any one token (0 without specifiers)."""
        if self.specifiers is None:
            return 0
        return max((max(map(len, row), default=0) for row in self.specifiers), default=0)


def _open_table(path: Path) -> io.TextIOBase:
    """Open a plain or gzip-compressed UTF-8 text file with universal newlines (CRLF → LF)."""
    with open(path, "rb") as handle:
        magic = handle.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline=None)
    return open(path, encoding="utf-8-sig", newline=None)  # noqa: SIM115 - caller's with-block


def _first_non_utf8_line(path: Path) -> int:
    """1-based number of the first line that is not valid UTF-8 (0 if none is)."""
    with open(path, "rb") as probe:
        packed = probe.read(2) == b"\x1f\x8b"
    with gzip.open(path, "rb") if packed else open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0


def _field(fields_: list[str], position: int) -> str:
    """The field at a 1-based position, surrounding whitespace and double quotes removed."""
    return fields_[position - 1].strip().strip('"')


def _split_specifiers(
    raw: list[str], sep: str, where: str
) -> tuple[list[str], list[tuple[float, ...]]]:
    """Atoms and float tuples of decorated tokens (``a#2.5#0.2`` → ``a``, ``(2.5, 0.2)``).

    Each distinct specifier string is parsed once (specifier values repeat a lot in practice).
    """
    atoms: list[str] = []
    specs: list[tuple[float, ...]] = []
    add_atom, add_spec = atoms.append, specs.append
    parsed: dict[str, tuple[float, ...]] = {}
    width = len(sep)
    for token in raw:
        cut = token.find(sep)
        if cut < 0:
            add_atom(token)
            add_spec(())
            continue
        rest = token[cut + width :]
        floats = parsed.get(rest)
        if floats is None or cut == 0:
            problem = "no atom" if cut == 0 else None
            if problem is None:
                floats, problem = _parse_floats(rest.split(sep))
            if problem is not None:
                raise _specifier_error(raw.index(token) + 1, token, problem, sep, where)
            assert floats is not None
            parsed[rest] = floats
        add_atom(token[:cut])
        add_spec(floats)
    return atoms, specs


def _parse_floats(values: list[str]) -> tuple[tuple[float, ...] | None, str | None]:
    """``(floats, None)``, or ``(None, problem)`` if a value is not a finite number."""
    try:
        floats = tuple(map(float, values))
    except ValueError:
        return None, next(v for v in values if not _is_float(v))
    if not all(map(math.isfinite, floats)):
        return None, next(v for v in values if not math.isfinite(float(v)))
    return floats, None


def _specifier_error(number: int, token: str, problem: str, sep: str, where: str) -> InputError:
    """The one-line error for a bad decorated token (``problem``: "no atom" or the value)."""
    if problem == "no atom":
        return InputError(
            f"{where}: token {number} {token!r} has no atom before {sep!r} "
            f"(expected e.g. 'a{sep}2.5')"
        )
    return InputError(
        f"{where}: token {number} {token!r} has specifier {problem!r}, expected a finite number"
    )


def _is_float(text: str) -> bool:
    """Whether ``float(text)`` succeeds."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_table(
    path: str | os.PathLike[str], fmt: TableFormat, *, labels: LabelKind | None = None
) -> TableRecords:
    """Read a delimited table of token sequences (plain or gzip, LF or CRLF).

    ``labels`` selects how the ``labelpos`` column is read: ``"float"`` (finite numbers),
    ``"string"`` (non-empty class names) or None (not read). Splits must be integers and
    specifiers finite numbers. A missing or empty file, a line with too few columns, a bad
    label, split or specifier, an empty id or sequence and a duplicate id raise a one-line
    :class:`InputError` naming the file, the line and the id.
    """
    table = Path(path)
    if labels not in (None, "float", "string"):
        raise InputError(f"labels must be 'float', 'string' or None, got {labels!r}")
    if labels is not None and fmt.labelpos is None:
        raise InputError(f"{table}: labels requested but labelpos is not set")
    if not table.is_file():
        raise InputError(f"{table}: file not found (expected a delimited table)")
    positions = fmt.positions()
    if labels is None:
        positions.pop("labelpos", None)
    widest_name = max(positions, key=positions.__getitem__)
    widest = positions[widest_name]
    colsep, toksep, specsep = fmt.columnsep, fmt.tokensep, fmt.specifiersep
    ids: list[str] = []
    tokens: list[list[str]] = []
    specifiers: list[list[tuple[float, ...]]] | None = [] if specsep is not None else None
    label_text: list[str] = []
    split_values: list[int] = []
    weights: list[str] = []
    line_numbers: list[int] = []
    seen: dict[str, int] = {}
    number = 0
    try:
        with _open_table(table) as handle:
            for number, line in enumerate(handle, start=1):
                if number == 1 and fmt.stripheader:
                    continue
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                # maxsplit keeps the fields after the last used column in one piece
                parts = line.split(colsep, widest)
                if len(parts) < widest:
                    has_id = fmt.idpos <= len(parts)
                    known = f", id '{_field(parts, fmt.idpos)}'" if has_id else ""
                    raise InputError(
                        f"{table}: line {number} has {len(parts)} columns, expected at least "
                        f"{widest} ({widest_name} {widest}){known}"
                    )
                record_id = _field(parts, fmt.idpos)
                where = f"{table}: line {number} (id '{record_id}')"
                if not record_id:
                    raise InputError(f"{table}: line {number} has an empty id (column {fmt.idpos})")
                if record_id in seen:
                    raise InputError(
                        f"{table}: duplicate id '{record_id}' on lines {seen[record_id]} and "
                        f"{number} (expected unique ids)"
                    )
                seen[record_id] = number
                sequence = _field(parts, fmt.seqpos)
                if not sequence:
                    raise InputError(f"{where} has an empty sequence field (column {fmt.seqpos})")
                raw = sequence.split(toksep) if toksep else list(sequence)
                if toksep and "" in raw:
                    position = raw.index("") + 1
                    raise InputError(
                        f"{where}: token {position} is empty (two {toksep!r} in a row or one "
                        f"at an end)"
                    )
                if specifiers is not None:
                    assert specsep is not None
                    if specsep in sequence:
                        raw, specs = _split_specifiers(raw, specsep, where)
                    else:
                        specs = [()] * len(raw)
                    specifiers.append(specs)
                tokens.append(raw)
                ids.append(record_id)
                line_numbers.append(number)
                if labels is not None:
                    assert fmt.labelpos is not None
                    label_text.append(_field(parts, fmt.labelpos))
                    _check_label(label_text[-1], labels, where, fmt.labelpos)
                if fmt.splitpos is not None:
                    split_values.append(_split_value(_field(parts, fmt.splitpos), where))
                if fmt.weightpos is not None:
                    weight = _field(parts, fmt.weightpos)
                    if not weight:
                        raise InputError(f"{where} has an empty weight (column {fmt.weightpos})")
                    weights.append(weight)
    except UnicodeDecodeError as err:
        line = _first_non_utf8_line(table)
        raise InputError(f"{table}: line {line} is not UTF-8 text ({err.reason})") from None
    except (OSError, EOFError, zlib.error) as err:
        raise InputError(f"{table}: cannot be read ({err})") from None
    if number == 0:
        raise InputError(f"{table}: file is empty (expected one record per line)")
    if not ids:
        header = " after the header line" if fmt.stripheader else ""
        raise InputError(f"{table}: no data lines{header} (expected one record per line)")
    parsed_labels: np.ndarray | list[str] | None = None
    if labels == "float":
        parsed_labels = np.array([float(text) for text in label_text], dtype=np.float64)
    elif labels == "string":
        parsed_labels = label_text
    logger.info("read %d records from %s", len(ids), table)
    return TableRecords(
        path=table,
        ids=ids,
        tokens=tokens,
        specifiers=specifiers,
        labels=parsed_labels,
        splits=np.array(split_values, dtype=np.int64) if fmt.splitpos is not None else None,
        weights=weights if fmt.weightpos is not None else None,
        line_numbers=np.array(line_numbers, dtype=np.int64),
    )


def _check_label(text: str, kind: LabelKind, where: str, column: int) -> None:
    """Raise :class:`InputError` unless ``text`` is a finite number / non-empty class name."""
    if kind == "string":
        if not text:
            raise InputError(f"{where} has an empty label (column {column})")
        return
    try:
        value = float(text)
    except ValueError:
        raise InputError(
            f"{where} has label {text!r}, expected a number (column {column})"
        ) from None
    if not math.isfinite(value):
        raise InputError(f"{where} has label {text!r}, expected a finite number (column {column})")


def _split_value(text: str, where: str) -> int:
    """An integer split id, else :class:`InputError`."""
    try:
        return int(text)
    except ValueError:
        raise InputError(f"{where} has split {text!r}, expected an integer") from None
