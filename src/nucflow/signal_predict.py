"""Evaluate a signal classifier on the ETL's parts and classify new signal CSVs."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix, log_loss

from nucflow.data.signal_etl import load_etl, read_signals_for_prediction
from nucflow.io.atomic import atomic_path, write_text_atomic
from nucflow.models.files import ModelConfig, load_model
from nucflow.predict import model_predictions, task_metrics

log = logging.getLogger(__name__)


def signal_table(
    ids: Sequence[str], probabilities: np.ndarray, class_names: Sequence[str]
) -> pd.DataFrame:
    """read_id, predicted class name, its probability, then the probability of each class."""
    names = np.asarray(class_names, dtype=object)
    frame = pd.DataFrame(
        {
            "read_id": list(ids),
            "predicted_class": names[probabilities.argmax(axis=1)],
            "probability": probabilities.max(axis=1),
        }
    )
    for i, name in enumerate(class_names):
        frame[f"prob_{name}"] = probabilities[:, i]
    return frame


def labelled_metrics(
    config: ModelConfig, labels: np.ndarray, probabilities: np.ndarray
) -> dict[str, Any]:
    """Accuracy, macro metrics, AUROC, cross-entropy, per-class report and confusion matrix."""
    classes = list(range(len(config.class_names)))
    return {
        "n": len(labels),
        "loss": float(log_loss(labels, probabilities, labels=classes)),
        **task_metrics(config, labels, probabilities),
        "confusion": confusion_matrix(
            labels, probabilities.argmax(axis=1), labels=classes
        ).tolist(),
    }


def write_confusion(
    matrix: Sequence[Sequence[int]],
    class_names: Sequence[str],
    csv_path: str | os.PathLike[str],
    png_path: str | os.PathLike[str],
    title: str,
) -> None:
    """Confusion matrix as CSV (rows: true class, columns: predicted) and as a PNG."""
    frame = pd.DataFrame(matrix, index=list(class_names), columns=list(class_names))
    frame.index.name = "true \\ predicted"
    with atomic_path(csv_path) as tmp:
        frame.to_csv(tmp)
    figure = Figure(figsize=(1.2 * len(class_names) + 2.5, 1.1 * len(class_names) + 2))
    axis = figure.subplots()
    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=list(class_names)).plot(
        ax=axis, cmap="Blues", colorbar=False
    )
    axis.set_title(title)
    figure.tight_layout()
    with atomic_path(png_path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)


def evaluate_signal_model(
    model_dir: str | os.PathLike[str],
    etl_dir: str | os.PathLike[str],
    metrics_path: str | os.PathLike[str],
    per_class_path: str | os.PathLike[str],
    predictions_path: str | os.PathLike[str],
    confusion: Mapping[str, Mapping[str, str | os.PathLike[str]]],
    batch_size: int = 256,
) -> dict[str, Any]:
    """Score the final model on the held-out test part (and the train part).

    Writes metrics.json (test and train: accuracy, cross-entropy, macro precision / recall /
    F1, AUROC, per class), per_class.csv (test), test_predictions.csv and, for each part in
    ``confusion`` (``{"test": {"csv": …, "png": …}, "train": …}``), its confusion matrix.
    """
    model, config = load_model(model_dir, "signal")
    _, parts = load_etl(etl_dir)
    metrics: dict[str, Any] = {}
    for name in ("test", "train"):
        part = parts[name]
        probabilities = model_predictions(model, config, part.x, batch_size)
        metrics[name] = labelled_metrics(config, part.y, probabilities)
        if name == "test":
            table = signal_table(part.ids, probabilities, config.class_names)
            table.insert(1, "label", np.asarray(config.class_names, dtype=object)[part.y])
            with atomic_path(predictions_path) as tmp:
                table.to_csv(tmp, index=False)
        if name in confusion:
            write_confusion(
                metrics[name]["confusion"],
                config.class_names,
                confusion[name]["csv"],
                confusion[name]["png"],
                f"{name} (n = {len(part.y)}, accuracy {metrics[name]['accuracy']:.3f})",
            )
    per_class = pd.DataFrame(metrics["test"]["per_class"]).T.rename_axis("class").reset_index()
    with atomic_path(per_class_path) as tmp:
        per_class.to_csv(tmp, index=False)
    write_text_atomic(metrics_path, json.dumps(metrics, indent=1) + "\n")
    log.info(
        "test: accuracy %.3f, macro-F1 %.3f, loss %.4f (n = %d); train accuracy %.3f",
        metrics["test"]["accuracy"],
        metrics["test"]["macro_f1"],
        metrics["test"]["loss"],
        metrics["test"]["n"],
        metrics["train"]["accuracy"],
    )
    return metrics


def predict_signal_file(
    model_dir: str | os.PathLike[str],
    input_paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_path: str | os.PathLike[str],
    metrics_path: str | os.PathLike[str] | None = None,
    *,
    unknown_label: int = -99,
    batch_size: int = 128,
) -> pd.DataFrame:
    """Classify the reads of signal CSVs (files or directories) with a trained model.

    The model records its classes (``cap_class`` label → name); a read labelled
    ``unknown_label`` is only predicted, any other label must be one of the model's. Writes a
    CSV of read_id, predicted class, its probability and every class's probability;
    ``metrics_path`` gets metrics over the reads whose label is known.
    """
    model, config = load_model(model_dir, "signal")
    classes = dict(zip(config.tokenizer["class_labels"], config.class_names, strict=True))
    classes[unknown_label] = "unknown"
    paths = [input_paths] if isinstance(input_paths, str | os.PathLike) else list(input_paths)
    ids, signals, labels = read_signals_for_prediction(
        paths,
        target_length=config.tokenizer["target_length"],
        class_names=classes,
        unknown_label=unknown_label,
    )
    probabilities = model_predictions(model, config, signals, batch_size)
    table = signal_table(ids, probabilities, config.class_names)
    with atomic_path(out_path) as tmp:
        table.to_csv(tmp, index=False)
    known = labels >= 0
    metrics: dict[str, Any] = {"n_reads": len(ids), "n_labelled": int(known.sum())}
    if known.any():
        metrics.update(labelled_metrics(config, labels[known], probabilities[known]))
    if metrics_path is not None:
        write_text_atomic(metrics_path, json.dumps(metrics, indent=1) + "\n")
    counts = table["predicted_class"].value_counts()
    log.info(
        "%d reads classified: %s%s",
        len(ids),
        ", ".join(f"{name} {counts.get(name, 0)}" for name in config.class_names),
        f"; accuracy on {metrics['n_labelled']} labelled {metrics['accuracy']:.3f}"
        if known.any()
        else "",
    )
    return table
