"""LOO on files: read and select sequences, then score one shard of them into a CSV."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from nucflow.data.table_data import read_experiment_table
from nucflow.errors import InputError
from nucflow.interpret.loo import loo_scores
from nucflow.io.atomic import atomic_path
from nucflow.io.fasta import InvalidPolicy, read_fasta
from nucflow.models.files import ModelConfig
from nucflow.predict import load_ensemble
from nucflow.tokenize import tokenizer_from_spec
from nucflow.tokenize.atomic import AtomicTokenizer


@dataclass(frozen=True)
class LooInput:
    """Sequences to score: ids, atoms (atomic) or strings, specifiers and labels."""

    path: str
    ids: list[str]
    sequences: list[Any]
    specifiers: list | None
    labels: list | None

    def subset(self, indices: Sequence[int]) -> LooInput:
        """The sequences at ``indices``, in that order."""

        def pick(values: list | None) -> list | None:
            return None if values is None else [values[i] for i in indices]

        return replace(
            self,
            ids=[self.ids[i] for i in indices],
            sequences=[self.sequences[i] for i in indices],
            specifiers=pick(self.specifiers),
            labels=pick(self.labels),
        )


def read_loo_input(
    path: str | os.PathLike[str],
    config: ModelConfig,
    table_format: Mapping[str, Any] | None = None,
    invalid: InvalidPolicy = "error",
) -> LooInput:
    """Sequences of a FASTA file or (``table_format``) a table, checked against the model.

    A model reading specifiers needs a table with them; a k-mer / BPE / CSE model needs one
    letter per token.
    """
    tokenizer = tokenizer_from_spec(config.tokenizer, source="model config")
    atomic = isinstance(tokenizer, AtomicTokenizer)
    if table_format is None:
        records = read_fasta(path, invalid)
        sequences = [list(s) if atomic else s for s in records.sequences]
        result = LooInput(str(path), records.ids, sequences, None, None)
    else:
        table = read_experiment_table({**table_format, "path": path}, config.task)
        labels = None if table.labels is None else list(table.labels)
        if atomic:
            sequences: list[Any] = table.tokens
        else:
            long = next(
                (i for i, atoms in enumerate(table.tokens) if any(len(a) != 1 for a in atoms)),
                None,
            )
            if long is not None:
                raise InputError(
                    f"{path}: line {table.line_numbers[long]} ('{table.ids[long]}') has "
                    f"multi-letter tokens, but the model's {tokenizer.method} encoding reads "
                    "one letter per token"
                )
            sequences = ["".join(atoms) for atoms in table.tokens]
        result = LooInput(str(path), table.ids, sequences, table.specifiers, labels)
    wanted = tokenizer.n_specifiers if atomic else 0
    if wanted and result.specifiers is None:
        raise InputError(
            f"{path}: the model reads {wanted} specifier channel(s), but the file has no "
            "specifiers (a table with specifiersep is needed)"
        )
    if not atomic and result.specifiers is not None:
        raise InputError(
            f"{path}: the file has specifiers, but the model's {tokenizer.method} encoding "
            "cannot read them (only atomic models can)"
        )
    return result


def select_sequences(data: LooInput, selection: str | Sequence[str]) -> LooInput:
    """``all`` sequences, or those with the listed ids (in the order listed)."""
    if selection == "all":
        return data
    if isinstance(selection, str):
        raise InputError(f"sequences must be 'all' or a list of ids, got {selection!r}")
    where = {name: i for i, name in enumerate(data.ids)}
    missing = [name for name in selection if name not in where]
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise InputError(
            f"{data.path}: {len(missing)} selected sequence id(s) not in the file: {shown}"
        )
    return data.subset([where[name] for name in selection])


def shard_of(data: LooInput, shard: int, n_shards: int) -> LooInput:
    """The ``shard``-th of ``n_shards`` contiguous, near-equal parts (may be empty)."""
    if not 0 <= shard < n_shards:
        raise InputError(f"shard {shard} is outside 0 … {n_shards - 1}")
    bounds = np.linspace(0, len(data.ids), n_shards + 1).round().astype(int)
    return data.subset(range(bounds[shard], bounds[shard + 1]))


def _target_index(config: ModelConfig, target_class: str | None) -> int | None:
    """Index of a class name (None: each sequence's predicted class)."""
    if target_class is None:
        return None
    if config.task == "regression" or target_class not in config.class_names:
        raise InputError(
            f"target_class {target_class!r} is not a class of the model "
            f"({', '.join(config.class_names) or 'a regression model has none'})"
        )
    return config.class_names.index(target_class)


def interpret_file(
    model_dirs: Sequence[str | os.PathLike[str]],
    input_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    mode: str,
    table_format: Mapping[str, Any] | None = None,
    sequences: str | Sequence[str] = "all",
    shard: int = 0,
    n_shards: int = 1,
    replacementdict: Mapping[str, list[str]] | None = None,
    replacespecifier: bool = False,
    target_class: str | None = None,
    batch_size: int = 256,
    method: str = "fast",
    invalid: InvalidPolicy = "error",
    threads: int | None = None,
) -> pd.DataFrame:
    """LOO table of one shard of a file's selected sequences, written to ``out_path`` (CSV).

    ``threads`` sets torch's CPU threads (None: torch's default).
    """
    if threads is not None:
        torch.set_num_threads(threads)
    members = load_ensemble(model_dirs)
    config = members[0][1]
    data = read_loo_input(input_path, config, table_format, invalid)
    part = shard_of(select_sequences(data, sequences), shard, n_shards)
    frame = loo_scores(
        members,
        None,
        None,
        part.ids,
        part.sequences,
        part.specifiers,
        part.labels,
        mode=mode,
        replacement=replacementdict,
        replacespecifier=replacespecifier,
        target_class=_target_index(config, target_class),
        batch_size=batch_size,
        method=method,
        progress=True,
    )
    with atomic_path(out_path) as tmp:
        frame.to_csv(tmp, index=False)
    return frame
