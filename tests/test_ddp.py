"""Multi-device training: DDP over two CPU processes (gloo), preempted by SIGTERM and resumed,
returns the history and weights of the first process, close to a one-process run with the same
global batch; asking for GPUs without CUDA falls back to one CPU process."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nucflow.train.fit import trainer_settings

TIMEOUT = 180  # seconds, per training run

# A small classifier trained through the shared core. Lightning's "ddp" launcher starts the
# second process by running this script again (with LOCAL_RANK=1); only the first process
# returns from fit_lightning and writes the result.
SCRIPT = """
import os, sys, time
from functools import partial
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from nucflow.train.fit import IndexBatches, fit_lightning, tensor_rows
from nucflow.train.module import SupervisedModule

out, devices, checkpoints, pause = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]


class Pause(L.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pause == "pause" and (trainer.current_epoch, batch_idx) == (1, 1):
            (out / f"paused{trainer.global_rank}").touch()
            time.sleep(1.5)


generator = torch.Generator().manual_seed(0)
x = torch.randn(96, 6, generator=generator)
y = (x[:, 0] + x[:, 1] > 0).long()
torch.manual_seed(1)
model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
module = SupervisedModule(model, "classification", 1e-2, 0.0, seed=3)
history = fit_lightning(
    module,
    IndexBatches(partial(tensor_rows, (x[:64], y[:64])), 64, 16, seed=3),
    DataLoader(TensorDataset(x[64:], y[64:]), batch_size=16),
    epochs=3,
    monitor="val_loss",
    patience=None,
    callbacks=[Pause()],
    seed=3,
    checkpoint_dir=None if checkpoints == "-" else checkpoints,
    devices=devices,
    accelerator="cpu",
)
with open(out / "writers.txt", "a") as handle:
    handle.write(f"{os.environ.get('LOCAL_RANK', '-')}\\n")
torch.save(
    {"rows": history.rows, "best_epoch": history.best_epoch, "state": history.best_state},
    out / "result.pt",
)
"""


def _command(work: Path, out: Path, devices: int, checkpoints: str, pause: str) -> list[str]:
    out.mkdir(exist_ok=True)
    return [sys.executable, str(work / "train.py"), str(out), str(devices), checkpoints, pause]


def _result(out: Path, devices: int) -> dict:
    assert (out / "writers.txt").read_text() == ("0\n" if devices > 1 else "-\n")  # once
    return torch.load(out / "result.pt")


def _train(work: Path, name: str, devices: int, checkpoints: str = "-") -> dict:
    command = _command(work, work / name, devices, checkpoints, "-")
    done = subprocess.run(command, capture_output=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return _result(work / name, devices)


def _assert_same(result: dict, expected: dict, tolerance: float) -> None:
    assert result["best_epoch"] == expected["best_epoch"]
    for row, reference in zip(result["rows"], expected["rows"], strict=True):
        assert row.keys() == reference.keys()
        for key, value in reference.items():
            assert row[key] == pytest.approx(value, rel=tolerance, abs=1e-6), key
    for name, tensor in expected["state"].items():
        torch.testing.assert_close(result["state"][name], tensor, rtol=tolerance, atol=1e-6)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("ddp")
    (work / "train.py").write_text(SCRIPT)
    return work


def test_ddp_preempted_by_sigterm_resumes_and_matches_one_process(work):
    expected = _train(work, "single", 1)
    out, checkpoints = work / "ddp", str(work / "ddp.checkpoints")
    process = subprocess.Popen(_command(work, out, 2, checkpoints, "pause"), stderr=subprocess.PIPE)
    deadline = time.monotonic() + TIMEOUT
    while not (out / "paused0").exists():
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)  # the first process passes it on to the second
    process.communicate(timeout=TIMEOUT)
    assert process.returncode == 128 + signal.SIGTERM
    state = torch.load(Path(checkpoints) / "last.ckpt", weights_only=False)  # mid-epoch
    assert state["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"epoch": 1, "batches": 2}
    ]
    assert not (out / "writers.txt").exists()

    result = _train(work, "ddp", 2, checkpoints)  # resumes on both processes
    assert [row["epoch"] for row in result["rows"]] == [0.0, 1.0, 2.0]
    _assert_same(result, expected, tolerance=1e-4)  # the same global batch on one process


def test_gpus_without_cuda_fall_back_to_one_cpu_process(caplog):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with caplog.at_level(logging.WARNING, logger="nucflow.train.fit"):
        settings = trainer_settings(4)
    assert settings["accelerator"] == "cpu" and settings["devices"] == 1
    assert "strategy" not in settings
    assert "4 GPUs asked for" in caplog.text and "one CPU process" in caplog.text
    assert trainer_settings(2, accelerator="cpu")["strategy"].__class__.__name__ == "DDPStrategy"
