"""Nucleotide (k = 1) and non-overlapping k-mer tokenizers, vectorised with numpy.

Vocabulary: the 5 special tokens, then the 4^k ACGT k-mers in lexicographic order, so the
id of ``b_1 … b_k`` is ``5 + Σ idx(b_i)·4^(k−i)`` with A=0, C=1, G=2, T=3. A sequence is cut
into non-overlapping k-mers from the start of its kept part; a trailing partial k-mer is
dropped and a k-mer holding anything but A/C/G/T (e.g. N) becomes ``[UNK]``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np

from nucflow import __version__
from nucflow.errors import InputError
from nucflow.tokenize.base import (
    CLS_ID,
    FIRST_CONTENT_ID,
    PAD_ID,
    SEP_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    check_common_spec,
    decode_rows,
    special_ids,
)

logger = logging.getLogger(__name__)

Keep = Literal["five_prime", "three_prime"]
KEEP_POLICIES: tuple[str, ...] = ("five_prime", "three_prime")
"""Which end of a sequence longer than the context a tokenizer keeps."""

MAX_K = 15
"""Largest k: ids ``5 + 4^k − 1`` must fit an int32."""

_BASES = "ACGT"
_INVALID_CODE = 4
_MAX_K_BASE5 = 8
"""Up to this k, k-mer ids come from a 5^k lookup table (390,625 entries at k = 8)."""
_CHUNK_BYTES = 1 << 24
"""Bound on a chunk's kept nucleotides plus rows × context_length (bounds temporary memory)."""
_SPEC_KEYS = frozenset(
    {"method", "k", "context_length", "keep", "vocab_size", "special_ids", "nucflow_version"}
)


def _code_table(k: int) -> bytes:
    """256-byte translation table from ASCII to base codes (A0 C1 G2 T3, anything else 4).

    Lower-case letters count as upper-case and U as T. For ``k == 1`` the table maps straight
    to token ids (A→5 … T→8, anything else → UNK).
    """
    table = bytearray([_INVALID_CODE]) * 256
    for code, base in enumerate(_BASES):
        table[ord(base)] = table[ord(base.lower())] = code
    table[ord("U")] = table[ord("u")] = _BASES.index("T")
    if k == 1:
        table = bytearray(FIRST_CONTENT_ID + c if c < _INVALID_CODE else UNK_ID for c in table)
    return bytes(table)


def _chunks(sizes: np.ndarray, limit: int) -> Iterator[tuple[int, int]]:
    """Split ``range(len(sizes))`` into consecutive ``[start, stop)`` runs of total size ≤ limit.

    A single item larger than ``limit`` forms a run of its own.
    """
    ends = np.cumsum(sizes)
    start, n = 0, len(sizes)
    while start < n:
        before = ends[start - 1] if start else 0
        stop = int(np.searchsorted(ends, before + limit, side="right"))
        stop = max(stop, start + 1)
        yield start, stop
        start = stop


def _join_ascii(sequences: Sequence[str], first: int = 0) -> bytes:
    """Concatenate sequences into one ASCII byte string, one byte per character.

    Characters outside ASCII become ``?`` (and so ``[UNK]``); a non-string item raises
    :class:`InputError` naming its position (``first`` is the index of ``sequences[0]``).
    """
    try:
        joined = "".join(sequences)
    except TypeError:
        for number, item in enumerate(sequences):
            if not isinstance(item, str):
                raise InputError(
                    f"sequence {first + number + 1} is a {type(item).__name__}, expected a str"
                ) from None
        raise
    return joined.encode("ascii", errors="replace")


