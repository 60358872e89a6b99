"""Fit one fold of a sequence classifier and write its model directory and history."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from nucflow.data.encoded import EncodedSequences, load_encoded
from nucflow.data.splits import load_split
from nucflow.errors import InputError
from nucflow.io.atomic import atomic_path
from nucflow.models import build_model
from nucflow.models.files import (
    ModelConfig,
    load_model,
    model_inputs,
    resolve_model_dir,
    save_model,
)
from nucflow.models.settings import ENCODER_KEYS, classifier_hyperparameters
from nucflow.report.plots import plot_history
from nucflow.tokenize import load_tokenizer
from nucflow.train.module import MAXIMISED, EpochHistory, SupervisedModule
from nucflow.train.scaling import fit_scaler

log = logging.getLogger(__name__)


def model_tensors(data: EncodedSequences, labels: np.ndarray) -> list[torch.Tensor]:
    """Inputs, labels and (when the data have them) per-sequence loss weights."""
    tensors = [model_inputs(data.tokens), torch.from_numpy(labels)]
    if data.weights is not None:
        tensors.append(torch.from_numpy(data.weights.astype(np.float32)))
    return tensors


def sequence_loader(
    data: EncodedSequences,
    labels: np.ndarray,
    batch_size: int,
    seed: int,
    *,
    shuffle: bool,
    n_samples: int | None = None,
) -> DataLoader:
    """A DataLoader over (inputs, label[, weight]) triples.

    Integer inputs (token ids, codes) become int64, float inputs (atomic rows) float32;
    ``labels`` are class indices or scaled regression values. ``n_samples`` draws that many
    sequences with replacement per epoch (lncRNA-Py's epochs of ``n_samples_per_epoch``
    draws); otherwise one pass, shuffled or in order. Seeded.
    """
    dataset = TensorDataset(*model_tensors(data, labels))
    generator = torch.Generator().manual_seed(seed)
    if n_samples is not None:
        sampler = RandomSampler(
            dataset, replacement=True, num_samples=n_samples, generator=generator
        )
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler)
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


def same_encoding(first: dict[str, Any], second: dict[str, Any]) -> bool:
    """Whether two tokenizer specs encode alike (the nucflow version that wrote them aside)."""
    return {k: v for k, v in first.items() if k != "nucflow_version"} == {
        k: v for k, v in second.items() if k != "nucflow_version"
    }


def _describe_encoding(spec: dict[str, Any]) -> str:
    """Short text of a tokenizer spec, e.g. ``kmer (k=3, context_length=512, keep=five_prime)``."""
    details = ", ".join(
        f"{key}={spec[key]}"
        for key in ("k", "kernel_size", "vocab_size", "context_length", "keep")
        if key in spec
    )
    return f"{spec.get('method')} ({details})"


def fit_lightning(
    module: L.LightningModule,
    train_loader: DataLoader,
    valid_loader: DataLoader,
    *,
    epochs: int,
    monitor: str,
    patience: int | None,
    gradient_clip: float | None = None,
    stop_monitor: str | None = None,
    callbacks: Sequence[L.Callback] = (),
) -> EpochHistory:
    """Train ``module``; keep each epoch's metrics and the best epoch's weights (by ``monitor``).

    Early stopping after ``patience`` epochs without improvement of ``stop_monitor`` (default:
    ``monitor``; None patience: run every epoch). ``callbacks`` run after the history's.
    """
    history = EpochHistory(monitor)
    all_callbacks: list[L.Callback] = [history, *callbacks]
    if patience is not None:
        stop_on = stop_monitor or monitor
        mode = "max" if stop_on in MAXIMISED else "min"
        all_callbacks.append(
            L.pytorch.callbacks.EarlyStopping(monitor=stop_on, mode=mode, patience=patience)
        )
    trainer = L.Trainer(
        max_epochs=epochs,
        callbacks=all_callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=True,
        gradient_clip_val=gradient_clip,
        **trainer_settings(),
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*GPU available but not used.*")
        warnings.filterwarnings("ignore", ".*treespec, LeafSpec.*")  # inside Lightning 2.6
        trainer.fit(module, train_loader, valid_loader)
    if history.best_state is None:
        raise InputError(f"no epoch produced a finite {monitor}")
    return history


def write_history(
    history: EpochHistory,
    history_path: str | os.PathLike[str],
    plot_path: str | os.PathLike[str],
    plotted: str | None = None,
) -> pd.DataFrame:
    """history.csv (one row per epoch; ``best`` marks the kept epoch) and its plot of the losses
    and of ``plotted`` (default: the monitored metric)."""
    frame = pd.DataFrame(history.rows)
    frame["epoch"] = frame["epoch"].astype(int)
    frame["best"] = frame["epoch"] == history.best_epoch
    with atomic_path(history_path) as tmp:
        frame.to_csv(tmp, index=False)
    plot_history(frame, plotted or history.monitor, plot_path)
    return frame


def build_classifier(
    model_settings: dict[str, Any],
    encoding: dict[str, Any],
    training: dict[str, Any],
    tokenizer_spec: dict[str, Any],
    n_classes: int,
    pretrained: str | os.PathLike[str] | None = None,
) -> tuple[str, dict[str, Any], torch.nn.Module]:
    """The classifier to train: from scratch, or on a pretrained BERT encoder (optionally frozen).

    A pretrained model must have been trained on the same encoding; its encoder size replaces
    the ``model`` settings. ``freeze_network`` trains the head only, on mean embeddings.
    """
    freezing = training["freeze_network"] or training["freeze_kernels"]
    if pretrained is None:
        if freezing:
            raise InputError("freeze_network / freeze_kernels need a pretrained model")
        name, hyperparameters = classifier_hyperparameters(
            model_settings, encoding, tokenizer_spec, n_classes
        )
        return name, hyperparameters, build_model(name, **hyperparameters)
    source = resolve_model_dir(pretrained)
    base, config = load_model(source)
    if not same_encoding(config.tokenizer, tokenizer_spec):
        raise InputError(
            f"{source}: pretrained with encoding {_describe_encoding(config.tokenizer)}, but the "
            f"data are encoded with {_describe_encoding(tokenizer_spec)} (expected the same)"
        )
    if config.architecture not in ("bert", "bert_mlm"):
        raise InputError(f"{source}: architecture {config.architecture} has no BERT encoder")
    encoder = {k: config.hyperparameters[k] for k in ENCODER_KEYS if k in config.hyperparameters}
    hyperparameters = {
        **encoder,
        "n_classes": n_classes,
        "head_dropout": model_settings["dropout"],
        "hidden_cls_layers": list(model_settings["hidden_cls_layers"]),
        "pooling": "mean" if training["freeze_network"] else "cls",
    }
    model = build_model("bert", **hyperparameters)
    model.encoder.load_state_dict(base.encoder.state_dict())
    if training["freeze_network"]:
        model.encoder.requires_grad_(False)
    if training["freeze_kernels"]:
        if encoder.get("input") != "cse":
            raise InputError("freeze_kernels needs a CSE encoder (encoding.method: cse)")
        model.encoder.conv.requires_grad_(False)
    log.info("fine-tuning from %s (%s)", source, config.architecture)
    return "bert", hyperparameters, model


def fit_fold(
    encoded_path: str | os.PathLike[str],
    tokenizer_path: str | os.PathLike[str],
    split_path: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    history_path: str | os.PathLike[str],
    plot_path: str | os.PathLike[str],
    *,
    model_settings: dict[str, Any],
    encoding: dict[str, Any],
    training: dict[str, Any],
    task: str,
    seed: int,
    threads: int = 1,
    pretrained: str | os.PathLike[str] | None = None,
    replicate: int = 0,
) -> dict[str, Any]:
    """Train on a fold's train part, select the best epoch on its valid part, save the model.

    Classification trains on class indices; regression on labels scaled by
    ``training["scaling"]`` fitted on this fold's training labels only (stored with the
    model and inverted at prediction), with per-sequence weights when the data have them.
    ``pretrained`` (or ``training["pretrained_model"]``) starts from a pretrained encoder;
    ``replicate`` r trains with seed ``seed + fold + 1000·r``.
    Early stopping and model selection follow ``training["monitor"]``. Writes the model
    directory, ``history.csv`` and its plot; returns a summary (best epoch and its score).
    """
    torch.set_num_threads(threads)
    split = load_split(split_path)
    data = load_encoded(encoded_path)
    tokenizer_spec = load_tokenizer(tokenizer_path).to_spec()
    train, valid = data.select(split.train), data.select(split.valid)
    if len(valid.ids) == 0:
        raise InputError(f"{split_path}: fold {split.fold} has an empty validation part")
    regression = task == "regression"
    n_outputs = 1 if regression else len(data.class_names)
    log.info(
        "fold %s (replicate %d): %d train and %d valid sequences, %s",
        split.fold,
        replicate,
        len(train.ids),
        len(valid.ids),
        "GPU (bf16)" if torch.cuda.is_available() else "CPU",
    )
    fold_seed = seed + int(split.fold) + 1000 * replicate
    L.seed_everything(fold_seed, verbose=False)
    name, hyperparameters, model = build_classifier(
        model_settings,
        encoding,
        training,
        tokenizer_spec,
        n_outputs,
        pretrained or training["pretrained_model"],
    )
    scaler = fit_scaler(
        training["scaling"] if regression else "none", train.labels, str(split_path)
    )
    if regression:
        train_labels = scaler.transform(train.labels).astype(np.float32)
        valid_labels = scaler.transform(valid.labels).astype(np.float32)
        weights = None
    else:
        train_labels, valid_labels = train.labels, valid.labels
        weights = class_weights(train.labels, n_outputs) if training["weighted_loss"] else None
    reading_frame = (
        tokenizer_spec["kernel_size"]
        if tokenizer_spec["method"] == "cse" and training["random_reading_frame"]
        else None
    )
    module = SupervisedModule(
        model,
        task,
        training["learning_rate"],
        training["weight_decay"],
        weights,
        betas=tuple(training["betas"]),
        reading_frame=reading_frame,
        random_shift=training["random_shift"],
        seed=fold_seed,
    )
    monitor = training["monitor"] or ("val_pearson_r" if regression else "val_macro_f1")
    batch_size = training["batch_size"]
    history = fit_lightning(
        module,
        sequence_loader(
            train,
            train_labels,
            batch_size,
            fold_seed,
            shuffle=True,
            n_samples=training["n_samples_per_epoch"],
        ),
        sequence_loader(valid, valid_labels, batch_size, fold_seed, shuffle=False),
        epochs=training["epochs"],
        monitor=monitor,
        patience=training["patience"],
        gradient_clip=training["gradient_clip"],
    )
    model.load_state_dict(history.best_state)
    frame = write_history(history, history_path, plot_path)
    summary = {
        "fold": split.fold,
        "replicate": replicate,
        "best_epoch": history.best_epoch,
        monitor: history.sign * history.best_score,
        "epochs": len(frame),
    }
    save_model(
        model_dir,
        model,
        ModelConfig(
            architecture=name,
            hyperparameters=hyperparameters,
            tokenizer=tokenizer_spec,
            task=task,
            class_names=list(data.class_names),
            label_scaler=scaler.to_dict() if regression else None,
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
