"""Experiment data preparation: learn a vocabulary when the encoding needs one, then encode."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from nucflow.data.encoded import EncodedSequences
from nucflow.data.sequence import prepare_sequences
from nucflow.data.table_data import experiment_atoms, prepare_table
from nucflow.errors import InputError
from nucflow.tokenize import Tokenizer, save_tokenizer
from nucflow.tokenize.atomic import learn_atomic
from nucflow.tokenize.bpe import learn_bpe

log = logging.getLogger(__name__)

LEARNED_METHODS = ("bpe", "atomic")
"""Encodings whose vocabulary is learned from the data (rule ``learn_vocabulary``)."""


def learn_vocabulary(
    data: Mapping[str, Any],
    encoding: Mapping[str, Any],
    task: str,
    out_path: str | os.PathLike[str],
    seed: int = 0,
) -> Tokenizer:
    """Learn a BPE or atomic vocabulary on all of the experiment's sequences; save it as JSON.

    BPE learns from the nucleotide strings (a table's atoms joined), the atomic tokenizer
    from the atoms and their specifiers (optionally a seeded sample of ``samplesize`` rows).
    """
    atoms, specifiers = experiment_atoms(data, task)
    if encoding["method"] == "atomic":
        tokenizer: Tokenizer = learn_atomic(
            atoms,
            specifiers,
            blocksize=int(encoding["blocksize"]),
            lefttailing=bool(encoding["lefttailing"]),
            centertoken=encoding["centertoken"],
            samplesize=encoding["samplesize"],
            seed=seed,
        )
    elif encoding["method"] == "bpe":
        tokenizer = learn_bpe(
            ["".join(sequence) for sequence in atoms],
            int(encoding["vocab_size"]),
            int(encoding["context_length"]),
            str(encoding["keep"]),
        )
    else:
        raise InputError(f"encoding {encoding['method']} has no vocabulary to learn")
    save_tokenizer(tokenizer, out_path)
    log.info(
        "learned a %s vocabulary of %d on %d sequences",
        tokenizer.method,
        tokenizer.vocab_size,
        len(atoms),
    )
    return tokenizer


def prepare_data(
    data: Mapping[str, Any],
    encoding: Mapping[str, Any],
    task: str,
    encoded_path: str | os.PathLike[str],
    tokenizer_path: str | os.PathLike[str],
    learned: str | os.PathLike[str] | None = None,
) -> EncodedSequences:
    """Encode an experiment's FASTA classes or table (``learned``: its learned vocabulary)."""
    if data["format"] == "table":
        return prepare_table(data, encoding, task, encoded_path, tokenizer_path, learned)
    if task == "regression":
        raise InputError("task regression needs data.format table (with a label column)")
    return prepare_sequences(
        data["classes"],
        encoding,
        encoded_path,
        tokenizer_path,
        data["invalid_characters"],
        learned,
    )
