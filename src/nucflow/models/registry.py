"""Model registry: architecture name → constructor."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from torch import nn

from nucflow.errors import InputError
from nucflow.models.bert import BertClassifier, BertMaskedLM
from nucflow.models.cnn import CNNClassifier
from nucflow.models.dcnn import DCNN
from nucflow.models.saluki import SalukiModel
from nucflow.models.signal import AttentionCnnLstm, CnnLstm, SignalEncoder, SignalResNet

ARCHITECTURES: Mapping[str, type[nn.Module]] = MappingProxyType(
    {
        "cnn": CNNClassifier,
        "bert": BertClassifier,
        "bert_mlm": BertMaskedLM,
        "saluki": SalukiModel,
        "cnn_lstm": CnnLstm,
        "attention_cnn_lstm": AttentionCnnLstm,
        "encoder": SignalEncoder,
        "resnet": SignalResNet,
        "dcnn": DCNN,
    }
)


def build_model(name: str, **hyperparameters: Any) -> nn.Module:
    """Instantiate the architecture registered as ``name`` with ``hyperparameters``."""
    try:
        architecture = ARCHITECTURES[name]
    except KeyError:
        raise InputError(
            f"unknown model '{name}' (expected one of: {', '.join(sorted(ARCHITECTURES))})"
        ) from None
    return architecture(**hyperparameters)
