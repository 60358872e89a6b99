"""Leave-one-out (LOO) scores of every unit of every sequence, for a model or an ensemble.

Units, edits and offsets: :mod:`nucflow.interpret.edits`; how edited rows are predicted
(reference or fast): :mod:`nucflow.interpret.scoring`.

``loo = edited − original`` in label units (regression) or as the probability of the target
class (classification): a positive score means the edit raises the prediction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from torch import nn
from tqdm import tqdm

from nucflow.errors import InputError
from nucflow.interpret.edits import (
    LOO_MODES,
    SequenceEdits,
    check_replacement,
    check_tokenizer,
)
from nucflow.interpret.scoring import LOO_METHODS, EnsembleScorer
from nucflow.interpret.tables import loo_columns
from nucflow.models.files import ModelConfig
from nucflow.tokenize import tokenizer_from_spec
from nucflow.tokenize.atomic import AtomicTokenizer
from nucflow.tokenize.kmer import KmerTokenizer

log = logging.getLogger(__name__)


class _ProgressLog:
    """File-like target for tqdm that writes each progress update as a log line."""

    def write(self, text: str) -> None:
        text = text.strip("\r\n ")
        if text:
            log.info("%s", text)

    def flush(self) -> None:
        """Nothing is buffered."""


def _check_inputs(
    ids: Sequence[str],
    sequences: Sequence,
    specifiers: Sequence | None,
    labels: Sequence | None,
) -> None:
    """Lengths of the parallel inputs must agree."""
    if isinstance(sequences, str):
        raise InputError("loo_scores expects a list of sequences, got a single string")
    for name, values in (("ids", ids), ("specifiers", specifiers), ("labels", labels)):
        if values is not None and len(values) != len(sequences):
            raise InputError(f"loo_scores got {len(values)} {name} for {len(sequences)} sequences")


def _chunks(items: list, size: int) -> Iterator[list]:
    """Consecutive slices of ``items`` of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _ensemble(
    models: nn.Module | Sequence[tuple[nn.Module, ModelConfig]], config: ModelConfig | None
) -> list[tuple[nn.Module, ModelConfig]]:
    """``[(model, config)]`` from one model and its config, or an ensemble's list."""
    if isinstance(models, nn.Module):
        if config is None:
            raise InputError("loo_scores: a single model needs its ModelConfig")
        return [(models, config)]
    members = list(models)
    if not members:
        raise InputError("loo_scores: no models given")
    return members


def loo_scores(
    models: nn.Module | Sequence[tuple[nn.Module, ModelConfig]],
    config: ModelConfig | None,
    tokenizer: Any,
    ids: Sequence[str],
    sequences: Sequence[Sequence[str] | str],
    specifiers: Sequence[Sequence[tuple[float, ...]] | None] | None = None,
    labels: Sequence[Any] | None = None,
    *,
    mode: str,
    replacement: Mapping[str, list[str]] | None = None,
    replacespecifier: bool = False,
    target_class: int | None = None,
    batch_size: int = 64,
    method: str = "fast",
    progress: bool = False,
) -> pd.DataFrame:
    """Leave-one-out scores of every unit of every sequence (module docstring).

    ``models`` is one model (with its ``config``) or a list of ``(model, config)`` (an
    ensemble, predictions averaged; ``config`` then unused). ``sequences`` are lists of atoms
    (atomic) or nucleotide strings; ``tokenizer`` is the models' (None: rebuilt from the first
    config). ``specifiers`` (atomic only) holds one tuple of floats per atom. In replace mode
    ``replacement`` maps a unit (an atom, or a token's letters as written in the sequence) to
    its alternatives; without it single nucleotides get the other three of A, C, G, T (same
    case) and other units none. Classification scores the probability of ``target_class``
    (default: each sequence's predicted class). ``method`` is ``fast`` or ``reference``
    (identical results); ``progress`` logs a progress bar (sequences done, rate). Returns the
    columns of :func:`loo_columns`.
    """
    if mode not in LOO_MODES:
        raise InputError(f"unknown LOO mode {mode!r} (expected one of: {', '.join(LOO_MODES)})")
    if method not in LOO_METHODS:
        raise InputError(f"unknown LOO method {method!r} (expected {', '.join(LOO_METHODS)})")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be an integer ≥ 1, got {batch_size!r}")
    members = _ensemble(models, config)
    first = members[0][1]
    if tokenizer is None:
        tokenizer = tokenizer_from_spec(first.tokenizer, source="model config")
    check_tokenizer(tokenizer)
    atomic = isinstance(tokenizer, AtomicTokenizer)
    if specifiers is not None and not atomic:
        raise InputError("loo_scores: specifiers are only supported with atomic tokenizers")
    replacement = check_replacement(replacement, tokenizer)
    if (
        mode == "replace"
        and replacement is None
        and isinstance(tokenizer, KmerTokenizer)
        and tokenizer.k > 1
    ):
        raise InputError(
            f"loo_scores: replace mode with k = {tokenizer.k} needs a replacementdict "
            "(defaults exist only for single nucleotides)"
        )
    _check_inputs(ids, sequences, specifiers, labels)
    classification = first.task != "regression"
    if target_class is not None:
        n_classes = len(first.class_names)
        if not classification or not 0 <= target_class < n_classes:
            raise InputError(
                f"target_class {target_class!r} needs a classification model with that class "
                f"(task {first.task}, {n_classes} classes)"
            )
    scorer = EnsembleScorer(members, method)
    records: list[tuple] = []
    bar = tqdm(
        range(len(sequences)),
        desc=f"LOO {mode}",
        unit="seq",
        disable=not progress,
        file=_ProgressLog(),
        mininterval=10.0,
        ascii=True,
    )
    for n in bar:
        sequence = SequenceEdits(
            tokenizer, sequences[n], None if specifiers is None else specifiers[n]
        )
        base = scorer.start(sequence.original)
        target = None
        if classification:
            target = int(np.argmax(base)) if target_class is None else target_class
            pred = float(base[target])
        else:
            pred = float(base)
        label = None if labels is None else labels[n]
        for chunk in _chunks(sequence.edits(mode, replacement, replacespecifier), batch_size):
            predictions = scorer.score(sequence.rows(mode, chunk))
            values = (predictions[:, target] if classification else predictions) - pred
            for edit, value in zip(chunk, values.tolist(), strict=True):
                unit = edit.unit
                middle = (edit.replacement,) if mode == "replace" else ()
                records.append(
                    (ids[n], unit.token, *middle, label, pred, unit.start, unit.end, value)
                )
    return pd.DataFrame.from_records(records, columns=loo_columns(mode))
