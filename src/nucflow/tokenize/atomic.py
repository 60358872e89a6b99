"""Atomic (word-level) encoding of token tables for Saluki-style models (method ``"atomic"``).

The vocabulary is the sorted set of atoms seen in the learning data (case-sensitive; an atom
may be several characters, e.g. ``gej``). Ids: ``[PAD]`` 0, ``[UNK]`` 1, atoms from 2 in
sorted order. :meth:`AtomicTokenizer.encode` gives a float32 array ``(n, blocksize,
1 + n_specifiers)``: channel 0 holds the atom id (exact as a float), channels 1… the atom's
specifier floats, zero-padded for atoms with fewer. Rows are right-padded with PAD (id 0,
specifiers 0). The model turns channel 0 into one-hot channels with :func:`one_hot_atoms`
(PAD and UNK are all-zero rows), giving ``input_channels = n_atoms + n_specifiers``.

Truncation of a sequence longer than ``blocksize`` follows one rule for ids and specifiers
alike: ``lefttailing`` false keeps the first ``blocksize`` tokens (5′ end), true keeps the
last ones (3′ end, the original Saluki's choice). With ``centertoken`` set, the window is
centred on the first token whose atom contains that string (equal cut on both sides, the
odd spare slot on the left; where one side runs out, the other side gets the room), which
overrides ``lefttailing`` for that sequence; a sequence without such a token falls back to
``lefttailing``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from nucflow import __version__
from nucflow.errors import InputError
from nucflow.tokenize.base import check_common_spec, decode_rows

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

ATOMIC_PAD_ID = 0
"""Id of ``[PAD]`` in the atomic encoding (filling rows up to ``blocksize``)."""
ATOMIC_UNK_ID = 1
"""Id of ``[UNK]`` in the atomic encoding (atoms not in the vocabulary)."""
FIRST_ATOM_ID = 2
"""Atoms have ids ``FIRST_ATOM_ID`` and up, in sorted order."""
ATOMIC_SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]")
"""Strings of the two special ids of the atomic encoding."""
DEFAULT_BLOCKSIZE = 12288
"""Tokens per encoded row by default (the original Saluki input length, 3·2¹²)."""
MAX_ATOMIC_VOCAB = 1 << 24
"""Largest vocabulary whose ids are exact in a float32 channel."""

_UNK_EXAMPLES = 5
_SPEC_KEYS = frozenset(
    {
        "method",
        "atoms",
        "n_specifiers",
        "blocksize",
        "lefttailing",
        "centertoken",
        "vocab_size",
        "nucflow_version",
    }
)
_REQUIRED_KEYS = ("atoms", "n_specifiers", "blocksize", "lefttailing", "centertoken")
_JOIN = "\x00"
"""Joins a row's atoms to find ``centertoken`` with one ``str.find`` (no atom holds it)."""

Row = str | Sequence[str]
"""One sequence: a string (each character an atom) or a list of atoms."""


