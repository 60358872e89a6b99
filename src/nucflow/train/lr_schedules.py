"""Learning-rate schedulers of final training: plateau reduction, cyclic LR (CLR) and SGDR.

:func:`cyclic_lr` and :func:`sgdr_lr` are the reference formulas (Capfinder §7.3, with its two
schedule defects fixed: exp_range is ``base + amplitude·γ^i`` and the first step after an SGDR
restart already uses the new cycle's maximum). :func:`build_lr_scheduler` turns the
``lr_scheduler`` settings into a Lightning ``lr_scheduler`` config for a torch optimizer.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import torch

from nucflow.errors import InputError

SCHEDULER_TYPES = ("none", "reduce_lr_on_plateau", "cyclic_lr", "sgdr")
CYCLIC_MODES = ("triangular", "triangular2", "exp_range")

_DEFAULTS: dict[str, dict[str, Any]] = {
    "reduce_lr_on_plateau": {"factor": 0.5, "patience": 5, "min_lr": 1e-6},
    "cyclic_lr": {
        "base_lr": 1e-3,
        "max_lr": 5e-2,
        "step_size_factor": 8,
        "mode": "triangular2",
        "gamma": 1.0,
    },
    "sgdr": {
        "min_lr": 1e-3,
        "max_lr": 2e-3,
        "lr_decay": 0.9,
        "cycle_length": 5,
        "mult_factor": 1.5,
    },
}

# Tolerance against float rounding in ceil(L · mult_factor) (e.g. 8 · 1.5 must give 12, not 13).
_CEIL_EPS = 1e-9


def _check_step(step: int) -> None:
    if step < 0:
        raise InputError(f"step must be ≥ 0, got {step}")


def _check_cyclic(base_lr: float, max_lr: float, step_size: int, mode: str, gamma: float) -> None:
    if mode not in CYCLIC_MODES:
        raise InputError(f"cyclic_lr mode must be one of {', '.join(CYCLIC_MODES)}, got {mode!r}")
    if not base_lr >= 0:
        raise InputError(f"cyclic_lr base_lr must be ≥ 0, got {base_lr}")
    if not max_lr >= base_lr:
        raise InputError(f"cyclic_lr max_lr must be ≥ base_lr ({base_lr}), got {max_lr}")
    if step_size < 1:
        raise InputError(f"cyclic_lr step size must be ≥ 1 step, got {step_size}")
    if not 0 < gamma <= 1:
        raise InputError(f"cyclic_lr gamma must be in (0, 1], got {gamma}")


def cyclic_lr(
    step: int,
    *,
    base_lr: float,
    max_lr: float,
    step_size: int,
    mode: str = "triangular2",
    gamma: float = 1.0,
) -> float:
    """Smith's cyclical LR at optimizer step ``step`` (0-based) with half-cycle ``step_size``.

    With i = step and s = step_size: cycle = ⌊1 + i/(2s)⌋, x = |i/s − 2·cycle + 1| and
    lr = base + (max − base)·max(0, 1 − x)·scale, where scale is 1 (triangular),
    1/2^(cycle−1) (triangular2) or γ^i (exp_range, i.e. base + amplitude·γ^i — the original's
    precedence bug returned γ^i alone). The LR is ``base_lr`` at step 0, peaks at i = s and is
    back at ``base_lr`` at i = 2s.
    """
    _check_step(step)
    _check_cyclic(base_lr, max_lr, step_size, mode, gamma)
    cycle = math.floor(1 + step / (2 * step_size))
    x = abs(step / step_size - 2 * cycle + 1)
    if mode == "triangular":
        scale = 1.0
    elif mode == "triangular2":
        scale = 1.0 / 2 ** (cycle - 1)
    else:
        scale = gamma**step
    return base_lr + (max_lr - base_lr) * max(0.0, 1.0 - x) * scale


def _check_sgdr(
    steps_per_epoch: int,
    min_lr: float,
    max_lr: float,
    lr_decay: float,
    cycle_length: int,
    mult_factor: float,
) -> None:
    if steps_per_epoch < 1:
        raise InputError(f"steps_per_epoch must be ≥ 1, got {steps_per_epoch}")
    if not min_lr >= 0:
        raise InputError(f"sgdr min_lr must be ≥ 0, got {min_lr}")
    if not max_lr >= min_lr:
        raise InputError(f"sgdr max_lr must be ≥ min_lr ({min_lr}), got {max_lr}")
    if not 0 < lr_decay <= 1:
        raise InputError(f"sgdr lr_decay must be in (0, 1], got {lr_decay}")
    if int(cycle_length) != cycle_length or cycle_length < 1:
        raise InputError(
            f"sgdr cycle_length must be a whole number of epochs ≥ 1, got {cycle_length}"
        )
    if not mult_factor >= 1:
        raise InputError(f"sgdr mult_factor must be ≥ 1, got {mult_factor}")


def sgdr_cycles(
    epochs: int, *, cycle_length: int = 5, mult_factor: float = 1.5
) -> list[tuple[int, int]]:
    """``(start_epoch, length)`` of the SGDR cycles that begin before epoch ``epochs`` (0-based).

    The first cycle lasts ``cycle_length`` epochs and each next one ⌈L·mult_factor⌉; with the
    defaults the cycles start at epochs 0, 5, 13, 25, 43, 70 and last 5, 8, 12, 18, 27, 41.
    """
    _check_sgdr(1, 0.0, 0.0, 1.0, cycle_length, mult_factor)
    cycles = []
    start, length = 0, int(cycle_length)
    while start < epochs:
        cycles.append((start, length))
        start += length
        length = math.ceil(length * mult_factor - _CEIL_EPS)
    return cycles


def sgdr_lr(
    step: int,
    *,
    steps_per_epoch: int,
    min_lr: float,
    max_lr: float,
    lr_decay: float = 0.9,
    cycle_length: int = 5,
    mult_factor: float = 1.5,
) -> float:
    """Cosine annealing with warm restarts at epoch boundaries, at optimizer step ``step``.

    With S = steps_per_epoch, cycle c lasts L_c epochs (L_0 = ``cycle_length``,
    L_{c+1} = ⌈L_c·mult_factor⌉) and peaks at max_lr·lr_decay^c. With b the steps since the
    cycle start: lr = min_lr + ½(max_c − min_lr)(1 + cos(π·b/(S·L_c))). Step 0 gives
    ``max_lr``, and the first step of each new cycle gives that cycle's (decayed) maximum.
    """
    _check_step(step)
    _check_sgdr(steps_per_epoch, min_lr, max_lr, lr_decay, cycle_length, mult_factor)
    epoch = step // steps_per_epoch
    start, length, peak = 0, int(cycle_length), float(max_lr)
    while epoch >= start + length:
        start += length
        length = math.ceil(length * mult_factor - _CEIL_EPS)
        peak *= lr_decay
    done = step - start * steps_per_epoch
    cosine = math.cos(math.pi * done / (steps_per_epoch * length))
    return min_lr + 0.5 * (peak - min_lr) * (1.0 + cosine)


class SGDRScheduler(torch.optim.lr_scheduler.LRScheduler):
    """Sets every param group's LR to :func:`sgdr_lr` of the optimizer steps done so far.

    Step it once per optimizer step. Construction sets the LR to ``max_lr`` (step 0).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        steps_per_epoch: int,
        min_lr: float,
        max_lr: float,
        lr_decay: float = 0.9,
        cycle_length: int = 5,
        mult_factor: float = 1.5,
        last_epoch: int = -1,
    ) -> None:
        _check_sgdr(steps_per_epoch, min_lr, max_lr, lr_decay, cycle_length, mult_factor)
        self.sgdr_settings: dict[str, Any] = {
            "steps_per_epoch": int(steps_per_epoch),
            "min_lr": float(min_lr),
            "max_lr": float(max_lr),
            "lr_decay": float(lr_decay),
            "cycle_length": int(cycle_length),
            "mult_factor": float(mult_factor),
        }
        super().__init__(optimizer, last_epoch)

    def _lr_now(self) -> list[float | torch.Tensor]:
        lr = sgdr_lr(max(self.last_epoch, 0), **self.sgdr_settings)
        return [lr for _ in self.optimizer.param_groups]

    def get_lr(self) -> list[float | torch.Tensor]:
        """The LR of every param group at step ``last_epoch``."""
        return self._lr_now()

    def _get_closed_form_lr(self) -> list[float | torch.Tensor]:
        return self._lr_now()


