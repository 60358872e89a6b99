"""Encoded sequence sets on disk: token ids (or CSE codes), labels and ids as one ``.npz``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nucflow.errors import InputError
from nucflow.io.atomic import atomic_path

OPTIONAL = ("split_values", "weights")
"""Per-sequence arrays stored only when the input has them."""


@dataclass(frozen=True)
class EncodedSequences:
    """Encoded inputs of a sequence set with labels.

    ``tokens`` holds token ids, CSE codes or atomic rows (first axis = sequences); ``labels``
    are class indices (-1 where unknown; ``class_names`` non-empty) or float regression labels
    (NaN where unknown; ``class_names`` empty). ``split_values`` (a table's split column) and
    ``weights`` (per-sequence loss weights) are optional.
    """

    ids: np.ndarray
    tokens: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    split_values: np.ndarray | None = None
    weights: np.ndarray | None = None

    def select(self, ids: Sequence[str]) -> EncodedSequences:
        """The subset with the given ids, in that order."""
        position = {name: i for i, name in enumerate(self.ids.tolist())}
        missing = [name for name in ids if name not in position]
        if missing:
            raise InputError(f"{len(missing)} ids are not in the encoded data, e.g. '{missing[0]}'")
        index = np.asarray([position[name] for name in ids], dtype=np.int64)
        optional = {
            name: None if getattr(self, name) is None else getattr(self, name)[index]
            for name in OPTIONAL
        }
        return EncodedSequences(
            self.ids[index], self.tokens[index], self.labels[index], self.class_names, **optional
        )


def save_encoded(data: EncodedSequences, path: str | os.PathLike[str]) -> None:
    """Store encoded sequences as an uncompressed ``.npz`` (no pickles; memory-map friendly)."""
    optional = {name: getattr(data, name) for name in OPTIONAL if getattr(data, name) is not None}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(
            handle,
            ids=data.ids,
            tokens=data.tokens,
            labels=data.labels,
            class_names=np.asarray(data.class_names, dtype=str),
            **optional,
        )


def load_encoded(path: str | os.PathLike[str]) -> EncodedSequences:
    """Read encoded sequences written by :func:`save_encoded`."""
    with np.load(path, allow_pickle=False) as arrays:
        optional = {name: arrays.get(name) for name in OPTIONAL}
        return EncodedSequences(
            arrays["ids"],
            arrays["tokens"],
            arrays["labels"],
            arrays["class_names"].tolist(),
            **optional,
        )
