"""Convolutional baseline classifier over token ids."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import nn

from nucflow.models.heads import classification_head
from nucflow.models.local import LocalLayer, run_local_layers, same_padding


class CNNClassifier(nn.Module):
    """Token embedding → ``n_layers`` × (conv, ReLU, batch norm, dropout) → mean + max → head.

    Rows are right-padded with ``pad_id``; positions after a row's last token are zeroed after
    every block and excluded from the pooled mean and maximum, so a sequence's prediction does
    not depend on how much padding follows it. The blocks are position-local layers
    (:mod:`nucflow.models.local`), which incremental LOO reuses.
    """

    def __init__(
        self,
        vocab_size: int,
        n_classes: int,
        pad_id: int,
        embedding_dim: int = 32,
        channels: int = 64,
        kernel_size: int = 9,
        n_layers: int = 3,
        encoder_dropout: float = 0.1,
        dropout: float = 0.1,
        hidden_cls_layers: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(
                    embedding_dim if i == 0 else channels, channels, kernel_size, padding="same"
                ),
                nn.ReLU(),
                nn.BatchNorm1d(channels),
                nn.Dropout(encoder_dropout),
            )
            for i in range(n_layers)
        )
        self.head = classification_head(2 * channels, n_classes, hidden_cls_layers, dropout)

    def position_encoding(self, tokens: torch.Tensor) -> torch.Tensor:
        """Per-position input of the convolutions: embeddings (batch, embedding_dim, length)."""
        return self.embedding(tokens).transpose(1, 2)

    def row_lengths(self, tokens: torch.Tensor) -> torch.Tensor:
        """Per row, the position after its last non-PAD token (rows are right-padded)."""
        positions = torch.arange(1, tokens.shape[1] + 1, device=tokens.device)
        return torch.where(tokens != self.pad_id, positions, 0).amax(dim=1)

    def input_width(self, lengths: torch.Tensor) -> int:
        """Positions rows of these ``lengths`` need: the longest (more PAD changes nothing)."""
        return max(int(lengths.max()), 1)

    def fit_width(self, tokens: torch.Tensor, width: int) -> torch.Tensor:
        """``tokens`` cropped or PAD-padded on the right to ``width`` positions."""
        if tokens.shape[1] >= width:
            return tokens[:, :width]
        return nn.functional.pad(tokens, (0, width - tokens.shape[1]), value=self.pad_id)

    def _valid_block(self, block: nn.Sequential, hidden: torch.Tensor) -> torch.Tensor:
        """One block without the convolution's own padding (the caller pads or crops)."""
        conv = block[0]
        hidden = nn.functional.conv1d(hidden, conv.weight, conv.bias)
        for layer in block[1:]:
            hidden = layer(hidden)
        return hidden

    def local_layers(self) -> list[LocalLayer]:
        """The blocks as position-local layers ("same" padding, padding zeroed after each)."""
        return [
            LocalLayer(
                partial(self._valid_block, block),
                kernel=block[0].kernel_size[0],
                padding=same_padding(block[0].kernel_size[0]),
                masked=True,
            )
            for block in self.blocks
        ]

    def nonlocal_outputs(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits from the last block's output: masked mean and max over each row, then head."""
        return self.head(self._pool(hidden, lengths))

    def _pool(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Masked mean and max over the first ``lengths`` positions: (batch, 2·channels)."""
        padding = torch.arange(hidden.shape[2], device=hidden.device) >= lengths.unsqueeze(1)
        mean = hidden.sum(dim=2) / lengths.clamp(min=1).unsqueeze(1)
        peak = hidden.masked_fill(padding.unsqueeze(1), torch.finfo(hidden.dtype).min)
        return torch.cat([mean, peak.amax(dim=2)], dim=1)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Pooled features (batch, 2·channels): masked mean and max over the sequence."""
        lengths = self.row_lengths(tokens)
        hidden = self.position_encoding(tokens)
        return self._pool(run_local_layers(self.local_layers(), hidden, lengths)[-1], lengths)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Class logits of shape (batch, n_classes) for token ids of shape (batch, length)."""
        return self.head(self.embed(tokens))
