"""Train a signal classifier (Capfinder model families) on the ETL's shards."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, default_collate

from nucflow.data.signal_dataset import SignalDataset, time_warp
from nucflow.data.signal_etl import SignalPart, load_etl
from nucflow.errors import InputError
from nucflow.models import build_model
from nucflow.models.files import ModelConfig, save_model
from nucflow.train.checkpoints import checkpoint_directory, file_stamps, remove_checkpoints
from nucflow.train.fit import (
    Batch,
    IndexBatches,
    fit_lightning,
    write_history,
)
from nucflow.train.interrupt import Interrupt, StopOnInterrupt
from nucflow.train.lr_schedules import build_lr_scheduler, scheduler_description
from nucflow.train.module import EpochHistory, SupervisedModule

log = logging.getLogger(__name__)


def signal_loader(
    part: SignalPart,
    batch_size: int,
    seed: int,
    *,
    train: bool,
    augment: bool = False,
    max_warp: float = 0.2,
) -> IndexBatches | DataLoader:
    """Batches of (signal rows with NaN padding, class index).

    Training batches are shuffled every epoch (augmented copies are separate items, so they
    land in different batches; their warps are drawn per batch, see :func:`signal_batch`); a
    last batch of one read is dropped, since batch norm cannot train on it. Evaluation loaders
    keep every read in order.
    """
    dataset = SignalDataset(part.x, part.y, augment=train and augment, max_warp=max_warp, seed=seed)
    if not train:
        return DataLoader(dataset, batch_size=batch_size, shuffle=False)
    return IndexBatches(partial(signal_batch, dataset), len(dataset), batch_size, seed, min_rows=2)


def signal_batch(dataset: SignalDataset, indices: torch.Tensor, seed: int) -> Batch:
    """Items ``indices`` of ``dataset`` collated, with the time warps (SignalDataset's variants
    1 and 2 of an example) drawn in index order from a generator seeded with ``seed``: a
    batch is the same whenever it is drawn, e.g. after a restart."""
    items = indices.tolist()
    if not dataset.augment:
        return default_collate(dataset.__getitems__(items))
    stored = dataset.__getitems__([i - i % 3 for i in items])  # variant 0: no draws
    generator = np.random.default_rng(seed)
    rows = []
    for item, (row, label) in zip(items, stored, strict=True):
        if item % 3:
            u = float(generator.uniform(0.0, dataset.max_warp))
            factor = 1.0 - u if item % 3 == 1 else 1.0 + u
            row = torch.from_numpy(time_warp(row.numpy(), factor))
        rows.append((row, label))
    return default_collate(rows)


def signal_model(
    architecture: str, hyperparameters: Mapping[str, Any], target_length: int, n_classes: int
) -> tuple[dict[str, Any], float, nn.Module]:
    """Constructor arguments, learning rate and network of a tuned hyperparameter set."""
    arguments = {k: v for k, v in hyperparameters.items() if k != "learning_rate"}
    arguments.update(target_length=target_length, n_classes=n_classes)
    try:
        learning_rate = float(hyperparameters["learning_rate"])
        model = build_model(architecture, **arguments)
    except KeyError as err:
        raise InputError(f"{architecture}: hyperparameter {err} is missing") from None
    except TypeError as err:
        raise InputError(f"{architecture}: bad hyperparameters ({err})") from None
    return arguments, learning_rate, model


def fit_signal_model(
    model: nn.Module,
    learning_rate: float,
    parts: Mapping[str, SignalPart],
    *,
    batch_size: int,
    epochs: int,
    patience: int | None,
    seed: int,
    monitor: str,
    augment: bool = False,
    max_warp: float = 0.2,
    lr_scheduler: Mapping[str, Any] | None = None,
    interrupt: Interrupt | None = None,
    callbacks: Sequence[L.Callback] = (),
    checkpoint_dir: str | os.PathLike[str] | None = None,
    devices: int = 1,
) -> EpochHistory:
    """Fit ``model`` with Adam on the train part, validating every epoch on the valid part.

    Early stopping watches val_loss (as Capfinder); ``monitor`` picks the epoch whose weights
    the returned history keeps. ``lr_scheduler`` is the `training.lr_scheduler` section.
    ``checkpoint_dir`` and ``devices``: see :func:`~nucflow.train.fit.fit_lightning`.
    """
    L.seed_everything(seed, verbose=False)
    train_loader = signal_loader(
        parts["train"], batch_size, seed, train=True, augment=augment, max_warp=max_warp
    )
    valid_loader = signal_loader(parts["valid"], batch_size, seed, train=False)
    schedule = None
    if lr_scheduler is not None and lr_scheduler["type"] != "none":
        schedule = partial(
            build_lr_scheduler, settings=lr_scheduler, steps_per_epoch=len(train_loader)
        )
    module = SupervisedModule(
        model, "classification", learning_rate, 0.0, seed=seed, lr_scheduler=schedule
    )
    extra = [*callbacks, StopOnInterrupt(interrupt)] if interrupt else list(callbacks)
    return fit_lightning(
        module,
        train_loader,
        valid_loader,
        epochs=epochs,
        monitor=monitor,
        patience=patience,
        stop_monitor="val_loss",
        callbacks=extra,
        seed=seed,
        checkpoint_dir=checkpoint_dir,
        devices=devices,
    )


def read_best_params(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The tuning result: ``{"architecture": …, "hyperparameters": {…}, …}``."""
    try:
        best = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not a best_params.json written by tuning ({err})") from None
    if not isinstance(best, dict) or not {"architecture", "hyperparameters"} <= best.keys():
        raise InputError(f"{path}: expected the keys architecture and hyperparameters")
    return best