def _integer(name: str, value: object, minimum: int) -> None:
    """Raise :class:`InputError` unless ``value`` is an integer (not a bool) ≥ ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name} must be an integer ≥ {minimum}, got {value!r}")


@dataclass(frozen=True)
class AtomicTokenizer:
    """Atomic encoding with optional float specifier channels (see the module docstring).

    Parameters
    ----------
    atoms
        The vocabulary: unique non-empty strings in sorted order (ids 2, 3, …).
    n_specifiers
        Specifier channels after the id channel (the most floats on any learned token).
    blocksize
        Tokens per encoded row (``context_length``).
    lefttailing
        False keeps the first ``blocksize`` tokens of a longer sequence, True the last.
    centertoken
        If set, a longer sequence keeps the window centred on the first token whose atom
        contains this string (overriding ``lefttailing`` for that sequence).
    """

    atoms: tuple[str, ...]
    n_specifiers: int = 0
    blocksize: int = DEFAULT_BLOCKSIZE
    lefttailing: bool = False
    centertoken: str | None = None

    def __post_init__(self) -> None:
        """Validate the settings (a list of atoms is stored as a tuple)."""
        if isinstance(self.atoms, list):
            object.__setattr__(self, "atoms", tuple(self.atoms))
        if not isinstance(self.atoms, tuple) or not self.atoms:
            raise InputError(f"atoms must be a non-empty list of strings, got {self.atoms!r}")
        bad = [a for a in self.atoms if not isinstance(a, str) or not a]
        if bad:
            raise InputError(f"atoms must be non-empty strings, got {bad[0]!r}")
        if any(a >= b for a, b in itertools.pairwise(self.atoms)):
            raise InputError("atoms must be unique and sorted (as learn_atomic writes them)")
        clash = sorted(set(self.atoms) & set(ATOMIC_SPECIAL_TOKENS))
        if clash:
            raise InputError(f"atom {clash[0]!r} is reserved for a special token")
        if len(self.atoms) + FIRST_ATOM_ID > MAX_ATOMIC_VOCAB:
            raise InputError(
                f"{len(self.atoms)} atoms is too many (ids must stay below {MAX_ATOMIC_VOCAB} "
                f"to be exact in float32)"
            )
        _integer("n_specifiers", self.n_specifiers, 0)
        _integer("blocksize", self.blocksize, 1)
        if not isinstance(self.lefttailing, bool):
            raise InputError(f"lefttailing must be true or false, got {self.lefttailing!r}")
        if self.centertoken is not None and (
            not isinstance(self.centertoken, str)
            or not self.centertoken
            or _JOIN in self.centertoken
        ):
            raise InputError(
                f"centertoken must be a non-empty string or null, got {self.centertoken!r}"
            )

    @property
    def method(self) -> str:
        """Always ``"atomic"``."""
        return "atomic"

    @property
    def n_atoms(self) -> int:
        """Number of atoms (one-hot channels)."""
        return len(self.atoms)

    @property
    def vocab_size(self) -> int:
        """``2 + n_atoms`` (PAD, UNK and the atoms)."""
        return FIRST_ATOM_ID + len(self.atoms)

    @property
    def context_length(self) -> int:
        """Tokens per encoded row: ``blocksize``."""
        return self.blocksize

    @property
    def input_channels(self) -> int:
        """Model input channels after :func:`one_hot_atoms`: ``n_atoms + n_specifiers``."""
        return len(self.atoms) + self.n_specifiers

    @cached_property
    def _index(self) -> dict[str, int]:
        """Id of each atom."""
        return {atom: FIRST_ATOM_ID + i for i, atom in enumerate(self.atoms)}

    @cached_property
    def _char_table(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted code points of the single-character atoms and their ids."""
        singles = [(ord(a), i) for a, i in self._index.items() if len(a) == 1]
        codes = np.array([c for c, _ in singles], dtype=np.uint32)
        ids = np.array([i for _, i in singles], dtype=np.int64)
        return codes, ids

    def token_id(self, atom: str) -> int:
        """Id of one atom (``[UNK]``'s id if it is not in the vocabulary)."""
        return self._index.get(atom, ATOMIC_UNK_ID)

    def token_string(self, token_id: int) -> str:
        """String of one id: ``[PAD]``, ``[UNK]`` or an atom."""
        if not 0 <= token_id < self.vocab_size:
            raise InputError(f"token id {token_id} is outside 0 … {self.vocab_size - 1}")
        if token_id < FIRST_ATOM_ID:
            return ATOMIC_SPECIAL_TOKENS[token_id]
        return self.atoms[token_id - FIRST_ATOM_ID]

    def window(self, row: Row) -> tuple[int, int]:
        """``(start, stop)`` of the tokens of ``row`` that an encoded row keeps.

        The whole row when it fits; else the ``centertoken`` window if the row has that token,
        otherwise the first (``lefttailing`` false) or last ``blocksize`` tokens.
        """
        length, size = len(row), self.blocksize
        if length <= size:
            return 0, length
        centre = self._centre(row) if self.centertoken is not None else None
        if centre is not None:
            start = min(max(centre - size // 2, 0), length - size)
            return start, start + size
        if self.lefttailing:
            return length - size, length
        return 0, size

    def _centre(self, row: Row) -> int | None:
        """Index of the first token whose atom contains ``centertoken`` (None if none does)."""
        assert self.centertoken is not None
        if isinstance(row, str):  # every character is an atom
            position = row.find(self.centertoken) if len(self.centertoken) == 1 else -1
            return None if position < 0 else position
        joined = _JOIN.join(row)
        position = joined.find(self.centertoken)
        return None if position < 0 else joined.count(_JOIN, 0, position)

    def _ids(self, kept: Row, number: int) -> np.ndarray:
        """Ids (int64) of the atoms of ``kept``; ``number`` is the 1-based sequence number."""
        if isinstance(kept, str):
            text: str | None = kept
        else:
            try:
                text = "".join(kept)
            except TypeError:
                bad = next(a for a in kept if not isinstance(a, str))
                raise InputError(
                    f"sequence {number} holds a {type(bad).__name__} atom, expected strings"
                ) from None
            if len(text) != len(kept) or "" in kept:
                text = None  # some atom is not a single character
        if text is None:
            return np.fromiter(
                map(self._index.get, kept, itertools.repeat(ATOMIC_UNK_ID)),
                dtype=np.int64,
                count=len(kept),
            )
        codes, ids = self._char_table
        points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        if codes.size == 0:
            return np.full(points.size, ATOMIC_UNK_ID, dtype=np.int64)
        slot = np.minimum(np.searchsorted(codes, points), codes.size - 1)
        return np.where(codes[slot] == points, ids[slot], ATOMIC_UNK_ID)

    def _fill_specifiers(
        self, target: np.ndarray, specs: Sequence[tuple[float, ...]], number: int
    ) -> None:
        """Write the floats of ``specs`` into ``target`` (kept tokens × n_specifiers)."""
        if not any(specs):  # no decorated token (empty tuples are false)
            return
        try:
            lengths = np.fromiter(map(len, specs), dtype=np.int64, count=len(specs))
            flat = np.fromiter(
                itertools.chain.from_iterable(specs), dtype=np.float64, count=int(lengths.sum())
            )
        except (TypeError, ValueError):
            raise InputError(
                f"sequence {number}: specifiers must be one tuple of floats per token"
            ) from None
        if lengths.max() > self.n_specifiers:
            token = int(np.argmax(lengths > self.n_specifiers))
            raise InputError(
                f"sequence {number}: kept token {token + 1} has {int(lengths[token])} "
                f"specifiers, but this tokenizer has {self.n_specifiers} specifier channels"
            )
        target[np.arange(self.n_specifiers) < lengths[:, None]] = flat

    def encode(
        self,
        sequences: Sequence[Row],
        specifiers: Sequence[Sequence[tuple[float, ...]] | None] | None = None,
    ) -> np.ndarray:
        """Encode sequences to float32 ``(len(sequences), blocksize, 1 + n_specifiers)``.

        A sequence is a list of atoms (as :func:`nucflow.io.table.read_table` gives) or a
        string whose characters are the atoms (FASTA input). ``specifiers[i]``, when given,
        holds one tuple of floats per token of sequence ``i`` (``()`` for none); the kept
        tokens and their specifiers are cut by the same window (:meth:`window`). Unknown atoms
        become ``[UNK]``; their count is logged in one summary line.
        """
        if isinstance(sequences, str | bytes):
            raise InputError("encode expects a list of sequences, got a single string")
        rows = sequences if isinstance(sequences, list) else list(sequences)
        n, width = len(rows), self.blocksize
        if specifiers is not None and len(specifiers) != len(rows):
            raise InputError(
                f"encode got {len(specifiers)} specifier rows for {len(rows)} sequences"
            )
        out = np.zeros((n, width, 1 + self.n_specifiers), dtype=np.float32)
        unknown, unknown_rows, longer = 0, 0, 0
        examples: list[str] = []
        for i, row in enumerate(rows):
            if not isinstance(row, str | list | tuple):
                raise InputError(
                    f"sequence {i + 1} is a {type(row).__name__}, expected a string or a list "
                    f"of atoms"
                )
            start, stop = self.window(row)
            longer += len(row) > width
            kept = row[start:stop]
            ids = self._ids(kept, i + 1)
            out[i, : stop - start, 0] = ids
            missing = np.flatnonzero(ids == ATOMIC_UNK_ID)
            if missing.size:
                unknown += missing.size
                unknown_rows += 1
                for position in missing.tolist():
                    if len(examples) >= _UNK_EXAMPLES:
                        break
                    if kept[position] not in examples:
                        examples.append(kept[position])
            row_specs = None if specifiers is None else specifiers[i]
            if row_specs is not None:
                if len(row_specs) != len(row):
                    raise InputError(
                        f"sequence {i + 1} has {len(row)} tokens but {len(row_specs)} "
                        f"specifier tuples (expected one per token)"
                    )
                self._fill_specifiers(out[i, : stop - start, 1:], row_specs[start:stop], i + 1)
        if unknown:
            logger.warning(
                "atomic tokenizer: %d unknown atoms in %d of %d sequences encoded as [UNK] "
                "(e.g. %s)",
                unknown,
                unknown_rows,
                n,
                ", ".join(map(repr, examples)),
            )
        logger.debug(
            "atomic tokenizer: encoded %d sequences, %d longer than %d tokens (%s)",
            n,
            longer,
            width,
            self._policy(),
        )
        return out

    def _policy(self) -> str:
        """The truncation rule in words, for log lines."""
        end = "last tokens (3′ end)" if self.lefttailing else "first tokens (5′ end)"
        if self.centertoken is None:
            return f"kept the {end}"
        return f"centred on {self.centertoken!r}, else kept the {end}"

    def decode(self, ids: np.ndarray) -> list[list[str]]:
        """Atoms of each row, PAD dropped and unknown atoms as ``[UNK]``.

        ``ids`` is an encoded array ``(n, blocksize, 1 + S)`` (channel 0 is read), a 2-D id
        array ``(n, L)`` or one 1-D row; ids must be integral and in range, else
        :class:`InputError`.
        """
        array = np.asarray(ids)
        if array.ndim == 3:
            array = array[..., 0]
        if array.ndim not in (1, 2):
            raise InputError(f"decode expects a 1-, 2- or 3-D array, got shape {array.shape}")
        if np.issubdtype(array.dtype, np.floating):
            if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
                raise InputError("decode expects integral atom ids in channel 0")
            array = array.astype(np.int64)
        return decode_rows(array, self.vocab_size, ATOMIC_PAD_ID, self.token_string)

    def to_spec(self) -> dict[str, Any]:
        """Spec: method, atoms, n_specifiers, blocksize, lefttailing, centertoken, sizes."""
        return {
            "method": self.method,
            "atoms": list(self.atoms),
            "n_specifiers": self.n_specifiers,
            "blocksize": self.blocksize,
            "lefttailing": self.lefttailing,
            "centertoken": self.centertoken,
            "vocab_size": self.vocab_size,
            "nucflow_version": __version__,
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], source: str = "tokenizer spec") -> AtomicTokenizer:
        """Rebuild from :meth:`to_spec` output; a bad, missing or unknown key raises."""
        unknown = sorted(set(spec) - _SPEC_KEYS)
        if unknown:
            raise InputError(
                f"{source}: unknown keys {', '.join(map(repr, unknown))} in an 'atomic' spec "
                f"(expected {', '.join(sorted(_SPEC_KEYS))})"
            )
        if spec.get("method") != "atomic":
            raise InputError(f"{source}: expected method 'atomic', got {spec.get('method')!r}")
        missing = [key for key in _REQUIRED_KEYS if key not in spec]
        if missing:
            raise InputError(
                f"{source}: missing keys {', '.join(map(repr, missing))} in an 'atomic' spec"
            )
        atoms = spec["atoms"]
        if not isinstance(atoms, list):
            raise InputError(f"{source}: atoms must be a list of strings")
        try:
            tokenizer = cls(
                tuple(atoms),
                spec["n_specifiers"],
                spec["blocksize"],
                spec["lefttailing"],
                spec["centertoken"],
            )
        except InputError as err:
            raise InputError(f"{source}: {err}") from None
        check_common_spec(spec, tokenizer, source)  # type: ignore[arg-type]
        return tokenizer


def learn_atomic(
    records_tokens: Sequence[Row],
    records_specifiers: Sequence[Sequence[tuple[float, ...]]] | None = None,
    *,
    blocksize: int = DEFAULT_BLOCKSIZE,
    lefttailing: bool = False,
    centertoken: str | None = None,
    samplesize: int | None = None,
    seed: int = 0,
) -> AtomicTokenizer:
    """Learn the atom vocabulary of training sequences.

    ``records_tokens`` are lists of atoms (or strings, one atom per character). With
    ``samplesize`` the atoms come from that many sequences drawn at random (seeded by
    ``seed``; all of them when there are fewer). ``n_specifiers`` is the most floats on any
    token of all ``records_specifiers`` (0 when None), so every training row fits.
    """
    if isinstance(records_tokens, str | bytes):
        raise InputError("learn_atomic expects a list of sequences, got a single string")
    total = len(records_tokens)
    if total == 0:
        raise InputError("learn_atomic needs at least one sequence")
    chosen: Sequence[int] = range(total)
    if samplesize is not None:
        _integer("samplesize", samplesize, 1)
        if samplesize < total:
            rng = np.random.default_rng(seed)
            chosen = np.sort(rng.choice(total, size=samplesize, replace=False)).tolist()
    atoms: set[str] = set()
    for index in chosen:
        row = records_tokens[index]
        if not isinstance(row, str | list | tuple):
            raise InputError(
                f"sequence {index + 1} is a {type(row).__name__}, expected a string or a list "
                f"of atoms"
            )
        atoms.update(row)
        if "" in atoms:
            raise InputError(f"sequence {index + 1} holds an empty atom")
    if not atoms:
        raise InputError("learn_atomic found no atoms (all learning sequences are empty)")
    n_specifiers = 0
    if records_specifiers is not None:
        if len(records_specifiers) != total:
            raise InputError(
                f"learn_atomic got {len(records_specifiers)} specifier rows for {total} sequences"
            )
        n_specifiers = max(
            (max(map(len, specs), default=0) for specs in records_specifiers if specs),
            default=0,
        )
    try:
        ordered = tuple(sorted(atoms))
    except TypeError:
        raise InputError("learn_atomic: atoms must be strings") from None
    tokenizer = AtomicTokenizer(ordered, n_specifiers, blocksize, lefttailing, centertoken)
    logger.info(
        "atomic tokenizer: learned %d atoms from %d of %d sequences, %d specifier channels",
        len(ordered),
        len(chosen),
        total,
        n_specifiers,
    )
    return tokenizer


def one_hot_atoms(x: torch.Tensor, n_atoms: int) -> torch.Tensor:
    """Model input channels of encoded atoms: ``(B, L, 1 + S)`` → ``(B, L, n_atoms + S)``.

    Channel 0 holds atom ids (float, as :meth:`AtomicTokenizer.encode` writes them): id
    ``2 + j`` becomes one-hot channel ``j``; PAD (0) and UNK (1) are all-zero rows. The S
    specifier channels are appended unchanged. Result dtype and device follow ``x``; ids
    outside ``0 … n_atoms + 1`` raise an indexing error. Keep ``x`` float32 (ids above 256
    are not exact in bfloat16).
    """
    import torch
    import torch.nn.functional as functional

    if not x.is_floating_point():
        raise InputError(f"one_hot_atoms expects a float tensor, got {x.dtype}")
    if x.dim() != 3 or x.shape[-1] < 1:
        raise InputError(
            f"one_hot_atoms expects a tensor of shape (B, L, 1 + S), got {tuple(x.shape)}"
        )
    if isinstance(n_atoms, bool) or not isinstance(n_atoms, int) or n_atoms < 1:
        raise InputError(f"n_atoms must be an integer ≥ 1, got {n_atoms!r}")
    lookup = torch.zeros(n_atoms + FIRST_ATOM_ID, n_atoms, dtype=x.dtype, device=x.device)
    lookup[FIRST_ATOM_ID:] = torch.eye(n_atoms, dtype=x.dtype, device=x.device)
    hot = functional.embedding(x[..., 0].long(), lookup)
    return torch.cat([hot, x[..., 1:]], dim=-1)
