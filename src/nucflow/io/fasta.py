"""FASTA reading with alphabet validation (plain or gzip-compressed, LF or CRLF line ends)."""

from __future__ import annotations

import gzip
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from Bio.SeqIO.FastaIO import SimpleFastaParser

from nucflow.errors import InputError

InvalidPolicy = Literal["error", "replace"]

_VALID = b"ACGTN"
_SENTINEL = b"\x00"
_SEPARATOR = b"\x01"


def _translation(invalid: InvalidPolicy) -> bytes:
    """Byte table: upper-cases, reads U as T, keeps the record separator, maps the rest.

    Other bytes become N (``replace``) or a sentinel byte that marks them invalid (``error``).
    """
    table = bytearray(_SENTINEL * 256 if invalid == "error" else b"N" * 256)
    for base in _VALID:
        table[base] = base
        table[ord(chr(base).lower())] = base
    table[ord("U")] = table[ord("u")] = ord("T")
    table[_SEPARATOR[0]] = _SEPARATOR[0]
    return bytes(table)


@dataclass(frozen=True)
class FastaRecords:
    """Parsed FASTA content: record ids (first word of each header) and upper-case DNA sequences."""

    path: Path
    ids: list[str]
    sequences: list[str]

    def __len__(self) -> int:
        return len(self.ids)


def _open_text(path: Path) -> io.TextIOBase:
    """Open a plain or gzip-compressed text file with universal newlines (CRLF is read as LF)."""
    with open(path, "rb") as handle:
        magic = handle.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", newline=None)
    return open(path, newline=None)  # noqa: SIM115 - returned to the caller's with-block


def read_fasta(path: str | os.PathLike[str], invalid: InvalidPolicy = "error") -> FastaRecords:
    """Read a FASTA file, validate it and normalise sequences to upper-case ACGTN.

    Letters are case-insensitive and U is read as T. Any other character raises an
    :class:`InputError` naming the record (``invalid="error"``) or becomes N
    (``invalid="replace"``). Missing or empty files, headers without an id, records without
    sequence and duplicate ids raise :class:`InputError`.
    """
    fasta = Path(path)
    if not fasta.is_file():
        raise InputError(f"{fasta}: file not found (expected a FASTA file)")
    ids: list[str] = []
    raw: list[str] = []
    seen: dict[str, int] = {}
    with _open_text(fasta) as handle:
        try:
            first = handle.read(1)
        except (OSError, EOFError) as err:
            raise InputError(f"{fasta}: cannot be read ({err})") from err
        if not first:
            raise InputError(f"{fasta}: file is empty (expected FASTA records starting with '>')")
        if first != ">":
            raise InputError(f"{fasta}: not FASTA (expected '>' as the first character)")
        handle.seek(0)
        for number, (title, sequence) in enumerate(SimpleFastaParser(handle), start=1):
            words = title.split()
            if not words:
                raise InputError(f"{fasta}: record {number} has an empty header (expected an id)")
            record_id = words[0]
            if record_id in seen:
                raise InputError(
                    f"{fasta}: duplicate id '{record_id}' in records {seen[record_id]} and "
                    f"{number} (expected unique ids)"
                )
            if not sequence:
                raise InputError(
                    f"{fasta}: record '{record_id}' has no sequence (expected at least one base)"
                )
            seen[record_id] = number
            ids.append(record_id)
            raw.append(sequence)
    if not ids:
        raise InputError(f"{fasta}: no FASTA records found (expected at least one '>' header)")
    return FastaRecords(fasta, ids, _normalise(fasta, ids, raw, invalid))


def _normalise(fasta: Path, ids: list[str], raw: list[str], invalid: InvalidPolicy) -> list[str]:
    """Upper-case, U→T and alphabet check of all sequences at once (one C-level translate)."""
    encoded = _SEPARATOR.join(seq.encode("ascii", errors="replace") for seq in raw)
    if encoded.count(_SEPARATOR) != len(raw) - 1:  # a record holds the separator byte itself
        encoded = _SEPARATOR.join(
            seq.replace(_SEPARATOR.decode(), "?").encode("ascii", errors="replace") for seq in raw
        )
    translated = encoded.translate(_translation(invalid))
    position = translated.find(_SENTINEL)
    if position >= 0:
        record = encoded.count(_SEPARATOR, 0, position)
        start = encoded.rfind(_SEPARATOR, 0, position) + 1
        char = raw[record][position - start]
        raise InputError(
            f"{fasta}: record '{ids[record]}' has invalid character {char!r} at position "
            f"{position - start + 1} (expected A, C, G, T, U or N; set "
            f"invalid_characters: replace to read other letters as N)"
        )
    return translated.decode("ascii").split(_SEPARATOR.decode())
