"""Nucleotide codes for the convolutional sequence encoding (CSE).

CSE models read nucleotides, not token ids: :class:`CseEncoding` stores each sequence as a
row of ``width = (context_length − 1)·kernel_size + kernel_size − 1`` codes (A0 C1 G2 T3,
4 for N or any other letter, 5 for padding on the right). The extra ``kernel_size − 1``
codes leave room for a random reading-frame offset in training. The model one-hot encodes
the codes with :func:`one_hot_codes` (N is 1/4 on each base, padding all zero).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nucflow import __version__
from nucflow.errors import InputError
from nucflow.tokenize.base import check_common_spec, decode_rows
from nucflow.tokenize.kmer import KEEP_POLICIES, Keep, _chunks, _join_ascii

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

CSE_N_CODE = 4
"""Code of N and of any letter other than A, C, G, T (U is read as T)."""
CSE_PAD_CODE = 5
"""Code of the padding after the end of a sequence."""
CSE_VOCAB_SIZE = 6
"""Number of distinct codes (4 bases, N, padding)."""
CSE_LETTERS = "ACGTN"
"""Letter of each non-padding code, indexed by code."""

_CHUNK_BYTES = 1 << 24
"""Bound on a chunk's kept nucleotides plus rows × width (bounds temporary memory)."""
_SPEC_KEYS = frozenset(
    {"method", "kernel_size", "context_length", "keep", "vocab_size", "nucflow_version"}
)


def _code_table() -> bytes:
    """256-byte table from ASCII to codes: A0 C1 G2 T3 (either case, U/u as T), else 4."""
    table = bytearray([CSE_N_CODE]) * 256
    for code, base in enumerate("ACGT"):
        table[ord(base)] = table[ord(base.lower())] = code
    table[ord("U")] = table[ord("u")] = 3
    return bytes(table)


