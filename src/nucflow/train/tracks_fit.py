"""Train maxATAC's DCNN on (1024, 5) ACGT+ATAC windows → 32 binding bins (reference §6, §12).

Parity with maxATAC: BCE with predictions clipped to [1e-7, 1 − 1e-7] and labels < −0.5
ignored; soft dice with smoothing 10 as the metric; Adam (lr 1e-3, β 0.9/0.999, ε 1e-7) with
inverse-time decay lr/(1 + 1e-5·step) per optimisation step; best epoch = argmax val_dice.

Deliberate differences (documented in the reference §13–14 as defects to avoid):

- Validation runs on a **fixed** set, split into chunks of ``val_batch_size`` (unused in the
  original); val_dice is the size-weighted mean of the chunks' dice, as Keras averages a
  metric over batches. Training batches come from a generator seeded with ``seed``.
- The loss works on logits: BCE-with-logits on logits clamped to ±log((1 − 1e-7)/1e-7),
  which is exactly maxATAC's BCE on clipped probabilities (same values, zero gradient
  beyond the clip) without the float round trip through the sigmoid.
- PyTorch's Adam adds ε to the bias-corrected √v̂ where Keras adds it to √v; with ε = 1e-7
  the difference is negligible.
- Quantitative models (quant-maxATAC) train with MSE (``output="linear"``) or Poisson NLL on
  log-rates (``output="exp"``, torch ``PoissonNLLLoss(log_input=True)``); the best epoch is
  the one with the lowest val_loss (quant-maxATAC's |val_loss − loss| rule is not copied).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from types import MappingProxyType
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from nucflow.errors import InputError
from nucflow.models.dcnn import DCNN, raw_to_predictions
from nucflow.models.files import ModelConfig, save_model
from nucflow.models.registry import build_model
from nucflow.train.fit import Batch, EpochBatches, fit_lightning
from nucflow.train.module import EpochHistory, TrainingModule, mixed_seed

CHANNELS = ("A", "C", "G", "T", "ATAC")
LOSS_OUTPUTS: Mapping[str, str] = MappingProxyType(
    {"bce": "sigmoid", "mse": "linear", "poisson": "exp"}
)
CLIP = 1e-7
IGNORE_BELOW = -0.5

TrainBatches = Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]


def dice_coefficient(y: torch.Tensor, p: torch.Tensor, smooth: float = 10.0) -> torch.Tensor:
    """Soft dice over the flattened batch, (2·Σ y·p + s)/(Σ y + Σ p + s), as maxATAC's
    ``dice_coef``: bins labelled < −0.5 ("ignore") count neither in y nor in p."""
    y, p = y.flatten().float(), p.flatten().float()
    keep = (y >= IGNORE_BELOW).float()
    y, p = y * keep, p * keep
    return (2.0 * (y * p).sum() + smooth) / (y.sum() + p.sum() + smooth)


def clipped_bce(logits: torch.Tensor, y: torch.Tensor, clip: float = CLIP) -> torch.Tensor:
    """maxATAC's loss: mean BCE over the kept bins (label ≥ −0.5) with probabilities clipped
    to [clip, 1 − clip], computed on logits clamped to the matching ±logit(1 − clip)."""
    bound = math.log((1.0 - clip) / clip)
    keep = y >= IGNORE_BELOW
    return F.binary_cross_entropy_with_logits(
        logits[keep].float().clamp(-bound, bound), y[keep].float()
    )


def inverse_time_decay(step: int, lr: float = 1e-3, decay: float = 1e-5) -> float:
    """Keras' legacy optimizer ``decay``: the learning rate of (0-based) step ``step``,
    lr/(1 + decay·step)."""
    return lr / (1.0 + decay * step)


def _decay_factor(step: int, decay: float) -> float:
    return 1.0 / (1.0 + decay * step)


class TrackModule(TrainingModule):
    """Lightning wrapper of a :class:`DCNN` for binary (``loss="bce"``) or quantitative
    (``"mse"`` / ``"poisson"``) per-bin targets.

    Logs train_loss and val_loss; binary runs also train_dice and val_dice (on the
    probabilities), quantitative runs val_pearson_r over all validation bins (on the
    predictions: values or rates). The learning rate decays per optimisation step. Training
    metrics are the epoch's means (:meth:`~nucflow.train.module.TrainingModule.log_epoch_means`).
    """

    def __init__(
        self,
        model: DCNN,
        loss: str = "bce",
        *,
        learning_rate: float = 1e-3,
        decay: float = 1e-5,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-7,
    ) -> None:
        super().__init__()
        if loss not in LOSS_OUTPUTS:
            raise InputError(f"loss must be one of {', '.join(LOSS_OUTPUTS)}, got {loss!r}")
        if model.output != LOSS_OUTPUTS[loss]:
            raise InputError(
                f"loss {loss!r} needs a model with output {LOSS_OUTPUTS[loss]!r}, "
                f"not {model.output!r}"
            )
        self.model = model
        self.loss_name = loss
        self.binary = loss == "bce"
        self.learning_rate = learning_rate
        self.decay = decay
        self.betas = betas
        self.eps = eps
        self._poisson = nn.PoissonNLLLoss(log_input=True, full=False)
        self._val_targets: list[torch.Tensor] = []
        self._val_predictions: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw model outputs (logits, values or log-rates), (batch, bins)."""
        return self.model(x)

    def loss(self, raw: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Clipped BCE on logits, MSE on values, or Poisson NLL on log-rates (fp32)."""
        raw, y = raw.float(), y.float()
        if self.loss_name == "bce":
            return clipped_bce(raw, y)
        if self.loss_name == "mse":
            return F.mse_loss(raw, y)
        return self._poisson(raw, y)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> Any:
        """One optimisation step's loss; logs the epoch means of loss (and dice)."""
        x, y = batch
        raw = self(x).float()
        loss = self.loss(raw, y)
        metrics = {"train_loss": loss}
        if self.binary:
            metrics["train_dice"] = dice_coefficient(y, torch.sigmoid(raw.detach()))
        self.log_epoch_means(metrics, len(y))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """Validation loss and dice of one chunk; quantitative outputs kept for Pearson r."""
        x, y = batch
        raw = self(x).float()
        self.log("val_loss", self.loss(raw, y), on_epoch=True, batch_size=len(y))
        predictions = raw_to_predictions(raw, self.model.output)
        if self.binary:
            self.log("val_dice", dice_coefficient(y, predictions), on_epoch=True, batch_size=len(y))
        else:
            self._val_targets.append(y.float().flatten().cpu())
            self._val_predictions.append(predictions.flatten().cpu())

    def on_validation_epoch_end(self) -> None:
        """Quantitative runs: Pearson r between targets and predictions over all bins."""
        if not self._val_targets:
            return
        pair = torch.stack([torch.cat(self._val_targets), torch.cat(self._val_predictions)])
        self._val_targets.clear()
        self._val_predictions.clear()
        self.log("val_pearson_r", float(torch.corrcoef(pair.double())[0, 1]))

    def configure_optimizers(self) -> dict[str, Any]:
        """Adam with Keras' ε and inverse-time decay applied after every step."""
        optimizer = torch.optim.Adam(
            self.model.parameters(), lr=self.learning_rate, betas=self.betas, eps=self.eps
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, partial(_decay_factor, decay=self.decay)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": schedule, "interval": "step", "frequency": 1},
        }


def _check_arrays(x: np.ndarray, y: np.ndarray, model: DCNN, what: str) -> None:
    """Shapes (B, window, channels) / (B, bins) and finite inputs, else an InputError."""
    expected = (model.window, model.input_channels)
    if x.ndim != 3 or tuple(x.shape[1:]) != expected:
        raise InputError(
            f"{what}: inputs must be (batch, {expected[0]}, {expected[1]}), got {tuple(x.shape)}"
        )
    if y.shape != (x.shape[0], model.bins):
        raise InputError(
            f"{what}: targets must be ({x.shape[0]}, {model.bins}), got {tuple(y.shape)}"
        )
    if not np.isfinite(x).all():
        raise InputError(f"{what}: inputs contain NaN or infinite values (replace NaN by 0)")


class _TrainBatches(EpochBatches):
    """``batches`` whole batches per epoch from ``draw(rng)``, with ``rng`` seeded from the
    seed, the epoch and the batch index: every epoch draws fresh batches, and a run resumed
    from a checkpoint draws the same ones. Under DDP every process draws the whole batch and
    keeps its share of the windows (see :class:`~nucflow.train.fit.EpochBatches`)."""

    def __init__(self, draw: TrainBatches, batches: int, seed: int, model: DCNN) -> None:
        super().__init__(seed)
        self.draw = draw
        self.batches = batches
        self.model = model

    def batch_count(self, world: int) -> int:
        """``batches``, whatever the number of processes."""
        return self.batches

    def make_batch(self, epoch: int, index: int, rank: int, world: int) -> Batch:
        """Process ``rank``'s windows of batch ``index`` of ``epoch``."""
        x, y = self.draw(np.random.default_rng(mixed_seed(self.seed, epoch, index)))
        x, y = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.float32)
        _check_arrays(x, y, self.model, "training batch")
        if len(x) < world:
            raise InputError(f"a training batch of {len(x)} windows cannot feed {world} devices")
        return (
            torch.from_numpy(np.ascontiguousarray(x[rank::world])),
            torch.from_numpy(np.ascontiguousarray(y[rank::world])),
        )


