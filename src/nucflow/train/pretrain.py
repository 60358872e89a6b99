"""Masked-language-model pretraining of a BERT encoder on token ids or CSE nucleotide codes.

Recipe (lncRNA-Py, with its reproducibility defects fixed): Adam (β 0.9, 0.98) at a base
learning rate of 1.0 scaled by the Noam warm-up schedule, stepped every optimizer step; each
epoch draws ``n_samples_per_epoch`` training sequences with replacement; training rows are
masked on the fly (CSE rows first cropped to a random reading frame) with a generator seeded
from the seed, the epoch and the batch index; validation uses masks drawn once from a seeded
generator, so every epoch is scored on the same masked positions; the epoch with the best
validation accuracy over masked positions is kept. Token MLM uses label smoothing 0.1, CSE
MLM none (both configurable through the module).
"""

from __future__ import annotations

import logging
import math
import os
from functools import partial
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nucflow.data.encoded import load_encoded
from nucflow.data.splits import load_split
from nucflow.errors import InputError
from nucflow.models import build_model
from nucflow.models.files import ModelConfig, save_model
from nucflow.models.settings import encoder_hyperparameters
from nucflow.tokenize import load_tokenizer
from nucflow.train.checkpoints import checkpoint_directory, file_stamps, remove_checkpoints
from nucflow.train.fit import (
    IndexBatches,
    fit_lightning,
    tensor_rows,
    write_history,
)
from nucflow.train.masking import (
    IGNORE_INDEX,
    check_masking,
    first_reading_frame,
    mask_nucleotides,
    mask_tokens,
    random_reading_frame,
)
from nucflow.train.module import TrainingModule, mixed_seed
from nucflow.train.schedules import noam_scheduler

log = logging.getLogger(__name__)

MONITOR = "val_accuracy"
"""Pretraining keeps the epoch with the best validation accuracy over masked positions."""
_VALID_CHUNK_ROWS = 1024
"""Validation masks are drawn this many rows at a time (bounds temporary memory)."""


def _default_label_smoothing(encoding_method: str) -> float:
    """0.1 for token MLM, 0.0 for CSE nucleotide MLM (lncRNA-Py's choices)."""
    return 0.0 if encoding_method == "cse" else 0.1


