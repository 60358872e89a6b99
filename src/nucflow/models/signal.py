"""Capfinder's raw-signal classifiers in PyTorch: CNN-LSTM, attention CNN-LSTM, encoder, ResNet.

Input convention shared by every model: ``forward(x)`` takes a float tensor ``(batch, T)``
(float32, or bf16 under autocast) of nanopore current samples in which NaN marks padding (no
signal). The first thing each model does is ``padding = isnan(x)`` and ``x = nan_to_num(x, 0)``,
so the convolutional models see zero padding exactly as Capfinder's (which pads with zeros) and
no model ever sees a NaN. The output is class logits ``(batch, n_classes)``; the softmax of the
original's last layer belongs to the loss (cross-entropy) and to prediction.

Every constructor takes ``target_length`` and ``n_classes`` plus hyperparameters that are plain
JSON values (ints, floats, lists of them), so a model directory's ``config.json`` rebuilds it.
Keras defaults are kept for parity: Glorot-uniform Conv/Linear kernels with zero bias,
BatchNorm epsilon 1e-3, LSTMs with Glorot input weights, orthogonal recurrent weights and a
unit forget-gate bias, MaxPool(2) with stride 2 ("valid") (:mod:`nucflow.models.keras_defaults`).
One deliberate exception: batch norm's running statistics use PyTorch's momentum 0.1; with
Keras' value the demo's evaluation-mode networks scored at chance while training accuracy rose.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nucflow.errors import InputError
from nucflow.models.keras_defaults import batch_norm, glorot_init

SIGNAL_ARCHITECTURES = ("cnn_lstm", "attention_cnn_lstm", "encoder", "resnet")
"""Registry names of the raw-signal architectures."""

LAYER_NORM_EPS = 1e-6
"""LayerNorm epsilon of Capfinder's encoder."""
POSITION_BASE = 10_000.0
"""Wavelength base of the encoder's sinusoidal positional encoding."""


# --------------------------------------------------------------------------- validation


