"""Classification and regression metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, precision_recall_fscore_support, roc_auc_score


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Accuracy, macro precision / recall / F1 and AUROC of ``probabilities`` (n, classes).

    AUROC is one-vs-rest macro for more than two classes and NaN when the labels hold a
    single class.
    """
    n_classes = probabilities.shape[1]
    predicted = probabilities.argmax(axis=1)
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predicted, labels=list(range(n_classes)), average="macro", zero_division=0
    )
    present = np.unique(labels)
    if len(present) < 2:
        auroc = math.nan
    elif n_classes == 2:
        auroc = roc_auc_score(labels, probabilities[:, 1])
    else:
        auroc = roc_auc_score(
            labels, probabilities, multi_class="ovr", average="macro", labels=list(range(n_classes))
        )
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "macro_precision": float(precision),
        "macro_recall": float(recall),
        "macro_f1": float(f1),
        "auroc": float(auroc),
    }


def per_class_report(
    labels: np.ndarray, probabilities: np.ndarray, class_names: list[str]
) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of each class."""
    predicted = probabilities.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=list(range(len(class_names))), zero_division=0
    )
    return {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    }


def regression_metrics(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """MSE, Pearson r and Spearman ρ (NaN for fewer than two values or a constant side)."""
    labels, predictions = pd.Series(labels, dtype=float), pd.Series(predictions, dtype=float)
    return {
        "mse": float(((labels - predictions) ** 2).mean()),
        "pearson_r": float(labels.corr(predictions, method="pearson")),
        "spearman_rho": float(labels.corr(predictions, method="spearman")),
    }


def rank_deltas(ids: np.ndarray, labels: np.ndarray, predictions: np.ndarray) -> pd.DataFrame:
    """Per sample: id, label, prediction, label_rank, pred_rank (1-based, ties averaged) and
    rank_delta = label_rank − pred_rank, sorted by label rank."""
    frame = pd.DataFrame({"id": ids, "label": labels, "prediction": predictions})
    frame["label_rank"] = frame["label"].rank(method="average")
    frame["pred_rank"] = frame["prediction"].rank(method="average")
    frame["rank_delta"] = frame["label_rank"] - frame["pred_rank"]
    return frame.sort_values("label_rank", kind="stable").reset_index(drop=True)
