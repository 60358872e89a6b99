"""Raw-signal models (Capfinder's four families) and their search spaces."""

from __future__ import annotations

import json
import warnings

import optuna
import pytest
import torch

from nucflow.errors import InputError
from nucflow.models import build_model
from nucflow.models.files import ModelConfig, load_model, save_model
from nucflow.models.signal import SIGNAL_ARCHITECTURES, AttentionCnnLstm
from nucflow.models.signal_search import (
    default_hyperparameters,
    suggest_hyperparameters,
    trial_parameters,
)

N_CLASSES = 3
NAN = float("nan")


def _build(architecture: str, target_length: int, hyperparameters: dict) -> torch.nn.Module:
    """The model of ``hyperparameters`` (learning rate dropped), seeded."""
    torch.manual_seed(0)
    hp = {k: v for k, v in hyperparameters.items() if k != "learning_rate"}
    return build_model(architecture, target_length=target_length, n_classes=N_CLASSES, **hp)


def _padded(signal: torch.Tensor, target_length: int, left: int | None = None) -> torch.Tensor:
    """``signal`` (L,) placed in a NaN row of ``target_length`` (symmetric unless ``left``)."""
    row = torch.full((target_length,), NAN)
    start = (target_length - len(signal)) // 2 if left is None else left
    row[start : start + len(signal)] = signal
    return row


def _batch(target_length: int, seed: int = 0) -> torch.Tensor:
    """Rows of different real lengths, symmetric NaN padding, one full and one empty row."""
    generator = torch.Generator().manual_seed(seed)
    lengths = [target_length, target_length // 2, max(1, target_length // 5), 0]
    return torch.stack(
        [_padded(torch.randn(n, generator=generator), target_length) for n in lengths]
    )


def _study(seed: int) -> optuna.Study:
    return optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed)
    )


def _n_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("architecture", SIGNAL_ARCHITECTURES)
@pytest.mark.parametrize("target_length", [500, 64, 16])
def test_default_models_give_finite_logits(architecture, target_length):
    hp = default_hyperparameters(architecture, target_length)
    assert hp["learning_rate"] == 1e-3
    model = _build(architecture, target_length, hp)
    assert 10_000 < _n_parameters(model) < 1_000_000
    x = _batch(target_length)
    assert x.isnan().any()
    for mode in (model.train, model.eval):
        mode()
        logits = model(x)
        assert logits.shape == (4, N_CLASSES)
        assert torch.isfinite(logits).all()


@pytest.mark.parametrize("architecture", SIGNAL_ARCHITECTURES)
def test_drawn_models_give_finite_logits(architecture):
    study = _study(seed=1)
    for target_length in (500, 64, 64, 500):
        trial = study.ask()
        hp = suggest_hyperparameters(trial, architecture, target_length)
        assert json.loads(json.dumps(hp)) == hp  # plain JSON values
        model = _build(architecture, target_length, hp).eval()
        assert _n_parameters(model) < 30_000_000
        with torch.no_grad():
            logits = model(_batch(target_length, seed=2)[:3])
        assert logits.shape == (3, N_CLASSES)
        assert torch.isfinite(logits).all()
        study.tell(trial, 0.5)


@pytest.mark.parametrize("architecture", ["cnn_lstm", "resnet"])
def test_convolutional_models_read_nan_padding_as_zeros(architecture):
    """Capfinder pads with zeros: NaN padding must give exactly the zero-padded result.

    (The attention model differs on purpose: its pooling masks the padding; tested below.)
    """
    model = _build(architecture, 64, default_hyperparameters(architecture, 64)).eval()
    x = _batch(64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x.nan_to_num(0.0)), rtol=0, atol=0)


def test_encoder_output_does_not_depend_on_padding():
    """A row's logits equal those of its unpadded signal, however much NaN surrounds it.

    With no mask (or the original's inverted one) the padded keys would change the attention
    (or the unpadded row would attend to nothing), and unmasked pooling would average padding.
    """
    model = _build("encoder", 64, default_hyperparameters("encoder", 64)).eval()
    signal = torch.randn(24, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        for parameter in model.parameters():  # non-zero biases, so padded keys carry values
            parameter.add_(0.1 * torch.randn_like(parameter))
        alone = model(signal.unsqueeze(0))
        rows = torch.stack([_padded(signal, 64), _padded(signal, 64, left=0)])
        torch.testing.assert_close(model(rows), alone.expand(2, -1), rtol=1e-4, atol=1e-5)
        # Three quarters of padding do not dominate the pooled features either.
        long = _padded(signal, 100, left=5).unsqueeze(0)
        torch.testing.assert_close(model.embed(long), model.embed(signal.unsqueeze(0)))
        # The same samples read as zero-valued signal give a different answer: the mask acts.
        assert not torch.allclose(model(_padded(signal, 64).nan_to_num(0.0)[None]), alone)


def test_attention_pooling_gives_no_weight_to_padding():
    hp = default_hyperparameters("attention_cnn_lstm", 64)
    assert len(hp["conv_filters"]) == 2  # two pools: 64 samples → 16 steps
    model = _build("attention_cnn_lstm", 64, hp).eval()
    assert isinstance(model, AttentionCnnLstm)
    x = torch.randn(2, 64)
    x[0, :36] = NAN  # pooled once: steps 0-17 all padding; twice: steps 0-8
    x[1] = NAN
    with torch.no_grad():
        weights = model.attention_weights(x)
        assert weights.shape == (2, 16)
        assert (weights[0, :9] == 0).all()
        assert (weights[0, 9:] > 0).all()
        torch.testing.assert_close(weights.sum(dim=1), torch.ones(2))
        assert torch.isfinite(model(x)).all()


def test_attention_model_reads_other_lengths():
    """The scalar attention bias ties the model to no input length."""
    model = _build("attention_cnn_lstm", 64, default_hyperparameters("attention_cnn_lstm", 64))
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 200)).shape == (2, N_CLASSES)


