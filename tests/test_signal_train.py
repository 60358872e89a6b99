"""Signal classifiers: Optuna tuning (resume, overwrite, Ctrl-C), final training, evaluation,
prediction."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import lightning as L
import numpy as np
import optuna
import pandas as pd
import pytest

from nucflow.data.signal_etl import etl_signals, load_etl
from nucflow.data.simulate import CAP_CLASSES, simulate_signals
from nucflow.errors import InputError
from nucflow.models.files import load_model
from nucflow.signal_predict import evaluate_signal_model, predict_signal_file
from nucflow.train import signal_fit, tune
from nucflow.train.signal_fit import train_signal_model
from nucflow.train.tune import tune_signal_model

CLASSES = {label: name for name, label in CAP_CLASSES.items()} | {-99: "cap_unknown"}
TUNE = {
    "tuning_strategy": "random_search",
    "max_trials": 2,
    "max_epochs_hpt": 2,
    "patience": None,
    "factor": 2,
    "seed": None,
    "overwrite": False,
}
TRAINING = {
    "batch_size": 16,
    "max_epochs_final_model": 6,
    "patience": 3,
    "use_augmentation": False,
    "max_warp": 0.2,
    "lr_scheduler": {"type": "none"},
}
SMALL = {"conv_filters": [8], "kernel_sizes": [5], "conv_dropouts": [0.1]}


@pytest.fixture(scope="module")
def signals(tmp_path_factory) -> dict[str, Path]:
    """Simulated class CSVs and an unlabelled file."""
    out = tmp_path_factory.mktemp("signals")
    return simulate_signals(out, n_per_class=40, n_unlabelled=20, min_length=100, max_length=160)


@pytest.fixture(scope="module")
def etl_dir(signals, tmp_path_factory) -> Path:
    """ETL shards of the four class files (T = 128)."""
    out = tmp_path_factory.mktemp("etl")
    etl_signals(
        [signals[name] for name in CAP_CLASSES],
        out,
        class_names=CLASSES,
        target_length=128,
        train_test_fraction=0.8,
        train_val_fraction=0.75,
        seed=3,
    )
    return out


def _tune(etl_dir: Path, out: Path, **changes) -> dict:
    settings = {**TUNE, **changes}
    return tune_signal_model(
        etl_dir,
        out / "study.db",
        out / "best_params.json",
        out / "trials.csv",
        out / "history.png",
        model={"name": "cnn_lstm", "params": {"lstm_units": [8], "lstm_dropouts": [0.1]}},
        tune=settings,
        training=TRAINING,
        seed=1,
    )


def _study(out: Path) -> optuna.Study:
    storage = f"sqlite:///{(out / 'study.db').resolve()}"
    (name,) = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage)


def test_tuning_resumes_its_study_from_the_database(etl_dir, tmp_path):
    first = _tune(etl_dir, tmp_path, max_trials=1)
    assert first["trials"] == 1
    params_before = _study(tmp_path).trials[0].params
    best = _tune(etl_dir, tmp_path, max_trials=2)
    trials = _study(tmp_path).trials
    assert len(trials) == 2  # one more, not two new ones
    assert trials[0].params == params_before
    assert best["trials"] == 2
    assert best["architecture"] == "cnn_lstm"
    assert best["hyperparameters"]["lstm_units"] == [8]  # fixed in model.params
    assert "learning_rate" in best["hyperparameters"]
    written = json.loads((tmp_path / "best_params.json").read_text())
    assert written["val_accuracy"] == max(t.value for t in trials if t.value is not None)
    table = pd.read_csv(tmp_path / "trials.csv")
    assert len(table) == 2 and set(table["state"]) == {"COMPLETE"}
    assert (tmp_path / "history.png").stat().st_size > 1000
    # A finished study is not extended: same best, no new trial.
    assert _tune(etl_dir, tmp_path, max_trials=2)["trial"] == best["trial"]
    assert len(_study(tmp_path).trials) == 2


def test_concurrent_workers_share_one_study(etl_dir, tmp_path):
    import multiprocessing

    model = {"name": "cnn_lstm", "params": {"lstm_units": [8], "lstm_dropouts": [0.1]}}
    settings = {**TUNE, "max_trials": 4, "max_epochs_hpt": 1}
    info = tmp_path / "study.json"
    tune.create_tuning_study(
        etl_dir, tmp_path / "study.db", info, model=model, tune=settings, seed=1
    )
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(
            target=tune.run_tuning_worker,
            args=(etl_dir, info, tmp_path / "workers" / f"{w}.json"),
            kwargs={"model": model, "tune": settings, "training": TRAINING, "seed": 1, "worker": w},
        )
        for w in range(2)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=240)
        assert process.exitcode == 0
    ran = [json.loads((tmp_path / "workers" / f"{w}.json").read_text())["trials"] for w in (0, 1)]
    trials = _study(tmp_path).trials
    # max_trials is reached; a trial still running in the other worker may finish beyond it
    assert 4 <= len(trials) <= 5
    assert sorted(ran[0] + ran[1]) == [t.number for t in trials]  # each trial run once
    assert {t.state.name for t in trials} == {"COMPLETE"}
    # the workers sample with different seeds, so they do not repeat each other's trials
    params = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(params)) == len(params)
    best = tune.gather_tuning(
        etl_dir,
        info,
        tmp_path / "best.json",
        tmp_path / "trials.csv",
        tmp_path / "plot.png",
        model=model,
        tune=settings,
    )
    assert best["trials"] == len(trials)
    assert best["val_accuracy"] == max(t.value for t in trials)


def test_overwrite_starts_a_fresh_study(etl_dir, tmp_path):
    _tune(etl_dir, tmp_path, max_trials=1)
    _tune(etl_dir, tmp_path, max_trials=1, overwrite=True)
    assert [t.number for t in _study(tmp_path).trials] == [0]


def test_hyperband_prunes_and_tpe_runs(etl_dir, tmp_path):
    best = _tune(
        etl_dir, tmp_path / "hb", tuning_strategy="hyperband", max_trials=4, max_epochs_hpt=3
    )
    assert best["strategy"] == "hyperband"
    trials = _study(tmp_path / "hb").trials
    assert len(trials) == 4
    assert all(t.intermediate_values for t in trials)  # every epoch reported to the pruner
    best = _tune(etl_dir, tmp_path / "tpe", tuning_strategy="bayesian_optimization")
    assert best["strategy"] == "bayesian_optimization"


def test_ctrl_c_ends_tuning_with_the_best_trial_so_far(etl_dir, tmp_path, monkeypatch):
    real_fit = tune.fit_signal_model
    calls = []

    def fit_then_interrupt(*args, **kwargs):
        history = real_fit(*args, **kwargs)
        calls.append(1)
        os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C after the first trial's training
        return history

    monkeypatch.setattr(tune, "fit_signal_model", fit_then_interrupt)
    with pytest.raises(InputError, match="no tuning trial completed"):
        _tune(etl_dir, tmp_path, max_trials=5)
    assert len(calls) == 1  # the interrupted trial counts as pruned; no further trial ran
    monkeypatch.setattr(tune, "fit_signal_model", real_fit)
    _tune(etl_dir, tmp_path, max_trials=2)  # a rerun resumes: 1 pruned + 1 complete
    states = [t.state.name for t in _study(tmp_path).trials]
    assert states == ["PRUNED", "COMPLETE"]


def test_no_tuning_uses_defaults_with_fixed_params(etl_dir, tmp_path):
    best = _tune(etl_dir, tmp_path, max_trials=0)
    assert best["trials"] == 0
    assert best["hyperparameters"]["lstm_units"] == [8]
    assert not (tmp_path / "study.db").exists()


@pytest.fixture(scope="module")
def best_params(etl_dir, tmp_path_factory) -> Path:
    """A fixed small CNN-LSTM as if chosen by tuning."""
    out = tmp_path_factory.mktemp("tune")
    tune_signal_model(
        etl_dir,
        out / "study.db",
        out / "best_params.json",
        out / "trials.csv",
        out / "history.png",
        model={"name": "cnn_lstm", "params": {**SMALL, "learning_rate": 0.01}},
        tune={**TUNE, "max_trials": 0},
        training=TRAINING,
        seed=1,
    )
    return out / "best_params.json"


@pytest.fixture(scope="module")
def trained(etl_dir, best_params, tmp_path_factory) -> Path:
    """A final model trained on the tiny shards."""
    out = tmp_path_factory.mktemp("final")
    train_signal_model(
        etl_dir,
        best_params,
        out / "model",
        out / "history.csv",
        out / "history.png",
        training={**TRAINING, "lr_scheduler": {"type": "reduce_lr_on_plateau"}},
        seed=4,
    )
    return out


def test_final_training_keeps_the_lowest_val_loss_epoch(trained):
    history = pd.read_csv(trained / "history.csv")
    assert {"train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr"} <= set(history)
    kept = history[history["best"]]
    assert len(kept) == 1
    assert kept["val_loss"].item() == history["val_loss"].min()
    model, config = load_model(trained / "model")
    assert config.architecture == "cnn_lstm"
    assert config.tokenizer["method"] == "signal" and config.tokenizer["target_length"] == 128
    assert config.class_names == list(CAP_CLASSES)
    assert config.training["best_epoch"] == kept["epoch"].item()


def test_ctrl_c_stops_final_training_and_keeps_the_best_epoch(
    etl_dir, best_params, tmp_path, monkeypatch
):
    class CtrlCInEpoch2(L.Callback):
        def on_train_batch_end(self, trainer, *args) -> None:
            if trainer.current_epoch == 2 and args[-1] == 1:
                os.kill(os.getpid(), signal.SIGINT)

    real_fit = signal_fit.fit_lightning

    def fit_with_ctrl_c(*args, callbacks=(), **kwargs):
        return real_fit(*args, callbacks=[CtrlCInEpoch2(), *callbacks], **kwargs)

    monkeypatch.setattr(signal_fit, "fit_lightning", fit_with_ctrl_c)
    summary = train_signal_model(
        etl_dir,
        best_params,
        tmp_path / "model",
        tmp_path / "history.csv",
        tmp_path / "history.png",
        training={**TRAINING, "patience": None, "max_epochs_final_model": 10},
        seed=4,
    )
    assert summary["interrupted"] is True
    history = pd.read_csv(tmp_path / "history.csv")
    # Epoch 2 of 10 stopped after its second batch; Lightning validates the weights it stopped
    # with, and the kept epoch is still the one with the lowest val_loss.
    assert history["epoch"].tolist() == [0, 1, 2]
    best = history.loc[history["val_loss"].idxmin(), "epoch"]
    assert load_model(tmp_path / "model")[1].training["best_epoch"] == best


def test_evaluation_writes_metrics_and_confusion_matrices(trained, etl_dir, tmp_path):
    confusion = {
        part: {"csv": tmp_path / f"confusion_{part}.csv", "png": tmp_path / f"c_{part}.png"}
        for part in ("test", "train")
    }
    metrics = evaluate_signal_model(
        trained / "model",
        etl_dir,
        tmp_path / "metrics.json",
        tmp_path / "per_class.csv",
        tmp_path / "test_predictions.csv",
        confusion,
    )
    _, parts = load_etl(etl_dir)
    matrix = pd.read_csv(confusion["test"]["csv"], index_col=0)
    assert list(matrix.columns) == list(CAP_CLASSES) and list(matrix.index) == list(CAP_CLASSES)
    assert matrix.to_numpy().sum() == len(parts["test"].y)
    assert (matrix.sum(axis=1).to_numpy() == np.bincount(parts["test"].y, minlength=4)).all()
    assert np.trace(matrix.to_numpy()) / matrix.to_numpy().sum() == pytest.approx(
        metrics["test"]["accuracy"]
    )
    train_matrix = pd.read_csv(confusion["train"]["csv"], index_col=0).to_numpy()
    assert train_matrix.sum() == len(parts["train"].y)
    per_class = pd.read_csv(tmp_path / "per_class.csv")
    assert per_class["class"].tolist() == list(CAP_CLASSES)
    assert per_class["support"].sum() == len(parts["test"].y)
    predictions = pd.read_csv(tmp_path / "test_predictions.csv")
    assert predictions["read_id"].tolist() == list(parts["test"].ids)
    accuracy = (predictions["label"] == predictions["predicted_class"]).mean()
    assert accuracy == pytest.approx(metrics["test"]["accuracy"])
    assert json.loads((tmp_path / "metrics.json").read_text())["test"]["n"] == len(predictions)
    assert confusion["test"]["png"].stat().st_size > 1000


def test_predict_unlabelled_and_labelled_reads(trained, signals, tmp_path):
    table = predict_signal_file(
        trained / "model", signals["unlabelled"], tmp_path / "p.csv", tmp_path / "m.json"
    )
    assert len(table) == 20
    written = pd.read_csv(tmp_path / "p.csv")
    assert list(written.columns[:3]) == ["read_id", "predicted_class", "probability"]
    probabilities = written[[f"prob_{name}" for name in CAP_CLASSES]].to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert (written["probability"] == probabilities.max(axis=1)).all()
    assert json.loads((tmp_path / "m.json").read_text()) == {"n_reads": 20, "n_labelled": 0}
    labelled = predict_signal_file(
        trained / "model",
        [signals["cap_1"], signals["cap_2"]],
        tmp_path / "l.csv",
        tmp_path / "l.json",
    )
    metrics = json.loads((tmp_path / "l.json").read_text())
    assert metrics["n_labelled"] == 80
    truth = ["cap_1"] * 40 + ["cap_2"] * 40
    assert metrics["accuracy"] == pytest.approx((labelled["predicted_class"] == truth).mean())


def test_predict_refuses_a_sequence_model(tmp_path, signals):
    from nucflow.models import build_model
    from nucflow.models.files import ModelConfig, save_model

    hyperparameters = {"vocab_size": 8, "n_classes": 2, "pad_id": 0}
    model = build_model("cnn", **hyperparameters)
    config = ModelConfig("cnn", hyperparameters, {"method": "nuc"}, "classification", ["a", "b"])
    save_model(tmp_path / "m", model, config)
    with pytest.raises(InputError, match="not a signal model"):
        predict_signal_file(tmp_path / "m", signals["unlabelled"], tmp_path / "p.csv")
    assert not (tmp_path / "p.csv").exists()
