"""Lightning module for sequence classification and a callback that keeps the best epoch."""

from __future__ import annotations

import copy
import math

import lightning as L
import numpy as np
import torch
from torch import nn

from nucflow.train.masking import random_reading_frame
from nucflow.train.metrics import classification_metrics

MAXIMISED = frozenset({"val_accuracy", "val_macro_f1", "val_auroc"})


class ClassifierModule(L.LightningModule):
    """Cross-entropy training of a classifier network with AdamW; validation metrics per epoch.

    With ``reading_frame`` (the CSE kernel size) every training row starts at a random offset
    in [0, kernel_size − 1] (drawn from a generator seeded with ``seed``).
    """

    def __init__(
        self,
        model: nn.Module,
        learning_rate: float,
        weight_decay: float,
        class_weights: torch.Tensor | None = None,
        *,
        reading_frame: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.model = model
        self.reading_frame = reading_frame
        self.generator = torch.Generator().manual_seed(seed)
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.loss = nn.CrossEntropyLoss(weight=class_weights)
        self._val_labels: list[torch.Tensor] = []
        self._val_probabilities: list[torch.Tensor] = []

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Class logits for a batch of token ids."""
        return self.model(tokens)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        """One optimisation step's loss (CSE input: each row from a random reading frame)."""
        tokens, labels = batch
        if self.reading_frame is not None:
            tokens = random_reading_frame(tokens, self.reading_frame, self.generator)
        loss = self.loss(self(tokens).float(), labels)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(labels))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """Validation loss; probabilities are kept for the epoch's metrics."""
        tokens, labels = batch
        logits = self(tokens).float()
        self.log("val_loss", self.loss(logits, labels), on_epoch=True, batch_size=len(labels))
        self._val_labels.append(labels.cpu())
        self._val_probabilities.append(logits.softmax(dim=1).cpu())

    def on_validation_epoch_end(self) -> None:
        """Log accuracy, macro-F1 and AUROC over the whole validation part."""
        if not self._val_labels:
            return
        metrics = classification_metrics(
            torch.cat(self._val_labels).numpy(), torch.cat(self._val_probabilities).numpy()
        )
        self._val_labels.clear()
        self._val_probabilities.clear()
        for name in ("accuracy", "macro_f1", "auroc"):
            self.log(f"val_{name}", metrics[name])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """AdamW over all parameters."""
        return torch.optim.AdamW(
            self.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )


class EpochHistory(L.Callback):
    """Record each epoch's logged metrics and keep a copy of the best epoch's weights."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self.sign = 1.0 if monitor in MAXIMISED else -1.0
        self.rows: list[dict[str, float]] = []
        self.best_score = -math.inf
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Runs after the epoch's validation: store its metrics, remember it if it is the best."""
        row = {"epoch": float(trainer.current_epoch)}
        row.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        self.rows.append(row)
        score = self.sign * row.get(self.monitor, math.nan)
        if not np.isnan(score) and score > self.best_score:
            self.best_score = score
            self.best_epoch = trainer.current_epoch
            self.best_state = copy.deepcopy(
                {k: v.detach().cpu() for k, v in pl_module.model.state_dict().items()}
            )
