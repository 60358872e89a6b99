"""maxATAC DCNN_V2: exact size, receptive field, loss/metric/decay formulas, learning,
best-epoch selection and the model-directory round trip."""

from __future__ import annotations

import copy
import math

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

from nucflow.errors import InputError
from nucflow.models import build_model
from nucflow.models.dcnn import DCNN, block_filters, raw_to_predictions
from nucflow.models.files import load_model
from nucflow.train.fit import write_history
from nucflow.train.tracks_fit import (
    clipped_bce,
    dice_coefficient,
    fit_tracks,
    inverse_time_decay,
    save_track_model,
)

BATCH = 16
BATCHES = 8
LEARNING_RATE = 3e-3  # above maxATAC's 1e-3, so that a few dozen steps suffice
DECAY = 1e-2


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One CPU thread: these small convolutions are slower with more on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def windows(rng: np.random.Generator, n: int = BATCH) -> tuple[np.ndarray, np.ndarray]:
    """Random one-hot DNA + an ATAC track that is high (> 0.5) in about 30 % of the bins;
    the target is 1 exactly where a bin's ATAC mean is above 0.5."""
    bases = rng.integers(0, 4, (n, 1024))
    x = np.zeros((n, 1024, 5), np.float32)
    np.put_along_axis(x, bases[..., None], 1.0, axis=2)
    high = rng.random((n, 32)) < 0.3
    level = np.where(high, rng.uniform(0.55, 1.0, (n, 32)), rng.uniform(0.0, 0.45, (n, 32)))
    x[..., 4] = np.repeat(level, 32, axis=1) + rng.uniform(-0.05, 0.05, (n, 1024))
    y = (x[..., 4].reshape(n, 32, 32).mean(axis=2) > 0.5).astype(np.float32)
    return x, y


