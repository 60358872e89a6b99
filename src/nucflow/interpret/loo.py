"""Leave-one-out (LOO) interpretation: the reference implementation (one forward per edit).

Every unit of a sequence (an atom for atomic tokenizers, a k-mer token of the encoded row for
nuc / k-mer tokenizers) is edited in turn and the edited sequence is predicted in batches:

- ``remove``: the unit is deleted and the sequence re-encoded (downstream units shift left);
- ``mask``: atomic rows get id 0 (an all-zero one-hot row) and zero specifiers at that
  position; token rows get ``[MASK]`` (:data:`nucflow.tokenize.MASK_ID`);
- ``replace``: the unit is swapped for each of its alternatives and the sequence re-encoded.

``loo = edited − original`` in label units (regression) or as the probability of the target
class (classification): a positive score means the edit raises the prediction. Offsets are
zero-based, end-exclusive nucleotide (character) positions in the input sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from nucflow.errors import InputError
from nucflow.models.files import ModelConfig
from nucflow.predict import model_predictions
from nucflow.tokenize import MASK_ID, tokenizer_from_spec
from nucflow.tokenize.atomic import ATOMIC_UNK_ID, AtomicTokenizer
from nucflow.tokenize.kmer import KmerTokenizer

LOO_MODES: tuple[str, ...] = ("remove", "mask", "replace")
"""The edits :func:`loo_scores` knows."""

_NUCLEOTIDES = "ACGT"


@dataclass(frozen=True)
class _Unit:
    """One editable unit: its index, token string, nucleotide offsets and atoms."""

    index: int
    token: str
    start: int
    end: int
    key: str  # what ``replacement`` is looked up by (the atom or the k-mer string)


def _default_alternatives(unit: str) -> list[str]:
    """The other three of A, C, G, T (keeping case) for a single nucleotide, else none."""
    if len(unit) != 1 or unit.upper() not in _NUCLEOTIDES:
        return []
    lower = unit.islower()
    return [b.lower() if lower else b for b in _NUCLEOTIDES if b != unit.upper()]


def _check_replacement(replacement: object, tokenizer: Any) -> Mapping[str, list[str]] | None:
    """Validate a replacement mapping against the tokenizer (InputError when bad)."""
    if replacement is None:
        return None
    if not isinstance(replacement, Mapping):
        raise InputError(
            f"replacement must be a mapping of unit → list of alternatives, "
            f"got {type(replacement).__name__}"
        )
    for key, values in replacement.items():
        if not isinstance(key, str) or not isinstance(values, list | tuple):
            raise InputError(
                f"replacement must map strings to lists of strings, got {key!r}: {values!r}"
            )
        for value in values:
            if not isinstance(value, str):
                raise InputError(f"replacement for {key!r} holds a non-string {value!r}")
            if isinstance(tokenizer, AtomicTokenizer):
                if value not in tokenizer.atoms:
                    raise InputError(
                        f"replacement atom {value!r} (for {key!r}) is not in the model's "
                        f"vocabulary of {tokenizer.n_atoms} atoms"
                    )
            elif len(value) != tokenizer.k or any(c not in "ACGTacgt" for c in value):
                raise InputError(
                    f"replacement {value!r} (for {key!r}) is not a nucleotide string of length "
                    f"k = {tokenizer.k}"
                )
    return replacement


def _specifier_suffix(spec: Sequence[float] | None) -> str:
    """``#v1,v2`` for a token with non-zero specifiers, else ``""``."""
    if not spec or not any(spec):
        return ""
    return "#" + ",".join(f"{float(v):g}" for v in spec)


def _units(tokenizer: Any, sequence: Sequence[str], specs: Sequence | None) -> list[_Unit]:
    """The editable units of one sequence (only those an encoded row keeps)."""
    if isinstance(tokenizer, AtomicTokenizer):
        _, stop = tokenizer.window(sequence)
        units, position = [], 0
        for i, atom in enumerate(sequence[:stop]):
            suffix = _specifier_suffix(specs[i] if specs is not None else None)
            units.append(_Unit(i, atom + suffix, position, position + len(atom), atom))
            position += len(atom)
        return units
    text = "".join(sequence)
    k = tokenizer.k
    count = min(len(text), tokenizer.max_nucleotides) // k
    return [
        _Unit(i, text[i * k : (i + 1) * k], i * k, (i + 1) * k, text[i * k : (i + 1) * k])
        for i in range(count)
    ]


