"""Labelled sequence sets: read class FASTAs, encode them, store them as compact arrays."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nucflow.data.encoded import EncodedSequences, save_encoded
from nucflow.data.splits import holdout_split, save_split
from nucflow.errors import InputError
from nucflow.io.fasta import InvalidPolicy, read_fasta
from nucflow.tokenize import Tokenizer, build_tokenizer, load_tokenizer, save_tokenizer

log = logging.getLogger(__name__)


def class_files(
    classes: Mapping[str, str | os.PathLike[str] | Sequence[str | os.PathLike[str]]],
) -> dict[str, list[str]]:
    """Normalise the config's class → path-or-paths mapping to class → list of paths."""
    return {
        name: [os.fspath(paths)]
        if isinstance(paths, str | os.PathLike)
        else [os.fspath(path) for path in paths]
        for name, paths in classes.items()
    }


def pretraining_fastas(experiment: Mapping[str, Any]) -> list[str]:
    """FASTA files to pretrain on: ``pretrain.fasta``, or else the experiment's class FASTAs."""
    if experiment["pretrain"]["fasta"]:
        return list(experiment["pretrain"]["fasta"])
    return [path for paths in class_files(experiment["data"]["classes"]).values() for path in paths]


def read_labelled_fastas(
    classes: Mapping[str, str | Sequence[str]], invalid: InvalidPolicy = "error"
) -> tuple[list[str], list[str], np.ndarray, list[str]]:
    """Read one or more FASTA files per class; return ids, sequences, labels and class names.

    Ids must be unique across all files; a class whose files hold no record is an error.
    """
    ids: list[str] = []
    sequences: list[str] = []
    labels: list[int] = []
    origin: dict[str, Path] = {}
    class_names = list(classes)
    for label, (name, paths) in enumerate(class_files(classes).items()):
        if not paths:
            raise InputError(f"class '{name}' has no FASTA files (expected at least one path)")
        for path in paths:
            records = read_fasta(path, invalid)
            for record_id in records.ids:
                if record_id in origin:
                    raise InputError(
                        f"{path}: duplicate id '{record_id}' (also in {origin[record_id]}; "
                        "expected ids unique across all input files)"
                    )
                origin[record_id] = records.path
            ids += records.ids
            sequences += records.sequences
            labels += [label] * len(records)
            log.info("read %d sequences of class '%s' from %s", len(records), name, path)
    return ids, sequences, np.asarray(labels, dtype=np.int64), class_names


def encode_sequences(
    ids: Sequence[str],
    sequences: Sequence[str],
    labels: np.ndarray,
    class_names: Sequence[str],
    tokenizer: Tokenizer,
) -> EncodedSequences:
    """Tokenise ``sequences`` into an :class:`EncodedSequences`."""
    return EncodedSequences(
        np.asarray(ids, dtype=str), tokenizer.encode(sequences), labels, list(class_names)
    )


def configured_tokenizer(
    encoding: Mapping[str, Any], learned: str | os.PathLike[str] | None = None
) -> Tokenizer:
    """The tokenizer of an ``encoding`` config section (BPE, atomic: the ``learned`` file)."""
    if learned is not None:
        return load_tokenizer(learned)
    return build_tokenizer(
        str(encoding["method"]),
        k=int(encoding["k"]),
        kernel_size=int(encoding["kernel_size"]),
        context_length=int(encoding["context_length"]),
        keep=str(encoding["keep"]),
    )


def prepare_sequences(
    classes: Mapping[str, str | Sequence[str]],
    encoding: Mapping[str, Any],
    encoded_path: str | os.PathLike[str],
    tokenizer_path: str | os.PathLike[str],
    invalid: InvalidPolicy = "error",
    learned: str | os.PathLike[str] | None = None,
) -> EncodedSequences:
    """Read the class FASTAs, encode them with the configured tokenizer, write data + tokenizer."""
    tokenizer = configured_tokenizer(encoding, learned)
    ids, sequences, labels, class_names = read_labelled_fastas(classes, invalid)
    data = encode_sequences(ids, sequences, labels, class_names, tokenizer)
    save_tokenizer(tokenizer, tokenizer_path)
    save_encoded(data, encoded_path)
    log.info("encoded %d sequences (%s) into %s", len(ids), tokenizer.method, encoded_path)
    return data


def prepare_pretraining_data(
    fasta_paths: Sequence[str | os.PathLike[str]],
    tokenizer_path: str | os.PathLike[str],
    encoded_path: str | os.PathLike[str],
    split_path: str | os.PathLike[str],
    valid_fraction: float,
    seed: int,
    invalid: InvalidPolicy = "error",
) -> EncodedSequences:
    """Encode unlabelled FASTA files with an experiment's tokenizer; hold out a validation part."""
    tokenizer = load_tokenizer(tokenizer_path)
    ids, sequences, _, _ = read_labelled_fastas(
        {"unlabelled": list(map(str, fasta_paths))}, invalid
    )
    data = encode_sequences(ids, sequences, np.full(len(ids), -1), [], tokenizer)
    split = holdout_split(ids, valid_fraction, seed)
    save_encoded(data, encoded_path)
    save_split(split, split_path)
    log.info("pretraining data: %d train, %d valid sequences", len(split.train), len(split.valid))
    return data
