"""Predictions of one sequence's edited rows by a model ensemble, reference or fast.

``reference``: every edited row is run through the whole model in batches. ``fast``: models
built from position-local layers (cnn, saluki) use :class:`IncrementalForward`; others
(attention models) run batched like the reference but skip rows identical to the original
(their prediction is the original's) and use bf16 autocast on a GPU. Predictions are in label
units (regression, after inverse scaling) or class probabilities, averaged over the ensemble.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from nucflow.interpret.incremental import IncrementalForward, supports_incremental
from nucflow.models.files import ModelConfig, model_inputs
from nucflow.predict import outputs_to_predictions

LOO_METHODS: tuple[str, ...] = ("fast", "reference")
"""How edited rows are predicted."""


class _Member:
    """One model of the ensemble, on ``device``, with its output conversion."""

    def __init__(self, model: nn.Module, config: ModelConfig, device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.config = config
        self.incremental = supports_incremental(model)
        self.engine: IncrementalForward | None = None
        self.base: torch.Tensor | None = None  # raw outputs of the current original row

    def convert(self, raw: torch.Tensor) -> np.ndarray:
        """Raw outputs → label units (n,) or class probabilities (n, classes)."""
        return outputs_to_predictions(raw.float().cpu().numpy(), self.config)


class EnsembleScorer:
    """Predictions of an original row and its edited rows (see the module docstring)."""

    def __init__(
        self,
        models: Sequence[tuple[nn.Module, ModelConfig]],
        method: str = "fast",
        device: torch.device | None = None,
    ) -> None:
        if method not in LOO_METHODS:
            raise ValueError(f"unknown LOO method {method!r} (expected {LOO_METHODS})")
        self.device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.members = [_Member(model, config, self.device) for model, config in models]
        self.method = method
        self.original: torch.Tensor | None = None

    def _autocast(self, member: _Member) -> torch.autocast:
        """bf16 autocast for fast scoring of non-incremental models on a GPU (else off)."""
        enabled = self.method == "fast" and not member.incremental and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def _whole(self, member: _Member, rows: torch.Tensor) -> torch.Tensor:
        """Raw outputs of whole rows, in the precision this member is scored in."""
        with self._autocast(member):
            return member.model(rows).float()

    @torch.inference_mode()
    def start(self, original: np.ndarray) -> np.ndarray:
        """Prediction of one sequence's encoded row; later :meth:`score` calls edit it."""
        self.original = model_inputs(original[None]).to(self.device)
        for member in self.members:
            member.engine = None
            member.base = self._whole(member, self.original)
        return self._mean([member.convert(member.base) for member in self.members])[0]

    @torch.inference_mode()
    def score(self, rows: np.ndarray) -> np.ndarray:
        """Predictions of edited rows (n, …) of the row given to :meth:`start`."""
        assert self.original is not None, "start() first"
        edited = model_inputs(rows).to(self.device)
        return self._mean([self._member_outputs(member, edited) for member in self.members])

    def _member_outputs(self, member: _Member, edited: torch.Tensor) -> np.ndarray:
        if self.method == "reference":
            return member.convert(self._whole(member, edited))
        if member.incremental:
            return member.convert(self._incremental(member, edited))
        unchanged = (edited == self.original).reshape(len(edited), -1).all(dim=1)
        out = member.base.expand(len(edited), -1).clone()
        if not bool(unchanged.all()):
            out[~unchanged] = self._whole(member, edited[~unchanged])
        return member.convert(out)

    def _incremental(self, member: _Member, edited: torch.Tensor) -> torch.Tensor:
        """Raw outputs of ``edited`` through the member's incremental engine."""
        model = member.model
        lengths = model.row_lengths(torch.cat([self.original, edited]))
        width = model.input_width(lengths)
        if member.engine is None or member.engine.width < width:
            member.engine = IncrementalForward(model, model.fit_width(self.original, width))
        return member.engine(model.fit_width(edited, member.engine.width))

    @staticmethod
    def _mean(predictions: list[np.ndarray]) -> np.ndarray:
        return predictions[0] if len(predictions) == 1 else np.mean(predictions, axis=0)
