"""From config sections (``model``, ``encoding``) and a tokenizer spec to model hyperparameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nucflow.errors import InputError
from nucflow.tokenize import PAD_ID

ENCODER_KEYS = (
    "input",
    "vocab_size",
    "kernel_size",
    "n_kernels",
    "input_relu",
    "input_linear",
    "context_length",
    "d_model",
    "N",
    "d_ff",
    "h",
    "dropout",
    "attention",
)
"""Hyperparameters that define a BERT encoder (shared by the MLM and the classifier)."""


def encoder_hyperparameters(
    model: Mapping[str, Any], encoding: Mapping[str, Any], tokenizer_spec: Mapping[str, Any]
) -> dict[str, Any]:
    """Hyperparameters of a BERT encoder: its size and its input (token ids or CSE codes)."""
    settings: dict[str, Any] = {
        "context_length": tokenizer_spec["context_length"],
        "d_model": model["d_model"],
        "N": model["N"],
        "d_ff": model["d_ff"],
        "h": model["h"],
        "dropout": model["encoder_dropout"],
    }
    if tokenizer_spec["method"] == "cse":
        settings.update(
            input="cse",
            kernel_size=tokenizer_spec["kernel_size"],
            n_kernels=encoding["n_kernels"],
            input_relu=encoding["input_relu"],
            input_linear=encoding["input_linear"],
        )
    else:
        settings.update(input="tokens", vocab_size=tokenizer_spec["vocab_size"])
    return settings


def classifier_hyperparameters(
    model: Mapping[str, Any],
    encoding: Mapping[str, Any],
    tokenizer_spec: Mapping[str, Any],
    n_classes: int,
) -> tuple[str, dict[str, Any]]:
    """Registry name and hyperparameters of the network the config describes.

    ``n_classes`` is the number of outputs (1 for regression).
    """
    if model["name"] == "saluki":
        if tokenizer_spec["method"] != "atomic":
            raise InputError("model saluki needs encoding.method atomic")
        return "saluki", {
            "n_atoms": len(tokenizer_spec["atoms"]),
            "n_specifiers": tokenizer_spec["n_specifiers"],
            "n_outputs": n_classes,
            **model["saluki"],
        }
    head = {"n_classes": n_classes, "hidden_cls_layers": list(model["hidden_cls_layers"])}
    if model["name"] == "cnn":
        if tokenizer_spec["method"] == "cse":
            raise InputError(
                "model cnn needs a token encoding (nuc, kmer or bpe); cse works with model bert"
            )
        return "cnn", {
            "vocab_size": tokenizer_spec["vocab_size"],
            "pad_id": PAD_ID,
            "embedding_dim": model["embedding_dim"],
            "channels": model["channels"],
            "kernel_size": model["kernel_size"],
            "n_layers": model["n_layers"],
            "encoder_dropout": model["encoder_dropout"],
            "dropout": model["dropout"],
            **head,
        }
    return "bert", {
        **encoder_hyperparameters(model, encoding, tokenizer_spec),
        "head_dropout": model["dropout"],
        "pooling": "cls",
        **head,
    }
