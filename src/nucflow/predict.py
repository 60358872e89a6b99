"""Apply trained models (one fold or the ensemble of folds) to sequences."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from nucflow.data.encoded import load_encoded
from nucflow.data.splits import load_split
from nucflow.data.table_data import encode_records, read_experiment_table
from nucflow.errors import InputError
from nucflow.io.atomic import atomic_path, write_text_atomic
from nucflow.io.fasta import InvalidPolicy, read_fasta
from nucflow.models.files import ModelConfig, load_model, model_inputs, to_device
from nucflow.report.plots import plot_scatter
from nucflow.tokenize import tokenizer_from_spec
from nucflow.train.metrics import (
    classification_metrics,
    per_class_report,
    rank_deltas,
    regression_metrics,
)
from nucflow.train.scaling import LabelScaler

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
        batch = model_inputs(tokens[start : start + batch_size]).to(device)
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


def prediction_table(
    ids: Sequence[str], predictions: np.ndarray, config: ModelConfig
) -> pd.DataFrame:
    """Class probabilities and predicted class, or a ``prediction`` column (regression)."""
    if config.task == "regression":
        return pd.DataFrame({"id": list(ids), "prediction": predictions})
    return probability_table(ids, predictions, config.class_names)


def model_predictions(
    model: nn.Module, config: ModelConfig, inputs: np.ndarray, batch_size: int
) -> np.ndarray:
    """Class probabilities (n, classes), or regression predictions (n,) in label units."""
    return outputs_to_predictions(batched_outputs(model, inputs, batch_size), config)


def outputs_to_predictions(outputs: np.ndarray, config: ModelConfig) -> np.ndarray:
    """Raw model outputs (n, n_outputs) → class probabilities, or label units (regression)."""
    if config.task == "regression":
        return LabelScaler(**(config.label_scaler or {})).inverse(outputs[:, 0])
    return torch.from_numpy(outputs).softmax(dim=1).numpy()


def load_ensemble(
    model_dirs: Sequence[str | os.PathLike[str]],
) -> list[tuple[nn.Module, ModelConfig]]:
    """Models of an ensemble; they must share their task, tokenizer and classes."""
    if not model_dirs:
        raise InputError("no model directories given (expected at least one)")
    loaded = [load_model(path) for path in model_dirs]
    reference = loaded[0][1]
    for path, (_, config) in zip(model_dirs, loaded, strict=True):
        if (config.task, config.tokenizer, config.class_names) != (
            reference.task,
            reference.tokenizer,
            reference.class_names,
        ):
            raise InputError(
                f"{path}: task, tokenizer or classes differ from {model_dirs[0]} (an ensemble "
                "needs models trained on the same task, encoding and classes)"
            )
    return loaded


def ensemble_predictions(
    loaded: Sequence[tuple[nn.Module, ModelConfig]], inputs: np.ndarray, batch_size: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The ensemble's mean prediction and each model's."""
    each = [model_predictions(model, config, inputs, batch_size) for model, config in loaded]
    return np.mean(each, axis=0), each


def task_metrics(config: ModelConfig, labels: np.ndarray, predictions: np.ndarray) -> dict:
    """Classification metrics (with a per-class report) or regression metrics in label units."""
    if config.task == "regression":
        return regression_metrics(labels, predictions)
    return {
        **classification_metrics(labels, predictions),
        "per_class": per_class_report(labels, predictions, config.class_names),
    }


def evaluate_fold(
    model_dirs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    encoded_path: str | os.PathLike[str],
    split_path: str | os.PathLike[str],
    metrics_path: str | os.PathLike[str],
    predictions_path: str | os.PathLike[str],
    batch_size: int = 128,
) -> dict[str, Any]:
    """Score a fold's model (or the mean of its replicates) on the fold's test part.

    Writes metrics.json and test_predictions.csv (id, label, then the class probabilities and
    predicted class, or the prediction in label units).
    """
    if isinstance(model_dirs, str | os.PathLike):
        model_dirs = [model_dirs]
    loaded = load_ensemble(model_dirs)
    config = loaded[0][1]
    split = load_split(split_path)
    test = load_encoded(encoded_path).select(split.test)
    predictions, _ = ensemble_predictions(loaded, test.tokens, batch_size)
    metrics: dict[str, Any] = {
        "fold": split.fold,
        "n_test": len(test.ids),
        "models": len(loaded),
        **task_metrics(config, test.labels, predictions),
    }
    table = prediction_table(test.ids.tolist(), predictions, config)
    labels = (
        test.labels
        if config.task == "regression"
        else np.asarray(config.class_names, dtype=object)[test.labels]
    )
    table.insert(1, "label", labels)
    with atomic_path(predictions_path) as tmp:
        table.to_csv(tmp, index=False)
    write_text_atomic(metrics_path, json.dumps(metrics, indent=1) + "\n")
    summary = ", ".join(
        f"{key} {metrics[key]:.3f}"
        for key in ("accuracy", "macro_f1", "pearson_r", "spearman_rho", "mse")
        if key in metrics
    )
    log.info("fold %s test: %s", split.fold, summary)
    return metrics