def quantitative_windows(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The same inputs with a rate-like target, exp(3 × the bin's ATAC mean) (1 to 20)."""
    x, _ = windows(rng)
    return x, np.exp(3.0 * x[..., 4].reshape(len(x), 32, 32).mean(axis=2))


def _n_statistics(model: torch.nn.Module) -> int:
    return sum(b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked"))


def test_parameter_count_matches_published_model():
    model = build_model("dcnn")
    assert block_filters(15, 1.5, 5) == [15, 22, 33, 50, 75]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == 116_424
    assert _n_statistics(model) == 780
    assert trainable + _n_statistics(model) == 117_204


def test_layer_settings():
    model = build_model("dcnn")
    convs = [m for m in model.body if isinstance(m, torch.nn.Conv1d)]
    assert [c.dilation[0] for c in convs] == [1, 1, 1, 1, 2, 2, 4, 4, 8, 8]
    assert [c.padding[0] for c in convs] == [3, 3, 3, 3, 6, 6, 12, 12, 24, 24]
    norms = [m for m in model.body if isinstance(m, torch.nn.BatchNorm1d)]
    assert {(n.eps, n.momentum) for n in norms} == {(1e-3, 0.1)}
    assert all(not c.bias.detach().any() for c in [*convs, model.head])
    # Glorot uniform: |w| ≤ sqrt(6 / (fan_in + fan_out)), fan = channels × kernel
    bound = math.sqrt(6 / (5 * 7 + 15 * 7))
    largest = float(convs[0].weight.detach().abs().max())
    assert 0.9 * bound < largest <= bound


def test_output_shape_and_output_types():
    torch.manual_seed(0)
    x = torch.rand(3, 1024, 5)
    model = build_model("dcnn").eval()
    raw = model(x)
    assert raw.shape == (3, 32)
    torch.testing.assert_close(model.probabilities(x), torch.sigmoid(raw))
    rates = build_model("dcnn", output="exp").eval()
    torch.testing.assert_close(rates.predictions(x), torch.exp(rates(x)))
    linear = build_model("dcnn", output="linear").eval()
    torch.testing.assert_close(linear.predictions(x), linear(x))
    with pytest.raises(InputError, match="sigmoid"):
        rates.probabilities(x)
    with pytest.raises(InputError, match="output must be one of"):
        raw_to_predictions(raw, "softmax")
    with pytest.raises(InputError, match="bins"):
        DCNN(window=1000)


def test_every_bin_sees_the_whole_window():
    torch.manual_seed(1)
    model = build_model("dcnn").eval()
    assert model.receptive_field() == 2084
    x = torch.rand(1, 1024, 5)
    with torch.no_grad():
        before = model(x)
        for position in (0, 1023):
            changed = x.clone()
            changed[0, position, 4] += 5.0
            assert bool((model(changed) != before).all()), position
    # control: without dilation the first input position is out of the last bin's reach
    narrow = DCNN(dilations=(1, 1, 1, 1, 1)).eval()
    assert narrow.receptive_field() < 1024
    with torch.no_grad():
        changed = x.clone()
        changed[0, 0, 4] += 5.0
        assert bool((narrow(changed)[0, -1] == narrow(x)[0, -1]).all())


def test_dense_variant():
    torch.manual_seed(2)
    plain, dense = build_model("dcnn"), build_model("dcnn", dense=True).eval()
    extra = sum(p.numel() for p in dense.parameters()) - sum(p.numel() for p in plain.parameters())
    assert extra == 32 * 32 + 32
    assert dense.dense is not None and tuple(dense.dense.weight.shape) == (32, 32)
    x = torch.rand(2, 1024, 5)
    assert dense(x).shape == (2, 32)
    hidden = torch.relu(dense.head(dense.body(x.transpose(1, 2))).flatten(1))
    torch.testing.assert_close(dense(x), dense.dense(hidden))


def test_dice_on_hand_values():
    y = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    p = torch.tensor([[0.5, 0.5, 1.0, 0.0]])
    # (2 · 1.5 + 10) / (2 + 2 + 10)
    assert float(dice_coefficient(y, p)) == pytest.approx(13 / 14)
    assert float(dice_coefficient(y, p, smooth=0.0)) == pytest.approx(3 / 4)
    # label −1 means "ignore": that bin counts neither in y nor in p
    masked = torch.tensor([[1.0, -1.0, 1.0, 0.0]])
    assert float(dice_coefficient(masked, p)) == pytest.approx(13 / 13.5)


def test_clipped_bce_matches_clipped_probabilities():
    logits = torch.tensor([-30.0, -2.0, 0.0, 3.0, 30.0], requires_grad=True)
    y = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])
    p = torch.sigmoid(logits.detach().double()).clamp(1e-7, 1 - 1e-7)
    expected = float((-(y * p.log() + (1 - y) * (1 - p).log())).mean())
    loss = clipped_bce(logits, y)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert logits.grad[0] == 0 and logits.grad[-1] == 0  # beyond the clip: no gradient
    assert logits.grad[1] != 0
    ignored = clipped_bce(logits.detach(), torch.tensor([1.0, -1.0, 1.0, 1.0, 0.0]))
    assert float(ignored) != pytest.approx(float(loss.detach()))


def test_inverse_time_decay_values():
    assert inverse_time_decay(0) == 1e-3
    assert inverse_time_decay(10_000) == pytest.approx(9.0909e-4, rel=1e-4)
    assert inverse_time_decay(10_000) == pytest.approx(1e-3 / 1.1, rel=1e-12)
    assert inverse_time_decay(5, lr=0.1, decay=0.5) == pytest.approx(0.1 / 3.5)


class _Record(L.Callback):
    """Each epoch's weights at its end; ruins the model before ``ruin_epoch`` (a head bias of
    −10⁴ predicts 0 everywhere, and the clipped loss gives it no gradient to recover)."""

    def __init__(self, ruin_epoch: int) -> None:
        self.ruin_epoch = ruin_epoch
        self.states: list[dict[str, torch.Tensor]] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.ruin_epoch:
            with torch.no_grad():
                pl_module.model.head.bias.fill_(-1e4)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.states.append(copy.deepcopy(pl_module.model.state_dict()))


@pytest.fixture(scope="module")
def binary_fit():
    torch.manual_seed(0)
    model = build_model("dcnn")
    record = _Record(ruin_epoch=4)
    history = fit_tracks(
        model,
        windows,
        windows(np.random.default_rng(99), 96),
        epochs=5,
        batches=BATCHES,
        val_batch_size=40,
        seed=1,
        learning_rate=LEARNING_RATE,
        decay=DECAY,
        callbacks=[record],
    )
    return model, history, record


def test_binary_fit_learns(binary_fit):
    _, history, _ = binary_fit
    dice = [row["val_dice"] for row in history.rows]
    assert dice[0] < 0.8
    assert max(dice[:4]) > 0.9
    assert set(history.rows[0]) >= {"epoch", "train_loss", "train_dice", "val_loss", "val_dice"}


def test_learning_rate_decays_per_step(binary_fit):
    _, history, _ = binary_fit
    for row in history.rows:
        steps = (int(row["epoch"]) + 1) * BATCHES
        expected = inverse_time_decay(steps, lr=LEARNING_RATE, decay=DECAY)
        assert row["lr"] == pytest.approx(expected, rel=1e-9)
    assert history.rows[-1]["lr"] < 0.75 * LEARNING_RATE


def test_best_epoch_is_kept(binary_fit, tmp_path):
    model, history, record = binary_fit
    dice = [row["val_dice"] for row in history.rows]
    assert dice[-1] < 0.5  # the ruined last epoch
    assert history.best_epoch == int(np.argmax(dice)) != len(dice) - 1
    frame = write_history(history, tmp_path / "h.csv", tmp_path / "h.png", plotted="val_dice")
    assert frame["best"].tolist() == [e == history.best_epoch for e in range(len(dice))]
    assert pd.read_csv(tmp_path / "h.csv")["best"].sum() == 1
    kept, last = record.states[history.best_epoch], record.states[-1]
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor.cpu(), kept[name].cpu(), rtol=0, atol=0)
    assert not torch.equal(model.head.bias.cpu(), last["head.bias"].cpu())