def train_signal_model(
    etl_dir: str | os.PathLike[str],
    best_params_path: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    history_path: str | os.PathLike[str],
    plot_path: str | os.PathLike[str],
    *,
    training: Mapping[str, Any],
    seed: int,
    threads: int = 1,
    devices: int = 1,
    resume: bool = True,
) -> dict[str, Any]:
    """Final training with the tuned hyperparameters; keep the epoch with the lowest val_loss.

    Ctrl-C stops after the current batch and still saves the best epoch so far. Writes the
    model directory, ``history.csv`` (loss, accuracy and learning rate per epoch) and its plot.
    ``devices`` > 1 trains with DDP; ``resume`` keeps checkpoints in
    ``<model_dir>.checkpoints`` (resumed by a rerun, deleted once the outputs are written; see
    :func:`~nucflow.train.fit.fit_lightning`).
    """
    torch.set_num_threads(threads)
    manifest, parts = load_etl(etl_dir)
    best = read_best_params(best_params_path)
    architecture = best["architecture"]
    L.seed_everything(seed, verbose=False)  # the initial weights too
    arguments, learning_rate, model = signal_model(
        architecture,
        best["hyperparameters"],
        manifest["target_length"],
        len(manifest["class_names"]),
    )
    schedule = training["lr_scheduler"]
    log.info(
        "final %s: %d train / %d valid reads%s, lr %.3g, schedule %s, %s",
        architecture,
        len(parts["train"].y),
        len(parts["valid"].y),
        " (×3 with time-warped copies)" if training["use_augmentation"] else "",
        learning_rate,
        scheduler_description(schedule),
        "GPU (bf16)" if torch.cuda.is_available() else "CPU",
    )
    checkpoints = None
    if resume:
        identity = {
            "step": "signal_train",
            "best": best,
            "training": training,
            "seed": seed,
            "inputs": file_stamps(etl_dir, best_params_path),
        }
        checkpoints = checkpoint_directory(model_dir, identity)
    with Interrupt() as interrupt:
        history = fit_signal_model(
            model,
            learning_rate,
            parts,
            batch_size=training["batch_size"],
            epochs=training["max_epochs_final_model"],
            patience=training["patience"],
            seed=seed,
            monitor="val_loss",
            augment=training["use_augmentation"],
            max_warp=training["max_warp"],
            lr_scheduler=schedule,
            interrupt=interrupt,
            checkpoint_dir=checkpoints,
            devices=devices,
        )
    model.load_state_dict(history.best_state)
    frame = write_history(history, history_path, plot_path, plotted="val_accuracy")
    summary = {
        "best_epoch": history.best_epoch,
        "val_loss": -history.best_score,
        "epochs": len(frame),
        "interrupted": interrupt.requested,
    }
    save_model(
        model_dir,
        model,
        ModelConfig(
            architecture=architecture,
            hyperparameters=arguments,
            tokenizer=signal_encoding(manifest),
            task="classification",
            class_names=list(manifest["class_names"]),
            training={**summary, "seed": seed, "learning_rate": learning_rate, **training},
        ),
    )
    remove_checkpoints(checkpoints)
    log.info(
        "final %s: best epoch %d of %d, val_loss %.4f%s",
        architecture,
        history.best_epoch,
        len(frame),
        summary["val_loss"],
        " (interrupted)" if interrupt.requested else "",
    )
    return summary


def signal_encoding(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """What a signal model records about its input (the model file's ``tokenizer`` entry)."""
    return {
        "method": "signal",
        "target_length": manifest["target_length"],
        "class_labels": list(manifest["class_labels"]),
        "padding": "symmetric, NaN",
    }
