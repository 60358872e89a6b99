"""Convolutional baseline classifier over token ids."""

from __future__ import annotations

import torch
from torch import nn


class CNNClassifier(nn.Module):
    """Token embedding → ``n_layers`` × (conv, ReLU, batch norm, dropout) → masked max → linear.

    Padding positions (``pad_id``) are excluded from the pooled maximum, so a sequence's
    prediction does not depend on how much padding follows it.
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
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        blocks: list[nn.Module] = []
        width = embedding_dim
        for _ in range(n_layers):
            blocks += [
                nn.Conv1d(width, channels, kernel_size, padding="same"),
                nn.ReLU(),
                nn.BatchNorm1d(channels),
                nn.Dropout(dropout),
            ]
            width = channels
        self.tower = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, n_classes))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Class logits of shape (batch, n_classes) for token ids of shape (batch, length)."""
        padding = tokens == self.pad_id
        hidden = self.tower(self.embedding(tokens).transpose(1, 2))
        hidden = hidden.masked_fill(padding.unsqueeze(1), torch.finfo(hidden.dtype).min)
        return self.head(hidden.amax(dim=2))
