"""The shared training core (resumable, optionally multi-GPU Lightning fits) and fitting one
fold of a sequence classifier."""

from __future__ import annotations

import logging
import os
import random
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.fabric.plugins.environments import LightningEnvironment
from lightning.pytorch.strategies import DDPStrategy
from torch.utils.data import DataLoader, TensorDataset

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
from nucflow.train.checkpoints import (
    CHECKPOINT,
    RunCheckpoints,
    checkpoint_directory,
    file_stamps,
    remove_checkpoints,
)
from nucflow.train.interrupt import Preempted, Preemption
from nucflow.train.module import MAXIMISED, EpochHistory, SupervisedModule, mixed_seed
from nucflow.train.scaling import fit_scaler

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, ...]
_GLOBAL_RNG_WORD = 0x6E7563  # mixed into the seeds of the global generators (dropout)


def model_tensors(data: EncodedSequences, labels: np.ndarray) -> list[torch.Tensor]:
    """Inputs, labels and (when the data have them) per-sequence loss weights."""
    tensors = [model_inputs(data.tokens), torch.from_numpy(labels)]
    if data.weights is not None:
        tensors.append(torch.from_numpy(data.weights.astype(np.float32)))
    return tensors


def distributed_rank() -> tuple[int, int]:
    """(rank, number of processes) of this process in its DDP group; (0, 1) outside one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class EpochBatches:
    """Training batches that are a pure function of (seed, epoch, batch index).

    A resumable training loader for Lightning (a sized iterable, not a DataLoader):
    :meth:`set_epoch` picks the epoch (:func:`fit_lightning` calls it at every epoch start),
    and ``state_dict`` / ``load_state_dict`` (which Lightning saves with its loop state) let a
    run restored from a mid-epoch checkpoint go on at the next batch without reading the
    batches before it. Under DDP every process builds the same global batch and keeps its
    share of the rows (process r of N: rows r, r + N, …), so ``batch_size`` stays the global
    batch size and an epoch has as many steps as on one device; a last batch too small to give
    every process ``min_rows`` rows is dropped. Subclasses define :meth:`batch_count` and
    :meth:`make_batch`.
    """

    def __init__(self, seed: int, min_rows: int = 1) -> None:
        self.seed = seed
        self.min_rows = min_rows
        self.epoch = 0
        self._skip = 0
        self._served = 0

    def batch_count(self, world: int) -> int:
        """Batches per epoch with ``world`` processes."""
        raise NotImplementedError

    def make_batch(self, epoch: int, index: int, rank: int, world: int) -> Batch:
        """Process ``rank``'s part of batch ``index`` of ``epoch``."""
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """The next iteration serves ``epoch`` from its first batch."""
        self.epoch, self._skip, self._served = epoch, 0, 0

    def __len__(self) -> int:
        return self.batch_count(distributed_rank()[1])

    def __iter__(self) -> Iterator[Batch]:
        rank, world = distributed_rank()
        count = self.batch_count(world)
        start = self._skip if self._skip < count else 0
        self._skip = 0
        for index in range(start, count):
            batch = self.make_batch(self.epoch, index, rank, world)
            self._served = index + 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """The epoch and how many of its batches were served."""
        return {"epoch": self.epoch, "batches": self._served}

    def load_state_dict(self, state_dict: Mapping[str, int]) -> None:
        """Go on after the batches a checkpoint's run had served."""
        self.epoch = int(state_dict["epoch"])
        self._skip = self._served = int(state_dict["batches"])


