"""Apply trained models (one fold or the ensemble of folds) to sequences."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from nucflow.data.encoded import load_encoded
from nucflow.data.splits import load_split
from nucflow.errors import InputError
from nucflow.io.atomic import atomic_path, write_text_atomic
from nucflow.io.fasta import InvalidPolicy, read_fasta
from nucflow.models.files import ModelConfig, load_model, to_device
from nucflow.tokenize import tokenizer_from_spec
from nucflow.train.metrics import classification_metrics, per_class_report

log = logging.getLogger(__name__)


@torch.inference_mode()
def batched_outputs(
    model: nn.Module,
    tokens: np.ndarray,
    batch_size: int,
    function: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> np.ndarray:
    """Run ``function`` (default: the model) over token ids (n, width) in batches.

    Uses the GPU in bf16 autocast when present.
    """
    model, device = to_device(model)
    model.eval()
    function = function or model
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    outputs = []
    for start in range(0, len(tokens), batch_size):
        batch = torch.from_numpy(tokens[start : start + batch_size]).long().to(device)
        with autocast:
            outputs.append(function(batch).float().cpu().numpy())
    return np.concatenate(outputs)


def class_probabilities(model: nn.Module, tokens: np.ndarray, batch_size: int) -> np.ndarray:
    """Softmax class probabilities (n, classes) of ``model`` for token ids (n, width)."""
    logits = torch.from_numpy(batched_outputs(model, tokens, batch_size))
    return logits.softmax(dim=1).numpy()


def probability_table(
    ids: Sequence[str], probabilities: np.ndarray, class_names: Sequence[str]
) -> pd.DataFrame:
    """Table of id, ``prob_<class>`` per class and the predicted class."""
    frame = pd.DataFrame({"id": list(ids)})
    for i, name in enumerate(class_names):
        frame[f"prob_{name}"] = probabilities[:, i]
    frame["predicted_class"] = np.asarray(class_names, dtype=object)[probabilities.argmax(axis=1)]
    return frame


def evaluate_fold(
    model_dir: str | os.PathLike[str],
    encoded_path: str | os.PathLike[str],
    split_path: str | os.PathLike[str],
    metrics_path: str | os.PathLike[str],
    predictions_path: str | os.PathLike[str],
    batch_size: int = 128,
) -> dict[str, Any]:
    """Score a fold's model on its test part: metrics.json and test_predictions.csv."""
    model, config = load_model(model_dir)
    split = load_split(split_path)
    test = load_encoded(encoded_path).select(split.test)
    probabilities = class_probabilities(model, test.tokens, batch_size)
    metrics: dict[str, Any] = {
        "fold": split.fold,
        "n_test": len(test.ids),
        **classification_metrics(test.labels, probabilities),
        "per_class": per_class_report(test.labels, probabilities, config.class_names),
    }
    table = probability_table(test.ids.tolist(), probabilities, config.class_names)
    table.insert(1, "label", np.asarray(config.class_names, dtype=object)[test.labels])
    with atomic_path(predictions_path) as tmp:
        table.to_csv(tmp, index=False)
    write_text_atomic(metrics_path, json.dumps(metrics, indent=1) + "\n")
    log.info(
        "fold %s test: accuracy %.3f, macro-F1 %.3f",
        split.fold,
        metrics["accuracy"],
        metrics["macro_f1"],
    )
    return metrics


def aggregate_metrics(
    metrics_paths: Sequence[str | os.PathLike[str]], out_path: str | os.PathLike[str]
) -> pd.DataFrame:
    """One row per fold plus ``mean`` and ``sd`` rows of every scalar metric (metrics.csv)."""
    rows = []
    for path in metrics_paths:
        with open(path) as handle:
            metrics = json.load(handle)
        rows.append({k: v for k, v in metrics.items() if not isinstance(v, dict)})
    frame = pd.DataFrame(rows)
    numeric = frame.drop(columns=["fold"]).astype(float)
    summary = pd.DataFrame(
        [
            {"fold": "mean", **numeric.mean().to_dict()},
            {"fold": "sd", **numeric.std(ddof=1).to_dict()},
        ]
    )
    frame = pd.concat([frame, summary], ignore_index=True)
    with atomic_path(out_path) as tmp:
        frame.to_csv(tmp, index=False)
    return frame


