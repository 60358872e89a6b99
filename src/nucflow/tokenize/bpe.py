"""Byte-pair encoding (BPE) of nucleotide sequences, learned with Hugging Face ``tokenizers``.

The vocabulary holds the 5 special tokens at ids 0 … 4 (``[MASK] [CLS] [SEP] [PAD] [UNK]``),
then the letters A, C, G, N, T and the learned merges; every content token is a string over
ACGTN and the vocabulary size counts the specials. Each sequence is one BPE "word" (no
pre-tokenizer splits it) and training uses every sequence whatever its length. Sequences are
upper-cased, U is read as T and any other character as N before training and encoding. The
spec embeds the whole Hugging Face tokenizer JSON, so a saved spec is self-contained.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from tokenizers import Tokenizer as HfTokenizer
from tokenizers import models, trainers

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
from nucflow.tokenize.kmer import KEEP_POLICIES, Keep

logger = logging.getLogger(__name__)

BPE_ALPHABET = "ACGTN"
"""Letters of the initial BPE alphabet; every content token is a string over them."""
MIN_BPE_VOCAB_SIZE = len(SPECIAL_TOKENS) + len(BPE_ALPHABET)
"""Smallest vocabulary: the 5 specials and the 5 letters (10)."""
DEFAULT_MAX_PIECE_LENGTH = 16
"""Default cap on the length of a learned piece (sentencepiece's default as well)."""

_CHUNK_NUCLEOTIDES = 1 << 22
"""Bound on the nucleotides encoded in one ``encode_batch`` call (bounds temporary memory)."""
_SPEC_KEYS = frozenset(
    {
        "method",
        "context_length",
        "keep",
        "vocab_size",
        "special_ids",
        "nucflow_version",
        "tokenizer",
    }
)


def _normal_table() -> bytes:
    """256-byte table: ACGTN upper-cased, U/u as T, every other byte as N."""
    table = bytearray(b"N" * 256)
    for base in BPE_ALPHABET:
        table[ord(base)] = table[ord(base.lower())] = ord(base)
    table[ord("U")] = table[ord("u")] = ord("T")
    return bytes(table)


def _normalise(sequences: Sequence[str], first: int = 0) -> list[str]:
    """Upper-case ACGTN copies of ``sequences`` (U → T, any other character → N).

    A non-string item raises :class:`InputError` naming its position (``first`` is the index
    of ``sequences[0]`` in the whole batch).
    """
    table = _normal_table()
    normal = []
    for number, seq in enumerate(sequences):
        if not isinstance(seq, str):
            raise InputError(
                f"sequence {first + number + 1} is a {type(seq).__name__}, expected a str"
            )
        normal.append(seq.encode("ascii", errors="replace").translate(table).decode("ascii"))
    return normal


def _check_int(name: str, value: object, minimum: int, why: str) -> int:
    """Return ``value`` if it is an integer ≥ ``minimum``, else raise :class:`InputError`."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InputError(f"{name} must be an integer ≥ {minimum} ({why}), got {value!r}")
    return int(value)


def _check_settings(context_length: object, keep: object) -> None:
    """Validate the row settings shared by :class:`BpeTokenizer` and :func:`learn_bpe`."""
    _check_int("context_length", context_length, 2, "room for CLS and one token")
    if keep not in KEEP_POLICIES:
        raise InputError(f"keep must be one of {', '.join(KEEP_POLICIES)}, got {keep!r}")


def _vocabulary(tokenizer: HfTokenizer) -> tuple[str, ...]:
    """Token strings indexed by id, after checking the tokenizer is a nucflow BPE tokenizer.

    Requires a BPE model without dropout, no normalizer, pre-tokenizer, truncation or padding,
    the specials at ids 0 … 4, contiguous ids and content tokens over ACGTN only.
    """
    if not isinstance(tokenizer.model, models.BPE):
        raise InputError(f"expected a BPE model, got {type(tokenizer.model).__name__}")
    if tokenizer.model.dropout:
        raise InputError(f"BPE dropout must be off, got {tokenizer.model.dropout!r}")
    for part in ("normalizer", "pre_tokenizer", "truncation", "padding"):
        if getattr(tokenizer, part) is not None:
            raise InputError(f"the BPE tokenizer must have no {part.replace('_', '-')}")
    by_id = {index: token for token, index in tokenizer.get_vocab(with_added_tokens=True).items()}
    if sorted(by_id) != list(range(len(by_id))):
        raise InputError("BPE vocabulary ids are not contiguous from 0")
    vocabulary = tuple(by_id[index] for index in range(len(by_id)))
    if vocabulary[:FIRST_CONTENT_ID] != SPECIAL_TOKENS:
        raise InputError(
            f"BPE vocabulary must start with {', '.join(SPECIAL_TOKENS)} at ids 0 … 4, got "
            f"{', '.join(vocabulary[:FIRST_CONTENT_ID])}"
        )
    letters = set(BPE_ALPHABET)
    for index, token in enumerate(vocabulary[FIRST_CONTENT_ID:], start=FIRST_CONTENT_ID):
        if not token or not set(token) <= letters:
            raise InputError(f"BPE token {index} is {token!r}, expected a string over ACGTN")
    return vocabulary


def _chunks(lengths: np.ndarray, limit: int) -> Iterator[tuple[int, int]]:
    """Consecutive ``[start, stop)`` runs of sequences with at most ``limit`` nt each.

    A single sequence longer than ``limit`` forms a run of its own.
    """
    ends = np.cumsum(lengths)
    start, n = 0, len(lengths)
    while start < n:
        before = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, before + limit, side="right")), start + 1)
        yield start, stop
        start = stop


class BpeTokenizer:
    """BPE tokenizer over a learned Hugging Face ``tokenizers`` BPE model.

    Build one with :func:`learn_bpe` or :meth:`from_spec`. Rows are ``CLS p1 … pn SEP PAD …``
    of length ``context_length``; SEP only if there is room. A sequence with more than
    ``context_length − 1`` pieces keeps its first pieces (``keep="five_prime"``) or its last
    ones (``"three_prime"``); the whole sequence is segmented first, so kept pieces are those
    of the full sequence.

    Parameters
    ----------
    tokenizer
        A Hugging Face tokenizer with a BPE model, the 5 specials at ids 0 … 4 and only
        ACGTN content tokens (as :func:`learn_bpe` makes); it is not copied, do not change it.
    context_length
        Length of every encoded row (≥ 2).
    keep
        ``"five_prime"`` or ``"three_prime"``.
    """

    def __init__(
        self, tokenizer: HfTokenizer, context_length: int, keep: Keep = "five_prime"
    ) -> None:
        _check_settings(context_length, keep)
        self._vocabulary = _vocabulary(tokenizer)
        self._tokenizer = tokenizer
        self._context_length = int(context_length)
        self._keep: Keep = keep

    @property
    def method(self) -> str:
        """Always ``"bpe"``."""
        return "bpe"

    @property
    def vocab_size(self) -> int:
        """Number of token ids, the 5 specials included."""
        return len(self._vocabulary)

    @property
    def context_length(self) -> int:
        """Length of every encoded row, CLS and SEP included."""
        return self._context_length

    @property
    def keep(self) -> Keep:
        """Which end of a sequence with too many pieces is kept."""
        return self._keep

    @property
    def vocabulary(self) -> tuple[str, ...]:
        """All token strings, indexed by id (specials first)."""
        return self._vocabulary

    @property
    def hf_tokenizer(self) -> HfTokenizer:
        """The underlying Hugging Face tokenizer (shared, do not modify it)."""
        return self._tokenizer

    def __repr__(self) -> str:
        return (
            f"BpeTokenizer(vocab_size={self.vocab_size}, context_length={self.context_length}, "
            f"keep={self.keep!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BpeTokenizer):
            return NotImplemented
        return (self.context_length, self.keep, self._tokenizer.to_str()) == (
            other.context_length,
            other.keep,
            other._tokenizer.to_str(),
        )

    __hash__ = None  # type: ignore[assignment]

    def pieces(self, sequences: Sequence[str]) -> list[list[int]]:
        """Piece ids of each whole sequence (no specials, no truncation)."""
        if isinstance(sequences, str | bytes):
            raise InputError("pieces expects a list of sequences, got a single string")
        return self._segment(
            _normalise(sequences if isinstance(sequences, list) else list(sequences))
        )

    def _segment(self, texts: list[str]) -> list[list[int]]:
        """Piece ids of normalised sequences, from the tokenizer's multi-threaded batch encoder."""
        encodings = self._tokenizer.encode_batch_fast(texts, add_special_tokens=False)
        return [encoding.ids for encoding in encodings]

    def encode(self, sequences: Sequence[str]) -> np.ndarray:
        """Encode sequences to an int32 array of shape ``(len(sequences), context_length)``.

        Each row is ``CLS p1 … pn SEP PAD …`` with at most ``context_length − 1`` pieces; SEP
        only if ``n < context_length − 1``. Sequences are segmented in batches with the
        tokenizer's (multi-threaded) batch encoder and rows are assembled with numpy.
        """
        if isinstance(sequences, str | bytes):
            raise InputError("encode expects a list of sequences, got a single string")
        seqs = sequences if isinstance(sequences, list) else list(sequences)
        n, width = len(seqs), self.context_length
        out = np.full((n, width), PAD_ID, dtype=np.int32)
        if n == 0:
            return out
        out[:, 0] = CLS_ID
        try:
            lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=n)
        except TypeError:
            _normalise(seqs)  # raises the InputError naming the bad item
            raise
        columns = np.arange(width - 1)
        n_long = 0
        for start, stop in _chunks(lengths, _CHUNK_NUCLEOTIDES):
            ids = self._segment(_normalise(seqs[start:stop], start))
            counts = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
            flat = np.fromiter(
                itertools.chain.from_iterable(ids), dtype=np.int32, count=int(counts.sum())
            )
            kept = np.minimum(counts, width - 1)
            if (counts > kept).any():
                n_long += int(np.count_nonzero(counts > kept))
                # Flat index of each kept piece: the row's first kept piece + 0 … kept - 1.
                first = np.cumsum(counts) - counts
                if self.keep == "three_prime":
                    first += counts - kept
                kept_ends = np.cumsum(kept)
                shift = np.repeat(first - (kept_ends - kept), kept)
                flat = flat[np.arange(int(kept_ends[-1])) + shift]
            block = out[start:stop]
            # Row-major boolean mask of the piece slots: row i gets columns 1 … kept[i].
            block[:, 1:][columns < kept[:, None]] = flat
            with_sep = np.flatnonzero(kept + 1 < width)
            block[with_sep, kept[with_sep] + 1] = SEP_ID
        logger.debug(
            "bpe tokenizer: encoded %d sequences, %d with more than %d pieces (%s end kept)",
            n,
            n_long,
            width - 1,
            self.keep,
        )
        return out

    def decode(self, ids: np.ndarray) -> list[list[str]]:
        """Token strings of each row of ``ids`` (a 1-D array counts as one row).

        PAD is dropped; ``[CLS]``, ``[SEP]``, ``[UNK]`` and ``[MASK]`` are kept. Ids outside
        the vocabulary raise :class:`InputError`.
        """
        return decode_rows(ids, self.vocab_size, PAD_ID, self._vocabulary.__getitem__)

    def token_string(self, token_id: int) -> str:
        """String of one token id: a special such as ``[CLS]`` or a piece such as ``ACG``."""
        if not 0 <= token_id < self.vocab_size:
            raise InputError(f"token id {token_id} is outside 0 … {self.vocab_size - 1}")
        return self._vocabulary[token_id]

    def to_spec(self) -> dict[str, Any]:
        """JSON-serialisable spec; ``tokenizer`` holds the Hugging Face tokenizer JSON string."""
        return {
            "method": self.method,
            "context_length": self.context_length,
            "keep": self.keep,
            "vocab_size": self.vocab_size,
            "special_ids": special_ids(),
            "nucflow_version": __version__,
            "tokenizer": self._tokenizer.to_str(),
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], source: str = "tokenizer spec") -> BpeTokenizer:
        """Rebuild from :meth:`to_spec` output; a bad spec raises :class:`InputError`."""
        unknown = sorted(set(spec) - _SPEC_KEYS)
        if unknown:
            raise InputError(
                f"{source}: unknown keys {', '.join(map(repr, unknown))} in a 'bpe' tokenizer "
                f"spec (expected {', '.join(sorted(_SPEC_KEYS))})"
            )
        missing = [key for key in ("context_length", "keep", "tokenizer") if key not in spec]
        if missing:
            raise InputError(
                f"{source}: missing keys {', '.join(map(repr, missing))} in a 'bpe' tokenizer spec"
            )
        text = spec["tokenizer"]
        if not isinstance(text, str):
            raise InputError(
                f"{source}: 'tokenizer' must be a Hugging Face tokenizer JSON string, "
                f"got {type(text).__name__}"
            )
        try:
            hf = HfTokenizer.from_str(text)
        except Exception as err:  # tokenizers raises plain Exception on bad JSON
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise InputError(f"{source}: 'tokenizer' is not a valid tokenizer ({message})") from err
        try:
            tokenizer = cls(hf, spec["context_length"], spec["keep"])
        except InputError as err:
            raise InputError(f"{source}: {err}") from None
        check_common_spec(spec, tokenizer, source)
        return tokenizer


