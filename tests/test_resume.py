"""Resumable training: a run killed mid-run (SIGTERM, SIGKILL) and rerun ends like an
uninterrupted one — same history rows, same weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch
from conftest import experiment_defaults
from safetensors.torch import load_file

from nucflow.data.sequence import prepare_sequences
from nucflow.data.signal_etl import etl_signals
from nucflow.data.simulate import CAP_CLASSES, simulate_signals, simulate_transcripts
from nucflow.data.splits import write_fold_split
from nucflow.train import fit as fit_module
from nucflow.train.interrupt import Preempted

TIMEOUT = 120  # seconds, per training process
PAUSE = (1, 2)  # (epoch, batch) at which the killed run waits for its signal

# Final signal training exercises every source of randomness of the shared core: a shuffled,
# time-warp-augmented loader, dropout, batch norm, a plateau learning-rate schedule and early
# stopping. The ``Pause`` callback writes a marker at one batch and waits there, so the test
# sends its signal at a known point of the run.
SCRIPT = """
import sys, time
from pathlib import Path

import lightning as L

from nucflow.runner import configure_logging
from nucflow.train import signal_fit

work, out, pause = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "pause"
TRAINING = {
    "batch_size": 16,
    "max_epochs_final_model": 4,
    "patience": 2,
    "use_augmentation": True,
    "max_warp": 0.2,
    "lr_scheduler": {
        "type": "reduce_lr_on_plateau",
        "reduce_lr_on_plateau": {"patience": 0, "factor": 0.5},
    },
}