class IndexBatches(EpochBatches):
    """Batches of ``batch_size`` of ``n_items`` items in an order drawn per epoch.

    Each epoch is a shuffled pass (seeded with the seed and the epoch), or with ``n_samples``
    that many draws with replacement. ``fetch(indices, seed)`` returns the items ``indices``
    as a batch; ``seed`` (from the seed, epoch, batch index and process rank) seeds any
    per-batch randomness such as augmentation.
    """

    def __init__(
        self,
        fetch: Callable[[torch.Tensor, int], Batch],
        n_items: int,
        batch_size: int,
        seed: int,
        *,
        n_samples: int | None = None,
        min_rows: int = 1,
    ) -> None:
        super().__init__(seed, min_rows)
        if batch_size < 1:
            raise InputError(f"batch_size must be ≥ 1, got {batch_size}")
        self.fetch = fetch
        self.n_items = n_items
        self.batch_size = batch_size
        self.n_samples = n_samples
        self._order: tuple[int, torch.Tensor] | None = None

    def batch_count(self, world: int) -> int:
        """Batches per epoch: the last, partial one only if every process gets enough rows."""
        if self.batch_size < world * self.min_rows:
            raise InputError(
                f"batch_size {self.batch_size} is too small to split over {world} devices "
                f"(expected at least {world * self.min_rows})"
            )
        draws = self.n_items if self.n_samples is None else self.n_samples
        full, last = divmod(draws, self.batch_size)
        return full + int(last >= world * self.min_rows)

    def order(self, epoch: int) -> torch.Tensor:
        """The item indices of ``epoch``, in the order they are served."""
        if self._order is None or self._order[0] != epoch:
            generator = torch.Generator().manual_seed(mixed_seed(self.seed, epoch))
            if self.n_samples is None:
                order = torch.randperm(self.n_items, generator=generator)
            else:
                order = torch.randint(self.n_items, (self.n_samples,), generator=generator)
            self._order = (epoch, order)
        return self._order[1]

    def make_batch(self, epoch: int, index: int, rank: int, world: int) -> Batch:
        """Process ``rank``'s rows of batch ``index``."""
        rows = self.order(epoch)[index * self.batch_size : (index + 1) * self.batch_size]
        return self.fetch(rows[rank::world], mixed_seed(self.seed, epoch, index, rank))


def tensor_rows(tensors: Sequence[torch.Tensor], indices: torch.Tensor, seed: int) -> Batch:
    """The rows ``indices`` of each tensor (a fetch function of :class:`IndexBatches`)."""
    return tuple(tensor[indices] for tensor in tensors)


def sequence_batches(
    data: EncodedSequences,
    labels: np.ndarray,
    batch_size: int,
    seed: int,
    *,
    n_samples: int | None = None,
) -> IndexBatches:
    """Training batches of (inputs, label[, weight]): a shuffled pass per epoch, or ``n_samples``
    draws with replacement (lncRNA-Py's epochs of ``n_samples_per_epoch`` draws). Seeded per
    epoch, resumable mid-epoch (see :class:`EpochBatches`)."""
    tensors = model_tensors(data, labels)
    return IndexBatches(
        partial(tensor_rows, tensors), len(labels), batch_size, seed, n_samples=n_samples
    )


def sequence_loader(data: EncodedSequences, labels: np.ndarray, batch_size: int) -> DataLoader:
    """A DataLoader over (inputs, label[, weight]) triples in order (for evaluation).

    Integer inputs (token ids, codes) become int64, float inputs (atomic rows) float32;
    ``labels`` are class indices or scaled regression values.
    """
    return DataLoader(TensorDataset(*model_tensors(data, labels)), batch_size=batch_size)