def _check_inputs(
    ids: Sequence[str],
    sequences: Sequence[Sequence[str]],
    specifiers: Sequence | None,
    labels: Sequence | None,
) -> None:
    """Lengths of the parallel inputs must agree."""
    if isinstance(sequences, str):
        raise InputError("loo_scores expects a list of sequences, got a single string")
    for name, values in (("ids", ids), ("specifiers", specifiers), ("labels", labels)):
        if values is not None and len(values) != len(sequences):
            raise InputError(f"loo_scores got {len(values)} {name} for {len(sequences)} sequences")


def _tokenizer(config: ModelConfig, tokenizer: Any) -> Any:
    """The model's tokenizer, checked to be one LOO supports."""
    if tokenizer is None:
        tokenizer = tokenizer_from_spec(config.tokenizer, source="model config")
    if isinstance(tokenizer, AtomicTokenizer):
        if tokenizer.lefttailing or tokenizer.centertoken is not None:
            raise InputError(
                "loo_scores: atomic tokenizers with lefttailing true or a centertoken are not "
                "supported yet (only lefttailing false)"
            )
        return tokenizer
    if isinstance(tokenizer, KmerTokenizer):
        if tokenizer.keep != "five_prime":
            raise InputError("loo_scores: keep three_prime is not supported yet (only five_prime)")
        return tokenizer
    raise InputError(
        f"loo_scores supports nuc, kmer and atomic tokenizers, got {tokenizer.method!r}"
    )


