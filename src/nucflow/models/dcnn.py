"""maxATAC's DCNN_V2: dilated 1-D convolutions from a (1024, 5) ACGT+ATAC window to 32 bins.

The layer stack follows the published Keras configs layer by layer (reference §5):
``len(dilations)`` blocks of 2 × [Conv1d(kernel 7, dilation d, "same") → ReLU → BatchNorm]
→ MaxPool(2); filters start at 15 and grow by 1.5 per block, each rounded half to even from
the previous one (15, 22, 33, 50, 75); then a 1×1 convolution to one channel, flattened to
one value per bin. Kernels are Glorot-uniform and biases zero, as in Keras.

Deliberate differences from the Keras model:

- ``forward`` returns **raw outputs**: logits for ``output="sigmoid"``, log-rates for
  ``output="exp"`` (Poisson), the values themselves for ``output="linear"``. The output
  activation is applied by :meth:`DCNN.predictions` / :func:`raw_to_predictions`, so the
  losses can work on logits / log-rates (numerically stable, bf16-autocast safe).
- BatchNorm keeps Keras' ε = 1e-3 but uses PyTorch's momentum 0.1 (Keras' momentum 0.99 is
  PyTorch 0.01): with short trainings (a few hundred steps) running statistics updated at
  0.01 per step would not settle and evaluation-mode outputs would lag the weights. Momentum
  only affects training; published Keras statistics load unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nucflow.errors import InputError
from nucflow.models.keras_defaults import batch_norm, glorot_init

OUTPUTS = ("sigmoid", "linear", "exp")


def block_filters(filters: int, filter_scale: float, n_blocks: int) -> list[int]:
    """Filters per block, each the previous one × ``filter_scale`` rounded half to even (as
    maxATAC): 15, 22, 33, 50, 75 (not round(15 · 1.5^i), which gives 34, 51, 76)."""
    widths = [int(filters)]
    for _ in range(n_blocks - 1):
        widths.append(round(widths[-1] * filter_scale))
    return widths


def raw_to_predictions(raw: torch.Tensor, output: str) -> torch.Tensor:
    """Model-space predictions from raw outputs: sigmoid (binary probabilities), exp (Poisson
    rates) or identity (linear)."""
    if output == "sigmoid":
        return torch.sigmoid(raw)
    if output == "exp":
        return torch.exp(raw)
    if output == "linear":
        return raw
    raise InputError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")


class DCNN(nn.Module):
    """maxATAC DCNN_V2 on channels-last windows (batch, window, channels) → (batch, bins).

    ``dense=True`` is maxATAC's ``--dense`` variant: the 1×1 convolution uses ReLU and a
    Linear(bins → bins) follows the flatten. ``output`` names the output activation that
    :meth:`predictions` applies; ``forward`` always returns the raw values before it.
    """

    def __init__(
        self,
        input_channels: int = 5,
        window: int = 1024,
        bins: int = 32,
        filters: int = 15,
        filter_scale: float = 1.5,
        kernel_size: int = 7,
        dilations: Sequence[int] = (1, 1, 2, 4, 8),
        dense: bool = False,
        output: str = "sigmoid",
    ) -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise InputError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise InputError(f"kernel_size must be odd and ≥ 1, got {kernel_size}")
        dilations = [int(d) for d in dilations]
        if not dilations or min(dilations) < 1:
            raise InputError(f"dilations must be ≥ 1 (one per block), got {dilations}")
        if window != bins * 2 ** len(dilations):
            raise InputError(
                f"window ({window}) must equal bins ({bins}) × 2^blocks ({len(dilations)} "
                "blocks, one per dilation)"
            )
        self.input_channels = input_channels
        self.window = window
        self.bins = bins
        self.kernel_size = kernel_size
        self.dilations = dilations
        self.output = output
        layers: list[nn.Module] = []
        channels = input_channels
        for width, dilation in zip(
            block_filters(filters, filter_scale, len(dilations)), dilations, strict=True
        ):
            for _ in range(2):
                layers += [
                    nn.Conv1d(
                        channels,
                        width,
                        kernel_size,
                        dilation=dilation,
                        padding=dilation * (kernel_size - 1) // 2,
                    ),
                    nn.ReLU(),
                    batch_norm(width),
                ]
                channels = width
            layers.append(nn.MaxPool1d(2, stride=2))
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv1d(channels, 1, kernel_size=1)
        self.dense = nn.Linear(bins, bins) if dense else None
        glorot_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw outputs (logits, log-rates or values) per bin, (batch, bins), from
        channels-last inputs (batch, window, channels)."""
        hidden = self.head(self.body(x.transpose(1, 2))).flatten(1)
        if self.dense is not None:
            hidden = self.dense(torch.relu(hidden))
        return hidden

    def predictions(self, x: torch.Tensor) -> torch.Tensor:
        """Per-bin predictions after the output activation (see :func:`raw_to_predictions`)."""
        return raw_to_predictions(self(x), self.output)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Per-bin binding probabilities of a binary (``output="sigmoid"``) model."""
        if self.output != "sigmoid":
            raise InputError(f"probabilities need a sigmoid (binary) model, not {self.output!r}")
        return torch.sigmoid(self(x))

    def receptive_field(self) -> int:
        """Input positions (bp) seen by one output bin: 2,084 for DCNN_V2, more than the
        1,024-bp window, so every bin sees the whole window."""
        span, stride = 1, 1
        for dilation in self.dilations:
            span += 2 * (self.kernel_size - 1) * dilation * stride  # two convolutions
            span += stride  # MaxPool(2, stride 2)
            stride *= 2
        return span
