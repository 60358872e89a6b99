"""LR schedulers: the CLR and SGDR formulas, their torch schedulers and Lightning wiring."""

from __future__ import annotations

import math

import lightning
import pytest
import torch

from nucflow.errors import InputError
from nucflow.train.lr_schedules import (
    SGDRScheduler,
    build_lr_scheduler,
    cyclic_lr,
    scheduler_description,
    sgdr_cycles,
    sgdr_lr,
)

# Lightning's own use of a deprecated torch pytree API, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")

SGDR_DEFAULTS = {
    "min_lr": 1e-3,
    "max_lr": 2e-3,
    "lr_decay": 0.9,
    "cycle_length": 5,
    "mult_factor": 1.5,
}


def _optimizer(lr: float = 0.01, kind: str = "sgd") -> torch.optim.Optimizer:
    param = torch.nn.Parameter(torch.zeros(1))
    if kind == "adam":
        return torch.optim.Adam([param], lr=lr)
    return torch.optim.SGD([param], lr=lr)


def _drive(optimizer: torch.optim.Optimizer, scheduler, steps: int) -> list[float]:
    """LR used by each of ``steps`` optimizer steps (read before the step, scheduler after)."""
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.zero_grad()
        optimizer.param_groups[0]["params"][0].sum().backward()
        optimizer.step()
        scheduler.step()
    return lrs


# ---------------------------------------------------------------- cyclic_lr formula


def test_cyclic_triangular_hand_values() -> None:
    kw = {"base_lr": 0.1, "max_lr": 1.1, "step_size": 4, "mode": "triangular"}
    assert cyclic_lr(0, **kw) == pytest.approx(0.1)
    assert cyclic_lr(2, **kw) == pytest.approx(0.6)
    assert cyclic_lr(4, **kw) == pytest.approx(1.1)  # peak at i = s
    assert cyclic_lr(6, **kw) == pytest.approx(0.6)
    assert cyclic_lr(8, **kw) == pytest.approx(0.1)  # back to base at 2s
    assert cyclic_lr(12, **kw) == pytest.approx(1.1)  # every cycle has the full amplitude
    assert cyclic_lr(44, **kw) == pytest.approx(1.1)


def test_cyclic_triangular2_halves_amplitude_per_cycle() -> None:
    kw = {"base_lr": 0.0, "max_lr": 1.0, "step_size": 5, "mode": "triangular2"}
    peaks = [cyclic_lr(5 + 10 * c, **kw) for c in range(4)]
    assert peaks == pytest.approx([1.0, 0.5, 0.25, 0.125])
    assert cyclic_lr(10, **kw) == pytest.approx(0.0)
    assert cyclic_lr(17, **kw) == pytest.approx(0.5 * 0.6)  # second cycle, 2 steps after peak


def test_cyclic_exp_range_is_base_plus_decayed_amplitude() -> None:
    kw = {"base_lr": 0.01, "max_lr": 0.11, "step_size": 3, "mode": "exp_range", "gamma": 0.9}
    assert cyclic_lr(0, **kw) == pytest.approx(0.01)
    assert cyclic_lr(3, **kw) == pytest.approx(0.01 + 0.1 * 0.9**3)
    assert cyclic_lr(9, **kw) == pytest.approx(0.01 + 0.1 * 0.9**9)
    assert cyclic_lr(4, **kw) == pytest.approx(0.01 + 0.1 * (2 / 3) * 0.9**4)
    # never the defective γ^i alone, and never below base
    assert cyclic_lr(3, **kw) != pytest.approx(0.9**3)
    assert all(cyclic_lr(i, **kw) >= 0.01 for i in range(100))


@pytest.mark.parametrize(
    "kw",
    [
        {"mode": "triangle"},
        {"step_size": 0},
        {"base_lr": -1.0},
        {"max_lr": 1e-4},
        {"mode": "exp_range", "gamma": 0.0},
        {"gamma": 1.5},
    ],
)
def test_cyclic_bad_values(kw: dict) -> None:
    args = {"base_lr": 1e-3, "max_lr": 1e-2, "step_size": 4, "mode": "triangular"} | kw
    with pytest.raises(InputError):
        cyclic_lr(0, **args)


def test_cyclic_negative_step() -> None:
    with pytest.raises(InputError):
        cyclic_lr(-1, base_lr=0.1, max_lr=1.0, step_size=2)


# ---------------------------------------------------------------- torch CyclicLR == formula


