"""Tabular sequence data (biolm_utils' format): read, learn atoms, encode with labels."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from nucflow.data.encoded import EncodedSequences, save_encoded
from nucflow.data.sequence import configured_tokenizer, read_labelled_fastas
from nucflow.errors import InputError
from nucflow.io.table import TableFormat, TableRecords, read_table
from nucflow.tokenize import Tokenizer, save_tokenizer

log = logging.getLogger(__name__)


def read_experiment_table(data: Mapping[str, Any], task: str) -> TableRecords:
    """The experiment's table, labels read as floats (regression) or class names."""
    table_format = TableFormat.from_config(data, source=str(data["path"]))
    return read_table(
        data["path"],
        table_format,
        labels=None if data["labelpos"] is None else "float" if task == "regression" else "string",
    )


def experiment_atoms(
    data: Mapping[str, Any], task: str
) -> tuple[list[list[str]], list[list[tuple[float, ...]]] | None]:
    """Atoms (and specifiers) of every sequence: a table's, or the FASTA classes' letters."""
    if data["format"] == "table":
        records = read_experiment_table(data, task)
        return records.tokens, records.specifiers
    _, sequences, _, _ = read_labelled_fastas(data["classes"], data["invalid_characters"])
    return [list(sequence) for sequence in sequences], None


def prediction_table_format(experiment: Mapping[str, Any]) -> dict[str, Any] | None:
    """How new files of a table experiment are read: its table keys with ``predict.labelpos``."""
    if experiment["data"]["format"] != "table":
        return None
    return {**experiment["data"], "labelpos": experiment["predict"]["labelpos"]}


def interpretation_input(
    experiment: Mapping[str, Any], source: str = "config"
) -> tuple[str, dict[str, Any] | None]:
    """The file LOO scores (``interpret.input`` or the table) and how to read it.

    The experiment's own table is read with its ``data.labelpos``, other tables with
    ``predict.labelpos``.
    """
    path = experiment["interpret"]["input"]
    data = experiment["data"]
    if data["format"] != "table":
        if path is None:
            raise InputError(
                f"{source}: interpret.input must name a FASTA file for a FASTA experiment "
                "(only table experiments default to their own data)"
            )
        return path, None
    if path is None or path == data["path"]:
        return data["path"], dict(data)
    return path, prediction_table_format(experiment)


def quality_weights(records: TableRecords, weight_map: Mapping[str, float]) -> np.ndarray | None:
    """Per-sequence loss weights from the quality column (None without one)."""
    if records.weights is None:
        return None
    unknown = [i for i, quality in enumerate(records.weights) if quality not in weight_map]
    if unknown:
        i = unknown[0]
        raise InputError(
            f"{records.path}: line {records.line_numbers[i]} ('{records.ids[i]}') has quality "
            f"'{records.weights[i]}' (expected one of: {', '.join(weight_map)})"
        )
    return np.asarray([weight_map[quality] for quality in records.weights], dtype=np.float32)


def encode_records(tokenizer: Tokenizer, records: TableRecords) -> np.ndarray:
    """Encode a table's sequences: atoms + specifiers (atomic), else the joined nucleotides."""
    if tokenizer.method == "atomic":
        return tokenizer.encode(records.tokens, records.specifiers)
    return tokenizer.encode(["".join(atoms) for atoms in records.tokens])


def encode_table(data: Mapping[str, Any], task: str, tokenizer: Tokenizer) -> EncodedSequences:
    """Encode the experiment's table with labels, split values and quality weights."""
    records = read_experiment_table(data, task)
    tokens = encode_records(tokenizer, records)
    class_names: list[str] = []
    if records.labels is None:
        labels = np.full(len(records.ids), np.nan)
    elif task == "regression":
        labels = np.asarray(records.labels, dtype=np.float64)
    else:
        class_names = sorted(set(records.labels))
        index = {name: i for i, name in enumerate(class_names)}
        labels = np.asarray([index[label] for label in records.labels], dtype=np.int64)
    return EncodedSequences(
        np.asarray(records.ids, dtype=str),
        tokens,
        labels,
        class_names,
        split_values=records.splits,
        weights=quality_weights(records, data["quality_weights"]),
    )


def prepare_table(
    data: Mapping[str, Any],
    encoding: Mapping[str, Any],
    task: str,
    encoded_path: str | os.PathLike[str],
    tokenizer_path: str | os.PathLike[str],
    learned: str | os.PathLike[str] | None = None,
) -> EncodedSequences:
    """Encode a table experiment's data (``learned``: its atomic or BPE vocabulary)."""
    tokenizer = configured_tokenizer(encoding, learned)
    encoded = encode_table(data, task, tokenizer)
    save_tokenizer(tokenizer, tokenizer_path)
    save_encoded(encoded, encoded_path)
    log.info("encoded %d table rows (%s) into %s", len(encoded.ids), tokenizer.method, encoded_path)
    return encoded