def fit_tracks(
    model: DCNN,
    train_batches: TrainBatches,
    valid_set: tuple[np.ndarray, np.ndarray],
    *,
    epochs: int,
    batches: int,
    val_batch_size: int,
    seed: int,
    quantitative: bool = False,
    loss: str = "bce",
    learning_rate: float = 1e-3,
    decay: float = 1e-5,
    callbacks: Sequence[L.Callback] = (),
    checkpoint_dir: str | os.PathLike[str] | None = None,
    devices: int = 1,
) -> EpochHistory:
    """Train ``model`` for ``epochs`` × ``batches`` steps; return the per-epoch history.

    ``train_batches(rng)`` returns one training batch (X (B, window, 5), y (B, bins));
    ``valid_set`` is evaluated every epoch in chunks of ``val_batch_size``. Binary runs
    (``loss="bce"``) keep the epoch with the highest val_dice, quantitative ones
    (``quantitative=True``, ``loss="mse"`` or ``"poisson"``) the lowest val_loss; ``model``
    ends with that epoch's weights (``history.best_epoch`` is 0-based). History rows hold
    epoch, train_loss, val_loss, lr (after the epoch's last step) and train_dice / val_dice
    or val_pearson_r. The GPU trains in bf16 autocast when present. ``callbacks`` run after
    the history's. ``checkpoint_dir`` makes the run resumable and ``devices`` > 1 trains with
    DDP (see :func:`~nucflow.train.fit.fit_lightning`; the caller derives the directory with
    :func:`~nucflow.train.checkpoints.checkpoint_directory` and removes it once its outputs are
    written).
    """
    if loss not in LOSS_OUTPUTS:
        raise InputError(f"loss must be one of {', '.join(LOSS_OUTPUTS)}, got {loss!r}")
    if quantitative != (loss != "bce"):
        raise InputError(
            f"loss {loss!r} is for {'binary' if loss == 'bce' else 'quantitative'} targets "
            f"(quantitative={quantitative}); use bce for binary, mse or poisson otherwise"
        )
    for name, value in (
        ("epochs", epochs),
        ("batches", batches),
        ("val_batch_size", val_batch_size),
    ):
        if value < 1:
            raise InputError(f"{name} must be ≥ 1, got {value}")
    x_valid, y_valid = (np.asarray(a, dtype=np.float32) for a in valid_set)
    _check_arrays(x_valid, y_valid, model, "validation set")
    if len(x_valid) == 0:
        raise InputError("validation set: no windows")
    L.seed_everything(seed, verbose=False)
    module = TrackModule(model, loss, learning_rate=learning_rate, decay=decay)
    train_loader = _TrainBatches(train_batches, batches, seed, model)
    valid_loader = DataLoader(
        TensorDataset(torch.from_numpy(x_valid), torch.from_numpy(y_valid)),
        batch_size=val_batch_size,
        shuffle=False,
    )
    history = fit_lightning(
        module,
        train_loader,
        valid_loader,
        epochs=epochs,
        monitor="val_loss" if quantitative else "val_dice",
        patience=None,
        callbacks=callbacks,
        seed=seed,
        checkpoint_dir=checkpoint_dir,
        devices=devices,
    )
    model.load_state_dict(history.best_state)
    return history


