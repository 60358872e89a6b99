"""Model directories: ``model.safetensors`` (weights) + ``config.json`` (everything else).

Loading needs nothing but the directory and never unpickles anything.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import nucflow
from nucflow.errors import InputError
from nucflow.io.atomic import atomic_dir
from nucflow.models.registry import build_model

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


@dataclass
class ModelConfig:
    """What a model directory records besides the weights."""

    architecture: str
    hyperparameters: dict[str, Any]
    tokenizer: dict[str, Any]
    task: str
    class_names: list[str]
    label_scaler: dict[str, Any] | None = None
    training: dict[str, Any] = field(default_factory=dict)
    nucflow_version: str = nucflow.__version__


def save_model(directory: str | os.PathLike[str], model: nn.Module, config: ModelConfig) -> None:
    """Write ``model`` and ``config`` to ``directory`` atomically (replacing an old one)."""
    with atomic_dir(directory) as tmp:
        state = {
            name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()
        }
        save_file(state, str(tmp / WEIGHTS), metadata={"format": "pt"})
        (tmp / CONFIG).write_text(json.dumps(asdict(config), indent=1) + "\n")


def read_model_config(directory: str | os.PathLike[str]) -> ModelConfig:
    """Read a model directory's ``config.json``."""
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise InputError(f"{directory}: not a model directory (missing {CONFIG})")
    try:
        return ModelConfig(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as err:
        raise InputError(f"{path}: not a nucflow model config ({err})") from err


def load_model(
    directory: str | os.PathLike[str], input_method: str | None = None
) -> tuple[nn.Module, ModelConfig]:
    """Rebuild the network recorded in ``directory`` and load its weights (eval mode, CPU).

    ``input_method`` (e.g. ``"signal"``, ``"tracks"``): the model must take that input (its
    config's encoding method); InputError otherwise.
    """
    config = read_model_config(directory)
    if input_method is not None and config.tokenizer.get("method") != input_method:
        raise InputError(
            f"{directory}: not a {input_method} model (input {config.tokenizer.get('method')})"
        )
    weights = Path(directory) / WEIGHTS
    if not weights.is_file():
        raise InputError(f"{directory}: not a model directory (missing {WEIGHTS})")
    model = build_model(config.architecture, **config.hyperparameters)
    try:
        model.load_state_dict(load_file(str(weights), device="cpu"))
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise InputError(
            f"{weights}: weights do not fit the recorded architecture ({first})"
        ) from err
    model.eval()
    return model, config


def model_inputs(array: np.ndarray) -> torch.Tensor:
    """Encoded inputs as the tensor type models take: int64 ids/codes or float32 atomic rows."""
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:  # e.g. a slice of a read-only memory map
        array = array.copy()
    tensor = torch.from_numpy(array)
    return tensor.float() if tensor.is_floating_point() else tensor.long()


def to_device(model: nn.Module) -> tuple[nn.Module, torch.device]:
    """Move ``model`` to the GPU when one is present, else keep it on the CPU."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device), device


def resolve_model_dir(name_or_path: str | os.PathLike[str]) -> Path:
    """A local model directory, or a Hugging Face Hub id (``owner/name``) downloaded first.

    The download needs the optional ``huggingface_hub`` package and a network connection; a
    missing local directory that is not a Hub id is an :class:`InputError`.
    """
    path = Path(name_or_path)
    if path.exists():
        if not (path / CONFIG).is_file():
            raise InputError(f"{path}: not a model directory (missing {CONFIG})")
        return path
    text = str(name_or_path)
    if text.count("/") != 1 or text.startswith((".", "/")):
        raise InputError(f"{path}: pretrained model directory not found")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise InputError(
            f"{text}: not a local directory; downloading it from the Hugging Face Hub needs "
            "the huggingface_hub package (pip install huggingface_hub)"
        ) from None
    try:
        return Path(snapshot_download(repo_id=text, allow_patterns=[CONFIG, WEIGHTS]))
    except Exception as error:  # network, authentication or missing repository
        raise InputError(
            f"{text}: could not download from the Hugging Face Hub ({error})"
        ) from error
