"""Fit one fold of a sequence classifier and write its model directory and history."""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset

from nucflow.data.sequence import EncodedSequences, load_encoded
from nucflow.data.splits import load_split
from nucflow.errors import InputError
from nucflow.io.atomic import atomic_path
from nucflow.models import build_model
from nucflow.models.files import ModelConfig, save_model
from nucflow.report.plots import plot_history
from nucflow.tokenize import PAD_ID, load_tokenizer
from nucflow.train.module import MAXIMISED, ClassifierModule, EpochHistory

log = logging.getLogger(__name__)


def _loader(data: EncodedSequences, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    """A DataLoader over (token ids, label) pairs with a seeded shuffle."""
    dataset = TensorDataset(torch.from_numpy(data.tokens).long(), torch.from_numpy(data.labels))
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)


def class_weights(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """Inverse-frequency class weights n / (classes · count), computed on the training part."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    if (counts == 0).any():
        raise InputError(
            f"a class has no training sequences (class counts: {counts.astype(int).tolist()})"
        )
    return torch.tensor(len(labels) / (n_classes * counts), dtype=torch.float32)


def trainer_settings() -> dict[str, Any]:
    """Accelerator and precision: the GPU in bf16 autocast when present, else the CPU in fp32."""
    if torch.cuda.is_available():
        return {"accelerator": "gpu", "devices": 1, "precision": "bf16-mixed"}
    return {"accelerator": "cpu", "devices": 1, "precision": "32-true"}


def fit_fold(
    encoded_path: str | os.PathLike[str],
    tokenizer_path: str | os.PathLike[str],
    split_path: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    history_path: str | os.PathLike[str],
    plot_path: str | os.PathLike[str],
    *,
    model_settings: dict[str, Any],
    training: dict[str, Any],
    task: str,
    seed: int,
    threads: int = 1,
) -> dict[str, Any]:
    """Train on a fold's train part, select the best epoch on its valid part, save the model.

    Early stopping and model selection follow ``training["monitor"]``. Writes the model
    directory, ``history.csv`` (one row per epoch, ``best`` marks the kept epoch) and a
    plot of the history. Returns a summary (best epoch and its score).
    """
    torch.set_num_threads(threads)
    split = load_split(split_path)
    data = load_encoded(encoded_path)
    tokenizer = load_tokenizer(tokenizer_path)
    train, valid = data.select(split.train), data.select(split.valid)
    if len(valid.ids) == 0:
        raise InputError(f"{split_path}: fold {split.fold} has an empty validation part")
    n_classes = len(data.class_names)
    log.info(
        "fold %s: %d train and %d valid sequences, %s",
        split.fold,
        len(train.ids),
        len(valid.ids),
        "GPU (bf16)" if torch.cuda.is_available() else "CPU",
    )
    fold_seed = seed + int(split.fold)
    L.seed_everything(fold_seed, verbose=False)

    hyperparameters = {
        "vocab_size": tokenizer.vocab_size,
        "n_classes": n_classes,
        "pad_id": PAD_ID,
        **{k: v for k, v in model_settings.items() if k != "name"},
    }
    model = build_model(model_settings["name"], **hyperparameters)
    weights = class_weights(train.labels, n_classes) if training["weighted_loss"] else None
    module = ClassifierModule(model, training["learning_rate"], training["weight_decay"], weights)
    monitor = training["monitor"]
    history = EpochHistory(monitor)
    stopper = L.pytorch.callbacks.EarlyStopping(
        monitor=monitor,
        mode="max" if monitor in MAXIMISED else "min",
        patience=training["patience"],
    )
    trainer = L.Trainer(
        max_epochs=training["max_epochs"],
        callbacks=[history, stopper],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=True,
        **trainer_settings(),
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*GPU available but not used.*")
        warnings.filterwarnings("ignore", ".*treespec, LeafSpec.*")  # inside Lightning 2.6
        trainer.fit(
            module,
            _loader(train, training["batch_size"], True, fold_seed),
            _loader(valid, training["batch_size"], False, fold_seed),
        )
    if history.best_state is None:
        raise InputError(f"{split_path}: no epoch produced a finite {monitor}")
    model.load_state_dict(history.best_state)

    frame = pd.DataFrame(history.rows)
    frame["epoch"] = frame["epoch"].astype(int)
    frame["best"] = frame["epoch"] == history.best_epoch
    summary = {
        "fold": split.fold,
        "best_epoch": history.best_epoch,
        monitor: history.sign * history.best_score,
        "epochs": len(frame),
    }
    with atomic_path(history_path) as tmp:
        frame.to_csv(tmp, index=False)
    plot_history(frame, monitor, plot_path)
    save_model(
        model_dir,
        model,
        ModelConfig(
            architecture=model_settings["name"],
            hyperparameters=hyperparameters,
            tokenizer=tokenizer.to_spec(),
            task=task,
            class_names=list(data.class_names),
            training={**summary, "seed": fold_seed, **training},
        ),
    )
    log.info(
        "fold %s: best epoch %d of %d, %s = %.4f",
        split.fold,
        history.best_epoch,
        len(frame),
        monitor,
        summary[monitor],
    )
    return summary