def _int(owner: str, name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int ≥ ``minimum`` (bools refused), else an :class:`InputError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return value


def _rate(owner: str, name: str, value: Any) -> float:
    """``value`` as a dropout rate in [0, 1), else an :class:`InputError`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise InputError(f"{owner}: {name} must be a number in [0, 1), got {value!r}")
    return float(value)


def _ints(owner: str, name: str, values: Any, length: int | None = None) -> list[int]:
    """A non-empty list of positive ints (of ``length`` items when given)."""
    if not isinstance(values, Sequence) or isinstance(values, str) or not values:
        raise InputError(f"{owner}: {name} must be a non-empty list, got {values!r}")
    if length is not None and len(values) != length:
        raise InputError(f"{owner}: {name} must have {length} items, got {len(values)}")
    return [_int(owner, f"{name}[{i}]", value) for i, value in enumerate(values)]


def _rates(owner: str, name: str, values: Any, length: int) -> list[float]:
    """A list of ``length`` dropout rates."""
    if not isinstance(values, Sequence) or isinstance(values, str) or len(values) != length:
        raise InputError(f"{owner}: {name} must be a list of {length} rates, got {values!r}")
    return [_rate(owner, f"{name}[{i}]", value) for i, value in enumerate(values)]


# --------------------------------------------------------------------------- shared pieces


def _split_padding(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(signal, padding)``: NaN samples replaced by zeros, and where they were."""
    if x.dim() != 2:
        raise InputError(f"signal models take (batch, length) input, got shape {tuple(x.shape)}")
    padding = torch.isnan(x)
    return x.nan_to_num(0.0), padding


def _conv_block(
    in_channels: int, filters: int, kernel: int, dropout: float, pool: bool
) -> nn.Sequential:
    """Conv1d("same") → ReLU → [MaxPool(2)] → Dropout → BatchNorm (Capfinder's order)."""
    layers: list[nn.Module] = [nn.Conv1d(in_channels, filters, kernel, padding="same"), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool1d(2))
    layers += [nn.Dropout(dropout), batch_norm(filters)]
    return nn.Sequential(*layers)


class _LstmBlock(nn.Module):
    """LSTM → Dropout → BatchNorm over features; the sequence, or only the last state."""

    def __init__(self, in_features: int, units: int, dropout: float, sequences: bool) -> None:
        super().__init__()
        self.sequences = sequences
        self.lstm = nn.LSTM(in_features, units, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.norm = batch_norm(units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, steps, in) → (batch, steps, units), or (batch, units) for the last state."""
        output, _ = self.lstm(x)
        if not self.sequences:
            return self.norm(self.dropout(output[:, -1]))
        return self.norm(self.dropout(output).transpose(1, 2)).transpose(1, 2)


def _dense_head(
    in_features: int, units: Any, dropout: Any, n_classes: int, owner: str
) -> nn.Sequential:
    """Dense(units, relu) → Dropout → Linear(n_classes) logits (``dense_units``, ``dense_dropout``
    checked)."""
    units = _int(owner, "dense_units", units)
    dropout = _rate(owner, "dense_dropout", dropout)
    return nn.Sequential(
        nn.Linear(in_features, units), nn.ReLU(), nn.Dropout(dropout), nn.Linear(units, n_classes)
    )


# --------------------------------------------------------------------------- CNN-LSTM


def _conv_lstm_layers(
    owner: str,
    conv_filters: Sequence[int],
    kernel_sizes: Sequence[int],
    conv_dropouts: Sequence[float],
    lstm_units: Sequence[int],
    lstm_dropouts: Sequence[float],
) -> tuple[list[int], list[int], list[float], list[int], list[float]]:
    """Checked layer settings of the two CNN-LSTM families (lists of equal lengths)."""
    filters = _ints(owner, "conv_filters", conv_filters)
    units = _ints(owner, "lstm_units", lstm_units)
    return (
        filters,
        _ints(owner, "kernel_sizes", kernel_sizes, len(filters)),
        _rates(owner, "conv_dropouts", conv_dropouts, len(filters)),
        units,
        _rates(owner, "lstm_dropouts", lstm_dropouts, len(units)),
    )


class CnnLstm(nn.Module):
    """Capfinder's ``cnn_lstm`` (its default and shipped model type), ported faithfully.

    ``len(conv_filters)`` × [Conv1d(filters_i, kernel_i, "same") → ReLU → MaxPool(2) →
    Dropout(conv_dropouts_i) → BatchNorm] → ``len(lstm_units)`` × [LSTM → Dropout →
    BatchNorm], all but the last returning sequences and the last its final state →
    Dense(dense_units, relu) → Dropout(dense_dropout) → Linear(n_classes).

    Like the original, the network reads zero padding as signal (Capfinder pads symmetrically,
    so the LSTM's last step is the sequence's last step, after the right padding). Fixes:
    NaN-marked padding is zeroed inside the model, the model serialises (JSON hyperparameters
    plus safetensors) and the input length is checked against the pooling depth.
    """

    def __init__(
        self,
        target_length: int,
        n_classes: int,
        conv_filters: Sequence[int] = (32, 64),
        kernel_sizes: Sequence[int] = (5, 5),
        conv_dropouts: Sequence[float] = (0.2, 0.2),
        lstm_units: Sequence[int] = (64,),
        lstm_dropouts: Sequence[float] = (0.2,),
        dense_units: int = 64,
        dense_dropout: float = 0.2,
    ) -> None:
        super().__init__()
        owner = "cnn_lstm"
        self.target_length = _int(owner, "target_length", target_length)
        n_classes = _int(owner, "n_classes", n_classes)
        filters, kernels, conv_rates, units, lstm_rates = _conv_lstm_layers(
            owner, conv_filters, kernel_sizes, conv_dropouts, lstm_units, lstm_dropouts
        )
        self.min_length = 2 ** len(filters)
        if self.target_length < self.min_length:
            raise InputError(
                f"{owner}: {len(filters)} pooling layers need target_length >= "
                f"{self.min_length}, got {self.target_length}"
            )
        channels = [1, *filters]
        self.convs = nn.Sequential(
            *(
                _conv_block(channels[i], filters[i], kernels[i], conv_rates[i], pool=True)
                for i in range(len(filters))
            )
        )
        widths = [filters[-1], *units]
        self.lstms = nn.Sequential(
            *(
                _LstmBlock(widths[i], units[i], lstm_rates[i], sequences=i < len(units) - 1)
                for i in range(len(units))
            )
        )
        self.head = _dense_head(units[-1], dense_units, dense_dropout, n_classes, owner)
        glorot_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (batch, n_classes) for NaN-padded signal (batch, T)."""
        signal, _ = _split_padding(x)
        if signal.shape[1] < self.min_length:
            raise InputError(
                f"cnn_lstm: input length {signal.shape[1]} is shorter than the "
                f"{self.min_length} samples its pooling layers need"
            )
        hidden = self.convs(signal.unsqueeze(1))  # (batch, filters, steps)
        return self.head(self.lstms(hidden.transpose(1, 2)))


# --------------------------------------------------------------------------- attention CNN-LSTM


class AttentionPooling(nn.Module):
    """Capfinder's attention pooling with a scalar bias: ``e_t = tanh(h_t·W + b)``,
    ``a = softmax_t(e)`` over real steps only, output ``Σ_t a_t h_t``.

    The original's bias had one entry per time step, which tied the model to one input length;
    here ``b`` is a scalar, so any length works. Steps marked as padding get zero weight (a row
    that is padding throughout weights all its steps equally instead of producing NaN).
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(features))
        self.bias = nn.Parameter(torch.zeros(()))
        nn.init.normal_(self.weight, 0.0, 0.05)

    def weights(self, hidden: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        """Attention weights (batch, steps), float32, zero on padded steps, summing to 1."""
        scores = torch.tanh(hidden @ self.weight.to(hidden.dtype) + self.bias.to(hidden.dtype))
        ignore = padding & ~padding.all(dim=1, keepdim=True)
        return torch.softmax(scores.float().masked_fill(ignore, float("-inf")), dim=1)

    def forward(self, hidden: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        """Weighted sum of ``hidden`` (batch, steps, features) over steps: (batch, features)."""
        weights = self.weights(hidden, padding)
        return torch.einsum("bt,btf->bf", weights.to(hidden.dtype), hidden)


class AttentionCnnLstm(nn.Module):
    """Capfinder's ``attention_cnn_lstm`` with its defects fixed.

    ``len(conv_filters)`` × [Conv1d("same") → ReLU → MaxPool(2) only while the current length is
    > 2 → Dropout → BatchNorm] → ``len(lstm_units)`` × [LSTM → Dropout → BatchNorm], every one
    returning sequences → :class:`AttentionPooling` → Dense(dense_units, relu) → Dropout →
    Linear(n_classes).

    Fixes: the attention bias is a scalar instead of one per time step (so any input length
    works and the model is not tied to ``target_length``); the attention is masked, with the
    NaN padding mask downsampled through the pools (a pooled step is padding when all its
    inputs were), so padding steps get no weight; the custom layer serialises (the original's
    saved model could not be reloaded). The convolutions and LSTMs still read zero padding, as
    in the original.
    """

    def __init__(
        self,
        target_length: int,
        n_classes: int,
        conv_filters: Sequence[int] = (32, 64),
        kernel_sizes: Sequence[int] = (5, 5),
        conv_dropouts: Sequence[float] = (0.2, 0.2),
        lstm_units: Sequence[int] = (64,),
        lstm_dropouts: Sequence[float] = (0.2,),
        dense_units: int = 64,
        dense_dropout: float = 0.2,
    ) -> None:
        super().__init__()
        owner = "attention_cnn_lstm"
        self.target_length = _int(owner, "target_length", target_length)
        n_classes = _int(owner, "n_classes", n_classes)
        filters, kernels, conv_rates, units, lstm_rates = _conv_lstm_layers(
            owner, conv_filters, kernel_sizes, conv_dropouts, lstm_units, lstm_dropouts
        )
        channels = [1, *filters]
        # Pooling is decided per input length in forward (pool while length > 2), so the
        # blocks hold no pool; the rule matches the original's static one at target_length.
        self.convs = nn.ModuleList(
            _conv_block(channels[i], filters[i], kernels[i], conv_rates[i], pool=False)
            for i in range(len(filters))
        )
        widths = [filters[-1], *units]
        self.lstms = nn.Sequential(
            *(
                _LstmBlock(widths[i], units[i], lstm_rates[i], sequences=True)
                for i in range(len(units))
            )
        )
        self.attention = AttentionPooling(units[-1])
        self.head = _dense_head(units[-1], dense_units, dense_dropout, n_classes, owner)
        glorot_init(self)  # leaves the attention's own N(0, 0.05) initialisation alone

    def sequence(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """LSTM outputs (batch, steps, units) and the downsampled padding mask (batch, steps)."""
        signal, padding = _split_padding(x)
        hidden = signal.unsqueeze(1)
        real = (~padding).unsqueeze(1).float()
        for block in self.convs:
            conv, relu, *rest = block
            hidden = relu(conv(hidden))
            if hidden.shape[2] > 2:
                hidden = F.max_pool1d(hidden, 2)
                real = F.max_pool1d(real, 2)  # a pooled step is real if any input was
            for layer in rest:
                hidden = layer(hidden)
        return self.lstms(hidden.transpose(1, 2)), real.squeeze(1) == 0

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention pooling's weights (batch, steps) for NaN-padded signal (batch, T)."""
        hidden, padding = self.sequence(x)
        return self.attention.weights(hidden, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (batch, n_classes) for NaN-padded signal (batch, T)."""
        hidden, padding = self.sequence(x)
        return self.head(self.attention(hidden, padding))


# --------------------------------------------------------------------------- encoder


def sinusoidal_positions(positions: torch.Tensor, width: int) -> torch.Tensor:
    """Sinusoidal encodings (…, width) of integer ``positions`` (…): sines then cosines."""
    half = (width + 1) // 2
    frequencies = torch.exp(
        torch.arange(half, device=positions.device, dtype=torch.float32)
        * (-math.log(POSITION_BASE) / half)
    )
    angles = positions.to(torch.float32).unsqueeze(-1) * frequencies
    return torch.cat([angles.sin(), angles.cos()], dim=-1)[..., :width]


class _SelfAttention(nn.Module):
    """Multi-head self-attention with Keras' ``key_dim``: ``num_heads`` heads of ``head_size``
    (inner width num_heads·head_size, independent of ``d_model``), via scaled_dot_product_attention.
    """

    def __init__(self, d_model: int, num_heads: int, head_size: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_size = head_size
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, 3 * num_heads * head_size)
        self.out = nn.Linear(num_heads * head_size, d_model)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        """Self-attention over (batch, length, d_model); ``padding`` (True = ignore) keys only."""
        batch, length, _ = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.num_heads, self.head_size)
        query, key, value = qkv.permute(2, 0, 3, 1, 4)  # each (batch, heads, length, head)
        # scaled_dot_product_attention's boolean mask means True = attend: the complement of
        # the padding mask (the original's mask had exactly this polarity inverted).
        attend = (~padding)[:, None, None, :]
        mixed = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attend, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(mixed.transpose(1, 2).reshape(batch, length, -1))


class _EncoderBlock(nn.Module):
    """Post-norm transformer block: attention → Dropout → +x → LayerNorm → FFN → +· → LayerNorm."""

    def __init__(
        self, d_model: int, num_heads: int, head_size: int, ff_dim: int, dropout: float
    ) -> None:
        super().__init__()
        self.attention = _SelfAttention(d_model, num_heads, head_size, dropout)
        self.dropout = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, ff_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff_dim, d_model)
        )
        self.norm2 = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        """(batch, length, d_model) → same; padded positions are zeroed on output."""
        x = self.norm1(x + self.dropout(self.attention(x, padding)))
        x = self.norm2(x + self.ffn(x))
        return x.masked_fill(padding.unsqueeze(-1), 0.0)


class SignalEncoder(nn.Module):
    """Capfinder's ``encoder`` (transformer) rebuilt so that it can learn.

    Linear(1 → d_model) input projection + sinusoidal positional encoding →
    ``num_transformer_blocks`` × post-norm blocks [self-attention (num_heads heads of
    head_size, dropout) → Dropout → residual → LayerNorm(1e-6) → Linear(ff_dim) → ReLU →
    Dropout → Linear(d_model) → residual → LayerNorm(1e-6)], padded positions zeroed after each
    → mean over real positions → ``len(mlp_units)`` × [Linear → ReLU → Dropout(mlp_dropout)] →
    Linear(n_classes).

    Fixes: the original attended over the raw 1-channel signal with no input projection and
    no positional encoding, and its padding mask was inverted (so two blocks zeroed every
    output). Here the padding mask has the correct polarity (padded keys are ignored), pooling
    averages real positions only, and positions count from each row's first real sample, so
    a row's output does not depend on how much padding surrounds it. ``d_model`` is a separate
    hyperparameter (the original's model width was 1); ``head_size`` keeps Keras' meaning
    (per-head key/value width), so the attention's inner width is num_heads·head_size.
    Sinusoidal positions tie the model to no input length. A row with no real sample at all
    pools to zeros.
    """

    def __init__(
        self,
        target_length: int,
        n_classes: int,
        d_model: int = 64,
        num_heads: int = 4,
        head_size: int = 32,
        ff_dim: int = 128,
        num_transformer_blocks: int = 2,
        dropout: float = 0.1,
        mlp_units: Sequence[int] = (64,),
        mlp_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        owner = "encoder"
        self.target_length = _int(owner, "target_length", target_length)
        n_classes = _int(owner, "n_classes", n_classes)
        self.d_model = _int(owner, "d_model", d_model)
        num_heads = _int(owner, "num_heads", num_heads)
        head_size = _int(owner, "head_size", head_size)
        ff_dim = _int(owner, "ff_dim", ff_dim)
        rate = _rate(owner, "dropout", dropout)
        units = _ints(owner, "mlp_units", mlp_units)
        mlp_rate = _rate(owner, "mlp_dropout", mlp_dropout)
        self.input_projection = nn.Linear(1, self.d_model)
        self.blocks = nn.ModuleList(
            _EncoderBlock(self.d_model, num_heads, head_size, ff_dim, rate)
            for _ in range(_int(owner, "num_transformer_blocks", num_transformer_blocks))
        )
        layers: list[nn.Module] = []
        width = self.d_model
        for hidden in units:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(mlp_rate)]
            width = hidden
        layers.append(nn.Linear(width, n_classes))
        self.head = nn.Sequential(*layers)
        glorot_init(self)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (batch, d_model): the mean of the last block over real positions."""
        signal, padding = _split_padding(x)
        empty = padding.all(dim=1, keepdim=True)
        # Rows without any real sample attend over everything (their output is zeroed anyway)
        # instead of a softmax over nothing, which would be NaN.
        attention_padding = padding & ~empty
        first = (~padding).to(torch.int64).argmax(dim=1, keepdim=True)
        positions = (torch.arange(signal.shape[1], device=x.device) - first).clamp(min=0)
        hidden = self.input_projection(signal.unsqueeze(-1))
        hidden = hidden + sinusoidal_positions(positions, self.d_model).to(hidden.dtype)
        hidden = hidden.masked_fill(padding.unsqueeze(-1), 0.0)
        for block in self.blocks:
            hidden = block(hidden, attention_padding).masked_fill(padding.unsqueeze(-1), 0.0)
        counts = (~padding).sum(dim=1, keepdim=True).clamp(min=1)
        return hidden.float().sum(dim=1) / counts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (batch, n_classes) for NaN-padded signal (batch, T)."""
        return self.head(self.embed(x))


# --------------------------------------------------------------------------- ResNet


class _ResidualBlock(nn.Module):
    """Conv(k, stride) → BN → ReLU → Conv(k) → BN, plus Conv1x1(stride) → BN; add; ReLU."""

    def __init__(self, in_channels: int, filters: int, kernel: int, stride: int) -> None:
        super().__init__()
        # Odd kernels with padding k // 2 give Keras' "same" lengths, ceil(L / stride).
        self.conv1 = nn.Conv1d(in_channels, filters, kernel, stride=stride, padding=kernel // 2)
        self.norm1 = batch_norm(filters)
        self.conv2 = nn.Conv1d(filters, filters, kernel, padding=kernel // 2)
        self.norm2 = batch_norm(filters)
        self.shortcut = nn.Sequential(
            nn.Conv1d(in_channels, filters, 1, stride=stride), batch_norm(filters)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, in_channels, L) → (batch, filters, ceil(L / stride))."""
        hidden = self.norm2(self.conv2(F.relu(self.norm1(self.conv1(x)))))
        return F.relu(hidden + self.shortcut(x))


class SignalResNet(nn.Module):
    """Capfinder's ``resnet``, serialisable.

    Stem Conv1d(1, initial_filters, initial_kernel, "same", linear) → BN → ReLU →
    MaxPool(3, stride 2, padding 1) → stages: stage ``s`` has ``len(kernels[s])`` residual
    blocks of ``filters_per_stage[s]`` filters, block ``b`` with kernel ``kernels[s][b]`` and
    stride 2 on block 0 of every stage after the first; a block is Conv(k, stride) → BN → ReLU
    → Conv(k) → BN plus a projection shortcut Conv1x1(stride) → BN, added, ReLU → global
    average pooling → Linear(dense_units) → ReLU → Dropout → Linear(n_classes).

    Fixes: the residual block is an ordinary module, so the model saves and reloads (the
    original's custom block was not registered and could not be reloaded), and output lengths
    follow the strides (the original's shape method ignored them). Kernels must be odd (the
    search space only draws 3, 5 or 7) so that "same" padding is symmetric. As in the original,
    zero padding is read as signal and pooled over.
    """

    def __init__(
        self,
        target_length: int,
        n_classes: int,
        initial_filters: int = 32,
        initial_kernel: int = 7,
        filters_per_stage: Sequence[int] = (64, 128),
        kernels: Sequence[Sequence[int]] = ((3, 3), (3, 3)),
        dense_units: int = 64,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        owner = "resnet"
        self.target_length = _int(owner, "target_length", target_length)
        n_classes = _int(owner, "n_classes", n_classes)
        initial_filters = _int(owner, "initial_filters", initial_filters)
        initial_kernel = _int(owner, "initial_kernel", initial_kernel)
        dense_units = _int(owner, "dense_units", dense_units)
        dropout = _rate(owner, "dropout", dropout)
        filters = _ints(owner, "filters_per_stage", filters_per_stage)
        if not isinstance(kernels, Sequence) or len(kernels) != len(filters):
            raise InputError(
                f"{owner}: kernels must be a list of {len(filters)} lists (one per stage), "
                f"got {kernels!r}"
            )
        stage_kernels = [_ints(owner, f"kernels[{s}]", k) for s, k in enumerate(kernels)]
        for s, stage in enumerate(stage_kernels):
            if any(k % 2 == 0 for k in stage):
                raise InputError(f"{owner}: kernels[{s}] must be odd, got {stage}")
        self.stem = nn.Sequential(
            nn.Conv1d(1, initial_filters, initial_kernel, padding="same"),
            batch_norm(initial_filters),
            nn.ReLU(),
            nn.MaxPool1d(3, stride=2, padding=1),
        )
        blocks: list[nn.Module] = []
        channels = initial_filters
        for s, (width, stage) in enumerate(zip(filters, stage_kernels, strict=True)):
            for b, kernel in enumerate(stage):
                stride = 2 if s > 0 and b == 0 else 1
                blocks.append(_ResidualBlock(channels, width, kernel, stride))
                channels = width
        self.stages = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Linear(channels, dense_units),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(dense_units, n_classes),
        )
        glorot_init(self)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (batch, last stage's filters): global average over time."""
        signal, _ = _split_padding(x)
        return self.stages(self.stem(signal.unsqueeze(1))).mean(dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (batch, n_classes) for NaN-padded signal (batch, T)."""
        return self.head(self.embed(x))