def _chunks(items: list, size: int) -> Iterator[list]:
    """Consecutive slices of ``items`` of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def loo_scores(
    model: nn.Module,
    config: ModelConfig,
    tokenizer: Any,
    ids: Sequence[str],
    sequences: Sequence[Sequence[str] | str],
    specifiers: Sequence[Sequence[tuple[float, ...]] | None] | None = None,
    labels: Sequence[Any] | None = None,
    *,
    mode: str,
    replacement: Mapping[str, list[str]] | None = None,
    target_class: int | None = None,
    batch_size: int = 64,
) -> pd.DataFrame:
    """Leave-one-out scores of every unit of every sequence (module docstring).

    ``sequences`` are lists of atoms / nucleotides (a string counts as one atom per character);
    ``tokenizer`` is the model's (None: rebuilt from ``config.tokenizer``). ``specifiers``
    (atomic only) holds one tuple of floats per atom. In replace mode ``replacement`` maps a
    unit (an atom, or a k-mer string as written in the sequence) to its alternatives; without
    it single nucleotides get the other three of A, C, G, T (same case) and other units none.
    Classification scores the probability of ``target_class`` (default: each sequence's
    predicted class). Returns columns ``sequence, token, [replacement,] label, pred,
    start_offset, end_offset, loo``.
    """
    if mode not in LOO_MODES:
        raise InputError(f"unknown LOO mode {mode!r} (expected one of: {', '.join(LOO_MODES)})")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be an integer ≥ 1, got {batch_size!r}")
    tokenizer = _tokenizer(config, tokenizer)
    atomic = isinstance(tokenizer, AtomicTokenizer)
    if specifiers is not None and not atomic:
        raise InputError("loo_scores: specifiers are only supported with atomic tokenizers")
    replacement = _check_replacement(replacement, tokenizer)
    if mode == "replace" and replacement is None and not atomic and tokenizer.k > 1:
        raise InputError(
            f"loo_scores: replace mode with k = {tokenizer.k} needs a replacement mapping "
            "(defaults exist only for single nucleotides)"
        )
    _check_inputs(ids, sequences, specifiers, labels)
    classification = config.task != "regression"
    if target_class is not None:
        n_classes = len(config.class_names)
        if not classification or not 0 <= target_class < n_classes:
            raise InputError(
                f"target_class {target_class!r} needs a classification model with that class "
                f"(task {config.task}, {n_classes} classes)"
            )
    rows = [list(s) for s in sequences]
    specs = None if specifiers is None else [None if s is None else list(s) for s in specifiers]

    def encode(batch: list[list[str]], batch_specs: list | None) -> np.ndarray:
        if atomic:
            return tokenizer.encode(batch, batch_specs)
        return tokenizer.encode(["".join(row) for row in batch])

    def score(inputs: np.ndarray, target: int | None) -> np.ndarray:
        out = model_predictions(model, config, inputs, batch_size)
        return out[:, target] if classification else out

    originals = encode(rows, specs)
    base = model_predictions(model, config, originals, batch_size)
    records: list[dict[str, Any]] = []
    for n, row in enumerate(rows):
        row_specs = None if specs is None else specs[n]
        target = None
        if classification:
            target = int(np.argmax(base[n])) if target_class is None else target_class
            pred = float(base[n, target])
        else:
            pred = float(base[n])
        label = None if labels is None else labels[n]
        edits = _edits(tokenizer, row, row_specs, mode, replacement)
        build = _builder(tokenizer, row, row_specs, mode, originals[n], encode)
        for chunk in _chunks(edits, batch_size):
            values = score(build(chunk), target) - pred
            for (unit, alternative), value in zip(chunk, values.tolist(), strict=True):
                record = {"sequence": ids[n], "token": unit.token}
                if mode == "replace":
                    record["replacement"] = alternative
                record.update(
                    label=label,
                    pred=pred,
                    start_offset=unit.start,
                    end_offset=unit.end,
                    loo=value,
                )
                records.append(record)
    columns = ["sequence", "token", "label", "pred", "start_offset", "end_offset", "loo"]
    if mode == "replace":
        columns.insert(2, "replacement")
    return pd.DataFrame.from_records(records, columns=columns)


def _edits(
    tokenizer: Any,
    row: list[str],
    row_specs: list | None,
    mode: str,
    replacement: Mapping[str, list[str]] | None,
) -> list[tuple[_Unit, str | None]]:
    """(unit, alternative) of every edited variant of one sequence, in order."""
    units = _units(tokenizer, row, row_specs)
    if mode != "replace":
        return [(unit, None) for unit in units]
    atomic = isinstance(tokenizer, AtomicTokenizer)
    edits = []
    for unit in units:
        if replacement is not None:
            alternatives = list(replacement.get(unit.key, []))
        else:
            alternatives = _default_alternatives(unit.key)
            if atomic:
                alternatives = [a for a in alternatives if a in tokenizer.atoms]
        edits.extend((unit, alternative) for alternative in alternatives)
    return edits


def _builder(
    tokenizer: Any,
    row: list[str],
    row_specs: list | None,
    mode: str,
    original: np.ndarray,
    encode: Callable[[list[list[str]], list | None], np.ndarray],
) -> Callable[[list[tuple[_Unit, str | None]]], np.ndarray]:
    """Function building the encoded inputs of a chunk of edits of one sequence."""
    atomic = isinstance(tokenizer, AtomicTokenizer)
    k = 1 if atomic else tokenizer.k

    def build(chunk: list[tuple[_Unit, str | None]]) -> np.ndarray:
        if mode == "mask":
            inputs = np.repeat(original[None], len(chunk), axis=0)
            for j, (unit, _) in enumerate(chunk):
                if atomic:
                    # UNK: an all-zero one-hot row like PAD, but the row keeps its length
                    inputs[j, unit.index, :] = 0.0
                    inputs[j, unit.index, 0] = ATOMIC_UNK_ID
                else:
                    inputs[j, unit.index + 1] = MASK_ID
            return inputs
        batch, batch_specs = [], []
        for unit, alternative in chunk:
            if atomic:
                start, stop = unit.index, unit.index + 1
            else:  # the row as nucleotides: the unit covers k of them
                start, stop = unit.index * k, (unit.index + 1) * k
            middle = [] if mode == "remove" else [alternative]
            if not atomic:
                text = "".join(row)
                batch.append([text[:start], *middle, text[stop:]])
                continue
            batch.append([*row[:start], *middle, *row[stop:]])
            if row_specs is not None:  # replacements keep the unit's specifiers
                kept = [] if mode == "remove" else [row_specs[start]]
                batch_specs.append([*row_specs[:start], *kept, *row_specs[stop:]])
        return encode(batch, batch_specs if row_specs is not None else None)

    return build