@pytest.mark.parametrize(
    "mode,gamma", [("triangular", 1.0), ("triangular2", 1.0), ("exp_range", 0.97)]
)
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_torch_cyclic_matches_formula(mode: str, gamma: float, kind: str) -> None:
    steps_per_epoch, factor = 3, 2
    settings = {
        "type": "cyclic_lr",
        "cyclic_lr": {
            "base_lr": 1e-3,
            "max_lr": 5e-2,
            "step_size_factor": factor,
            "mode": mode,
            "gamma": gamma,
        },
    }
    optimizer = _optimizer(0.123, kind)
    config = build_lr_scheduler(optimizer, settings, steps_per_epoch)
    assert config is not None
    assert config["interval"] == "step"
    assert isinstance(config["scheduler"], torch.optim.lr_scheduler.CyclicLR)
    s = steps_per_epoch * factor
    lrs = _drive(optimizer, config["scheduler"], 5 * 2 * s + 1)  # five full cycles
    expected = [
        cyclic_lr(i, base_lr=1e-3, max_lr=5e-2, step_size=s, mode=mode, gamma=gamma)
        for i in range(len(lrs))
    ]
    assert lrs[0] == pytest.approx(1e-3)  # the optimizer's own lr is overridden
    assert lrs == pytest.approx(expected, rel=1e-9, abs=1e-12)


# ---------------------------------------------------------------- SGDR


def test_sgdr_cycle_lengths_and_restarts() -> None:
    cycles = sgdr_cycles(80)
    assert [length for _, length in cycles] == [5, 8, 12, 18, 27, 41]
    assert [start for start, _ in cycles[1:]] == [5, 13, 25, 43, 70]


def test_sgdr_formula_values() -> None:
    S = 4
    kw = dict(SGDR_DEFAULTS, steps_per_epoch=S)
    assert sgdr_lr(0, **kw) == pytest.approx(2e-3)
    # halfway through the first cycle (2.5 epochs = 10 steps) the LR is the midpoint
    assert sgdr_lr(10, **kw) == pytest.approx(1.5e-3)
    # last step of the first cycle is close to min
    b = 5 * S - 1
    assert sgdr_lr(b, **kw) == pytest.approx(1e-3 + 0.5e-3 * (1 + math.cos(math.pi * b / 20)))
    # first step of epoch 5 (0-based) restarts at the decayed max
    assert sgdr_lr(5 * S, **kw) == pytest.approx(0.9 * 2e-3)
    # restarts after epochs 13 and 25 with peaks decayed twice and three times
    assert sgdr_lr(13 * S, **kw) == pytest.approx(2e-3 * 0.9**2)
    assert sgdr_lr(25 * S, **kw) == pytest.approx(2e-3 * 0.9**3)
    assert sgdr_lr(13 * S - 1, **kw) < sgdr_lr(13 * S, **kw)
    # second cycle lasts 8 epochs: its midpoint is 4 epochs in
    mid = sgdr_lr(5 * S + 4 * S, **kw)
    assert mid == pytest.approx(1e-3 + 0.5 * (1.8e-3 - 1e-3))


def test_sgdr_restart_positions_from_values() -> None:
    """LR jumps up exactly at the first step of epochs 5, 13, 25, 43, 70 and nowhere else."""
    S = 2
    kw = dict(SGDR_DEFAULTS, steps_per_epoch=S)
    lrs = [sgdr_lr(i, **kw) for i in range(80 * S)]
    jumps = [i for i in range(1, len(lrs)) if lrs[i] > lrs[i - 1]]
    assert jumps == [e * S for e in (5, 13, 25, 43, 70)]


@pytest.mark.parametrize(
    "kw",
    [
        {"steps_per_epoch": 0},
        {"min_lr": -1.0},
        {"max_lr": 1e-4},
        {"lr_decay": 0.0},
        {"cycle_length": 0},
        {"mult_factor": 0.5},
    ],
)
def test_sgdr_bad_values(kw: dict) -> None:
    args = dict(SGDR_DEFAULTS, steps_per_epoch=3) | kw
    with pytest.raises(InputError):
        sgdr_lr(0, **args)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_torch_sgdr_matches_formula(kind: str) -> None:
    S = 3
    optimizer = _optimizer(0.5, kind)
    config = build_lr_scheduler(optimizer, {"type": "sgdr", "sgdr": SGDR_DEFAULTS}, S)
    assert config is not None
    assert config["interval"] == "step"
    assert isinstance(config["scheduler"], SGDRScheduler)
    lrs = _drive(optimizer, config["scheduler"], 30 * S)
    expected = [sgdr_lr(i, steps_per_epoch=S, **SGDR_DEFAULTS) for i in range(30 * S)]
    assert lrs[0] == pytest.approx(2e-3)
    assert lrs == pytest.approx(expected, rel=1e-12)
    assert lrs[5 * S] == pytest.approx(0.9 * 2e-3)  # new cycle's max, not the old cycle's


