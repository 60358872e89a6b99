"""Small helpers shared by the synthetic-data generators (argument checks, FASTA, sequences)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from nucflow.errors import InputError
from nucflow.io.atomic import atomic_path

BASES = "ACGT"
_COMPLEMENT = str.maketrans("ACGTacgtNn", "TGCAtgcaNn")


def check_int(name: str, value: int, minimum: int) -> int:
    """Return ``value`` as an int if it is an integer >= ``minimum``; raise InputError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_length_range(min_length: int, max_length: int, floor: int) -> tuple[int, int]:
    """Validate a ``[min_length, max_length]`` pair with ``floor <= min_length <= max_length``."""
    lo = check_int("min_length", min_length, floor)
    hi = check_int("max_length", max_length, floor)
    if lo > hi:
        raise InputError(f"min_length ({lo}) must not exceed max_length ({hi})")
    return lo, hi


def check_dna(name: str, motif: str, min_len: int = 1) -> str:
    """Return ``motif`` upper-cased if it is a plain ACGT string of at least ``min_len`` bases."""
    upper = str(motif).upper()
    if len(upper) < min_len or not re.fullmatch(r"[ACGT]+", upper):
        raise InputError(f"{name} must be an A/C/G/T string of >= {min_len} bases, got {motif!r}")
    return upper


def record_id(prefix: str, index: int, total: int) -> str:
    """1-based, zero-padded record id such as ``sim_pc_0001`` (width grows past 9999)."""
    width = max(4, len(str(total)))
    return f"{prefix}_{index + 1:0{width}d}"


def reverse_complement(sequence: str) -> str:
    """Reverse complement of an ACGTN string (case kept)."""
    return sequence.translate(_COMPLEMENT)[::-1]


def random_bases(rng: np.random.Generator, length: int, probabilities: np.ndarray) -> str:
    """A random A/C/G/T string of ``length`` bases drawn with ``probabilities`` (order ACGT)."""
    codes = rng.choice(4, size=length, p=probabilities)
    return codes_to_str(codes)


def codes_to_str(codes: np.ndarray) -> str:
    """Turn an integer array of base codes (0..3 = A, C, G, T) into a string."""
    lookup = np.frombuffer(BASES.encode("ascii"), dtype=np.uint8)
    return lookup[np.asarray(codes, dtype=np.intp)].tobytes().decode("ascii")


def log_uniform_lengths(
    rng: np.random.Generator, n: int, min_length: int, max_length: int
) -> np.ndarray:
    """``n`` integer lengths drawn log-uniformly from ``[min_length, max_length]``."""
    draws = np.exp(rng.uniform(np.log(min_length), np.log(max_length + 1), size=n))
    return np.clip(np.floor(draws).astype(np.int64), min_length, max_length)


def occurrences(sequence: str, motif: str) -> list[int]:
    """Start positions of every (possibly overlapping) occurrence of ``motif`` in ``sequence``."""
    return [m.start() for m in re.finditer(f"(?={re.escape(motif)})", sequence)]


def write_fasta(path: Path, records: Iterable[tuple[str, str]], width: int = 60) -> int:
    """Write ``(id, sequence)`` records to a FASTA file with ``width``-column lines, atomically.

    Returns the number of records written.
    """
    lines: list[str] = []
    count = 0
    for name, sequence in records:
        lines.append(f">{name}\n")
        lines.extend(f"{sequence[i : i + width]}\n" for i in range(0, len(sequence), width))
        count += 1
    with atomic_path(path) as tmp:
        tmp.write_text("".join(lines))
    return count
