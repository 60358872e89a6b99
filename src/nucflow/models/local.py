"""Position-local layer stacks: the part of a convolutional model that incremental LOO reuses.

A convolutional model (:class:`~nucflow.models.cnn.CNNClassifier`,
:class:`~nucflow.models.saluki.SalukiModel`) is written as three pieces:

1. ``position_encoding(x) -> (B, C, L)``: a per-position map of the input (one-hot, embedding);
2. ``local_layers() -> list[LocalLayer]``: layers in which output position ``j`` depends only on
   input positions ``j·stride − left … j·stride − left + kernel − 1`` (convolutions, pools,
   pointwise maps);
3. ``nonlocal_outputs(hidden, lengths) -> (B, n_outputs)``: the rest (pooling over the whole
   sequence, GRU, dense layers).

``forward`` runs exactly these pieces through :func:`run_local_layers`, so an incremental
computation that reuses the unedited sequence's activations outside an edit's receptive field
(:mod:`nucflow.interpret.incremental`) computes the same function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LocalLayer:
    """One position-local layer; ``apply`` computes it without padding ("valid").

    ``padding`` is the zero padding (left, right) the full computation adds ("same"
    convolutions); ``masked`` layers zero every position at or after the row's length
    (stride 1 only), as models do for padded batches.
    """

    apply: Callable[[torch.Tensor], torch.Tensor]
    kernel: int = 1
    stride: int = 1
    padding: tuple[int, int] = (0, 0)
    masked: bool = False

    def output_length(self, length: int) -> int:
        """Output positions for ``length`` input positions (floor, as PyTorch's layers)."""
        padded = length + self.padding[0] + self.padding[1]
        return max((padded - self.kernel) // self.stride + 1, 0)


def same_padding(kernel: int) -> tuple[int, int]:
    """(left, right) zero padding of PyTorch's ``padding="same"`` for stride 1."""
    left = (kernel - 1) // 2
    return left, kernel - 1 - left


def mask_from(
    hidden: torch.Tensor, lengths: torch.Tensor, first: torch.Tensor | int = 0
) -> torch.Tensor:
    """``hidden`` (B, C, W) with positions ``first + i ≥ lengths`` set to zero."""
    positions = torch.arange(hidden.shape[2], device=hidden.device) + torch.as_tensor(
        first, device=hidden.device
    ).reshape(-1, 1)
    keep = positions < lengths.reshape(-1, 1)
    return hidden * keep.unsqueeze(1).to(hidden.dtype)


def run_local_layers(
    layers: list[LocalLayer], hidden: torch.Tensor, lengths: torch.Tensor
) -> list[torch.Tensor]:
    """Every layer's full output for ``hidden`` (B, C, L); ``lengths`` are the rows' lengths."""
    outputs = []
    for layer in layers:
        if layer.padding != (0, 0):
            hidden = F.pad(hidden, layer.padding)
        hidden = layer.apply(hidden)
        if layer.masked:
            hidden = mask_from(hidden, lengths)
        outputs.append(hidden)
    return outputs