def test_sgdr_scheduler_state_round_trip() -> None:
    S = 2
    opt_a = _optimizer()
    sched_a = SGDRScheduler(opt_a, steps_per_epoch=S, **SGDR_DEFAULTS)
    _drive(opt_a, sched_a, 17)
    opt_b = _optimizer()
    sched_b = SGDRScheduler(opt_b, steps_per_epoch=S, **SGDR_DEFAULTS)
    sched_b.load_state_dict(sched_a.state_dict())
    opt_b.load_state_dict(opt_a.state_dict())
    assert _drive(opt_b, sched_b, 5) == _drive(opt_a, sched_a, 5)


# ---------------------------------------------------------------- plateau


def test_plateau_factor_patience_min_lr() -> None:
    optimizer = _optimizer(0.1)
    settings = {
        "type": "reduce_lr_on_plateau",
        "reduce_lr_on_plateau": {"factor": 0.5, "patience": 2, "min_lr": 0.02},
    }
    config = build_lr_scheduler(optimizer, settings, 10)
    assert config is not None
    assert config["interval"] == "epoch"
    assert config["monitor"] == "val_loss"
    scheduler = config["scheduler"]
    assert isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert optimizer.param_groups[0]["lr"] == 0.1  # starts from the optimizer's lr

    def lr() -> float:
        return optimizer.param_groups[0]["lr"]

    seen = []
    # improving losses, then a plateau (improvements below the absolute 1e-4 threshold)
    for loss in [1.0, 0.9, 0.8, 0.79995, 0.79991, 0.79992, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]:
        scheduler.step(loss)
        seen.append(lr())
    # 3 epochs after the best (0.8) without an improvement > 1e-4 → halve (patience 2)
    assert seen[:5] == pytest.approx([0.1] * 5)
    assert seen[5] == pytest.approx(0.05)
    assert seen[6:8] == pytest.approx([0.05, 0.05])
    assert seen[8] == pytest.approx(0.025)
    # floors at min_lr
    assert seen[11] == pytest.approx(0.02)
    assert seen[12] == pytest.approx(0.02)


def test_plateau_defaults() -> None:
    optimizer = _optimizer(1.0)
    config = build_lr_scheduler(optimizer, {"type": "reduce_lr_on_plateau"}, 5)
    assert config is not None
    scheduler = config["scheduler"]
    for _ in range(6):  # best + 5 bad epochs: patience 5 not yet exceeded
        scheduler.step(1.0)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1.0)
    scheduler.step(1.0)  # the 6th bad epoch reduces by 0.5
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5)
    assert scheduler.min_lrs == [1e-6]


# ---------------------------------------------------------------- settings


def test_none_returns_none() -> None:
    optimizer = _optimizer(0.3)
    assert build_lr_scheduler(optimizer, {"type": "none"}, 4) is None
    assert build_lr_scheduler(optimizer, {}, 4) is None
    assert optimizer.param_groups[0]["lr"] == 0.3


@pytest.mark.parametrize(
    "settings,steps",
    [
        ({"type": "cosine"}, 4),
        ({"type": "cyclic_lr", "cyclic_lr": {"mode": "triangle"}}, 4),
        ({"type": "cyclic_lr", "cyclic_lr": {"step_size_factor": 0}}, 4),
        ({"type": "cyclic_lr", "cyclic_lr": {"step_size_factor": 1.5}}, 4),
        ({"type": "cyclic_lr", "cyclic_lr": {"base_lr": "0.1"}}, 4),
        ({"type": "cyclic_lr", "cyclic_lr": {"max_lrr": 0.1}}, 4),
        ({"type": "sgdr", "sgdr": {"cycle_length": 0}}, 4),
        ({"type": "sgdr", "sgdr": {"cycle_length": float("inf")}}, 4),
        ({"type": "sgdr", "sgdr": {"min_lr": float("nan")}}, 4),
        ({"type": "sgdr", "sgdr": {"max_lr": 1e-4}}, 4),
        ({"type": "sgdr", "sgdr": []}, 4),
        ({"type": "reduce_lr_on_plateau", "reduce_lr_on_plateau": {"factor": 1.0}}, 4),
        ({"type": "reduce_lr_on_plateau", "reduce_lr_on_plateau": {"patience": -1}}, 4),
        ({"type": "sgdr"}, 0),
    ],
)
def test_bad_settings(settings: dict, steps: int) -> None:
    with pytest.raises(InputError):
        build_lr_scheduler(_optimizer(), settings, steps)


