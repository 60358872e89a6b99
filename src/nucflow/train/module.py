"""Lightning modules' shared training core, supervised training, and the best-epoch callback."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
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
_EPOCH_MEANS_KEY = "nucflow_epoch_means"
"""Checkpoint entry of the training metrics' running sums (see :class:`TrainingModule`)."""


def mixed_seed(*words: int) -> int:
    """A 63-bit generator seed mixed from integers (distinct tuples give unrelated streams)."""
    entropy = [int(w) & 0xFFFF_FFFF_FFFF_FFFF for w in words]  # SeedSequence wants w >= 0
    state = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class TrainingModule(L.LightningModule):
    """The shared core of nucflow's Lightning modules: per-batch seeds and resumable epoch means.

    Training metrics go through :meth:`log_epoch_means`, not ``self.log(on_epoch=True)``:
    Lightning does not checkpoint its epoch accumulators, so a run resumed in the middle of an
    epoch would report means over the batches after the restart only. Here the running sums
    are part of the checkpoint, and under DDP they are summed over all processes (exact
    global means). Per-batch randomness uses generators seeded by :meth:`batch_seed`, so a
    resumed run draws what an uninterrupted one would.
    """

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed
        self._epoch_sums: dict[str, torch.Tensor] = {}

    def batch_seed(self, *words: int) -> int:
        """A seed mixed from the module's seed, ``words`` and (under DDP only) the process rank."""
        ranks = (self.global_rank,) if self.trainer.world_size > 1 else ()
        return mixed_seed(self.seed, *words, *ranks)

    def log_epoch_means(self, values: Mapping[str, torch.Tensor | float], weight: float) -> None:
        """Add ``values`` (weighted by ``weight``, e.g. the batch size) to the epoch's sums and
        log their running means: after the epoch's last step they are its means."""
        device = self.device
        increment = torch.stack(
            [
                *(
                    torch.as_tensor(value, dtype=torch.float64, device=device).detach().reshape(())
                    * weight
                    for value in values.values()
                ),
                torch.tensor(float(weight), dtype=torch.float64, device=device),
            ]
        )
        increment = self.trainer.strategy.reduce(increment, reduce_op="sum")  # over DDP processes
        for name, value in zip(values, increment[:-1], strict=True):
            total = torch.stack([value, increment[-1]])
            if name in self._epoch_sums:
                total = total + self._epoch_sums[name].to(device)
            self._epoch_sums[name] = total
            self.log(name, (total[0] / total[1]).float(), on_step=True, on_epoch=False)

    def on_train_epoch_start(self) -> None:
        """A new epoch: restart the running sums."""
        self._epoch_sums = {}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the running sums with the checkpoint (a mid-epoch one needs them)."""
        checkpoint[_EPOCH_MEANS_KEY] = {k: v.detach().cpu() for k, v in self._epoch_sums.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the running sums of a checkpoint."""
        self._epoch_sums = dict(checkpoint.get(_EPOCH_MEANS_KEY, {}))


class SupervisedModule(TrainingModule):
    """Supervised training with AdamW: classification (cross-entropy) or regression (MSE).

    Batches are ``(inputs, labels)`` or ``(inputs, labels, weights)``; regression weights
    multiply each sample's squared error (the loss is their mean). With ``reading_frame`` (the
    CSE kernel size) every training row starts at a random offset in [0, kernel_size − 1];
    with ``random_shift`` each row moves 0 … random_shift positions towards its 3' end (both
    drawn from a generator seeded with ``seed``, the epoch and the batch index). Training loss
    (and accuracy) are the epoch's means (:meth:`TrainingModule.log_epoch_means`). Validation
    metrics are computed over the whole validation part each epoch: accuracy, macro-F1, AUROC,
    or MSE, Pearson r, Spearman ρ (on the scaled labels). ``lr_scheduler`` builds a Lightning
    scheduler config for the optimizer (None: constant learning rate).
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
        super().__init__(seed)
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
        if self.reading_frame is not None or self.random_shift:
            self.generator.manual_seed(self.batch_seed(self.current_epoch, batch_idx))
        if self.reading_frame is not None:
            inputs = random_reading_frame(inputs, self.reading_frame, self.generator)
        if self.random_shift:
            inputs = shift_rows(inputs, self.random_shift, self.generator)
        outputs = self(inputs).float()
        loss = self.loss(outputs, labels, *weights)
        metrics = {"train_loss": loss}
        if self.task == "classification":
            metrics["train_accuracy"] = (outputs.argmax(dim=1) == labels).float().mean()
        self.log_epoch_means(metrics, len(labels))
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

    An epoch cut short before its validation (an interrupted run) is not recorded. The history
    is part of the checkpoints (``state_dict``), so a resumed run returns all of it.
    """

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self._validated = False
        self.sign = 1.0 if monitor in MAXIMISED else -1.0
        self.rows: list[dict[str, float]] = []
        self.best_score = -math.inf
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None

    def state_dict(self) -> dict[str, Any]:
        """Rows, best epoch and score and the best weights: what a resumed run needs."""
        return {
            "rows": self.rows,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take up the history of a checkpoint."""
        self.rows = list(state_dict["rows"])
        self.best_score = float(state_dict["best_score"])
        self.best_epoch = int(state_dict["best_epoch"])
        self.best_state = state_dict["best_state"]

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
