"""Plots written as PNG files."""

from __future__ import annotations

import os

import pandas as pd
from matplotlib.figure import Figure

from nucflow.io.atomic import atomic_path


def plot_history(history: pd.DataFrame, monitor: str, path: str | os.PathLike[str]) -> None:
    """Loss curves and the monitored validation metric per epoch (with its training counterpart
    when logged, e.g. train_accuracy for val_accuracy), best epoch marked."""
    figure = Figure(figsize=(9, 3.5))
    loss_axis, metric_axis = figure.subplots(1, 2)
    for column in ("train_loss", "val_loss"):
        if column in history:
            loss_axis.plot(history["epoch"], history[column], marker="o", label=column)
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("cross-entropy")
    loss_axis.legend()
    train_metric = monitor.replace("val_", "train_", 1)
    if train_metric != monitor and train_metric in history:
        metric_axis.plot(history["epoch"], history[train_metric], marker="o", label=train_metric)
    if monitor in history:
        metric_axis.plot(
            history["epoch"], history[monitor], marker="o", color="tab:green", label=monitor
        )
        best = history[history["best"]]
        metric_axis.scatter(
            best["epoch"],
            best[monitor],
            s=120,
            facecolors="none",
            edgecolors="black",
            label="kept epoch",
        )
        metric_axis.legend()
    metric_axis.set_xlabel("epoch")
    metric_axis.set_ylabel(monitor)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)


def plot_scatter(labels: pd.Series, predictions: pd.Series, path: str | os.PathLike[str]) -> None:
    """Prediction against label (label units) with the identity line and Pearson r."""
    figure = Figure(figsize=(4.5, 4.5))
    axis = figure.subplots()
    axis.scatter(labels, predictions, s=8, alpha=0.6)
    low = float(min(labels.min(), predictions.min()))
    high = float(max(labels.max(), predictions.max()))
    axis.plot([low, high], [low, high], color="grey", linewidth=1, linestyle="--")
    axis.set_xlabel("label")
    axis.set_ylabel("prediction")
    axis.set_title(f"Pearson r = {labels.corr(predictions):.3f} (n = {len(labels)})")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