def save_track_model(
    model_dir: str | os.PathLike[str],
    model: DCNN,
    hyperparameters: dict[str, Any],
    *,
    training: dict[str, Any],
    target: dict[str, Any],
) -> None:
    """Write a DCNN model directory (weights + config) loadable by ``files.load_model``.

    ``hyperparameters`` must rebuild ``model`` (same output type and tensor shapes); the
    tokenizer spec records the window, bins and channels plus ``target`` (e.g. the label
    rule or target scale factor); the task is "binary" for sigmoid models, else
    "quantitative".
    """
    hyperparameters = {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in hyperparameters.items()
    }
    try:
        rebuilt = build_model("dcnn", **hyperparameters)
    except TypeError as err:
        raise InputError(f"dcnn: bad hyperparameters ({err})") from None
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if rebuilt.output != model.output or shapes != {
        k: tuple(v.shape) for k, v in rebuilt.state_dict().items()
    }:
        raise InputError("dcnn: the hyperparameters do not describe the model being saved")
    tokenizer = {
        "method": "tracks",
        "window": model.window,
        "bins": model.bins,
        "channels": list(CHANNELS),
        **target,
    }
    config = ModelConfig(
        architecture="dcnn",
        hyperparameters=hyperparameters,
        tokenizer=tokenizer,
        task="binary" if model.output == "sigmoid" else "quantitative",
        class_names=[],
        training=dict(training),
    )
    save_model(model_dir, model, config)