@pytest.mark.parametrize(("loss", "output"), [("mse", "linear"), ("poisson", "exp")])
def test_quantitative_fit(loss, output):
    torch.manual_seed(1)
    model = build_model("dcnn", output=output)
    history = fit_tracks(
        model,
        quantitative_windows,
        quantitative_windows(np.random.default_rng(98)),
        epochs=5,
        batches=BATCHES,
        val_batch_size=8,
        seed=1,
        quantitative=True,
        loss=loss,
        learning_rate=LEARNING_RATE,
        decay=DECAY,
    )
    rows = history.rows
    assert {"val_loss", "val_pearson_r", "train_loss"} <= set(rows[0])
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    best_r = max(row["val_pearson_r"] for row in rows)
    assert best_r > 0.5 and best_r > rows[0]["val_pearson_r"] + 0.2
    losses = [row["val_loss"] for row in rows]
    assert history.best_epoch == int(np.argmin(losses))


def test_loss_must_fit_the_task():
    valid = windows(np.random.default_rng(0), 4)
    with pytest.raises(InputError, match="quantitative"):
        fit_tracks(
            build_model("dcnn"),
            windows,
            valid,
            epochs=1,
            batches=1,
            val_batch_size=4,
            seed=0,
            quantitative=True,
        )
    with pytest.raises(InputError, match="needs a model with output 'exp'"):
        fit_tracks(
            build_model("dcnn"),
            windows,
            valid,
            epochs=1,
            batches=1,
            val_batch_size=4,
            seed=0,
            quantitative=True,
            loss="poisson",
        )
    x, y = valid
    x[0, 0, 4] = np.nan
    with pytest.raises(InputError, match="NaN"):
        fit_tracks(
            build_model("dcnn"), windows, (x, y), epochs=1, batches=1, val_batch_size=4, seed=0
        )


def test_save_load_round_trip(binary_fit, tmp_path):
    fitted, history, _ = binary_fit
    model = copy.deepcopy(fitted).cpu().eval()
    hyperparameters = {"dilations": (1, 1, 2, 4, 8), "output": "sigmoid"}
    save_track_model(
        tmp_path / "model",
        model,
        hyperparameters,
        training={"best_epoch": history.best_epoch},
        target={"label": "binary", "threshold_bp": 16},
    )
    loaded, config = load_model(tmp_path / "model")
    assert config.architecture == "dcnn" and config.task == "binary"
    assert config.tokenizer["channels"] == ["A", "C", "G", "T", "ATAC"]
    assert config.tokenizer["threshold_bp"] == 16 and config.training["best_epoch"] >= 0
    x = torch.from_numpy(windows(np.random.default_rng(5), 4)[0])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    quantitative = build_model("dcnn", output="exp", dense=True)
    save_track_model(
        tmp_path / "rates",
        quantitative,
        {"output": "exp", "dense": True},
        training={},
        target={"scale": 4.0},
    )
    loaded, config = load_model(tmp_path / "rates")
    assert config.task == "quantitative"
    with torch.no_grad():
        torch.testing.assert_close(loaded.predictions(x), quantitative.eval().predictions(x))
    with pytest.raises(InputError, match="do not describe"):
        save_track_model(tmp_path / "bad", quantitative, {"output": "exp"}, training={}, target={})
