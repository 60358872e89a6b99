"""Classification heads shared by every architecture."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def classification_head(
    in_features: int, n_classes: int, hidden_layers: Sequence[int] = (), dropout: float = 0.0
) -> nn.Sequential:
    """Dropout → [Linear → ReLU → Dropout] per hidden width → Linear to ``n_classes`` logits."""
    layers: list[nn.Module] = [nn.Dropout(dropout)]
    width = in_features
    for hidden in hidden_layers:
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
        width = hidden
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)