@dataclass(frozen=True)
class KmerTokenizer:
    """Non-overlapping k-mer tokenizer (``k == 1`` is the ``nuc`` encoding).

    Parameters
    ----------
    k
        k-mer length, 1 … 15.
    context_length
        Length of every encoded row (≥ 2): ``CLS``, up to ``context_length − 1`` k-mers,
        ``SEP`` when there is room, then ``PAD``. At most ``(context_length − 1)·k`` nt of a
        sequence are used.
    keep
        ``"five_prime"`` keeps the first ``(context_length − 1)·k`` nt of a longer sequence,
        ``"three_prime"`` the last ones (the window is then tokenised from its start).
    """

    k: int
    context_length: int
    keep: Keep = "five_prime"

    def __post_init__(self) -> None:
        """Validate the settings."""
        if isinstance(self.k, bool) or not isinstance(self.k, int) or not 1 <= self.k <= MAX_K:
            raise InputError(f"k must be an integer from 1 to {MAX_K}, got {self.k!r}")
        if (
            isinstance(self.context_length, bool)
            or not isinstance(self.context_length, int)
            or self.context_length < 2
        ):
            raise InputError(
                f"context_length must be an integer ≥ 2 (room for CLS and one token), "
                f"got {self.context_length!r}"
            )
        if self.keep not in KEEP_POLICIES:
            raise InputError(f"keep must be one of {', '.join(KEEP_POLICIES)}, got {self.keep!r}")

    @property
    def method(self) -> str:
        """``"nuc"`` for k = 1, otherwise ``"kmer"``."""
        return "nuc" if self.k == 1 else "kmer"

    @property
    def vocab_size(self) -> int:
        """5 specials + 4^k k-mers (k=1 → 9, k=3 → 69, k=6 → 4101)."""
        return FIRST_CONTENT_ID + 4**self.k

    @property
    def max_nucleotides(self) -> int:
        """Most nucleotides of one sequence that a row can hold: ``(context_length − 1)·k``."""
        return (self.context_length - 1) * self.k

    @cached_property
    def vocabulary(self) -> tuple[str, ...]:
        """All token strings, indexed by id (specials, then k-mers in lexicographic order)."""
        kmers = ("".join(p) for p in itertools.product(_BASES, repeat=self.k))
        return SPECIAL_TOKENS + tuple(kmers)

    @cached_property
    def _base5_ids(self) -> np.ndarray:
        """Token id (uint16 or int32) of each k-digit base-5 number (digit 4: invalid → UNK)."""
        numbers = np.arange(5**self.k, dtype=np.int64)
        ids = np.zeros(numbers.size, dtype=np.int64)
        invalid = np.zeros(numbers.size, dtype=bool)
        for position in range(self.k):
            digit = numbers // 5 ** (self.k - 1 - position) % 5
            invalid |= digit == _INVALID_CODE
            ids = ids * 4 + np.minimum(digit, 3)
        ids += FIRST_CONTENT_ID
        ids[invalid] = UNK_ID
        return ids.astype(np.uint16 if self.vocab_size <= 1 << 16 else np.int32)

    @cached_property
    def _pair_digits(self) -> np.ndarray:
        """Base-25 digit ``5·code(b0) + code(b1)`` of every little-endian byte pair ``b0 b1``."""
        codes = np.frombuffer(_code_table(2), dtype=np.uint8)
        pair_index = np.arange(1 << 16, dtype=np.uint32)
        return codes[pair_index & 0xFF] * np.uint8(5) + codes[pair_index >> 8]

    def token_id(self, kmer: str) -> int:
        """Id of one k-mer (``[UNK]`` if it is not k ACGT letters)."""
        if len(kmer) != self.k:
            return UNK_ID
        return int(self._encode_chunk([kmer], np.array([1]))[0])

    def encode(self, sequences: Sequence[str]) -> np.ndarray:
        """Encode sequences to an int32 array of shape ``(len(sequences), context_length)``.

        Each row is ``CLS t1 … tn SEP PAD …``; SEP only if ``n < context_length − 1``.
        Sequences shorter than k give ``CLS SEP PAD …``. Work is done in chunks of sequences
        (~16 M kept nt or row slots each) with numpy array operations, never per character.
        """
        if isinstance(sequences, str | bytes):
            raise InputError("encode expects a list of sequences, got a single string")
        seqs = sequences if isinstance(sequences, list) else list(sequences)
        n = len(seqs)
        width, k, cap = self.context_length, self.k, self.max_nucleotides
        out = np.full((n, width), PAD_ID, dtype=np.int32)
        if n == 0:
            return out
        out[:, 0] = CLS_ID
        try:
            lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=n)
        except TypeError:
            _join_ascii(seqs)  # raises the InputError naming the bad item
            raise
        n_tokens = np.minimum(lengths, cap) // k
        with_sep = np.flatnonzero(n_tokens + 1 < width)
        out[with_sep, n_tokens[with_sep] + 1] = SEP_ID
        columns = np.arange(width - 1)
        # A chunk's temporaries scale with its kept nt and its rows × context_length.
        for start, stop in _chunks(n_tokens * k + width, _CHUNK_BYTES):
            counts = n_tokens[start:stop]
            if not counts.any():
                continue
            ids = self._encode_chunk(seqs[start:stop], counts, start)
            # Row-major boolean mask of the token slots: row i gets columns 1 … counts[i].
            out[start:stop, 1:][columns < counts[:, None]] = ids
        logger.debug(
            "%s tokenizer: encoded %d sequences, %d longer than %d nt (%s end kept)",
            self.method,
            n,
            int(np.count_nonzero(lengths > cap)),
            cap,
            self.keep,
        )
        return out

    def _encode_chunk(
        self, seqs: Sequence[str], n_tokens: np.ndarray, first: int = 0
    ) -> np.ndarray:
        """Token ids (unsigned or int32, concatenated) of the kept k-mers of ``seqs``.

        ``n_tokens[i]`` is the number of k-mers kept from ``seqs[i]``; ``first`` is the index of
        ``seqs[0]`` in the whole batch (for error messages).
        """
        k, cap = self.k, self.max_nucleotides
        used = n_tokens * k
        # Cut each sequence to its kept k-mers (the kept end, no trailing partial k-mer) before
        # joining, so the joined bytes hold exactly the k-mers to encode.
        starts = np.zeros_like(used)
        if self.keep == "three_prime":
            lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
            starts = lengths - np.minimum(lengths, cap)
        raw = _join_ascii(
            [
                seq[start : start + size]
                for seq, start, size in zip(seqs, starts.tolist(), used.tolist(), strict=True)
            ],
            first,
        )
        pairs_first = k % 2 == 0 and k <= _MAX_K_BASE5
        # Even k: look raw byte pairs up directly (below); otherwise translate bytes to codes.
        codes = np.frombuffer(raw if pairs_first else raw.translate(_code_table(k)), np.uint8)
        if k == 1:
            return codes  # the table already maps to ids
        if k <= _MAX_K_BASE5:
            # Read each k-mer's codes (0–4) as a base-5 number, then look its id up.
            table = self._base5_ids
            if pairs_first:  # two raw bytes → one base-25 digit (0–24) in one lookup
                radix = 25
                grid = np.take(self._pair_digits, codes.view("<u2")).reshape(-1, k // 2)
            else:
                radix, grid = 5, codes.reshape(-1, k)
            acc = grid[:, 0].astype(np.min_scalar_type(table.size - 1))
            for column in range(1, grid.shape[1]):
                acc *= acc.dtype.type(radix)
                acc += grid[:, column]
            if self.vocab_size <= 256:  # k ≤ 3: a byte translation is the fastest lookup
                lookup = table.astype(np.uint8).tobytes().ljust(256, b"\0")
                return np.frombuffer(acc.tobytes().translate(lookup), dtype=np.uint8)
            return np.take(table, acc)
        grid = codes.reshape(-1, k)
        ids = grid[:, 0].astype(np.int32)
        seen = grid[:, 0].copy()  # bitwise OR of the codes: ≥ 4 iff some base is invalid
        for column in range(1, k):
            base = grid[:, column]
            ids <<= 2
            ids |= base & 3
            seen |= base
        ids += FIRST_CONTENT_ID
        ids[seen >= _INVALID_CODE] = UNK_ID
        return ids

    def decode(self, ids: np.ndarray) -> list[list[str]]:
        """Token strings of each row of ``ids`` (a 1-D array counts as one row).

        PAD is dropped; ``[CLS]``, ``[SEP]``, ``[UNK]`` and ``[MASK]`` are kept. Ids outside
        the vocabulary raise :class:`InputError`.
        """
        return decode_rows(ids, self.vocab_size, PAD_ID, self.token_string)

    def token_string(self, token_id: int) -> str:
        """String of one token id: a special such as ``[UNK]`` or a k-mer such as ``ACG``."""
        if not 0 <= token_id < self.vocab_size:
            raise InputError(f"token id {token_id} is outside 0 … {self.vocab_size - 1}")
        if token_id < FIRST_CONTENT_ID:
            return SPECIAL_TOKENS[token_id]
        index = token_id - FIRST_CONTENT_ID
        return "".join(_BASES[index >> (2 * (self.k - 1 - i)) & 3] for i in range(self.k))

    def to_spec(self) -> dict[str, Any]:
        """JSON-serialisable spec: method, k, context_length, keep, vocab_size, ids, version."""
        return {
            "method": self.method,
            "k": self.k,
            "context_length": self.context_length,
            "keep": self.keep,
            "vocab_size": self.vocab_size,
            "special_ids": special_ids(),
            "nucflow_version": __version__,
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], source: str = "tokenizer spec") -> KmerTokenizer:
        """Rebuild from :meth:`to_spec` output; a bad spec raises :class:`InputError`."""
        unknown = sorted(set(spec) - _SPEC_KEYS)
        if unknown:
            raise InputError(
                f"{source}: unknown keys {', '.join(map(repr, unknown))} in a "
                f"{spec.get('method')!r} tokenizer spec (expected {', '.join(sorted(_SPEC_KEYS))})"
            )
        method = spec.get("method")
        required = ["k", "context_length", "keep"]
        if method == "nuc":  # k is 1 by definition
            required.remove("k")
        missing = [key for key in required if key not in spec]
        if missing:
            raise InputError(
                f"{source}: missing keys {', '.join(map(repr, missing))} in a {method!r} "
                f"tokenizer spec"
            )
        k = spec.get("k", 1)
        if method == "nuc" and k != 1:
            raise InputError(f"{source}: method 'nuc' needs k = 1, got k = {k!r}")
        try:
            tokenizer = cls(k, spec["context_length"], spec["keep"])
        except InputError as err:
            raise InputError(f"{source}: {err}") from None
        check_common_spec(spec, tokenizer, source)
        return tokenizer
