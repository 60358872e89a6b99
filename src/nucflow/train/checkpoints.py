"""Resumable runs: the checkpoint directory beside a model directory, and the Lightning
callback that saves into it every epoch and on SIGTERM / SIGUSR1."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Checkpoint

from nucflow.io.atomic import atomic_path
from nucflow.train.interrupt import Preempted, Preemption

log = logging.getLogger(__name__)

CHECKPOINT = "last.ckpt"
"""The checkpoint file of a resumable run (in its checkpoint directory)."""


def file_stamps(*paths: str | os.PathLike[str] | None) -> list[list[Any]]:
    """(path, size, modification time) of each file, or of each file under a directory (None:
    skipped): what a checkpoint directory checks to tell a rerun of the same job."""
    stamps = []
    for path in paths:
        if path is None:
            continue
        root = Path(path)
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for file in files:
            stat = file.stat()
            stamps.append([str(file.resolve()), stat.st_size, stat.st_mtime_ns])
    return stamps


def _is_worker_process() -> bool:
    """Whether this is a DDP worker (rank > 0), a copy of the job started by Lightning."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0) > 0


def checkpoint_directory(model_dir: str | os.PathLike[str], identity: Mapping[str, Any]) -> Path:
    """The checkpoint directory of the run that writes ``model_dir``: ``<model_dir>.checkpoints``.

    Beside the model directory, not in it: Snakemake deletes a job's outputs before it reruns
    the job, and the checkpoints must survive that. ``identity`` (the run's settings and
    :func:`file_stamps` of its inputs) is kept in ``run.json``; a directory left by a run with
    another identity is deleted, not resumed. Delete the directory with
    :func:`remove_checkpoints` once the outputs are written.
    """
    model_path = Path(model_dir)
    directory = model_path.with_name(model_path.name + ".checkpoints")
    if _is_worker_process():  # the main process has prepared it before starting the workers
        return directory
    stamp = directory / "run.json"
    text = json.dumps(identity, sort_keys=True, default=str)
    if directory.exists():
        try:
            same = stamp.read_text() == text
        except OSError:
            same = False
        if same:
            return directory
        log.warning("%s: checkpoints of a run with other settings or inputs, deleted", directory)
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    with atomic_path(stamp) as tmp:
        Path(tmp).write_text(text)
    return directory


def remove_checkpoints(directory: str | os.PathLike[str] | None) -> None:
    """Delete a run's checkpoint directory (its outputs are written)."""
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


