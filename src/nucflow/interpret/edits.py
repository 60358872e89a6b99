"""The editable units of a sequence and the encoded rows of its LOO edits.

A *unit* is what one LOO row scores: an atom for atomic tokenizers, a token (k-mer, BPE piece)
of the encoded row for nuc / kmer / bpe tokenizers, a nucleotide for the CSE encoding. Only the
units an encoded row keeps are scored (the tokenizer's window: ``keep``, ``lefttailing``,
``centertoken``). Offsets are zero-based, end-exclusive character positions in the input
sequence.

Edits:

- ``remove``: the unit is deleted and the sequence re-encoded (later units shift left; a
  truncated sequence lets the next unit in; BPE may re-segment the neighbours);
- ``mask``: the unit's encoded position gets ``[MASK]`` (token models), UNK with zero
  specifiers (atomic: an all-zero one-hot row) or N (CSE: a zero row is the padding code there,
  so the uninformative N row stands in);
- ``replace``: the unit is swapped for each alternative and the sequence re-encoded; atomic
  replacements keep the unit's specifiers. ``replacespecifier`` adds, for an atomic unit with
  non-zero specifiers, the variant with the same atom and zero specifiers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nucflow.errors import InputError
from nucflow.tokenize import MASK_ID, BpeTokenizer, CseEncoding, KmerTokenizer
from nucflow.tokenize.atomic import ATOMIC_UNK_ID, AtomicTokenizer
from nucflow.tokenize.cse import CSE_N_CODE

LOO_MODES: tuple[str, ...] = ("remove", "mask", "replace")
"""The edits :func:`~nucflow.interpret.loo_scores` knows."""

_NUCLEOTIDES = "ACGT"
_TEXT_LETTERS = frozenset("ACGTNUacgtnu")


@dataclass(frozen=True)
class Unit:
    """One editable unit of a sequence."""

    index: int  # position in the (atom or character) sequence: atom index / first character
    token: str  # as reported: the atom with its ``#specifiers`` suffix, or the token string
    key: str  # what ``replacement`` is looked up by (the atom or the token's letters)
    start: int  # first character (nucleotide) of the unit in the input sequence
    end: int  # one past its last character
    column: int  # its position in the encoded row
    length: int  # atoms or characters it spans in the sequence


@dataclass(frozen=True)
class Edit:
    """One edited variant: which unit, and what replaces it (None: removed or masked)."""

    unit: Unit
    replacement: str | None = None
    drop_specifiers: bool = False  # replacespecifier: same atom, zero specifiers


def check_tokenizer(tokenizer: Any) -> None:
    """InputError unless LOO knows the tokenizer's kind."""
    if not isinstance(tokenizer, AtomicTokenizer | KmerTokenizer | BpeTokenizer | CseEncoding):
        raise InputError(f"LOO does not support the {tokenizer.method!r} encoding")


def _is_nucleotides(value: str) -> bool:
    return bool(value) and all(c in _TEXT_LETTERS for c in value)


def check_replacement(replacement: object, tokenizer: Any) -> Mapping[str, list[str]] | None:
    """``replacement`` validated against the tokenizer (InputError naming the bad entry)."""
    if replacement is None:
        return None
    if not isinstance(replacement, Mapping):
        raise InputError(
            f"replacementdict must be a mapping of unit → list of alternatives, "
            f"got {type(replacement).__name__}"
        )
    for key, values in replacement.items():
        if not isinstance(key, str) or not isinstance(values, list | tuple):
            raise InputError(
                f"replacementdict must map strings to lists of strings, got {key!r}: {values!r}"
            )
        for value in [key, *values]:
            if not isinstance(value, str):
                raise InputError(f"replacementdict entry for {key!r} holds a non-string {value!r}")
            _check_unit(value, key, tokenizer)
    return replacement


def _check_unit(value: str, key: str, tokenizer: Any) -> None:
    """InputError unless ``value`` (a key or an alternative) is a unit of this tokenizer."""
    where = f"replacementdict atom {value!r}" + ("" if value == key else f" (for {key!r})")
    if isinstance(tokenizer, AtomicTokenizer):
        if value not in tokenizer.atoms:
            raise InputError(
                f"{where} is not in the model's vocabulary of {tokenizer.n_atoms} atoms "
                f"({', '.join(tokenizer.atoms[:12])}{' …' if tokenizer.n_atoms > 12 else ''})"
            )
    elif isinstance(tokenizer, KmerTokenizer):
        if len(value) != tokenizer.k or not _is_nucleotides(value):
            raise InputError(f"{where} is not a nucleotide string of length k = {tokenizer.k}")
    elif isinstance(tokenizer, CseEncoding):
        if len(value) != 1 or not _is_nucleotides(value):
            raise InputError(f"{where} is not a single nucleotide (CSE units are nucleotides)")
    elif not _is_nucleotides(value):
        raise InputError(f"{where} is not a nucleotide string (A, C, G, T, N, U)")


def default_alternatives(key: str) -> list[str]:
    """The other three of A, C, G, T (keeping case) for a single nucleotide, else none."""
    if len(key) != 1 or key.upper() not in _NUCLEOTIDES:
        return []
    lower = key.islower()
    return [b.lower() if lower else b for b in _NUCLEOTIDES if b != key.upper()]


def _specifier_suffix(spec: Sequence[float] | None) -> str:
    """``#v1,v2`` for a unit with non-zero specifiers, else ``""``."""
    if not spec or not any(spec):
        return ""
    return "#" + ",".join(f"{float(v):g}" for v in spec)


