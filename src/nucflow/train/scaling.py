"""Regression label scaling, fitted on a fold's training labels and stored as JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from nucflow.errors import InputError

SCALINGS = ("log", "minmax", "standard", "none")


@dataclass(frozen=True)
class LabelScaler:
    """``scaled = (f(y) − shift) / scale`` with f = log for ``log`` scaling, else identity."""

    method: str = "none"
    shift: float = 0.0
    scale: float = 1.0

    def transform(self, labels: np.ndarray) -> np.ndarray:
        """Labels in label units → the scaled values the model is trained on."""
        values = np.log(labels) if self.method == "log" else np.asarray(labels, dtype=float)
        return (values - self.shift) / self.scale

    def inverse(self, scaled: np.ndarray) -> np.ndarray:
        """Model outputs → label units."""
        values = np.asarray(scaled, dtype=float) * self.scale + self.shift
        return np.exp(values) if self.method == "log" else values

    def to_dict(self) -> dict[str, Any]:
        """JSON form, stored in a model's config.json."""
        return asdict(self)


def fit_scaler(method: str, labels: np.ndarray, source: str = "training labels") -> LabelScaler:
    """Fit ``method`` (log, minmax, standard or none) on ``labels`` (a fold's training part)."""
    labels = np.asarray(labels, dtype=float)
    if method not in SCALINGS:
        raise InputError(f"unknown scaling {method!r} (expected one of: {', '.join(SCALINGS)})")
    if method == "log":
        bad = labels[labels <= 0]
        if bad.size:
            raise InputError(
                f"{source}: log scaling needs labels > 0, but {bad.size} are ≤ 0 (smallest "
                f"{bad.min():g}); use scaling: standard, minmax or none"
            )
        return LabelScaler("log")
    if method == "minmax":
        low, high = float(labels.min()), float(labels.max())
        return LabelScaler("minmax", low, (high - low) or 1.0)
    if method == "standard":
        return LabelScaler("standard", float(labels.mean()), float(labels.std()) or 1.0)
    return LabelScaler()