@pytest.mark.parametrize("architecture", SIGNAL_ARCHITECTURES)
def test_save_load_round_trip(architecture, tmp_path):
    target_length = 64
    hp = default_hyperparameters(architecture, target_length)
    model = _build(architecture, target_length, hp)
    x = _batch(target_length)
    with torch.no_grad():
        model.train()(torch.randn(8, target_length))  # move the BatchNorm statistics
    model.eval()
    hyperparameters = {"target_length": target_length, "n_classes": N_CLASSES}
    hyperparameters |= {k: v for k, v in hp.items() if k != "learning_rate"}
    config = ModelConfig(architecture, hyperparameters, {}, "classification", ["a", "b", "c"])
    save_model(tmp_path / "model", model, config)
    loaded, loaded_config = load_model(tmp_path / "model")
    assert type(loaded) is type(model)
    assert loaded_config.hyperparameters == hyperparameters
    assert not loaded.training
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("architecture", SIGNAL_ARCHITECTURES)
def test_a_few_adam_steps_reduce_the_loss(architecture):
    target_length = 64
    generator = torch.Generator().manual_seed(4)
    labels = torch.arange(16) % 2
    time = torch.arange(target_length, dtype=torch.float32)
    frequency = torch.where(labels == 0, 0.15, 0.6).unsqueeze(1)
    x = torch.sin(frequency * time) + 0.3 * torch.randn(16, target_length, generator=generator)
    for row, pad in enumerate(torch.randint(0, 12, (16,), generator=generator).tolist()):
        x[row, :pad] = NAN
        x[row, target_length - pad :] = NAN
    model = _build(architecture, target_length, default_hyperparameters(architecture, 64))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_function = torch.nn.CrossEntropyLoss()

    def loss() -> torch.Tensor:
        torch.manual_seed(5)  # the same dropout masks for the first and the last loss
        return loss_function(model(x), labels)

    model.train()
    first = loss().item()
    for _ in range(25):
        optimizer.zero_grad()
        value = loss_function(model(x), labels)
        value.backward()
        optimizer.step()
    assert loss().item() < 0.8 * first


@pytest.mark.parametrize("architecture", SIGNAL_ARCHITECTURES)
@pytest.mark.parametrize("target_length", [500, 64, 16])
def test_defaults_lie_inside_the_search_space(architecture, target_length):
    hp = default_hyperparameters(architecture, target_length)
    trial = optuna.trial.FixedTrial(trial_parameters(architecture, hp))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna warns about a value out of its distribution
        assert suggest_hyperparameters(trial, architecture, target_length) == hp


FIXED = {
    "cnn_lstm": (
        {"conv_filters": [32, 64, 96], "dense_units": 48, "learning_rate": 5e-4},
        {"conv_layers", "filters_0", "filters_1", "filters_2", "dense_units", "learning_rate"},
        {"kernel_size_2", "dropout_2", "lstm_layers"},
    ),
    "attention_cnn_lstm": (
        {"lstm_units": [32, 32], "lstm_dropouts": [0.1, 0.2], "dense_dropout": 0.25},
        {"lstm_layers", "lstm_units_0", "lstm_dropout_1", "dense_dropout"},
        {"conv_layers", "dense_units", "learning_rate"},
    ),
    "encoder": (
        {"mlp_units": [128], "d_model": 96, "learning_rate": 2e-3},
        {"num_mlp_layers", "mlp_units_0", "d_model", "learning_rate"},
        {"head_size", "mlp_dropout"},
    ),
    "resnet": (
        {"kernels": [[3, 3, 3], [5, 5, 5]], "dropout": 0.05},
        {"num_stages", "num_blocks_per_stage", "kernel_stage_0_block_0", "dropout"},
        {"filters_stage_0", "filters_stage_1", "initial_kernel"},
    ),
}