def test_scheduler_description() -> None:
    assert "none" in scheduler_description({"type": "none"})
    line = scheduler_description({"type": "sgdr", "sgdr": {"max_lr": 0.01}})
    assert "sgdr" in line and "max_lr=0.01" in line and "mult_factor=1.5" in line
    assert "\n" not in line
    line = scheduler_description({"type": "cyclic_lr"})
    assert "triangular2" in line
    with pytest.raises(InputError):
        scheduler_description({"type": "nope"})


def test_settings_not_mutated() -> None:
    sub = {"max_lr": 0.01}
    settings = {"type": "sgdr", "sgdr": sub}
    build_lr_scheduler(_optimizer(), settings, 3)
    assert settings == {"type": "sgdr", "sgdr": {"max_lr": 0.01}}


# ---------------------------------------------------------------- Lightning wiring


class _Tiny(lightning.LightningModule):
    def __init__(self, settings: dict, steps_per_epoch: int, constant_val_loss: bool) -> None:
        super().__init__()
        self.constant_val_loss = constant_val_loss
        self.layer = torch.nn.Linear(2, 1)
        self.settings = settings
        self.steps_per_epoch = steps_per_epoch

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("val_loss", torch.ones(()) if self.constant_val_loss else loss)

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.25)
        config = build_lr_scheduler(optimizer, self.settings, self.steps_per_epoch)
        if config is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": config}


class _RecordLR(lightning.Callback):
    def __init__(self) -> None:
        self.step_lrs: list[float] = []
        self.epoch_lrs: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.step_lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.epoch_lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def _fit(
    settings: dict, epochs: int = 3, steps_per_epoch: int = 4, constant_val_loss: bool = False
) -> _RecordLR:
    torch.manual_seed(0)
    x = torch.randn(steps_per_epoch * 2, 2)
    y = x.sum(dim=1, keepdim=True)
    data = torch.utils.data.TensorDataset(x, y)
    train = torch.utils.data.DataLoader(data, batch_size=2)
    val = torch.utils.data.DataLoader(data, batch_size=8)
    recorder = _RecordLR()
    trainer = lightning.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=epochs,
        callbacks=[recorder],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(_Tiny(settings, steps_per_epoch, constant_val_loss), train, val)
    return recorder


def test_lightning_cyclic_per_step() -> None:
    settings = {
        "type": "cyclic_lr",
        "cyclic_lr": {"base_lr": 0.01, "max_lr": 0.1, "step_size_factor": 1, "mode": "triangular2"},
    }
    recorder = _fit(settings)
    expected = [
        cyclic_lr(i, base_lr=0.01, max_lr=0.1, step_size=4, mode="triangular2") for i in range(12)
    ]
    assert recorder.step_lrs == pytest.approx(expected)


def test_lightning_sgdr_per_step() -> None:
    sgdr = {"min_lr": 0.01, "max_lr": 0.1, "lr_decay": 0.5, "cycle_length": 1, "mult_factor": 2.0}
    recorder = _fit({"type": "sgdr", "sgdr": sgdr})
    expected = [sgdr_lr(i, steps_per_epoch=4, **sgdr) for i in range(12)]
    assert recorder.step_lrs == pytest.approx(expected)
    assert recorder.step_lrs[4] == pytest.approx(0.05)  # restart after epoch 1 at the new max


def test_lightning_plateau_steps_per_epoch() -> None:
    # a constant val_loss with patience 0: epoch 0 sets the best, epoch 1 does not improve, so
    # the LR halves before epoch 2; within an epoch the LR is constant (interval "epoch")
    settings = {
        "type": "reduce_lr_on_plateau",
        "reduce_lr_on_plateau": {"factor": 0.5, "patience": 0, "min_lr": 0.0},
    }
    recorder = _fit(settings, constant_val_loss=True)
    assert recorder.epoch_lrs == pytest.approx([0.25, 0.25, 0.125])
    for epoch, lr in enumerate(recorder.epoch_lrs):
        assert recorder.step_lrs[4 * epoch : 4 * epoch + 4] == pytest.approx([lr] * 4)