def _consistent_configs(model_dirs: Sequence[str | os.PathLike[str]]) -> list[ModelConfig]:
    """Models of an ensemble must share their tokenizer and classes."""
    loaded = [load_model(path) for path in model_dirs]
    reference = loaded[0][1]
    for path, (_, config) in zip(model_dirs, loaded, strict=True):
        if config.tokenizer != reference.tokenizer or config.class_names != reference.class_names:
            raise InputError(
                f"{path}: tokenizer or classes differ from {model_dirs[0]} (an ensemble needs "
                "models trained on the same encoding and classes)"
            )
    return loaded


def predict_fasta(
    model_dirs: Sequence[str | os.PathLike[str]],
    fasta_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    per_model_path: str | os.PathLike[str] | None = None,
    batch_size: int = 128,
    invalid: InvalidPolicy = "error",
) -> pd.DataFrame:
    """Predict every sequence of a FASTA file with the mean probability over ``model_dirs``.

    Needs only the model directories (their config.json holds the tokenizer) and the FASTA.
    Writes id, ``prob_<class>`` and ``predicted_class``; optionally the per-model rows too.
    """
    if not model_dirs:
        raise InputError("no model directories given (expected at least one)")
    loaded = _consistent_configs(model_dirs)
    config = loaded[0][1]
    records = read_fasta(fasta_path, invalid)
    tokens = tokenizer_from_spec(config.tokenizer, source=f"{model_dirs[0]}/config.json").encode(
        records.sequences
    )
    per_model = [class_probabilities(model, tokens, batch_size) for model, _ in loaded]
    ensemble = probability_table(records.ids, np.mean(per_model, axis=0), config.class_names)
    if per_model_path is not None:
        frames = []
        for path, probabilities in zip(model_dirs, per_model, strict=True):
            frame = probability_table(records.ids, probabilities, config.class_names)
            frame.insert(1, "model", str(path))
            frames.append(frame)
        with atomic_path(per_model_path) as tmp:
            pd.concat(frames, ignore_index=True).to_csv(tmp, index=False)
    with atomic_path(out_path) as tmp:
        ensemble.to_csv(tmp, index=False)
    log.info("predicted %d sequences of %s with %d model(s)", len(records), fasta_path, len(loaded))
    return ensemble


def embed_fasta(
    model_dir: str | os.PathLike[str],
    fasta_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    batch_size: int = 64,
    invalid: InvalidPolicy = "error",
) -> pd.DataFrame:
    """Per-sequence embeddings of a FASTA file: CSV with ``id`` and ``L0`` … ``L{d-1}``.

    For BERT models (pretrained or fine-tuned) the embedding is the mean of the encoder's
    output over content positions (CLS, SEP, padding and masked CSE windows excluded); for the
    CNN it is its pooled mean and max features.
    """
    model, config = load_model(model_dir)
    if hasattr(model, "encoder"):
        function = partial(model.encoder.embed, pooling="mean")
    elif hasattr(model, "embed"):
        function = model.embed
    else:
        raise InputError(f"{model_dir}: architecture {config.architecture} has no embeddings")
    records = read_fasta(fasta_path, invalid)
    tokenizer = tokenizer_from_spec(config.tokenizer, source=f"{model_dir}/config.json")
    vectors = batched_outputs(model, tokenizer.encode(records.sequences), batch_size, function)
    frame = pd.DataFrame(vectors, columns=[f"L{i}" for i in range(vectors.shape[1])])
    frame.insert(0, "id", records.ids)
    with atomic_path(out_path) as tmp:
        frame.to_csv(tmp, index=False)
    log.info(
        "embedded %d sequences of %s (%d dimensions)", len(records), fasta_path, vectors.shape[1]
    )
    return frame
