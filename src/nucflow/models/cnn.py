"""Convolutional baseline classifier over token ids."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nucflow.models.heads import classification_head


class CNNClassifier(nn.Module):
    """Token embedding → ``n_layers`` × (conv, ReLU, batch norm, dropout) → mean + max → head.

    Padding positions (``pad_id``) are zeroed after every block and excluded from the pooled
    mean and maximum, so a sequence's prediction does not depend on how much padding follows it.
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

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Pooled features (batch, 2·channels): masked mean and max over the sequence."""
        padding = (tokens == self.pad_id).unsqueeze(1)
        hidden = self.embedding(tokens).transpose(1, 2)
        for block in self.blocks:  # padded positions stay zero, as if the sequence ended there
            hidden = block(hidden).masked_fill(padding, 0.0)
        lengths = (~padding).sum(dim=2).clamp(min=1)
        mean = hidden.sum(dim=2) / lengths
        peak = hidden.masked_fill(padding, torch.finfo(hidden.dtype).min).amax(dim=2)
        return torch.cat([mean, peak], dim=1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Class logits of shape (batch, n_classes) for token ids of shape (batch, length)."""
        return self.head(self.embed(tokens))
