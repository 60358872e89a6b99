"""Fitting one fold: best epoch kept, class weights, seeded CPU runs reproducible."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import experiment_defaults

from nucflow.data.encoded import load_encoded
from nucflow.data.sequence import prepare_sequences
from nucflow.data.simulate import simulate_transcripts
from nucflow.data.splits import load_split, write_fold_split
from nucflow.models.files import load_model
from nucflow.predict import class_probabilities
from nucflow.train.fit import class_weights, fit_fold
from nucflow.train.metrics import classification_metrics

EXPERIMENT = experiment_defaults(
    encoding={"method": "kmer", "k": 3, "context_length": 128},
    model={"name": "cnn", "embedding_dim": 8, "channels": 16, "kernel_size": 5, "n_layers": 2},
    training={
        "batch_size": 16,
        "epochs": 6,
        "n_samples_per_epoch": None,
        "learning_rate": 3e-3,
        "weight_decay": 0.01,
        "patience": 10,
    },
)


@pytest.fixture(scope="module")
def fold(tmp_path_factory):
    work = tmp_path_factory.mktemp("fit")
    sim = simulate_transcripts(
        work / "sim", n_per_class=40, n_unlabelled=2, min_length=200, max_length=900, seed=3
    )
    prepare_sequences(
        {"pc": sim["protein_coding"], "nc": sim["lncrna"]},
        EXPERIMENT["encoding"],
        work / "enc.npz",
        work / "tok.json",
    )
    write_fold_split(
        work / "enc.npz",
        {"mode": "kfold", "folds": 4, "valid_fraction": 0.25},
        7,
        "1",
        work / "split.json",
    )
    return work


def _fit(work, name: str, **training):
    fit_fold(
        work / "enc.npz",
        work / "tok.json",
        work / "split.json",
        work / name,
        work / f"{name}.csv",
        work / f"{name}.png",
        model_settings=EXPERIMENT["model"],
        encoding=EXPERIMENT["encoding"],
        training={**EXPERIMENT["training"], **training},
        task="classification",
        seed=11,
    )
    return pd.read_csv(work / f"{name}.csv")


def test_saved_model_is_the_best_epoch(fold):
    history = _fit(fold, "a")
    best = history[history["best"]]
    assert len(best) == 1
    assert best["val_macro_f1"].iloc[0] == history["val_macro_f1"].max()
    model, config = load_model(fold / "a")
    assert config.training["best_epoch"] == int(best["epoch"].iloc[0])
    valid = load_encoded(fold / "enc.npz").select(load_split(fold / "split.json").valid)
    recomputed = classification_metrics(valid.labels, class_probabilities(model, valid.tokens, 8))
    assert recomputed["macro_f1"] == pytest.approx(best["val_macro_f1"].iloc[0], abs=1e-6)


def test_seeded_cpu_fit_is_reproducible(fold):
    first, second = _fit(fold, "r1"), _fit(fold, "r2")
    pd.testing.assert_frame_equal(first, second)
    assert (fold / "r1" / "model.safetensors").read_bytes() == (
        fold / "r2" / "model.safetensors"
    ).read_bytes()


def test_early_stopping_stops(fold):
    history = _fit(fold, "s", epochs=30, patience=1, monitor="val_loss")
    assert len(history) < 30
    best_epoch = int(history.loc[history["best"], "epoch"].iloc[0])
    assert history["val_loss"].iloc[best_epoch] == history["val_loss"].min()


def test_class_weights_inverse_frequency():
    weights = class_weights(np.array([0, 0, 0, 1]), 2)
    assert weights.tolist() == pytest.approx([4 / 6, 4 / 2])