def _section(settings: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The defaults of scheduler ``name`` updated with its settings; unknown keys are errors."""
    given = settings.get(name)
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise InputError(f"lr_scheduler.{name} must be a mapping, got {type(given).__name__}")
    values = dict(_DEFAULTS[name])
    unknown = sorted(set(given) - set(values))
    if unknown:
        raise InputError(
            f"lr_scheduler.{name}: unknown setting(s) {', '.join(map(str, unknown))} "
            f"(expected {', '.join(values)})"
        )
    values.update(given)
    return values


def _scheduler_type(settings: Mapping[str, Any]) -> str:
    kind = settings.get("type", "none")
    if kind not in SCHEDULER_TYPES:
        raise InputError(
            f"lr_scheduler.type must be one of {', '.join(SCHEDULER_TYPES)}, got {kind!r}"
        )
    return kind


def _number(values: Mapping[str, Any], key: str, what: str, *, whole: bool = False) -> Any:
    value = values[key]
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(float(value))
    ):
        raise InputError(f"lr_scheduler.{what}.{key} must be a finite number, got {value!r}")
    if whole and int(value) != value:
        raise InputError(f"lr_scheduler.{what}.{key} must be a whole number, got {value!r}")
    return int(value) if whole else float(value)


def build_lr_scheduler(
    optimizer: torch.optim.Optimizer, settings: Mapping[str, Any], steps_per_epoch: int
) -> dict[str, Any] | None:
    """The Lightning ``lr_scheduler`` config for ``settings``, or None for type "none".

    - ``reduce_lr_on_plateau``: :class:`~torch.optim.lr_scheduler.ReduceLROnPlateau` on
      ``val_loss`` (min mode, absolute threshold 1e-4, cooldown 0), stepped every epoch; it
      starts from the optimizer's LR.
    - ``cyclic_lr``: :class:`~torch.optim.lr_scheduler.CyclicLR` with half-cycle
      ``steps_per_epoch·step_size_factor`` steps, stepped every optimizer step; it sets the LR
      to ``base_lr`` at once. Its values equal :func:`cyclic_lr` (exp_range included).
    - ``sgdr``: :class:`SGDRScheduler`, stepped every optimizer step; it sets the LR to
      ``max_lr`` at once.
    """
    kind = _scheduler_type(settings)
    if steps_per_epoch < 1:
        raise InputError(f"steps_per_epoch must be ≥ 1, got {steps_per_epoch}")
    if kind == "none":
        return None
    values = _section(settings, kind)
    if kind == "reduce_lr_on_plateau":
        factor = _number(values, "factor", kind)
        patience = _number(values, "patience", kind, whole=True)
        min_lr = _number(values, "min_lr", kind)
        if not 0 < factor < 1:
            raise InputError(f"lr_scheduler.{kind}.factor must be in (0, 1), got {factor}")
        if patience < 0:
            raise InputError(f"lr_scheduler.{kind}.patience must be ≥ 0, got {patience}")
        if min_lr < 0:
            raise InputError(f"lr_scheduler.{kind}.min_lr must be ≥ 0, got {min_lr}")
        scheduler: torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="min",
            factor=factor,
            patience=patience,
            threshold=1e-4,
            threshold_mode="abs",
            cooldown=0,
            min_lr=min_lr,
        )
        return {
            "scheduler": scheduler,
            "interval": "epoch",
            "frequency": 1,
            "monitor": "val_loss",
            "strict": True,
        }
    if kind == "cyclic_lr":
        step_size = steps_per_epoch * _number(values, "step_size_factor", kind, whole=True)
        base_lr = _number(values, "base_lr", kind)
        max_lr = _number(values, "max_lr", kind)
        gamma = _number(values, "gamma", kind)
        mode = values["mode"]
        _check_cyclic(base_lr, max_lr, step_size, mode, gamma)
        scheduler = torch.optim.lr_scheduler.CyclicLR(
            optimizer,
            base_lr=base_lr,
            max_lr=max_lr,
            step_size_up=step_size,
            mode=mode,
            gamma=gamma,
            cycle_momentum=False,
        )
        return {"scheduler": scheduler, "interval": "step", "frequency": 1}
    scheduler = SGDRScheduler(
        optimizer,
        steps_per_epoch=steps_per_epoch,
        min_lr=_number(values, "min_lr", kind),
        max_lr=_number(values, "max_lr", kind),
        lr_decay=_number(values, "lr_decay", kind),
        cycle_length=_number(values, "cycle_length", kind, whole=True),
        mult_factor=_number(values, "mult_factor", kind),
    )
    return {"scheduler": scheduler, "interval": "step", "frequency": 1}


def scheduler_description(settings: Mapping[str, Any]) -> str:
    """One log line naming the scheduler type and its effective settings."""
    kind = _scheduler_type(settings)
    if kind == "none":
        return "lr scheduler: none (constant learning rate)"
    values = _section(settings, kind)
    detail = ", ".join(f"{key}={value}" for key, value in values.items())
    return f"lr scheduler: {kind} ({detail})"