class Pause(L.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pause and (trainer.current_epoch, batch_idx) == PAUSE:
            (out / "paused").touch()
            time.sleep(1.5)


fit = signal_fit.fit_lightning


def fit_with_pause(*args, callbacks=(), **kwargs):
    return fit(*args, callbacks=[*callbacks, Pause()], **kwargs)


signal_fit.fit_lightning = fit_with_pause
configure_logging(out / "log.txt")
signal_fit.train_signal_model(
    work / "etl",
    work / "best_params.json",
    out / "model",
    out / "history.csv",
    out / "history.png",
    training=TRAINING,
    seed=5,
)
"""
BEST = {
    "architecture": "cnn_lstm",
    "hyperparameters": {
        "conv_filters": [8],
        "kernel_sizes": [5],
        "conv_dropouts": [0.1],
        "lstm_units": [8],
        "lstm_dropouts": [0.1],
        "dense_units": 16,
        "dense_dropout": 0.2,
        "learning_rate": 0.01,
    },
}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """ETL shards of simulated signals, tuned parameters and the training script."""
    work = tmp_path_factory.mktemp("resume")
    signals = simulate_signals(
        work / "signals", n_per_class=30, n_unlabelled=0, min_length=100, max_length=160
    )
    etl_signals(
        [signals[name] for name in CAP_CLASSES],
        work / "etl",
        class_names={label: name for name, label in CAP_CLASSES.items()},
        target_length=128,
        train_test_fraction=0.8,
        train_val_fraction=0.75,
        seed=3,
    )
    (work / "best_params.json").write_text(json.dumps(BEST))
    (work / "train.py").write_text(f"PAUSE = {PAUSE}\n{SCRIPT}")
    return work


def _start(work: Path, out: Path, pause: bool) -> subprocess.Popen:
    out.mkdir(exist_ok=True)
    command = [sys.executable, str(work / "train.py"), str(work), str(out)]
    return subprocess.Popen([*command, "pause" if pause else "-"], stderr=subprocess.PIPE)


def _run(work: Path, out: Path) -> None:
    process = _start(work, out, pause=False)
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, stderr.decode()[-3000:]


def _kill_at_pause(work: Path, out: Path, signum: int) -> int:
    """Start a run, send ``signum`` once it waits at PAUSE; its exit status."""
    process = _start(work, out, pause=True)
    deadline = time.monotonic() + TIMEOUT
    while not (out / "paused").exists():
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the run never reached its pause"
        time.sleep(0.05)
    process.send_signal(signum)
    process.communicate(timeout=TIMEOUT)
    return process.returncode


def _loader_position(out: Path) -> dict:
    """The training loader's state in the run's checkpoint: epoch and batches served."""
    checkpoint = torch.load(out / "model.checkpoints" / "last.ckpt", weights_only=False)
    (state,) = checkpoint["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    return state


def _assert_same_run(out: Path, reference: Path) -> None:
    history = pd.read_csv(out / "history.csv")
    expected = pd.read_csv(reference / "history.csv")
    pd.testing.assert_frame_equal(history, expected, rtol=1e-6)
    weights = load_file(out / "model" / "model.safetensors")
    expected_weights = load_file(reference / "model" / "model.safetensors")
    assert weights.keys() == expected_weights.keys()
    for name, tensor in expected_weights.items():
        torch.testing.assert_close(weights[name], tensor, rtol=1e-6, atol=1e-7)
    assert not (out / "model.checkpoints").exists()  # deleted once the outputs are written


@pytest.fixture(scope="module")
def reference(work) -> Path:
    """An uninterrupted run."""
    out = work / "reference"
    _run(work, out)
    history = pd.read_csv(out / "history.csv")
    assert len(history) >= 3  # the kill at epoch 1 is mid-run
    return out


def test_sigterm_saves_mid_epoch_and_the_rerun_matches(work, reference):
    out = work / "sigterm"
    assert _kill_at_pause(work, out, signal.SIGTERM) == 128 + signal.SIGTERM
    assert _loader_position(out) == {"epoch": PAUSE[0], "batches": PAUSE[1] + 1}
    assert not (out / "history.csv").exists()
    _run(work, out)
    _assert_same_run(out, reference)


def test_sigkill_resumes_from_the_last_epoch_and_matches(work, reference):
    out = work / "sigkill"
    assert _kill_at_pause(work, out, signal.SIGKILL) == -signal.SIGKILL
    assert _loader_position(out)["epoch"] == PAUSE[0] - 1  # saved at the end of epoch 0
    _run(work, out)
    _assert_same_run(out, reference)


def test_checkpoints_of_other_settings_are_not_resumed(tmp_path):
    from nucflow.train.checkpoints import checkpoint_directory

    model_dir = tmp_path / "model"
    first = checkpoint_directory(model_dir, {"seed": 1})
    assert first == tmp_path / "model.checkpoints"
    (first / "last.ckpt").write_bytes(b"x")
    assert (checkpoint_directory(model_dir, {"seed": 1}) / "last.ckpt").exists()
    assert not (checkpoint_directory(model_dir, {"seed": 2}) / "last.ckpt").exists()
    assert json.loads((first / "run.json").read_text()) == {"seed": 2}
    assert os.listdir(first) == ["run.json"]


SEQUENCES = experiment_defaults(
    encoding={"method": "kmer", "k": 3, "context_length": 64},
    model={"name": "cnn", "embedding_dim": 8, "channels": 8, "kernel_size": 5, "n_layers": 1},
    training={
        "batch_size": 8,
        "epochs": 3,
        "n_samples_per_epoch": 48,
        "learning_rate": 3e-3,
        "patience": None,
    },
)


def _fit_fold(work: Path, name: str) -> pd.DataFrame:
    fit_module.fit_fold(
        work / "enc.npz",
        work / "tok.json",
        work / "split.json",
        work / name / "model",
        work / name / "history.csv",
        work / name / "history.png",
        model_settings=SEQUENCES["model"],
        encoding=SEQUENCES["encoding"],
        training=SEQUENCES["training"],
        task="classification",
        seed=2,
    )
    return pd.read_csv(work / name / "history.csv")


class _SigtermAt(L.Callback):
    """Send this process SIGTERM at one batch (training sees it at that batch's end)."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.at = (epoch, batch)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if (trainer.current_epoch, batch_idx) == self.at:
            os.kill(os.getpid(), signal.SIGTERM)


def test_fit_fold_preempted_in_process_resumes_to_the_same_model(tmp_path, monkeypatch):
    sim = simulate_transcripts(
        tmp_path / "sim", n_per_class=20, n_unlabelled=0, min_length=100, max_length=300, seed=3
    )
    prepare_sequences(
        {"pc": sim["protein_coding"], "nc": sim["lncrna"]},
        SEQUENCES["encoding"],
        tmp_path / "enc.npz",
        tmp_path / "tok.json",
    )
    split = {"mode": "kfold", "folds": 4, "valid_fraction": 0.25}
    write_fold_split(tmp_path / "enc.npz", split, 7, "1", tmp_path / "split.json")
    expected = _fit_fold(tmp_path, "reference")

    fit = fit_module.fit_lightning
    monkeypatch.setattr(
        fit_module,
        "fit_lightning",
        lambda *a, callbacks=(), **k: fit(*a, callbacks=[*callbacks, _SigtermAt(1, 3)], **k),
    )
    with pytest.raises(Preempted) as stopped:
        _fit_fold(tmp_path, "resumed")
    assert stopped.value.code == 128 + signal.SIGTERM
    assert _loader_position(tmp_path / "resumed") == {"epoch": 1, "batches": 4}
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored
    monkeypatch.setattr(fit_module, "fit_lightning", fit)
    pd.testing.assert_frame_equal(_fit_fold(tmp_path, "resumed"), expected, rtol=1e-6)
    _assert_same_run(tmp_path / "resumed", tmp_path / "reference")
