"""Labelled sequence sets: read class FASTAs, encode them, store them as compact arrays."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nucflow.errors import InputError
from nucflow.io.atomic import atomic_path
from nucflow.io.fasta import InvalidPolicy, read_fasta
from nucflow.tokenize import Tokenizer, build_tokenizer, save_tokenizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncodedSequences:
    """Token ids of a sequence set with class labels (-1 where unknown)."""

    ids: np.ndarray
    tokens: np.ndarray
    labels: np.ndarray
    class_names: list[str]

    def select(self, ids: Sequence[str]) -> EncodedSequences:
        """The subset with the given ids, in that order."""
        position = {name: i for i, name in enumerate(self.ids.tolist())}
        missing = [name for name in ids if name not in position]
        if missing:
            raise InputError(f"{len(missing)} ids are not in the encoded data, e.g. '{missing[0]}'")
        index = np.asarray([position[name] for name in ids], dtype=np.int64)
        return EncodedSequences(
            self.ids[index], self.tokens[index], self.labels[index], self.class_names
        )


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


def save_encoded(data: EncodedSequences, path: str | os.PathLike[str]) -> None:
    """Store encoded sequences as an uncompressed ``.npz`` (no pickles; memory-map friendly)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(
            handle,
            ids=data.ids,
            tokens=data.tokens,
            labels=data.labels,
            class_names=np.asarray(data.class_names, dtype=str),
        )


def load_encoded(path: str | os.PathLike[str]) -> EncodedSequences:
    """Read encoded sequences written by :func:`save_encoded`."""
    with np.load(path, allow_pickle=False) as arrays:
        return EncodedSequences(
            arrays["ids"], arrays["tokens"], arrays["labels"], arrays["class_names"].tolist()
        )


def prepare_sequences(
    classes: Mapping[str, str | Sequence[str]],
    encoding: Mapping[str, object],
    encoded_path: str | os.PathLike[str],
    tokenizer_path: str | os.PathLike[str],
    invalid: InvalidPolicy = "error",
) -> EncodedSequences:
    """Read the class FASTAs, build the configured tokenizer, write encoded data and tokenizer."""
    ids, sequences, labels, class_names = read_labelled_fastas(classes, invalid)
    tokenizer = build_tokenizer(
        str(encoding["method"]),
        k=int(encoding["k"]),
        context_length=int(encoding["context_length"]),
        keep=str(encoding["keep"]),
    )
    data = encode_sequences(ids, sequences, labels, class_names, tokenizer)
    save_tokenizer(tokenizer, tokenizer_path)
    save_encoded(data, encoded_path)
    log.info("encoded %d sequences (%s) into %s", len(ids), tokenizer.method, encoded_path)
    return data
