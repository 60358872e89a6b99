"""Learning-rate schedules: the inverse-square-root warm-up ("Noam") schedule of pretraining."""

from __future__ import annotations

import math

import torch

from nucflow.errors import InputError


def inverse_sqrt_warmup(step: int, d_model: int, warmup_steps: int) -> float:
    """Noam learning-rate factor ``d_model^−0.5 · min(s^−0.5, s · w^−1.5)``, ``s = max(step, 1)``.

    It rises linearly for ``warmup_steps`` (w) steps, peaks at ``(d_model · w)^−0.5`` at step w
    and then decays as ``s^−0.5``. At d_model 768 and w 32,000: 5.0e-5 at step 8,000, 2.02e-4
    at 32,000, 1.43e-4 at 64,000 and 5.1e-5 at 500,000. ``warmup_steps`` 0 means no warm-up
    (pure ``s^−0.5`` decay from the first step).
    """
    if d_model < 1:
        raise InputError(f"d_model must be ≥ 1, got {d_model}")
    if warmup_steps < 0:
        raise InputError(f"warmup_steps must be ≥ 0, got {warmup_steps}")
    s = max(int(step), 1)
    decay = s**-0.5
    factor = decay if warmup_steps == 0 else min(decay, s * warmup_steps**-1.5)
    return factor / math.sqrt(d_model)


def noam_scheduler(
    optimizer: torch.optim.Optimizer, d_model: int, warmup_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A :class:`~torch.optim.lr_scheduler.LambdaLR` multiplying the base lr by the Noam factor.

    Step it once per optimizer step. The n-th optimizer step (1-based) runs at
    ``base_lr · inverse_sqrt_warmup(n, d_model, warmup_steps)``; with the usual base lr of 1.0
    the factor is the learning rate itself.
    """
    inverse_sqrt_warmup(1, d_model, warmup_steps)  # validate the settings now
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda done: inverse_sqrt_warmup(done + 1, d_model, warmup_steps)
    )
