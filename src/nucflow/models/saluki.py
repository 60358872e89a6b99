"""Saluki: the CNN-GRU of Agarwal & Kelley (2022) for mRNA half-life, on atomic-token input.

Input is the atomic tokenizer's float array ``(batch, length, 1 + n_specifiers)``: channel 0
holds the atom id (PAD = 0, UNK = 1, atoms 2 … n_atoms + 1), channels 1 … the specifier
floats (:mod:`nucflow.tokenize.atomic`). Rows are right-padded with PAD after their 3' end.

Architecture (the published Keras model, pre-norm as there, in PyTorch)::

    one-hot atoms + specifiers (B, C, L), C = n_atoms + n_specifiers
    Conv1d(C, 64, 5, no bias)                                   "valid": L - 4
    n_layers × [LayerNorm → ReLU → Conv1d(64, 64, 5) → Dropout → MaxPool1d(2)]
    LayerNorm → ReLU → GRU(64) read 3' → 5' from the last real step → last state
    BatchNorm1d → ReLU → Linear(64, 64) → Dropout → BatchNorm1d → ReLU      = embed(x)
    Linear(64, n_outputs)                                                    = forward(x)

At 12,288 positions the tower leaves 188 steps, as in the paper. Port choices where the
original is Keras-specific: LayerNorm eps 0.007 and BatchNorm eps 1e-3 with PyTorch momentum
0.1 (= Keras momentum 0.9), as in the original; PyTorch's default initialisation instead of
he_normal; the L2 kernel penalty belongs to the optimiser (:func:`saluki_preset`); one output
layer of ``n_outputs`` instead of one Dense(1) per species. As in the original (Keras
``go_backwards``), the GRU ends at the 5' end, so its last state is the one returned.

Padding. The convolutions and pools are unpadded ("valid"), so every tower output step depends
on a fixed window of input positions. A row's real length ``l`` is the position after its last
non-PAD token. The row is read as PAD-padded to the next length the tower divides exactly,
:meth:`SalukiModel.exact_length` ``(T) = 2^n_layers · (T + kernel_size - 1) ≥ l`` with
``T ≥ 1`` steps (12,288 → 188 steps), so that the floor of odd lengths in the pooling never
drops a real 3' position; that adds at most 63 PAD positions at the defaults, internally when
the input is shorter (a batch wider than that window is cropped to it: only PAD is cut). The
tower is written as position-local layers (:mod:`nucflow.models.local`), which incremental
LOO reuses. The GRU reads each row's ``T`` steps backwards from its last one (the
valid part is reversed, then packed), so padding appended after the 3' end never changes a
prediction. Sequences shorter than the receptive field are read as padded to
:meth:`SalukiModel.min_length` (320 positions at the defaults, one step).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from nucflow.errors import InputError
from nucflow.models.keras_defaults import batch_norm
from nucflow.models.local import LocalLayer, run_local_layers
from nucflow.tokenize.atomic import ATOMIC_PAD_ID, one_hot_atoms

LAYER_NORM_EPS = 0.007
"""LayerNorm epsilon of the original Keras model."""
POOL = 2
"""Max-pooling width and stride of each tower block."""


class _ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of a (batch, channels, length) tensor, per position."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class SalukiModel(nn.Module):
    """The Saluki CNN-GRU (module docstring); ``forward(x) -> (batch, n_outputs)``."""

    def __init__(
        self,
        n_atoms: int,
        n_specifiers: int = 0,
        n_outputs: int = 1,
        channels: int = 64,
        kernel_size: int = 5,
        n_layers: int = 6,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        for name, value, least in (
            ("n_atoms", n_atoms, 1),
            ("n_specifiers", n_specifiers, 0),
            ("n_outputs", n_outputs, 1),
            ("channels", channels, 1),
            ("kernel_size", kernel_size, 1),
            ("n_layers", n_layers, 0),
        ):
            if not isinstance(value, int) or value < least:
                raise InputError(
                    f"saluki model: {name} must be an integer >= {least}, got {value!r}"
                )
        if not 0.0 <= dropout < 1.0:
            raise InputError(f"saluki model: dropout must be in [0, 1), got {dropout!r}")
        self.n_atoms = n_atoms
        self.n_specifiers = n_specifiers
        self.kernel_size = kernel_size
        self.n_layers = n_layers
        self.entry = nn.Conv1d(n_atoms + n_specifiers, channels, kernel_size, bias=False)
        self.tower = nn.ModuleList(
            nn.Sequential(
                _ChannelLayerNorm(channels, eps=LAYER_NORM_EPS),
                nn.ReLU(),
                nn.Conv1d(channels, channels, kernel_size),
                nn.Dropout(dropout),
                nn.MaxPool1d(POOL),
            )
            for _ in range(n_layers)
        )
        self.pre_gru = nn.Sequential(_ChannelLayerNorm(channels, eps=LAYER_NORM_EPS), nn.ReLU())
        self.gru = nn.GRU(channels, channels, batch_first=True)
        self.dense = nn.Sequential(
            batch_norm(channels),
            nn.ReLU(),
            nn.Linear(channels, channels),
            nn.Dropout(dropout),
            batch_norm(channels),
            nn.ReLU(),
        )
        self.head = nn.Linear(channels, n_outputs)
        # Parameters at 6 input channels, 64 channels, kernel 5, 6 layers, 1 output: 155,521 =
        #   entry conv 6·64·5 (no bias)                               1,920  (paper 1,920)
        #   6 × block: LayerNorm 2·64 + conv 64·64·5 + 64   6 × 20,672 = 124,032  (paper 20,672)
        #   LayerNorm before the GRU 2·64                               128
        #   GRU 3·(64·64 + 64·64 + 64 + 64)                          24,960  (paper 24,960: Keras
        #                                                   reset_after has the same 2 biases)
        #   2 × BatchNorm γ, β 2·64                                     256  (Keras also counts
        #                                            moving mean / variance, here buffers)
        #   Linear(64, 64)                                            4,160  (paper 4,160)
        #   Linear(64, 1)                                                65  (paper: 65 per head)
        # The paper's "about 156k" is this plus the BatchNorm statistics (256) and the second
        # species head (65): 155,842.

    def exact_length(self, steps: int) -> int:
        """Input length the tower turns into exactly ``steps`` steps, no position dropped."""
        length = steps
        for _ in range(self.n_layers):
            length = POOL * length + self.kernel_size - 1
        return length + self.kernel_size - 1

    def min_length(self) -> int:
        """Fewest input positions for which the tower leaves one step (320 at the defaults)."""
        return self.exact_length(1)

    def tower_length(self, length: int) -> int:
        """Tower output steps for an input of ``length`` positions (floor pooling)."""
        length -= self.kernel_size - 1
        for _ in range(self.n_layers):
            length = (length - (self.kernel_size - 1)) // POOL
        return length

    def gru_steps(self, lengths: torch.Tensor) -> torch.Tensor:
        """Per row, the tower steps that cover all of its ``lengths`` real positions (≥ 1)."""
        base, stride = self.exact_length(0), POOL**self.n_layers
        return torch.div(lengths - base + stride - 1, stride, rounding_mode="floor").clamp(min=1)

    def _check_input(self, x: torch.Tensor) -> None:
        """InputError unless ``x`` is (batch, length, 1 + n_specifiers)."""
        if x.dim() != 3 or x.shape[2] != 1 + self.n_specifiers:
            raise InputError(
                f"saluki model: expected input (batch, length, {1 + self.n_specifiers}) "
                f"= atom id + {self.n_specifiers} specifier channel(s), got {tuple(x.shape)}"
            )

    def input_width(self, lengths: torch.Tensor) -> int:
        """Positions a batch with these real ``lengths`` is read in (PAD-padded or cropped)."""
        return self.exact_length(int(self.gru_steps(lengths).max()))

    def fit_width(self, x: torch.Tensor, width: int) -> torch.Tensor:
        """``x`` PAD-padded or cropped on the right to ``width`` positions."""
        if x.shape[1] >= width:
            return x[:, :width]
        return nn.functional.pad(x, (0, 0, 0, width - x.shape[1]))

    def row_lengths(self, x: torch.Tensor) -> torch.Tensor:
        """Per row, the position after the last non-PAD token (0 for an all-PAD row)."""
        self._check_input(x)
        positions = torch.arange(1, x.shape[1] + 1, device=x.device)
        return torch.where(x[..., 0] != ATOMIC_PAD_ID, positions, 0).amax(dim=1)

    def position_encoding(self, x: torch.Tensor) -> torch.Tensor:
        """One-hot atoms and specifiers per position: (batch, n_atoms + n_specifiers, length)."""
        return one_hot_atoms(x, self.n_atoms).transpose(1, 2)

    def local_layers(self) -> list[LocalLayer]:
        """Entry convolution, tower blocks (convolution part, then pooling), pre-GRU norm."""
        k = self.kernel_size
        layers = [LocalLayer(self.entry, kernel=k)]
        for block in self.tower:
            layers.append(LocalLayer(block[:4], kernel=k))
            layers.append(LocalLayer(block[4], kernel=POOL, stride=POOL))
        layers.append(LocalLayer(self.pre_gru))
        return layers

    def tower_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The GRU's input (batch, channels, steps) in 5' → 3' order, and each row's length."""
        lengths = self.row_lengths(x)
        x = self.fit_width(x, self.input_width(lengths))
        hidden = run_local_layers(self.local_layers(), self.position_encoding(x), lengths)[-1]
        return hidden, lengths

    def nonlocal_outputs(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Outputs from the tower's (batch, channels, steps) and the rows' real lengths."""
        return self.head(self._gru_dense(hidden, lengths))

    def _gru_dense(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """GRU (3' → 5' over each row's own steps) and the dense layers: (batch, channels)."""
        steps = self.gru_steps(lengths)
        hidden = hidden.transpose(1, 2)
        # Reverse each row's valid part, so that the GRU starts at its last real step (3')
        # and ends at the first (5'); packing stops it at each row's own end.
        offsets = torch.arange(hidden.shape[1], device=hidden.device)
        index = (steps.unsqueeze(1) - 1 - offsets).clamp(min=0)
        reverse = hidden.gather(1, index.unsqueeze(2).expand(-1, -1, hidden.shape[2]))
        packed = pack_padded_sequence(reverse, steps.cpu(), batch_first=True, enforce_sorted=False)
        _, last = self.gru(packed)
        return self.dense(last[-1])

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Shared trunk features (batch, channels): the input of the output layer."""
        return self._gru_dense(*self.tower_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs (batch, n_outputs): regression values or class logits."""
        return self.head(self.embed(x))


def random_shift(
    x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Saluki's training augmentation: shift each row 0 … ``max_shift`` positions to the 3' side.

    ``x`` is (batch, length, …). Row ``i`` moves right by its own random shift ``s_i``: its
    first ``s_i`` positions become zeros (PAD, specifiers 0) and its last ``s_i`` positions are
    dropped, like the original's one-sided stochastic shift. ``generator`` (on the CPU or on
    ``x``'s device) makes the shifts reproducible.
    """
    if max_shift < 0:
        raise ValueError(f"random_shift: max_shift must be >= 0, got {max_shift}")
    if max_shift == 0 or x.shape[1] == 0:
        return x
    device = generator.device if generator is not None else x.device
    shifts = torch.randint(0, max_shift + 1, (x.shape[0],), generator=generator, device=device)
    source = torch.arange(x.shape[1], device=x.device) - shifts.to(x.device).unsqueeze(1)
    trailing = [1] * (x.dim() - 2)
    keep = (source >= 0).view(*source.shape, *trailing)
    index = source.clamp(min=0).view(*source.shape, *trailing).expand_as(x)
    return torch.where(keep, x.gather(1, index), torch.zeros((), dtype=x.dtype, device=x.device))
