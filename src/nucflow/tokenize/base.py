"""The tokenizer protocol, the special token ids, and JSON save/load of tokenizer specs.

Every token encoding (nuc, k-mer, BPE) shares the special ids below (atomic has its own
PAD 0 / UNK 1, see :mod:`nucflow.tokenize.atomic`);
content tokens start at :data:`FIRST_CONTENT_ID`. A tokenizer is fully described by its
JSON-serialisable spec (:meth:`Tokenizer.to_spec`), which is stored in ``tokenizer.json``
and in every trained model's ``config.json`` so that predict time uses the same encoding.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from nucflow.errors import InputError
from nucflow.io.atomic import write_text_atomic

logger = logging.getLogger(__name__)

MASK_ID = 0
"""Id of the MLM mask token ``[MASK]``."""
CLS_ID = 1
"""Id of ``[CLS]``, the first token of every row."""
SEP_ID = 2
"""Id of ``[SEP]``, placed after the last content token when the row has room for it."""
PAD_ID = 3
"""Id of ``[PAD]``, filling each row up to the context length."""
UNK_ID = 4
"""Id of ``[UNK]``, for content that is not in the vocabulary (e.g. a k-mer holding N)."""
FIRST_CONTENT_ID = 5
"""Content (vocabulary) tokens have ids ``FIRST_CONTENT_ID`` and up."""
SPECIAL_TOKENS: tuple[str, ...] = ("[MASK]", "[CLS]", "[SEP]", "[PAD]", "[UNK]")
"""Token strings of the special ids; ``SPECIAL_TOKENS[i]`` is the token with id ``i``."""

TOKENIZER_METHODS: tuple[str, ...] = ("nuc", "kmer", "bpe", "cse", "atomic")
"""Encoding methods :func:`tokenizer_from_spec` knows (``bpe`` is built by ``learn_bpe``,
``atomic`` by ``learn_atomic``)."""


def special_ids() -> dict[str, int]:
    """Return the special token ids by name (``mask``, ``cls``, ``sep``, ``pad``, ``unk``)."""
    return {"mask": MASK_ID, "cls": CLS_ID, "sep": SEP_ID, "pad": PAD_ID, "unk": UNK_ID}


@runtime_checkable
class Tokenizer(Protocol):
    """What every token encoding provides.

    ``encode`` turns a batch of sequences into an int32 array of shape
    ``(n, context_length)``: each row is ``CLS t1 … tn SEP PAD …``.
    """

    @property
    def method(self) -> str:
        """Name of the encoding (``"nuc"``, ``"kmer"``, …), as written to the spec."""
        ...

    @property
    def vocab_size(self) -> int:
        """Number of token ids, specials included (ids are ``0 … vocab_size - 1``)."""
        ...

    @property
    def context_length(self) -> int:
        """Length of every encoded row, CLS and SEP included."""
        ...

    def encode(self, sequences: Sequence[str]) -> np.ndarray:
        """Encode sequences to an int32 array of shape ``(len(sequences), context_length)``."""
        ...

    def decode(self, ids: np.ndarray) -> list[list[str]]:
        """Token strings of each row of ``ids`` (PAD dropped, other specials kept)."""
        ...

    def to_spec(self) -> dict[str, Any]:
        """JSON-serialisable description from which :func:`tokenizer_from_spec` rebuilds it."""
        ...


def decode_rows(
    ids: np.ndarray, size: int, padding: int, name: Callable[[int], str]
) -> list[list[str]]:
    """Strings of each row of ``ids`` (a 1-D array counts as one row), ``padding`` dropped.

    Shared by every encoding's ``decode``: ids must be integers in ``0 … size − 1``, else
    :class:`InputError`; ``name`` gives the string of one id.
    """
    rows = np.atleast_2d(np.asarray(ids))
    if rows.ndim != 2 or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
        raise InputError(
            f"decode expects a 1-D or 2-D integer array, got {rows.dtype} with shape {rows.shape}"
        )
    if rows.size and (rows.min() < 0 or rows.max() >= size):
        raise InputError(
            f"ids must be in 0 … {size - 1} for this encoding, got "
            f"{int(rows.min())} … {int(rows.max())}"
        )
    names = {int(i): name(int(i)) for i in np.unique(rows[rows != padding])}
    return [[names[i] for i in row[row != padding].tolist()] for row in rows]


def build_tokenizer(
    method: str, *, k: int, context_length: int, keep: str, kernel_size: int | None = None
) -> Tokenizer:
    """Build a tokenizer from config values.

    ``method`` is ``"nuc"`` (single nucleotides; ``k`` is ignored and taken as 1), ``"kmer"``
    (non-overlapping k-mers) or ``"cse"`` (nucleotide codes for CSE models, windows of
    ``kernel_size`` nt; ``k`` is taken when ``kernel_size`` is None). ``keep`` is
    ``"five_prime"`` or ``"three_prime"``: which end of a sequence longer than the context is
    kept. ``"bpe"`` and ``"atomic"`` need a learned vocabulary and raise :class:`InputError`:
    use :func:`nucflow.tokenize.bpe.learn_bpe` / :func:`nucflow.tokenize.atomic.learn_atomic`
    or load a saved spec instead.
    """
    from nucflow.tokenize.kmer import KmerTokenizer

    if method == "nuc":
        return KmerTokenizer(1, context_length, keep)  # type: ignore[arg-type]
    if method == "kmer":
        return KmerTokenizer(k, context_length, keep)  # type: ignore[arg-type]
    if method == "cse":
        from nucflow.tokenize.cse import CseEncoding

        size = k if kernel_size is None else kernel_size
        return CseEncoding(size, context_length, keep)  # type: ignore[arg-type, return-value]
    if method == "bpe":
        raise InputError(
            "BPE needs a learned vocabulary: learn one with learn_bpe(sequences, vocab_size, "
            "context_length, keep) or load a saved BPE tokenizer spec"
        )
    if method == "atomic":
        raise InputError(
            "atomic needs a learned vocabulary: learn one with learn_atomic(tokens, "
            "specifiers, blocksize=…) or load a saved atomic tokenizer spec"
        )
    raise InputError(
        f"unknown tokenizer method {method!r} (expected one of: {', '.join(TOKENIZER_METHODS)})"
    )


def tokenizer_from_spec(spec: Mapping[str, Any], source: str = "tokenizer spec") -> Tokenizer:
    """Rebuild a tokenizer from :meth:`Tokenizer.to_spec` output.

    ``source`` names where the spec came from (a file path) in error messages. A spec that is
    not a mapping, has an unknown method, misses or has unknown keys, or whose vocabulary size
    or special ids disagree with what the method gives raises :class:`InputError`.
    """
    if not isinstance(spec, Mapping):
        raise InputError(f"{source}: expected a JSON object, got {type(spec).__name__}")
    method = spec.get("method")
    if method in ("nuc", "kmer"):
        from nucflow.tokenize.kmer import KmerTokenizer

        return KmerTokenizer.from_spec(spec, source)
    if method == "bpe":
        from nucflow.tokenize.bpe import BpeTokenizer

        return BpeTokenizer.from_spec(spec, source)
    if method == "cse":
        from nucflow.tokenize.cse import CseEncoding

        return CseEncoding.from_spec(spec, source)  # type: ignore[return-value]
    if method == "atomic":
        from nucflow.tokenize.atomic import AtomicTokenizer

        return AtomicTokenizer.from_spec(spec, source)  # type: ignore[return-value]
    if method is None:
        raise InputError(
            f"{source}: missing key 'method' (expected one of: {', '.join(TOKENIZER_METHODS)})"
        )
    raise InputError(
        f"{source}: unknown tokenizer method {method!r} "
        f"(expected one of: {', '.join(TOKENIZER_METHODS)})"
    )


def check_common_spec(spec: Mapping[str, Any], tokenizer: Tokenizer, source: str) -> None:
    """Check a spec's optional ``vocab_size`` and ``special_ids`` against a rebuilt tokenizer.

    Shared by every tokenizer's ``from_spec``; raises :class:`InputError` on a mismatch, which
    means the spec was written for a different vocabulary than the one rebuilt from it.
    """
    if "vocab_size" in spec and spec["vocab_size"] != tokenizer.vocab_size:
        raise InputError(
            f"{source}: vocab_size is {spec['vocab_size']!r} but method "
            f"{tokenizer.method!r} with these settings gives {tokenizer.vocab_size}"
        )
    if "special_ids" in spec and spec["special_ids"] != special_ids():
        raise InputError(
            f"{source}: special_ids {spec['special_ids']!r} differ from nucflow's {special_ids()!r}"
        )


def save_tokenizer(tokenizer: Tokenizer, path: str | os.PathLike[str]) -> None:
    """Write the tokenizer's spec to ``path`` as JSON (atomically)."""
    text = json.dumps(tokenizer.to_spec(), indent=2, sort_keys=True) + "\n"
    write_text_atomic(path, text)
    logger.debug("wrote %s tokenizer spec to %s", tokenizer.method, path)


def load_tokenizer(path: str | os.PathLike[str]) -> Tokenizer:
    """Read a tokenizer spec written by :func:`save_tokenizer` and rebuild the tokenizer.

    A missing file, invalid JSON or an invalid spec raises :class:`InputError` naming the file.
    """
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{file}: file not found (expected a tokenizer JSON file)")
    try:
        spec = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{file}: not valid JSON ({err}); expected a tokenizer spec") from err
    return tokenizer_from_spec(spec, source=str(file))