@pytest.mark.parametrize("architecture", SIGNAL_ARCHITECTURES)
def test_fixed_values_are_used_and_not_drawn(architecture):
    fixed, not_drawn, drawn = FIXED[architecture]
    study = _study(seed=6)
    for _ in range(3):
        trial = study.ask()
        hp = suggest_hyperparameters(trial, architecture, 500, fixed=fixed)
        assert {k: hp[k] for k in fixed} == fixed
        assert not not_drawn & set(trial.params)
        assert drawn <= set(trial.params)
        study.tell(trial, 0.0)
    if architecture == "cnn_lstm":
        assert len(hp["kernel_sizes"]) == len(hp["conv_dropouts"]) == 3
    if architecture == "resnet":
        assert len(hp["filters_per_stage"]) == 2
    _build(architecture, 500, hp)


def test_bad_fixed_values_are_refused():
    trial = _study(seed=0).ask()
    with pytest.raises(InputError, match="unknown hyperparameter"):
        suggest_hyperparameters(trial, "cnn_lstm", 500, fixed={"filters": [32]})
    with pytest.raises(InputError, match="same number of items"):
        suggest_hyperparameters(
            trial, "cnn_lstm", 500, fixed={"conv_filters": [32], "kernel_sizes": [3, 3]}
        )


def test_search_ranges_follow_the_current_length():
    study = _study(seed=7)
    seen_conv_layers = set()
    for _ in range(60):
        trial = study.ask()
        hp = suggest_hyperparameters(trial, "cnn_lstm", 64)
        n_conv = len(hp["conv_filters"])
        seen_conv_layers.add(n_conv)
        assert 1 <= n_conv <= 5  # ⌊log2 64⌋ − 1
        for i, kernel in enumerate(hp["kernel_sizes"]):
            assert kernel % 2 == 1 and kernel <= min(7, 64 >> i)
            assert trial.distributions[f"kernel_size_{i}"].high == min(7, (64 >> i) - 1 | 1)
            assert 32 <= hp["conv_filters"][i] <= min(128, 32 * 2 ** (i + 1))
        lstm_cap = (64 >> n_conv).bit_length()  # ⌊log2(length after the convs)⌋ + 1
        assert trial.distributions["lstm_layers"].high == lstm_cap
        assert 1 <= len(hp["lstm_units"]) <= lstm_cap
        assert 16 <= hp["dense_units"] <= min(128, 2 * hp["lstm_units"][-1])
        assert hp["learning_rate"] in (1e-2, 1e-3, 1e-4)
        study.tell(trial, 0.0)
    assert len(seen_conv_layers) >= 4  # the range is really explored, not frozen at one value

    study = _study(seed=8)
    for _ in range(30):
        trial = study.ask()
        hp = suggest_hyperparameters(trial, "attention_cnn_lstm", 500)
        assert len(hp["conv_filters"]) <= 5 and len(hp["lstm_units"]) <= 3
        assert max(hp["conv_filters"] + hp["lstm_units"]) <= 256
        study.tell(trial, 0.0)

    study = _study(seed=9)
    for _ in range(20):
        trial = study.ask()
        hp = suggest_hyperparameters(trial, "resnet", 8)  # stem → 4 steps, stage 1 → 2 steps
        assert hp["initial_kernel"] <= 7
        assert all(k == 3 for k in hp["kernels"][0])
        assert all(k == 1 for stage in hp["kernels"][1:] for k in stage)
        assert 1e-4 <= hp["learning_rate"] <= 1e-2
        _build("resnet", 8, hp).eval()(torch.randn(2, 8))
        study.tell(trial, 0.0)


def test_bf16_autocast_forward():
    x = _batch(64)
    for architecture in SIGNAL_ARCHITECTURES:
        model = _build(architecture, 64, default_hyperparameters(architecture, 64)).eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x.bfloat16())
        assert logits.shape == (4, N_CLASSES) and torch.isfinite(logits).all()


def test_unknown_architecture_and_bad_hyperparameters():
    with pytest.raises(InputError, match="cnn_lstm, attention_cnn_lstm, encoder, resnet"):
        default_hyperparameters("transformer", 500)
    with pytest.raises(InputError, match="unknown signal architecture"):
        suggest_hyperparameters(_study(seed=0).ask(), "lstm", 500)
    with pytest.raises(InputError, match="kernel_sizes must have 2 items"):
        build_model("cnn_lstm", target_length=64, n_classes=2, kernel_sizes=[3])
    with pytest.raises(InputError, match="target_length >= 8"):
        build_model(
            "cnn_lstm",
            target_length=4,
            n_classes=2,
            conv_filters=[8, 8, 8],
            kernel_sizes=[3, 3, 3],
            conv_dropouts=[0.1, 0.1, 0.1],
        )
    with pytest.raises(InputError, match="must be odd"):
        build_model("resnet", target_length=64, n_classes=2, kernels=[[3, 4], [3, 3]])