def mask_rows(
    rows: torch.Tensor,
    generator: torch.Generator,
    *,
    encoding_method: str,
    vocab_size: int,
    p_mlm: float,
    p_mask: float,
    p_random: float,
    mask_size: int,
    kernel_size: int | None,
    random_frame: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask rows of token ids, or crop CSE code rows to a reading frame and mask nucleotides.

    CSE rows (B, W) are cropped to ``W − (k − 1)`` codes: at a random offset per row when
    ``random_frame``, else from offset 0. Returns ``(inputs, targets)`` as
    :func:`~nucflow.train.masking.mask_tokens` / :func:`~nucflow.train.masking.mask_nucleotides`.
    """
    if encoding_method != "cse":
        return mask_tokens(rows, vocab_size, p_mlm, p_mask, p_random, mask_size, generator)
    if not kernel_size:
        raise InputError("CSE masking needs the encoding's kernel_size")
    if random_frame:
        rows = random_reading_frame(rows, kernel_size, generator)
    else:
        rows = first_reading_frame(rows, kernel_size)
    return mask_nucleotides(rows, p_mlm, p_mask, p_random, mask_size, generator)


class MaskedLMModule(TrainingModule):
    """Masked-LM training of a :class:`~nucflow.models.bert.BertMaskedLM` with the Noam schedule.

    Training batches hold rows of token ids or CSE codes ``(rows,)``; they are masked on the
    CPU before the transfer to the device (:meth:`on_before_batch_transfer`), with a generator
    seeded from ``seed``, the epoch and the batch index (reproducible, and the same on the CPU
    and the GPU; under DDP also from the process rank). CSE rows are first cropped to a random
    reading frame (``random_reading_frame``) or to the first one. Validation batches are
    already masked ``(inputs, targets)`` (see :func:`validation_masks`). Logged per epoch:
    ``train_loss``, ``train_accuracy``, ``learning_rate`` (mean over the epoch's steps; epoch
    means that survive a mid-epoch restart, see
    :meth:`~nucflow.train.module.TrainingModule.log_epoch_means`), ``val_loss`` and
    ``val_accuracy`` (argmax accuracy over all masked validation positions). Losses are
    cross-entropy means over masked positions; a batch without any masked position is
    skipped. ``learning_rate`` is the base rate that the Noam factor multiplies
    (1.0: the factor is the rate); ``label_smoothing`` None means 0.1 for token encodings and
    0.0 for CSE.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        encoding_method: str,
        vocab_size: int,
        p_mlm: float = 0.15,
        p_mask: float = 0.8,
        p_random: float = 0.1,
        mask_size: int = 1,
        random_reading_frame: bool = True,
        kernel_size: int | None = None,
        learning_rate: float = 1.0,
        warmup_steps: int = 32000,
        d_model: int,
        label_smoothing: float | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        check_masking(p_mlm, p_mask, p_random, mask_size)
        if encoding_method == "cse" and not kernel_size:
            raise InputError("CSE pretraining needs the encoding's kernel_size")
        self.model = model
        self.encoding_method = encoding_method
        self.vocab_size = vocab_size
        self.p_mlm, self.p_mask, self.p_random = p_mlm, p_mask, p_random
        self.mask_size = mask_size
        self.random_reading_frame = random_reading_frame
        self.kernel_size = kernel_size
        self.learning_rate = learning_rate
        self.warmup_steps = warmup_steps
        self.d_model = d_model
        self.label_smoothing = (
            _default_label_smoothing(encoding_method)
            if label_smoothing is None
            else label_smoothing
        )
        self._val_correct: torch.Tensor | int = 0
        self._val_count = 0
        self._batch_in_epoch = 0

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """MLM logits of the model (tokens: (B, P, V); CSE: (B, 4, L))."""
        return self.model(inputs)

    def corrupt(
        self, rows: torch.Tensor, generator: torch.Generator, *, training: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask a batch of rows as configured (see :func:`mask_rows`)."""
        return mask_rows(
            rows,
            generator,
            encoding_method=self.encoding_method,
            vocab_size=self.vocab_size,
            p_mlm=self.p_mlm,
            p_mask=self.p_mask,
            p_random=self.p_random,
            mask_size=self.mask_size,
            kernel_size=self.kernel_size,
            random_frame=training and self.random_reading_frame,
        )

    def on_train_epoch_start(self) -> None:
        """Restart the per-epoch batch counter that seeds the training masks."""
        super().on_train_epoch_start()
        self._batch_in_epoch = 0

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the batch counter with the checkpoint (a mid-epoch one needs it)."""
        super().on_save_checkpoint(checkpoint)
        checkpoint["nucflow_mlm_batch_in_epoch"] = self._batch_in_epoch

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the batch counter of a checkpoint."""
        super().on_load_checkpoint(checkpoint)
        self._batch_in_epoch = int(checkpoint.get("nucflow_mlm_batch_in_epoch", 0))

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Mask training rows on the CPU, before the batch moves to the device.

        Each training batch gets its own generator seeded from (seed, epoch, batch index), so
        its masks are reproducible and do not depend on the device. The number of masked
        positions is counted here, on the CPU, so the steps need no device synchronisation.
        Returns ``(inputs, targets, count)`` for training and validation batches.
        """
        if self.trainer.training:
            (rows,) = batch
            generator = torch.Generator().manual_seed(
                self.batch_seed(0, self.current_epoch, self._batch_in_epoch)
            )
            self._batch_in_epoch += 1
            inputs, targets = self.corrupt(rows, generator)
        else:
            inputs, targets = batch
        return inputs, targets, int((targets != IGNORE_INDEX).sum())

    def _masked_loss(
        self, inputs: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy mean over the masked positions and the number predicted correctly."""
        logits = self(inputs.long()).float()
        if self.encoding_method == "cse":
            logits = logits.transpose(1, 2)  # (B, L, 4): positions before classes
        # one row per position: the 1-D nll_loss is deterministic on CUDA, nll_loss2d is not
        logits = logits.reshape(-1, logits.shape[-1])
        targets = targets.reshape(-1).long()
        loss = F.cross_entropy(
            logits, targets, ignore_index=IGNORE_INDEX, label_smoothing=self.label_smoothing
        )
        correct = ((logits.argmax(dim=1) == targets) & (targets != IGNORE_INDEX)).sum()
        return loss, correct

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor, int], batch_idx: int
    ) -> torch.Tensor | None:
        """The MLM loss of a masked batch (None, skipping the batch, when nothing is masked)."""
        inputs, targets, count = batch
        if count == 0:
            return None
        loss, correct = self._masked_loss(inputs, targets)
        self.log_epoch_means({"train_loss": loss, "train_accuracy": correct / count}, count)
        self.log_epoch_means({"learning_rate": self.optimizers().param_groups[0]["lr"]}, 1)
        return loss

    def validation_step(
        self, batch: tuple[torch.Tensor, torch.Tensor, int], batch_idx: int
    ) -> None:
        """Loss and correct predictions on fixed, pre-drawn validation masks."""
        inputs, targets, count = batch
        if count == 0:
            return
        loss, correct = self._masked_loss(inputs, targets)
        self.log("val_loss", loss, on_epoch=True, batch_size=count)
        self._val_correct = self._val_correct + correct
        self._val_count += count

    def on_validation_epoch_end(self) -> None:
        """Log the accuracy over all masked validation positions."""
        accuracy = float(self._val_correct) / self._val_count if self._val_count else math.nan
        self._val_correct, self._val_count = 0, 0
        self.log(MONITOR, accuracy)
        if not self.trainer.sanity_checking:
            log.info("epoch %d: %s = %.4f", self.current_epoch, MONITOR, accuracy)

    def configure_optimizers(self) -> dict[str, Any]:
        """Adam (β 0.9, 0.98) with the Noam schedule, stepped after every optimizer step."""
        optimizer = torch.optim.Adam(self.parameters(), lr=self.learning_rate, betas=(0.9, 0.98))
        scheduler = noam_scheduler(optimizer, self.d_model, self.warmup_steps)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }


def validation_masks(
    rows: np.ndarray | torch.Tensor,
    *,
    encoding_method: str,
    vocab_size: int,
    p_mlm: float,
    p_mask: float,
    p_random: float,
    mask_size: int,
    kernel_size: int | None,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask the validation rows once, reproducibly: the same ``seed`` gives the same masks.

    CSE rows are cropped to the first reading frame (no random offset in evaluation). Inputs
    keep the rows' dtype; targets are int32 (tokens) or int8 (CSE), −100 where not masked.
    The rows are masked in chunks with one generator (seeded from ``seed``), so memory stays
    bounded on large validation sets.
    """
    data = torch.as_tensor(rows)
    generator = torch.Generator().manual_seed(mixed_seed(seed, 1))
    target_dtype = torch.int8 if encoding_method == "cse" else torch.int32
    inputs, targets = [], []
    for start in range(0, max(len(data), 1), _VALID_CHUNK_ROWS):
        chunk_inputs, chunk_targets = mask_rows(
            data[start : start + _VALID_CHUNK_ROWS],
            generator,
            encoding_method=encoding_method,
            vocab_size=vocab_size,
            p_mlm=p_mlm,
            p_mask=p_mask,
            p_random=p_random,
            mask_size=mask_size,
            kernel_size=kernel_size,
            random_frame=False,
        )
        inputs.append(chunk_inputs)
        targets.append(chunk_targets.to(target_dtype))
    return torch.cat(inputs), torch.cat(targets)


def mlm_hyperparameters(
    model_settings: dict[str, Any],
    encoding: dict[str, Any],
    pretrain: dict[str, Any],
    tokenizer_spec: dict[str, Any],
) -> dict[str, Any]:
    """Hyperparameters of the ``bert_mlm`` network from the config's sections.

    The encoder comes from ``model`` and ``encoding`` (as for the classifier, see
    :func:`nucflow.models.settings.encoder_hyperparameters`); the head from ``pretrain``
    (``dropout``, and for CSE ``output_linear`` / ``output_relu``).
    """
    if model_settings["name"] != "bert":
        raise InputError(f"pretraining needs model name bert, not {model_settings['name']!r}")
    hyperparameters = {
        **encoder_hyperparameters(model_settings, encoding, tokenizer_spec),
        "head_dropout": pretrain["dropout"],
    }
    if tokenizer_spec["method"] == "cse":
        hyperparameters["output_linear"] = pretrain["output_linear"]
        hyperparameters["output_relu"] = pretrain["output_relu"]
    return hyperparameters


def pretrain_model(
    encoded_path: str | os.PathLike[str],
    tokenizer_path: str | os.PathLike[str],
    split_path: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    history_path: str | os.PathLike[str],
    plot_path: str | os.PathLike[str],
    *,
    model_settings: dict[str, Any],
    encoding: dict[str, Any],
    pretrain: dict[str, Any],
    seed: int,
    threads: int = 1,
    devices: int = 1,
    resume: bool = True,
) -> dict[str, Any]:
    """Pretrain a BERT encoder by masked-LM on a split's train part; keep the best epoch.

    ``encoded_path`` holds token ids or CSE codes (labels are ignored; −1 is fine), the split's
    train ids are trained on and its valid ids select the epoch (validation accuracy over
    masked positions, fixed masks). ``model_settings``, ``encoding`` and ``pretrain`` are the
    config's sections (see :func:`mlm_hyperparameters`; ``pretrain.learning_rate`` is the base
    rate of the warm-up schedule, 1.0 in the original recipe). Writes the model
    directory (architecture ``bert_mlm``, task ``mlm``), ``history.csv`` (one row per epoch,
    ``best`` marks the kept one) and its plot; returns a summary (best epoch, its
    val_accuracy, epochs run, train/valid sizes). ``devices`` > 1 trains with DDP; ``resume``
    keeps checkpoints in ``<model_dir>.checkpoints`` (resumed by a rerun, deleted once the
    outputs are written; see :func:`~nucflow.train.fit.fit_lightning`).
    """
    torch.set_num_threads(threads)
    split = load_split(split_path)
    data = load_encoded(encoded_path)
    tokenizer_spec = load_tokenizer(tokenizer_path).to_spec()
    train, valid = data.select(split.train), data.select(split.valid)
    if len(valid.ids) == 0:
        raise InputError(
            f"{split_path}: the validation part is empty (pretraining selects its best epoch on "
            "it; expected at least one valid id)"
        )
    if len(train.ids) == 0:
        raise InputError(f"{split_path}: the training part is empty (expected train ids)")
    method = tokenizer_spec["method"]
    kernel_size = tokenizer_spec.get("kernel_size") if method == "cse" else None
    log.info(
        "pretraining (%s): %d train and %d valid sequences, %s",
        method,
        len(train.ids),
        len(valid.ids),
        "GPU (bf16)" if torch.cuda.is_available() else "CPU",
    )
    L.seed_everything(seed, verbose=False)
    hyperparameters = mlm_hyperparameters(model_settings, encoding, pretrain, tokenizer_spec)
    model = build_model("bert_mlm", **hyperparameters)
    masking = {
        "p_mlm": pretrain["p_mlm"],
        "p_mask": pretrain["p_mask"],
        "p_random": pretrain["p_random"],
        "mask_size": pretrain["mask_size"],
    }
    module = MaskedLMModule(
        model,
        encoding_method=method,
        vocab_size=int(tokenizer_spec["vocab_size"]),
        random_reading_frame=bool(pretrain["random_reading_frame"]),
        kernel_size=kernel_size,
        learning_rate=pretrain["learning_rate"],
        warmup_steps=pretrain["warmup_steps"],
        d_model=model.encoder.d_model,
        seed=seed,
        **masking,
    )
    train_rows = torch.from_numpy(np.ascontiguousarray(train.tokens))
    valid_inputs, valid_targets = validation_masks(
        valid.tokens,
        encoding_method=method,
        vocab_size=int(tokenizer_spec["vocab_size"]),
        kernel_size=kernel_size,
        seed=seed,
        **masking,
    )
    if not bool((valid_targets != IGNORE_INDEX).any()):
        raise InputError(
            f"{split_path}: no validation position was masked (too few or too short valid "
            "sequences for p_mlm); expected a larger validation part"
        )
    batch_size = int(pretrain["batch_size"])
    checkpoints = None
    if resume:
        identity = {
            "step": "pretrain",
            "model": model_settings,
            "encoding": encoding,
            "pretrain": pretrain,
            "seed": seed,
            "inputs": file_stamps(encoded_path, tokenizer_path, split_path),
        }
        checkpoints = checkpoint_directory(model_dir, identity)
    history = fit_lightning(
        module,
        IndexBatches(
            partial(tensor_rows, (train_rows,)),
            len(train_rows),
            batch_size,
            seed,
            n_samples=int(pretrain["n_samples_per_epoch"]),
        ),
        DataLoader(TensorDataset(valid_inputs, valid_targets), batch_size=batch_size),
        epochs=int(pretrain["epochs"]),
        monitor=MONITOR,
        patience=None,
        seed=seed,
        checkpoint_dir=checkpoints,
        devices=devices,
    )
    model.load_state_dict(history.best_state)
    frame = write_history(history, history_path, plot_path)
    summary = {
        "best_epoch": history.best_epoch,
        MONITOR: history.best_score,
        "epochs": len(frame),
        "n_train": len(train.ids),
        "n_valid": len(valid.ids),
    }
    save_model(
        model_dir,
        model,
        ModelConfig(
            architecture="bert_mlm",
            hyperparameters=hyperparameters,
            tokenizer=tokenizer_spec,
            task="mlm",
            class_names=[],
            training={**summary, "seed": seed, **pretrain},
        ),
    )
    remove_checkpoints(checkpoints)
    log.info(
        "pretraining: best epoch %d of %d, %s = %.4f",
        history.best_epoch,
        len(frame),
        MONITOR,
        history.best_score,
    )
    return summary