def write_rank_deltas(
    predictions_path: str | os.PathLike[str],
    rank_deltas_path: str | os.PathLike[str],
    plot_path: str | os.PathLike[str],
) -> pd.DataFrame:
    """rank_deltas.csv (per sample ranks of label and prediction) and a scatter plot."""
    table = pd.read_csv(predictions_path)
    deltas = rank_deltas(
        table["id"].to_numpy(), table["label"].to_numpy(), table["prediction"].to_numpy()
    )
    with atomic_path(rank_deltas_path) as tmp:
        deltas.to_csv(tmp, index=False)
    plot_scatter(table["label"], table["prediction"], plot_path)
    return deltas


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


def read_prediction_input(
    path: str | os.PathLike[str],
    config: ModelConfig,
    source: str,
    table_format: Mapping[str, Any] | None = None,
    invalid: InvalidPolicy = "error",
) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """Ids, encoded inputs and (for a table with a label column) labels of a new file.

    ``table_format`` (the experiment's table keys, its ``labelpos`` possibly null) reads a
    table; otherwise the file is FASTA. Labels are class indices or floats.
    """
    tokenizer = tokenizer_from_spec(config.tokenizer, source=source)
    if table_format is None:
        records = read_fasta(path, invalid)
        return records.ids, tokenizer.encode(records.sequences), None
    table = read_experiment_table({**table_format, "path": path}, config.task)
    inputs = encode_records(tokenizer, table)
    labels = None
    if table.labels is not None and config.task == "regression":
        labels = np.asarray(table.labels, dtype=float)
    elif table.labels is not None:
        unknown = sorted(set(table.labels) - set(config.class_names))
        if unknown:
            raise InputError(
                f"{path}: labels {unknown} are not classes of the model "
                f"({', '.join(config.class_names)})"
            )
        labels = np.asarray([config.class_names.index(label) for label in table.labels])
    return table.ids, inputs, labels


def predict_file(
    model_dirs: Sequence[str | os.PathLike[str]],
    input_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    per_model_path: str | os.PathLike[str] | None = None,
    batch_size: int = 128,
    invalid: InvalidPolicy = "error",
    table_format: Mapping[str, Any] | None = None,
    metrics_path: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Predict every sequence of a FASTA file (or table) with the mean over ``model_dirs``.

    Needs only the model directories (their config.json holds the encoding, classes and label
    scaler) and the file. Writes id and ``prob_<class>`` + ``predicted_class`` (classification)
    or ``prediction`` in label units (regression); optionally each model's rows, and metrics
    when the table has labels.
    """
    loaded = load_ensemble(model_dirs)
    config = loaded[0][1]
    ids, inputs, labels = read_prediction_input(
        input_path, config, f"{model_dirs[0]}/config.json", table_format, invalid
    )
    mean, each = ensemble_predictions(loaded, inputs, batch_size)
    ensemble = prediction_table(ids, mean, config)
    if per_model_path is not None:
        frames = []
        for path, predictions in zip(model_dirs, each, strict=True):
            frame = prediction_table(ids, predictions, config)
            frame.insert(1, "model", str(path))
            frames.append(frame)
        with atomic_path(per_model_path) as tmp:
            pd.concat(frames, ignore_index=True).to_csv(tmp, index=False)
    if metrics_path is not None:
        metrics = task_metrics(config, labels, mean) if labels is not None else {}
        write_text_atomic(metrics_path, json.dumps({"n": len(ids), **metrics}, indent=1) + "\n")
    with atomic_path(out_path) as tmp:
        ensemble.to_csv(tmp, index=False)
    log.info("predicted %d sequences of %s with %d model(s)", len(ids), input_path, len(loaded))
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
