"""CNN baseline: shapes, padding invariance, save → load round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nucflow.errors import InputError
from nucflow.models import build_model
from nucflow.models.files import ModelConfig, load_model, save_model
from nucflow.predict import class_probabilities
from nucflow.tokenize import PAD_ID, build_tokenizer

HPARAMS = {
    "vocab_size": 69,
    "n_classes": 3,
    "pad_id": PAD_ID,
    "embedding_dim": 8,
    "channels": 16,
    "kernel_size": 5,
    "n_layers": 2,
    "dropout": 0.1,
    "hidden_cls_layers": [8],
}


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("cnn", **HPARAMS).eval()


def test_forward_shape():
    tokens = torch.randint(5, 69, (4, 50))
    assert _model()(tokens).shape == (4, 3)


def test_padding_does_not_change_prediction():
    model = _model()
    tokens = torch.randint(5, 69, (1, 30))
    padded = torch.cat([tokens, torch.full((1, 40), PAD_ID)], dim=1)
    torch.testing.assert_close(model(tokens), model(padded))


def test_unknown_architecture():
    with pytest.raises(InputError, match="unknown model 'transformer'"):
        build_model("transformer")


def _config(tokenizer) -> ModelConfig:
    return ModelConfig("cnn", HPARAMS, tokenizer.to_spec(), "classification", ["x", "y", "z"])


def test_save_load_gives_identical_predictions(tmp_path):
    tokenizer = build_tokenizer("kmer", k=3, context_length=40, keep="five_prime")
    model = _model()
    rng = np.random.default_rng(0)
    tokens = tokenizer.encode(["".join(rng.choice(list("ACGT"), 90)) for _ in range(6)])
    save_model(tmp_path / "m", model, _config(tokenizer))
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert files == ["config.json", "model.safetensors"]
    loaded, config = load_model(tmp_path / "m")
    assert config.class_names == ["x", "y", "z"] and config.tokenizer == tokenizer.to_spec()
    np.testing.assert_array_equal(
        class_probabilities(model, tokens, 4), class_probabilities(loaded, tokens, 4)
    )


def test_load_errors(tmp_path):
    with pytest.raises(InputError, match="missing config.json"):
        load_model(tmp_path)
    tokenizer = build_tokenizer("nuc", k=1, context_length=10, keep="five_prime")
    save_model(tmp_path / "m", _model(), _config(tokenizer))
    config_path = tmp_path / "m" / "config.json"
    spec = json.loads(config_path.read_text())
    spec["hyperparameters"]["channels"] = 32
    config_path.write_text(json.dumps(spec))
    with pytest.raises(InputError, match="weights do not fit the recorded architecture"):
        load_model(tmp_path / "m")
