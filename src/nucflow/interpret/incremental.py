"""Incremental forward passes for edited copies of one sequence (fast LOO for conv towers).

For a model made of position-local layers (:mod:`nucflow.models.local`), an edit confined to
input positions ``a … b`` changes, in each layer, only the outputs whose receptive field
contains part of it. :class:`IncrementalForward` runs the unedited sequence once and keeps every
layer's input; for a batch of edited copies it then computes, layer by layer, only a window that
covers each copy's changed positions, reading the unchanged neighbours from the kept
activations, and finally runs the non-local remainder (pooling, GRU, dense layers) on the
reference's last activations with each copy's window put in.

What that saves depends on the edit. ``mask`` and ``replace`` change one position, so every
layer recomputes a window of about ``kernel`` positions (wider after pooling), independent of
the sequence length. ``remove`` shifts everything after the deletion, so the window runs from
the deletion to the end of the row: only the part upstream of the deletion is reused (on
average half of the convolutions). Copies identical to the original are not computed at all.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from nucflow.models.local import LocalLayer, mask_from


class IncrementalModel(Protocol):
    """What a model provides to be run incrementally (see :mod:`nucflow.models.local`)."""

    def row_lengths(self, x: torch.Tensor) -> torch.Tensor: ...
    def input_width(self, lengths: torch.Tensor) -> int: ...
    def fit_width(self, x: torch.Tensor, width: int) -> torch.Tensor: ...
    def position_encoding(self, x: torch.Tensor) -> torch.Tensor: ...
    def local_layers(self) -> list[LocalLayer]: ...
    def nonlocal_outputs(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor: ...


_METHODS = (
    "row_lengths",
    "input_width",
    "fit_width",
    "position_encoding",
    "local_layers",
    "nonlocal_outputs",
)


def supports_incremental(model: nn.Module) -> bool:
    """Whether ``model`` is built from position-local layers (:class:`IncrementalModel`)."""
    return all(callable(getattr(model, name, None)) for name in _METHODS)


def _window_gather(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values`` (n, C, W) at positions ``index`` (n, w) of each row: (n, C, w)."""
    return values.gather(2, index.unsqueeze(1).expand(-1, values.shape[1], -1))


def _overlay(
    reference: torch.Tensor,
    first: torch.Tensor,
    span: int,
    start: torch.Tensor,
    width: int,
    values: torch.Tensor,
) -> torch.Tensor:
    """Per row ``i``, positions ``first[i] … first[i] + span − 1`` of ``reference`` (1, C, W)
    with positions ``start[i] … start[i] + width − 1`` taken from ``values[i]`` (n, C, width)
    instead (all positions in ``reference``'s coordinates). Returns (n, C, span)."""
    n = len(values)
    if bool((first == first[0]).all()) and bool((start == start[0]).all()):
        # one window for every row (remove mode, or a single edit): slices, no gathers
        a, b = int(first[0]), int(start[0])
        window = reference[:, :, a : a + span].expand(n, -1, -1).clone()
        lo, hi = max(b, a), min(b + width, a + span)
        if lo < hi:
            window[:, :, lo - a : hi - a] = values[:, :, lo - b : hi - b]
        return window
    positions = first.unsqueeze(1) + torch.arange(span, device=first.device)
    relative = positions - start.unsqueeze(1)
    inside = (relative >= 0) & (relative < width)
    base = reference[0].T[positions].transpose(1, 2)
    return torch.where(
        inside.unsqueeze(1), _window_gather(values, relative.clamp(0, width - 1)), base
    )


class IncrementalForward:
    """Raw model outputs of edited copies of one sequence, reusing its activations.

    ``original`` is one encoded row ``(1, W, …)``; :meth:`__call__` takes edited rows of the
    same shape and returns ``(n, n_outputs)`` exactly as ``model(edited)`` would, up to float
    rounding. Construction runs the original through every layer once.
    """

    @torch.inference_mode()
    def __init__(self, model: IncrementalModel, original: torch.Tensor) -> None:
        self.model = model
        self.original = original
        self.width = original.shape[1]
        self.layers = model.local_layers()
        self.length = model.row_lengths(original)
        hidden = model.position_encoding(original)
        self.inputs: list[torch.Tensor] = []  # each layer's padded input
        for layer in self.layers:
            padded = nn.functional.pad(hidden, layer.padding)
            self.inputs.append(padded)
            hidden = layer.apply(padded)
            if layer.masked:
                hidden = mask_from(hidden, self.length)
        self.last = hidden
        self.output = model.nonlocal_outputs(hidden, self.length)

    @torch.inference_mode()
    def __call__(self, edited: torch.Tensor) -> torch.Tensor:
        """Raw outputs ``(n, n_outputs)`` for edited rows ``(n, W, …)``."""
        n = edited.shape[0]
        if edited.shape[1:] != self.original.shape[1:]:
            raise ValueError(
                f"edited rows {tuple(edited.shape)} do not match the original "
                f"{tuple(self.original.shape)}"
            )
        differs = (edited != self.original).reshape(n, self.width, -1).any(dim=2)
        changed = differs.any(dim=1)
        outputs = self.output.expand(n, -1).clone()
        if not bool(changed.any()):
            return outputs
        rows, differs = edited[changed], differs[changed]
        first = differs.int().argmax(dim=1)
        stop = self.width - differs.flip(1).int().argmax(dim=1)
        width = int((stop - first).max())
        start = first.clamp(max=self.width - width)
        lengths = self.model.row_lengths(rows)
        offsets = torch.arange(width, device=rows.device)
        index = (start.unsqueeze(1) + offsets).view(*start.shape, width, *[1] * (rows.dim() - 2))
        values = self.model.position_encoding(rows.gather(1, index.expand(-1, -1, *rows.shape[2:])))
        for layer, padded in zip(self.layers, self.inputs, strict=True):
            start, width, values = self._layer(layer, padded, start, width, values, lengths)
        steps = self.last.shape[2]
        hidden = _overlay(self.last, torch.zeros_like(start), steps, start, width, values)
        outputs[changed] = self.model.nonlocal_outputs(hidden, lengths)
        return outputs

    @staticmethod
    def _layer(
        layer: LocalLayer,
        padded: torch.Tensor,
        start: torch.Tensor,
        width: int,
        values: torch.Tensor,
        lengths: torch.Tensor,
    ) -> tuple[torch.Tensor, int, torch.Tensor]:
        """One layer on the windows: new (start, width, values) of its changed outputs."""
        left, right = layer.padding
        length_in = padded.shape[2] - left - right
        length_out = layer.output_length(length_in)
        kernel, stride = layer.kernel, layer.stride
        new_width = min((width + kernel - 2) // stride + 1, length_out)
        # first output whose receptive field reaches the window: ceil((start + left − k + 1) / s)
        first = -torch.div(kernel - 1 - left - start, stride, rounding_mode="floor")
        new_start = first.clamp(min=0, max=length_out - new_width)
        span = (new_width - 1) * stride + kernel
        window = _overlay(padded, new_start * stride, span, start + left, width, values)
        values = layer.apply(window)
        if layer.masked:
            values = mask_from(values, lengths, new_start)
        return new_start, new_width, values
