"""Lightning module for supervised training and a callback that keeps the best epoch."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from nucflow.models.saluki import random_shift as shift_rows
from nucflow.train.masking import random_reading_frame
from nucflow.train.metrics import classification_metrics, regression_metrics

MAXIMISED = frozenset(
    {"val_accuracy", "val_macro_f1", "val_auroc", "val_pearson_r", "val_spearman_rho", "val_dice"}
)


class SupervisedModule(L.LightningModule):
    """Supervised training with AdamW: classification (cross-entropy) or regression (MSE).

    Batches are ``(inputs, labels)`` or ``(inputs, labels, weights)``; regression weights
    multiply each sample's squared error (the loss is their mean). With ``reading_frame`` (the
    CSE kernel size) every training row starts at a random offset in [0, kernel_size − 1];
    with ``random_shift`` each row moves 0 … random_shift positions towards its 3' end (both
    drawn from a generator seeded with ``seed``). Validation metrics are computed over the
    whole validation part each epoch: accuracy, macro-F1, AUROC, or MSE, Pearson r, Spearman ρ
    (on the scaled labels). ``lr_scheduler`` builds a Lightning scheduler config for the
    optimizer (None: constant learning rate).
    """

    def __init__(
        self,
        model: nn.Module,
        task: str,
        learning_rate: float,
        weight_decay: float,
        class_weights: torch.Tensor | None = None,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        reading_frame: int | None = None,
        random_shift: int = 0,
        seed: int = 0,
        lr_scheduler: Callable[[torch.optim.Optimizer], dict[str, Any] | None] | None = None,
    ) -> None:
        super().__init__()
        self.lr_scheduler = lr_scheduler
        self.model = model
        self.task = task
        self.random_shift = random_shift
        self.reading_frame = reading_frame
        self.generator = torch.Generator().manual_seed(seed)
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.betas = betas
        self.cross_entropy = nn.CrossEntropyLoss(weight=class_weights)
        self._val_labels: list[torch.Tensor] = []
        self._val_outputs: list[torch.Tensor] = []

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Network outputs (class logits, or one value per sequence for regression)."""
        return self.model(inputs)

    def loss(
        self, outputs: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Cross-entropy, or the (weighted) mean squared error."""
        if self.task == "classification":
            return self.cross_entropy(outputs, labels)
        errors = (outputs.squeeze(1) - labels.float()) ** 2
        return (errors * weights).mean() if weights is not None else errors.mean()

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        """One optimisation step's loss (CSE input: each row from a random reading frame)."""
        inputs, labels, *weights = batch
        if self.reading_frame is not None:
            inputs = random_reading_frame(inputs, self.reading_frame, self.generator)
        if self.random_shift:
            inputs = shift_rows(inputs, self.random_shift, self.generator)
        outputs = self(inputs).float()
        loss = self.loss(outputs, labels, *weights)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(labels))
        if self.task == "classification":
            accuracy = (outputs.argmax(dim=1) == labels).float().mean()
            self.log(
                "train_accuracy", accuracy, on_step=False, on_epoch=True, batch_size=len(labels)
            )
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        """Validation loss; outputs are kept for the epoch's metrics."""
        inputs, labels, *weights = batch
        outputs = self(inputs).float()
        self.log(
            "val_loss", self.loss(outputs, labels, *weights), on_epoch=True, batch_size=len(labels)
        )
        self._val_labels.append(labels.cpu())
        if self.task == "classification":
            outputs = outputs.softmax(dim=1)
        self._val_outputs.append(outputs.cpu())

    def on_validation_epoch_end(self) -> None:
        """Log the epoch's metrics over the whole validation part."""
        if not self._val_labels:
            return
        labels = torch.cat(self._val_labels).numpy()
        outputs = torch.cat(self._val_outputs).numpy()
        self._val_labels.clear()
        self._val_outputs.clear()
        if self.task == "classification":
            metrics = classification_metrics(labels, outputs)
            names = ("accuracy", "macro_f1", "auroc")
        else:
            metrics = regression_metrics(labels, outputs[:, 0])
            names = ("mse", "pearson_r", "spearman_rho")
        for name in names:
            self.log(f"val_{name}", metrics[name])

    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        """AdamW over all trainable parameters, with the learning-rate schedule if any."""
        optimizer = torch.optim.AdamW(
            (p for p in self.parameters() if p.requires_grad),
            lr=self.learning_rate,
            weight_decay=self.weight_decay,
            betas=self.betas,
        )
        schedule = self.lr_scheduler(optimizer) if self.lr_scheduler else None
        if schedule is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": schedule}


class EpochHistory(L.Callback):
    """Record each epoch's logged metrics and keep a copy of the best epoch's weights.

    An epoch cut short before its validation (an interrupted run) is not recorded.
    """

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self._validated = False
        self.sign = 1.0 if monitor in MAXIMISED else -1.0
        self.rows: list[dict[str, float]] = []
        self.best_score = -math.inf
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Note that this epoch has been validated."""
        self._validated = not trainer.sanity_checking

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Runs after the epoch's validation: store its metrics, remember it if it is the best."""
        if not self._validated:
            return
        self._validated = False
        row = {"epoch": float(trainer.current_epoch)}
        row.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        row["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        self.rows.append(row)
        score = self.sign * row.get(self.monitor, math.nan)
        if not np.isnan(score) and score > self.best_score:
            self.best_score = score
            self.best_epoch = trainer.current_epoch
            self.best_state = copy.deepcopy(
                {k: v.detach().cpu() for k, v in pl_module.model.state_dict().items()}
            )