def class_weights(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """Inverse-frequency class weights n / (classes · count), computed on the training part."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    if (counts == 0).any():
        raise InputError(
            f"a class has no training sequences (class counts: {counts.astype(int).tolist()})"
        )
    return torch.tensor(len(labels) / (n_classes * counts), dtype=torch.float32)


def training_devices(gpus: int) -> int:
    """Devices a training job asks for from its ``gpu`` resource: one per GPU, at least one
    (0 GPUs = one CPU device); more than one trains with DDP (:func:`trainer_settings`)."""
    return max(1, int(gpus or 0))


def trainer_settings(devices: int = 1, accelerator: str | None = None) -> dict[str, Any]:
    """Accelerator, precision, devices and strategy of a Lightning trainer.

    Without ``accelerator``: the GPU in bf16 autocast when CUDA is present, else the CPU in
    fp32. ``devices`` > 1 trains with DDP, one process per device (see :func:`fit_lightning`);
    more GPUs than present are cut down, and several GPUs asked for without CUDA fall back to
    one CPU process, with a warning. ``accelerator="cpu"`` with ``devices`` > 1 runs that many
    CPU processes (gloo; tests). The cluster environment is always Lightning's own, never
    SLURM's: no ``scontrol requeue`` on SIGUSR1, no ranks expected from ``srun``.
    """
    if devices < 1:
        raise InputError(f"devices must be ≥ 1, got {devices}")
    if accelerator == "gpu" or (accelerator is None and torch.cuda.is_available()):
        available = torch.cuda.device_count()
        if devices > available:
            log.warning("%d GPUs asked for, %d present: training on those", devices, available)
            devices = available
        settings: dict[str, Any] = {
            "accelerator": "gpu",
            "devices": devices,
            "precision": "bf16-mixed",
        }
    else:
        if devices > 1 and accelerator is None:
            log.warning(
                "%d GPUs asked for (resources.gpu) but CUDA is not available: training in one "
                "CPU process",
                devices,
            )
            devices = 1
        settings = {"accelerator": "cpu", "devices": devices, "precision": "32-true"}
    environment = LightningEnvironment()
    if devices > 1:
        settings["strategy"] = DDPStrategy(
            cluster_environment=environment, find_unused_parameters=True
        )
    else:
        settings["plugins"] = [environment]
    return settings


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


class EpochSeeds(L.Callback):
    """Make training randomness a function of (seed, epoch, batch index).

    Every epoch start tells the training loader its epoch (``set_epoch``, see
    :class:`EpochBatches`); every batch start reseeds the global torch, NumPy and Python
    generators (dropout and the like) from the seed, the epoch, the batch index and the process
    rank. A run resumed from a checkpoint therefore draws exactly what an uninterrupted one
    would, with no generator state to save.
    """

    def __init__(self, seed: int, loader: object) -> None:
        self.seed = seed
        self.loader = loader

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Set the training loader's epoch."""
        set_epoch = getattr(self.loader, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(trainer.current_epoch)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Reseed the global generators for this batch."""
        seed = mixed_seed(
            self.seed, _GLOBAL_RNG_WORD, trainer.current_epoch, batch_idx, trainer.global_rank
        )
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)


def fit_lightning(
    module: L.LightningModule,
    train_loader: Any,
    valid_loader: Any,
    *,
    epochs: int,
    monitor: str,
    patience: int | None,
    gradient_clip: float | None = None,
    stop_monitor: str | None = None,
    callbacks: Sequence[L.Callback] = (),
    seed: int = 0,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    devices: int = 1,
    accelerator: str | None = None,
) -> EpochHistory:
    """Train ``module``; keep each epoch's metrics and the best epoch's weights (by ``monitor``).

    Early stopping after ``patience`` epochs without improvement of ``stop_monitor`` (default:
    ``monitor``; None patience: run every epoch). ``callbacks`` run after the history's.
    Randomness is a function of ``seed``, the epoch and the batch (:class:`EpochSeeds`; the
    training loader should be an :class:`EpochBatches`).

    With ``checkpoint_dir`` the run is resumable (:class:`RunCheckpoints`): it resumes from
    ``last.ckpt`` there when present, and on SIGTERM / SIGUSR1 it saves and raises
    :class:`~nucflow.train.interrupt.Preempted` (exit status 128 + signal). A resumed run ends
    with the same history and weights as an uninterrupted one.

    ``devices`` > 1 trains with DDP (:func:`trainer_settings`): Lightning starts devices − 1
    copies of the running command (its "ddp" launcher); they reach this call, train, and end
    here with exit status 0, so only the first process (this one) returns and writes files.
    """
    history = EpochHistory(monitor)
    preemption = Preemption()
    directory = Path(checkpoint_dir) if checkpoint_dir is not None else None
    all_callbacks: list[L.Callback] = [
        EpochSeeds(seed, train_loader),
        history,
        *callbacks,
        RunCheckpoints(directory, preemption),
    ]
    if patience is not None:
        stop_on = stop_monitor or monitor
        mode = "max" if stop_on in MAXIMISED else "min"
        all_callbacks.append(
            L.pytorch.callbacks.EarlyStopping(monitor=stop_on, mode=mode, patience=patience)
        )
    resume = None
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        if (directory / CHECKPOINT).is_file():
            resume = directory / CHECKPOINT
            log.info("resuming from %s", resume)
    trainer = L.Trainer(
        max_epochs=epochs,
        callbacks=all_callbacks,
        logger=False,
        enable_checkpointing=True,  # RunCheckpoints is the only checkpoint callback
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=True,
        gradient_clip_val=gradient_clip,
        use_distributed_sampler=False,  # EpochBatches splits the batches itself
        **trainer_settings(devices, accelerator),
    )
    with warnings.catch_warnings(), preemption:
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*GPU available but not used.*")
        warnings.filterwarnings("ignore", ".*treespec, LeafSpec.*")  # inside Lightning 2.6
        warnings.filterwarnings("ignore", ".*srun. command is available.*")
        warnings.filterwarnings("ignore", ".*sync_dist=True.*")  # every process validates all
        warnings.filterwarnings("ignore", ".*find_unused_parameters=True.*")
        try:
            trainer.fit(module, train_loader, valid_loader, ckpt_path=resume, weights_only=False)
        except Preempted:
            if trainer.global_rank > 0:
                raise SystemExit(0) from None  # the first process reports the preemption
            raise
    if trainer.global_rank > 0:
        raise SystemExit(0)  # a DDP worker: its copy of the job ends with the training
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
    devices: int = 1,
    resume: bool = True,
) -> dict[str, Any]:
    """Train on a fold's train part, select the best epoch on its valid part, save the model.

    Classification trains on class indices; regression on labels scaled by
    ``training["scaling"]`` fitted on this fold's training labels only (stored with the
    model and inverted at prediction), with per-sequence weights when the data have them.
    ``pretrained`` (or ``training["pretrained_model"]``) starts from a pretrained encoder;
    ``replicate`` r trains with seed ``seed + fold + 1000·r``.
    Early stopping and model selection follow ``training["monitor"]``. Writes the model
    directory, ``history.csv`` and its plot; returns a summary (best epoch and its score).
    ``devices`` > 1 trains with DDP; ``resume`` keeps checkpoints in ``<model_dir>.checkpoints``
    (resumed by a rerun, deleted once the outputs are written; see :func:`fit_lightning`).
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
    checkpoints = None
    if resume:
        identity = {
            "step": "fit",
            "model": model_settings,
            "encoding": encoding,
            "training": training,
            "task": task,
            "seed": fold_seed,
            "inputs": file_stamps(
                encoded_path,
                tokenizer_path,
                split_path,
                pretrained or training["pretrained_model"],
            ),
        }
        checkpoints = checkpoint_directory(model_dir, identity)
    history = fit_lightning(
        module,
        sequence_batches(
            train,
            train_labels,
            batch_size,
            fold_seed,
            n_samples=training["n_samples_per_epoch"],
        ),
        sequence_loader(valid, valid_labels, batch_size),
        epochs=training["epochs"],
        monitor=monitor,
        patience=training["patience"],
        gradient_clip=training["gradient_clip"],
        seed=fold_seed,
        checkpoint_dir=checkpoints,
        devices=devices,
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
    remove_checkpoints(checkpoints)
    log.info(
        "fold %s: best epoch %d of %d, %s = %.4f",
        split.fold,
        history.best_epoch,
        len(frame),
        monitor,
        summary[monitor],
    )
    return summary