def _positive_int(name: str, value: object, minimum: int) -> None:
    """Raise :class:`InputError` unless ``value`` is an integer (not a bool) ≥ ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name} must be an integer ≥ {minimum}, got {value!r}")


@dataclass(frozen=True)
class CseEncoding:
    """Nucleotide-code encoding for CSE models (method ``"cse"``).

    Parameters
    ----------
    kernel_size
        Nucleotides per convolution window (≥ 1); one window becomes one position.
    context_length
        Positions of the model, CLS included (≥ 2): ``context_length − 1`` windows.
    keep
        ``"five_prime"`` stores the first ``width`` nt of a longer sequence,
        ``"three_prime"`` the last ``width`` nt.
    """

    kernel_size: int
    context_length: int
    keep: Keep = "five_prime"

    def __post_init__(self) -> None:
        """Validate the settings."""
        _positive_int("kernel_size", self.kernel_size, 1)
        _positive_int("context_length", self.context_length, 2)
        if self.keep not in KEEP_POLICIES:
            raise InputError(f"keep must be one of {', '.join(KEEP_POLICIES)}, got {self.keep!r}")

    @property
    def method(self) -> str:
        """Always ``"cse"``."""
        return "cse"

    @property
    def vocab_size(self) -> int:
        """Number of distinct codes: 6 (A, C, G, T, N, padding)."""
        return CSE_VOCAB_SIZE

    @property
    def width(self) -> int:
        """Codes per row: ``(context_length − 1)·kernel_size + kernel_size − 1``."""
        return (self.context_length - 1) * self.kernel_size + self.kernel_size - 1

    @property
    def max_nucleotides(self) -> int:
        """Nucleotides read in one reading frame: ``(context_length − 1)·kernel_size``."""
        return (self.context_length - 1) * self.kernel_size

    def encode(self, sequences: Sequence[str]) -> np.ndarray:
        """Codes of sequences as a uint8 array of shape ``(len(sequences), width)``.

        A0 C1 G2 T3 (lower case too, U as T), 4 for any other letter, 5 for padding after the
        sequence. A longer sequence keeps its first or last ``width`` nt (``keep``). Work is
        done in chunks with one byte translation and a numpy scatter per chunk.
        """
        if isinstance(sequences, str | bytes):
            raise InputError("encode expects a list of sequences, got a single string")
        seqs = sequences if isinstance(sequences, list) else list(sequences)
        n, width = len(seqs), self.width
        out = np.full((n, width), CSE_PAD_CODE, dtype=np.uint8)
        if n == 0:
            return out
        try:
            lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=n)
        except TypeError:
            _join_ascii(seqs)  # raises the InputError naming the bad item
            raise
        used = np.minimum(lengths, width)
        starts = lengths - used if self.keep == "three_prime" else np.zeros_like(used)
        table = _code_table()
        columns = np.arange(width)
        for start, stop in _chunks(used + width, _CHUNK_BYTES):
            raw = _join_ascii(
                [
                    seq[first : first + size]
                    for seq, first, size in zip(
                        seqs[start:stop],
                        starts[start:stop].tolist(),
                        used[start:stop].tolist(),
                        strict=True,
                    )
                ],
                start,
            )
            codes = np.frombuffer(raw.translate(table), dtype=np.uint8)
            out[start:stop][columns < used[start:stop, None]] = codes
        logger.debug(
            "cse encoding: encoded %d sequences, %d longer than %d nt (%s end kept)",
            n,
            int(np.count_nonzero(lengths > width)),
            width,
            self.keep,
        )
        return out

    def decode(self, codes: np.ndarray) -> list[list[str]]:
        """Letters (``"A"``, ``"C"``, ``"G"``, ``"T"``, ``"N"``) of each row, padding dropped.

        A 1-D array counts as one row; codes outside 0 … 5 raise :class:`InputError`.
        """
        return decode_rows(codes, CSE_PAD_CODE + 1, CSE_PAD_CODE, CSE_LETTERS.__getitem__)

    def to_spec(self) -> dict[str, Any]:
        """Spec: method, kernel_size, context_length, keep, vocab_size, nucflow_version."""
        return {
            "method": self.method,
            "kernel_size": self.kernel_size,
            "context_length": self.context_length,
            "keep": self.keep,
            "vocab_size": self.vocab_size,
            "nucflow_version": __version__,
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], source: str = "tokenizer spec") -> CseEncoding:
        """Rebuild from :meth:`to_spec` output; a bad or unknown key raises :class:`InputError`."""
        unknown = sorted(set(spec) - _SPEC_KEYS)
        if unknown:
            raise InputError(
                f"{source}: unknown keys {', '.join(map(repr, unknown))} in a 'cse' spec "
                f"(expected {', '.join(sorted(_SPEC_KEYS))})"
            )
        if spec.get("method") != "cse":
            raise InputError(f"{source}: expected method 'cse', got {spec.get('method')!r}")
        missing = [k for k in ("kernel_size", "context_length", "keep") if k not in spec]
        if missing:
            raise InputError(
                f"{source}: missing keys {', '.join(map(repr, missing))} in a 'cse' spec"
            )
        try:
            encoding = cls(spec["kernel_size"], spec["context_length"], spec["keep"])
        except InputError as err:
            raise InputError(f"{source}: {err}") from None
        check_common_spec(spec, encoding, source)  # type: ignore[arg-type]
        return encoding


def one_hot_codes(codes: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """One-hot nucleotide channels of CSE codes: ``(..., W)`` integers → ``(..., 4, W)`` floats.

    Channels are A, C, G, T: a base is one-hot, N (code 4) is 0.25 on every channel and
    padding (code 5) is all zero. ``dtype`` defaults to float32; the result is on the device
    of ``codes``. Codes outside 0 … 5 raise an indexing error.
    """
    import torch
    import torch.nn.functional as functional

    if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
        raise InputError(f"one_hot_codes expects an integer tensor, got {codes.dtype}")
    if codes.dim() < 1:
        raise InputError("one_hot_codes expects a tensor of shape (..., W), got a scalar")
    lookup = torch.zeros(CSE_VOCAB_SIZE, 4, dtype=dtype or torch.float32, device=codes.device)
    lookup[:4] = torch.eye(4, dtype=lookup.dtype, device=codes.device)
    lookup[CSE_N_CODE] = 0.25
    return functional.embedding(codes.long(), lookup).movedim(-1, -2).contiguous()