def learn_bpe(
    sequences: Sequence[str],
    vocab_size: int,
    context_length: int,
    keep: Keep = "five_prime",
    *,
    max_piece_length: int | None = DEFAULT_MAX_PIECE_LENGTH,
) -> BpeTokenizer:
    """Learn a BPE vocabulary of ``vocab_size`` tokens (specials included) from sequences.

    Every sequence is used, whatever its length; each is one BPE word. The vocabulary can
    come out smaller than ``vocab_size`` when the data hold too few distinct pairs (logged
    as a warning). ``max_piece_length`` caps the length of a learned piece (``None``: no cap).
    Learning is deterministic. Raises :class:`InputError` for a ``vocab_size`` below 10 (the 5
    specials and the letters A, C, G, T, N) or when there is no non-empty sequence.
    """
    _check_settings(context_length, keep)
    size = _check_int(
        "vocab_size", vocab_size, MIN_BPE_VOCAB_SIZE, "the 5 special tokens and A, C, G, T, N"
    )
    if max_piece_length is not None:
        max_piece_length = _check_int("max_piece_length", max_piece_length, 1, "nucleotides")
    if isinstance(sequences, str | bytes):
        raise InputError("learn_bpe expects a list of sequences, got a single string")
    texts = _normalise(sequences if isinstance(sequences, list) else list(sequences))
    total = sum(map(len, texts))
    if total == 0:
        raise InputError("learn_bpe needs at least one non-empty training sequence, got none")
    options: dict[str, Any] = {}
    if max_piece_length is not None:
        options["max_token_length"] = max_piece_length
    trainer = trainers.BpeTrainer(
        vocab_size=size,
        min_frequency=0,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=list(BPE_ALPHABET),
        limit_alphabet=len(BPE_ALPHABET),
        show_progress=False,
        **options,
    )
    hf = HfTokenizer(models.BPE(unk_token=SPECIAL_TOKENS[UNK_ID]))
    started = time.perf_counter()
    hf.train_from_iterator(texts, trainer=trainer, length=len(texts))
    tokenizer = BpeTokenizer(hf, context_length, keep)
    logger.info(
        "learned a BPE vocabulary of %d tokens from %d sequences (%d nt) in %.1f s",
        tokenizer.vocab_size,
        len(texts),
        total,
        time.perf_counter() - started,
    )
    if tokenizer.vocab_size < size:
        logger.warning(
            "BPE vocabulary has %d tokens, fewer than the %d asked for: the training "
            "sequences hold too few distinct pairs",
            tokenizer.vocab_size,
            size,
        )
    return tokenizer
