"""Keras' layer defaults, shared by the ports of Keras models (Capfinder, maxATAC, Saluki).

Batch norm keeps Keras' epsilon 1e-3 but PyTorch's running-statistics momentum 0.1 (Keras
0.99 ≙ 0.01): with 0.01 the statistics need hundreds of steps to settle, so on small runs the
evaluation-mode network (validation, model selection, prediction) used statistics near their
initial values.
"""

from __future__ import annotations

from torch import nn

BATCH_NORM_EPS = 1e-3
"""Keras' BatchNormalization epsilon."""
BATCH_NORM_MOMENTUM = 0.1
"""PyTorch's default momentum of batch norm's running statistics (see the module docstring)."""


def batch_norm(features: int) -> nn.BatchNorm1d:
    """BatchNorm1d with Keras' epsilon and PyTorch's momentum."""
    return nn.BatchNorm1d(features, eps=BATCH_NORM_EPS, momentum=BATCH_NORM_MOMENTUM)


def glorot_init(module: nn.Module) -> None:
    """Keras initialisation of every layer below ``module``: Glorot-uniform Conv/Linear
    kernels with zero bias; LSTMs with Glorot input weights, orthogonal recurrent weights and
    a unit forget-gate bias."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv1d | nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.LSTM):
            hidden = layer.hidden_size
            for name, parameter in layer.named_parameters():
                if name.startswith("weight_ih"):
                    nn.init.xavier_uniform_(parameter)
                elif name.startswith("weight_hh"):
                    nn.init.orthogonal_(parameter)
                elif name.startswith("bias"):
                    nn.init.zeros_(parameter)
                    if name.startswith("bias_ih"):  # gates i, f, g, o: the forget gate is 2nd
                        nn.init.ones_(parameter[hidden : 2 * hidden])