class RunCheckpoints(Checkpoint):
    """Checkpoints of a resumable run, and its stop on SIGTERM / SIGUSR1.

    ``directory/last.ckpt`` (written atomically, by the first process only) holds the model,
    optimizer and schedulers, Lightning's loop state and the training loader's position, and
    the callbacks' states (the :class:`~nucflow.train.module.EpochHistory` with the best
    weights, early stopping). It is saved at the end of every complete epoch and when training
    ends. After a preemption signal it is saved at the end of the current batch (mid-epoch: the
    run resumes at the next batch; at an epoch's last batch, after the epoch) and
    :class:`Preempted` is raised. Without a directory a signal only stops the run.
    Lightning's own SIGTERM handler is replaced when training starts. A :class:`Checkpoint`
    for Lightning, so its epoch-end hook runs after early stopping's.

    Lightning does not step plateau schedulers (ReduceLROnPlateau) after the first epoch of a
    resumed run, nor after an epoch whose end-of-epoch checkpoint was resumed (it saves no
    metrics); this callback does both, so a resumed run keeps the same learning rates.
    """

    def __init__(self, directory: Path | None, preemption: Preemption) -> None:
        self.directory = directory
        self.preemption = preemption
        self._stopped = False
        self._plateau: dict[str, Any] | None = None  # the epoch's step still to take

    def state_dict(self) -> dict[str, Any]:
        """Whether the run had stopped early; the plateau step its epoch end still owes."""
        return {"stopped": self._stopped, "plateau": self._plateau}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take up a checkpoint's state."""
        self._stopped = bool(state_dict.get("stopped", False))
        self._plateau = state_dict.get("plateau")

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Forward the preemption signals to the DDP worker processes from now on."""
        self._take_signals(trainer)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Take the signals over from Lightning, which has just installed its SIGTERM handler
        (it would stop at once, with status 0, and under DDP broadcast inside the handler).
        A resumed run: take the plateau step it owes; stop at once if it had stopped."""
        self._take_signals(trainer)
        if self._plateau is not None:
            step_plateau_schedulers(trainer, pl_module, **self._plateau)
            self._plateau = None
        if self._stopped:
            trainer.should_stop = True

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """After a preemption signal: save and stop (at an epoch's last batch: after it)."""
        if self._signalled(trainer) and batch_idx + 1 < trainer.num_training_batches:
            self._save(trainer)
            self._preempt(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Save a complete epoch; stop if a preemption signal came (unless the run ends now)."""
        epoch = trainer.current_epoch
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        if trainer.fit_loop.restarting:  # Lightning skips the plateau step of this epoch
            step_plateau_schedulers(trainer, pl_module, epoch=epoch, metrics=metrics)
        else:  # Lightning takes it after this hook: a resumed run must take it
            self._plateau = {"epoch": epoch, "metrics": metrics}
        completed = trainer.fit_loop.epoch_loop.batch_progress.current.completed
        if completed >= trainer.num_training_batches:
            self._stopped = trainer.should_stop  # early stopping has decided (it runs before)
            self._save(trainer)
        self._plateau = None
        ending = trainer.should_stop or epoch + 1 >= (trainer.max_epochs or 0)
        if not ending and self._signalled(trainer):  # a run that ends now just finishes
            self._preempt(trainer)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Stop if a preemption signal came since the last epoch ended."""
        if self._signalled(trainer):
            self._preempt(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Save the finished run (a rerun killed before writing its outputs restores it)."""
        self._stopped = trainer.should_stop
        self._save(trainer)

    def _take_signals(self, trainer: L.Trainer) -> None:
        launcher = trainer.strategy.launcher
        self.preemption.install(launcher.kill if launcher is not None else None)

    def _signalled(self, trainer: L.Trainer) -> bool:
        """Whether any process received a preemption signal (all processes ask together)."""
        return trainer.strategy.reduce_boolean_decision(self.preemption.requested, all=False)

    def _save(self, trainer: L.Trainer) -> None:
        if self.directory is None:
            return
        path = self.directory / CHECKPOINT
        if trainer.is_global_zero:
            with atomic_path(path) as tmp:
                trainer.save_checkpoint(tmp)
        else:
            trainer.save_checkpoint(path)  # collective; only the first process writes
        trainer.strategy.barrier("nucflow_checkpoint")

    def _preempt(self, trainer: L.Trainer) -> None:
        signum = self.preemption.signum or signal.SIGTERM  # another process got it
        if trainer.is_global_zero:
            where = f"checkpoint in {self.directory}" if self.directory else "no checkpoint"
            log.warning("preempted: training stopped, %s; rerun to resume", where)
        raise Preempted(signum)


def step_plateau_schedulers(
    trainer: L.Trainer, pl_module: L.LightningModule, *, epoch: int, metrics: Mapping[str, float]
) -> None:
    """Step the epoch-interval plateau schedulers after ``epoch`` on its ``metrics``, as
    Lightning does after an epoch (its frequency and monitor rules)."""
    for config in trainer.lr_scheduler_configs:
        if not config.reduce_on_plateau or config.interval != "epoch":
            continue
        if (epoch + 1) % config.frequency:
            continue
        value = metrics.get(config.monitor) if config.monitor else None
        if value is not None:
            pl_module.lr_scheduler_step(config.scheduler, value)