class SequenceEdits:
    """Units of one sequence and the encoded rows of edits of it.

    ``sequence`` is a list of atoms (atomic; a string counts as one atom per character) or a
    nucleotide string; ``specifiers`` (atomic only) holds one tuple per atom.
    """

    def __init__(
        self, tokenizer: Any, sequence: Sequence[str] | str, specifiers: Sequence | None = None
    ) -> None:
        self.tokenizer = tokenizer
        self.atomic = isinstance(tokenizer, AtomicTokenizer)
        if self.atomic:
            self.sequence: list[str] | str = list(sequence)
            self.specifiers = None if specifiers is None else [tuple(s) for s in specifiers]
        else:
            self.sequence = sequence if isinstance(sequence, str) else "".join(sequence)
            self.specifiers = None
        self.original = self._encode([self.sequence], [self.specifiers])[0]
        self.units = self._units()

    def _encode(self, sequences: list, specifiers: list) -> np.ndarray:
        if self.atomic:
            return self.tokenizer.encode(sequences, None if self.specifiers is None else specifiers)
        return self.tokenizer.encode(sequences)

    def _units(self) -> list[Unit]:
        tokenizer, sequence = self.tokenizer, self.sequence
        if self.atomic:
            first, stop = tokenizer.window(sequence)
            starts = np.concatenate([[0], np.cumsum([len(a) for a in sequence])])
            return [
                Unit(
                    i,
                    sequence[i] + _specifier_suffix(self.specifiers[i] if self.specifiers else ()),
                    sequence[i],
                    int(starts[i]),
                    int(starts[i + 1]),
                    i - first,
                    1,
                )
                for i in range(first, stop)
            ]
        if isinstance(tokenizer, CseEncoding):
            used = min(len(sequence), tokenizer.width)
            first = len(sequence) - used if tokenizer.keep == "three_prime" else 0
            return [
                Unit(
                    first + j,
                    sequence[first + j],
                    sequence[first + j],
                    first + j,
                    first + j + 1,
                    j,
                    1,
                )
                for j in range(used)
            ]
        if isinstance(tokenizer, KmerTokenizer):
            k = tokenizer.k
            used = min(len(sequence), tokenizer.max_nucleotides)
            first = len(sequence) - used if tokenizer.keep == "three_prime" else 0
            lengths = [k] * (used // k)
        else:  # BPE: the kept pieces of the whole segmentation
            pieces = tokenizer.pieces([sequence])[0]
            vocabulary = tokenizer.vocabulary
            lengths = [len(vocabulary[p]) for p in pieces]
            if sum(lengths) != len(sequence):
                raise InputError(
                    f"BPE pieces cover {sum(lengths)} of the sequence's {len(sequence)} letters"
                )
            kept = tokenizer.context_length - 1
            first = 0
            if len(lengths) > kept and tokenizer.keep == "three_prime":
                first = sum(lengths[: len(lengths) - kept])
                lengths = lengths[len(lengths) - kept :]
            lengths = lengths[:kept]
        units, position = [], first
        for column, length in enumerate(lengths, start=1):  # column 0 is CLS
            text = sequence[position : position + length]
            units.append(Unit(position, text, text, position, position + length, column, length))
            position += length
        return units

    def edits(
        self,
        mode: str,
        replacement: Mapping[str, list[str]] | None = None,
        replacespecifier: bool = False,
    ) -> list[Edit]:
        """Every edit of this sequence for ``mode``, in unit order."""
        if mode != "replace":
            return [Edit(unit) for unit in self.units]
        edits = []
        for unit in self.units:
            if replacement is not None:
                alternatives = list(replacement.get(unit.key, []))
            else:
                alternatives = default_alternatives(unit.key)
                if self.atomic:
                    alternatives = [a for a in alternatives if a in self.tokenizer.atoms]
            edits.extend(Edit(unit, alternative) for alternative in alternatives)
            if replacespecifier and self.atomic and unit.token != unit.key:
                edits.append(Edit(unit, unit.key, drop_specifiers=True))
        return edits

    def rows(self, mode: str, edits: Sequence[Edit]) -> np.ndarray:
        """Encoded rows of ``edits`` (same shape as the original's row each)."""
        if mode == "mask":
            rows = np.repeat(self.original[None], len(edits), axis=0)
            for j, edit in enumerate(edits):
                column = edit.unit.column
                if self.atomic:
                    rows[j, column, :] = 0.0
                    rows[j, column, 0] = ATOMIC_UNK_ID
                elif isinstance(self.tokenizer, CseEncoding):
                    rows[j, column] = CSE_N_CODE
                else:
                    rows[j, column] = MASK_ID
            return rows
        sequences, specifiers = [], []
        for edit in edits:
            unit = edit.unit
            stop = unit.index + unit.length
            if self.atomic:
                middle = [] if mode == "remove" else [edit.replacement]
                sequences.append([*self.sequence[: unit.index], *middle, *self.sequence[stop:]])
                if self.specifiers is not None:
                    specs = self.specifiers
                    kept = [] if mode == "remove" else [specs[unit.index]]
                    if edit.drop_specifiers:
                        kept = [(0.0,) * len(specs[unit.index])]
                    specifiers.append([*specs[: unit.index], *kept, *specs[stop:]])
            else:
                middle = "" if mode == "remove" else edit.replacement
                sequences.append(self.sequence[: unit.index] + middle + self.sequence[stop:])
        return self._encode(sequences, specifiers)
