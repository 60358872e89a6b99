"""MLM pretraining: model directory and history, reproducibility, fixed validation masks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import experiment_defaults

from nucflow.data.encoded import EncodedSequences, save_encoded
from nucflow.data.splits import Split, save_split
from nucflow.errors import InputError
from nucflow.models.files import load_model
from nucflow.tokenize import build_tokenizer, save_tokenizer
from nucflow.tokenize.cse import CseEncoding
from nucflow.train.masking import IGNORE_INDEX
from nucflow.train.pretrain import mlm_hyperparameters, pretrain_model, validation_masks

EXPERIMENT = experiment_defaults(
    model={"name": "bert", "d_model": 16, "N": 1, "d_ff": 32, "h": 2, "encoder_dropout": 0.0},
    encoding={"method": "cse", "n_kernels": 12},
    pretrain={
        "epochs": 2,
        "n_samples_per_epoch": 64,
        "batch_size": 16,
        "warmup_steps": 8,
    },
)
MODEL, ENCODING, PRETRAIN = EXPERIMENT["model"], EXPERIMENT["encoding"], EXPERIMENT["pretrain"]
CONTEXT = 32


def _random_sequences(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), rng.integers(20, 90))) for _ in range(n)]


def _write_data(work, tokenizer, sequences: list[str], n_valid: int = 12) -> None:
    """Encoded .npz (unlabelled), tokenizer JSON and a train/valid split in ``work``."""
    ids = [f"s{i}" for i in range(len(sequences))]
    save_encoded(
        EncodedSequences(np.asarray(ids), tokenizer.encode(sequences), np.full(len(ids), -1), []),
        work / "enc.npz",
    )
    save_tokenizer(tokenizer, work / "tok.json")
    save_split(Split("pretrain", ids[n_valid:], ids[:n_valid], []), work / "split.json")


@pytest.fixture(scope="module")
def kmer_data(tmp_path_factory):
    work = tmp_path_factory.mktemp("pretrain_kmer")
    tokenizer = build_tokenizer("kmer", k=2, context_length=CONTEXT, keep="five_prime")
    _write_data(work, tokenizer, _random_sequences(48, 1))
    return work


@pytest.fixture(scope="module")
def cse_data(tmp_path_factory):
    work = tmp_path_factory.mktemp("pretrain_cse")
    _write_data(work, CseEncoding(3, CONTEXT, "five_prime"), _random_sequences(48, 2))
    return work


def _pretrain(work, name: str, encoding=ENCODING, seed: int = 5, **pretrain):
    summary = pretrain_model(
        work / "enc.npz",
        work / "tok.json",
        work / "split.json",
        work / name,
        work / f"{name}.csv",
        work / f"{name}.png",
        model_settings=MODEL,
        encoding=encoding,
        pretrain={**PRETRAIN, **pretrain},
        seed=seed,
    )
    return summary, pd.read_csv(work / f"{name}.csv")


def test_pretrain_writes_model_and_history(kmer_data):
    summary, history = _pretrain(kmer_data, "a")
    assert len(history) == 2
    for column in ("train_loss", "val_loss", "val_accuracy", "learning_rate", "best"):
        assert column in history
    best = history[history["best"]]
    assert len(best) == 1
    assert best["val_accuracy"].iloc[0] == history["val_accuracy"].max()
    assert summary["best_epoch"] == int(best["epoch"].iloc[0])
    assert (kmer_data / "a.png").stat().st_size > 0
    model, config = load_model(kmer_data / "a")
    assert config.architecture == "bert_mlm" and config.task == "mlm"
    assert config.class_names == []
    assert config.tokenizer["method"] == "kmer"
    assert config.hyperparameters["input"] == "tokens"
    tokens = torch.from_numpy(np.load(kmer_data / "enc.npz")["tokens"][:3]).long()
    assert model(tokens).shape == (3, CONTEXT, config.hyperparameters["vocab_size"])


def test_seeded_pretraining_is_reproducible(kmer_data):
    _, first = _pretrain(kmer_data, "r1")
    _, second = _pretrain(kmer_data, "r2")
    pd.testing.assert_frame_equal(first, second)
    assert (kmer_data / "r1" / "model.safetensors").read_bytes() == (
        kmer_data / "r2" / "model.safetensors"
    ).read_bytes()
    _, other = _pretrain(kmer_data, "r3", seed=6)
    assert not first["train_loss"].equals(other["train_loss"])


def test_validation_masks_are_fixed():
    rows = torch.from_numpy(
        build_tokenizer("nuc", k=1, context_length=64, keep="five_prime").encode(
            _random_sequences(40, 3)
        )
    )
    settings = {
        "encoding_method": "nuc",
        "vocab_size": 9,
        "p_mlm": 0.15,
        "p_mask": 0.8,
        "p_random": 0.1,
        "mask_size": 1,
        "kernel_size": None,
    }
    first = validation_masks(rows, seed=3, **settings)
    second = validation_masks(rows, seed=3, **settings)
    other = validation_masks(rows, seed=4, **settings)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[1], other[1])
    assert (first[1] != IGNORE_INDEX).any()


def test_validation_masks_cse_use_the_first_reading_frame():
    encoding = CseEncoding(3, 16, "five_prime")
    codes = torch.from_numpy(encoding.encode(_random_sequences(20, 4)))
    inputs, targets = validation_masks(
        codes,
        encoding_method="cse",
        vocab_size=6,
        p_mlm=0.15,
        p_mask=0.8,
        p_random=0.1,
        mask_size=1,
        kernel_size=3,
        seed=1,
    )
    assert inputs.shape == (20, 15 * 3) == targets.shape
    unmasked = targets == IGNORE_INDEX
    assert torch.equal(inputs[unmasked], codes[:, : 15 * 3][unmasked])


def test_validation_scores_identical_across_epochs_without_learning(kmer_data):
    """Learning rate 0: weights never change, so equal val_loss means equal masks."""
    _, history = _pretrain(kmer_data, "frozen", learning_rate=0.0, epochs=3)
    assert history["val_loss"].nunique() == 1
    assert history["val_accuracy"].nunique() == 1


def test_pretrain_learns_a_repeated_motif(tmp_path):
    """Each sequence repeats one base: a masked base is predictable from its neighbours."""
    rng = np.random.default_rng(0)
    sequences = [rng.choice(list("ACGT")) * int(n) for n in rng.integers(20, 40, 60)]
    tokenizer = build_tokenizer("nuc", k=1, context_length=CONTEXT, keep="five_prime")
    _write_data(tmp_path, tokenizer, sequences)
    _, history = _pretrain(
        tmp_path, "motif", epochs=4, n_samples_per_epoch=256, warmup_steps=20, learning_rate=0.3
    )
    # chance is about 1/4 (four bases)
    assert history["val_accuracy"].max() > 0.8
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]


def test_cse_pretraining(cse_data):
    summary, history = _pretrain(cse_data, "cse")
    assert len(history) == 2 and history["best"].sum() == 1
    model, config = load_model(cse_data / "cse")
    assert config.hyperparameters["input"] == "cse"
    assert config.hyperparameters["kernel_size"] == 3
    assert config.tokenizer["method"] == "cse"
    codes = torch.from_numpy(np.load(cse_data / "enc.npz")["tokens"][:2])
    assert model(codes).shape == (2, 4, (CONTEXT - 1) * 3)
    assert 0.0 <= summary["val_accuracy"] <= 1.0


def test_empty_validation_part_is_an_input_error(tmp_path):
    tokenizer = build_tokenizer("nuc", k=1, context_length=CONTEXT, keep="five_prime")
    _write_data(tmp_path, tokenizer, _random_sequences(10, 5), n_valid=0)
    with pytest.raises(InputError, match="split.json"):
        _pretrain(tmp_path, "empty")


def test_hyperparameters_from_the_config_sections():
    """Encoder from `model` + `encoding` (as for the classifier), head from `pretrain`."""
    model = {**MODEL, "encoder_dropout": 0.2, "dropout": 0.5, "hidden_cls_layers": [4]}
    spec = CseEncoding(9, 64, "five_prime").to_spec()
    encoding = {**ENCODING, "n_kernels": 8, "input_relu": False, "input_linear": True}
    hyperparameters = mlm_hyperparameters(model, encoding, {**PRETRAIN, "dropout": 0.3}, spec)
    assert hyperparameters["dropout"] == 0.2 and hyperparameters["head_dropout"] == 0.3
    assert hyperparameters["n_kernels"] == 8 and hyperparameters["input_relu"] is False
    assert hyperparameters["kernel_size"] == 9 and hyperparameters["context_length"] == 64
    assert "hidden_cls_layers" not in hyperparameters
    tokens = mlm_hyperparameters(
        model, encoding, PRETRAIN, {"method": "kmer", "vocab_size": 69, "context_length": 32}
    )
    assert tokens["input"] == "tokens" and "output_linear" not in tokens
    with pytest.raises(InputError, match="bert"):
        mlm_hyperparameters({**model, "name": "cnn"}, encoding, PRETRAIN, spec)
