"""Writer for the UCSC .2bit genome format (py2bit can only read it).

Layout written (version 0, little-endian, 32-bit offsets): a 16-byte header (signature
``0x1A412743``, version 0, sequence count, reserved 0), an index of ``(name, offset)`` records
in the given order, then per sequence: DNA size, hard-mask (N) blocks, soft-mask (lower-case)
blocks, a reserved word and the bases packed four to a byte (T=0, C=1, A=2, G=3, first base in
the two most significant bits). N positions are packed as T, as UCSC's ``faToTwoBit`` does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import numpy as np

from nucflow.errors import InputError
from nucflow.io.atomic import atomic_path

logger = logging.getLogger(__name__)

TWOBIT_SIGNATURE = 0x1A412743
_MAX_NAME_BYTES = 255
_MAX_OFFSET = 2**32 - 1
_INVALID = 255


def _code_table() -> np.ndarray:
    """Byte -> 2-bit code lookup (N/n -> 0, i.e. T); every other byte maps to ``_INVALID``."""
    table = np.full(256, _INVALID, dtype=np.uint8)
    for base, code in (("T", 0), ("C", 1), ("A", 2), ("G", 3), ("N", 0)):
        table[ord(base)] = code
        table[ord(base.lower())] = code
    return table


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and sizes (uint32) of the runs of True in a boolean array."""
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    starts, ends = edges[0::2], edges[1::2]
    return starts.astype("<u4"), (ends - starts).astype("<u4")


def _sequence_record(name: str, sequence: str, table: np.ndarray) -> bytes:
    """Encode one sequence record (everything after the index entry)."""
    try:
        raw = np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError as exc:
        raise InputError(
            f"2bit sequence {name!r}: non-ASCII character at position {exc.start}; "
            "expected only A, C, G, T, N (either case)"
        ) from None
    codes = table[raw]
    bad = np.flatnonzero(codes == _INVALID)
    if bad.size:
        pos = int(bad[0])
        raise InputError(
            f"2bit sequence {name!r}: character {sequence[pos]!r} at position {pos} "
            f"({bad.size} such characters); expected only A, C, G, T, N (either case)"
        )
    n_starts, n_sizes = _runs((raw == ord("N")) | (raw == ord("n")))
    mask_starts, mask_sizes = _runs(raw >= ord("a"))
    padded = np.zeros(-(-raw.size // 4) * 4, dtype=np.uint8)
    padded[: raw.size] = codes
    quads = padded.reshape(-1, 4)
    packed = (quads[:, 0] << 6) | (quads[:, 1] << 4) | (quads[:, 2] << 2) | quads[:, 3]
    parts = [
        np.array([raw.size, n_starts.size], dtype="<u4").tobytes(),
        n_starts.tobytes(),
        n_sizes.tobytes(),
        np.array([mask_starts.size], dtype="<u4").tobytes(),
        mask_starts.tobytes(),
        mask_sizes.tobytes(),
        np.array([0], dtype="<u4").tobytes(),
        packed.astype(np.uint8).tobytes(),
    ]
    return b"".join(parts)


def write_2bit(path: str | os.PathLike[str], sequences: Mapping[str, str]) -> None:
    """Write ``sequences`` (name -> bases) to a .2bit file at ``path``, atomically.

    Bases may be ``ACGTN`` in either case: runs of ``N``/``n`` become hard-mask (N) blocks and
    runs of lower-case letters become soft-mask blocks, so a reader with soft-masking enabled
    returns the exact input. Sequences are written in the mapping's order.

    Raises
    ------
    InputError
        If there are no sequences, a name is empty, too long (> 255 bytes) or contains
        whitespace, a sequence contains another character, or the file would exceed 4 GiB
        (version-0 .2bit files use 32-bit offsets).
    """
    if not sequences:
        raise InputError(f"{path}: no sequences to write to the 2bit file")
    table = _code_table()
    names: list[bytes] = []
    records: list[bytes] = []
    for name, sequence in sequences.items():
        encoded = name.encode("utf-8")
        if not encoded or len(encoded) > _MAX_NAME_BYTES or any(c.isspace() for c in name):
            raise InputError(
                f"{path}: sequence name {name!r} is invalid; expected 1-255 bytes without spaces"
            )
        names.append(encoded)
        records.append(_sequence_record(name, sequence, table))
    index_size = sum(1 + len(encoded) + 4 for encoded in names)
    offset = 16 + index_size
    index_parts: list[bytes] = []
    for encoded, record in zip(names, records, strict=True):
        if offset > _MAX_OFFSET:
            raise InputError(f"{path}: genome too large for a version-0 2bit file (> 4 GiB)")
        offset_bytes = np.array([offset], dtype="<u4").tobytes()
        index_parts.append(bytes([len(encoded)]) + encoded + offset_bytes)
        offset += len(record)
    header = np.array([TWOBIT_SIGNATURE, 0, len(names), 0], dtype="<u4").tobytes()
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(header)
        handle.write(b"".join(index_parts))
        for record in records:
            handle.write(record)
    logger.info("wrote %d sequences (%d bytes) to %s", len(names), offset, path)
