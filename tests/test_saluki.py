"""Saluki CNN-GRU: shapes, parameter count, padding invariance, save → load, presets, shifts."""

from __future__ import annotations

import pytest
import torch

from nucflow.errors import InputError
from nucflow.models import build_model
from nucflow.models.files import ModelConfig, load_model, save_model
from nucflow.models.saluki import (
    SalukiModel,
    random_shift,
)
from nucflow.train.presets import TRAINING_PRESETS, apply_training_presets

N_ATOMS = 4
N_SPECS = 2


def _model(**overrides) -> SalukiModel:
    torch.manual_seed(0)
    settings = {"n_atoms": N_ATOMS, "n_specifiers": N_SPECS, **overrides}
    return SalukiModel(**settings).eval()


def _rows(lengths: list[int], width: int, seed: int = 0) -> torch.Tensor:
    """Right-padded rows: atom ids 1 … N_ATOMS + 1 (UNK included), specifiers in [0, 1)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.zeros(len(lengths), width, 1 + N_SPECS)
    for row, length in enumerate(lengths):
        x[row, :length, 0] = torch.randint(1, N_ATOMS + 2, (length,), generator=generator).float()
        x[row, :length, 1:] = torch.rand(length, N_SPECS, generator=generator)
    return x


def test_parameter_count_at_six_input_channels():
    # 1,920 entry + 6 × 20,672 tower + 128 LayerNorm + 24,960 GRU + 2 × 128 BatchNorm
    # + 4,160 dense + 65 output = 155,521 (breakdown in SalukiModel.__init__).
    model = _model()
    assert sum(p.numel() for p in model.parameters()) == 155_521
    assert model.entry.weight.numel() == 1_920
    assert sum(p.numel() for p in model.tower[0].parameters()) == 20_672
    assert sum(p.numel() for p in model.gru.parameters()) == 24_960
    assert model.dense[2].weight.numel() + model.dense[2].bias.numel() == 4_160


def test_paper_input_leaves_188_steps():
    model = _model()
    assert model.tower_length(12_288) == 188 and model.exact_length(188) == 12_288
    assert model.min_length() == 320 and model.tower_length(320) == 1
    assert model.tower_length(319) == 0
    steps = model.gru_steps(torch.tensor([0, 1, 320, 321, 384, 385, 12_288]))
    assert steps.tolist() == [1, 1, 1, 2, 2, 3, 188]


def test_forward_and_embed_shapes():
    model = _model(n_outputs=3)
    x = _rows([400, 700, 1000], 1000)
    assert model(x).shape == (3, 3)
    assert model.embed(x).shape == (3, 64)


def test_full_paper_length_row():
    model = _model()
    x = _rows([12_288, 9_000], 12_288)
    out = model(x)
    assert out.shape == (2, 1) and torch.isfinite(out).all()


def test_padding_after_three_prime_end_does_not_change_prediction():
    model = _model()
    x = _rows([450, 900, 333], 900, seed=1)
    padded = torch.cat([x, torch.zeros(3, 517, 1 + N_SPECS)], dim=1)
    torch.testing.assert_close(model(x), model(padded), rtol=0, atol=1e-5)
    # each row alone, trimmed to its own length, gives the batched prediction
    for row, length in enumerate([450, 900, 333]):
        torch.testing.assert_close(
            model(x[row : row + 1, :length]), model(x)[row : row + 1], rtol=0, atol=1e-5
        )


def test_sequences_shorter_than_receptive_field():
    model = _model()
    x = _rows([1, 17, 319], 319, seed=2)
    out = model(x)
    assert out.shape == (3, 1) and torch.isfinite(out).all()
    # a short row is read as zero-padded to min_length(): more padding changes nothing
    torch.testing.assert_close(
        out, model(torch.cat([x, torch.zeros(3, 2_000, 1 + N_SPECS)], dim=1)), rtol=0, atol=1e-5
    )
    torch.testing.assert_close(model(x[1:2, :17]), out[1:2], rtol=0, atol=1e-5)
    assert model(torch.zeros(2, 5, 1 + N_SPECS)).shape == (2, 1)  # all-PAD rows still run


@pytest.mark.parametrize("length", [600, 601, 4_000, 12_288])
def test_last_real_token_reaches_the_gru(length):
    """No real 3' position is lost to the floor of odd lengths in the valid conv / pool tower."""
    model = _model()
    steps = int(model.gru_steps(torch.tensor([length])))
    assert model.exact_length(steps) >= length > model.exact_length(steps - 1)
    x = _rows([length], max(length, 800), seed=3)
    changed = x.clone()
    changed[0, length - 1, 0] = 2.0 if x[0, length - 1, 0] != 2.0 else 3.0
    changed[0, length - 1, 1:] = 5.0
    before, lengths = model.tower_features(x)
    after, _ = model.tower_features(changed)
    assert int(lengths) == length and int(model.gru_steps(lengths)) == steps
    assert before.shape[2] == steps  # the row is read in exactly its steps' window
    assert not torch.allclose(before[0, :, steps - 1], after[0, :, steps - 1])
    torch.testing.assert_close(before[0, :, : steps - 1], after[0, :, : steps - 1])


def test_gru_reads_each_row_backwards_from_its_last_real_step():
    model = _model()
    x = _rows([1_000, 400, 700], 1_000, seed=7)
    hidden, lengths = model.tower_features(x)
    steps = model.gru_steps(lengths)
    assert steps.tolist() == [12, 3, 7]
    for row, n in enumerate(steps.tolist()):
        _, last = model.gru(hidden[row : row + 1, :, :n].transpose(1, 2).flip(1))
        torch.testing.assert_close(
            model.dense(last[-1]), model.embed(x)[row : row + 1], rtol=0, atol=1e-6
        )


def test_one_hot_ignores_pad_and_unk():
    """PAD (0) and UNK (1) both give all-zero one-hot rows: swapping them inside a row is moot."""
    model = _model()
    x = _rows([500], 500, seed=4)
    x[0, 100:110, 0] = 1.0  # UNK
    y = x.clone()
    y[0, 100:110, 0] = 0.0  # PAD inside the sequence (not after its end)
    torch.testing.assert_close(model(x), model(y), rtol=0, atol=1e-6)


def test_deterministic_init_and_output():
    x = _rows([500, 400], 500)
    torch.testing.assert_close(_model()(x), _model()(x), rtol=0, atol=0)


def test_training_step_runs():
    model = _model().train()
    x = _rows([400, 500, 350, 420], 500)
    loss = model(random_shift(x, 3, torch.Generator().manual_seed(0))).square().mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_bad_input_shape_and_hyperparameters():
    with pytest.raises(InputError, match=r"expected input \(batch, length, 3\)"):
        _model()(torch.zeros(2, 400, 2))
    with pytest.raises(InputError, match="n_atoms must be an integer >= 1"):
        SalukiModel(n_atoms=0)
    with pytest.raises(InputError, match="dropout must be in"):
        SalukiModel(n_atoms=4, dropout=1.0)


def test_registry_and_save_load_round_trip(tmp_path):
    hyper = {"n_atoms": N_ATOMS, "n_specifiers": N_SPECS, "n_outputs": 2}
    torch.manual_seed(0)
    model = build_model("saluki", **hyper)
    model.train()
    model(_rows([400, 500, 450, 480], 500, seed=5))  # move the BatchNorm running statistics
    model.eval()
    config = ModelConfig("saluki", hyper, {"method": "atomic"}, "regression", [])
    save_model(tmp_path / "m", model, config)
    loaded, loaded_config = load_model(tmp_path / "m")
    assert isinstance(loaded, SalukiModel) and loaded_config.architecture == "saluki"
    x = _rows([321, 600, 12], 600, seed=6)
    torch.testing.assert_close(model(x), loaded(x), rtol=0, atol=0)


def test_random_shift():
    x = torch.arange(1, 3 * 10 + 1, dtype=torch.float32).view(3, 10, 1).repeat(1, 1, 2)
    shifted = random_shift(x, 3, torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape
    for row in range(3):
        shift = int((shifted[row, :, 0] == 0).sum())
        assert 0 <= shift <= 3
        assert (shifted[row, :shift] == 0).all()
        torch.testing.assert_close(shifted[row, shift:], x[row, : 10 - shift])
    again = random_shift(x, 3, torch.Generator().manual_seed(0))
    torch.testing.assert_close(shifted, again)
    torch.testing.assert_close(random_shift(x, 0), x)
    with pytest.raises(ValueError, match="max_shift must be >= 0"):
        random_shift(x, -1)


def test_random_shift_covers_every_offset():
    x = torch.ones(400, 8, 1)
    shifted = random_shift(x, 3, torch.Generator().manual_seed(1))
    assert set((shifted[:, :, 0] == 0).sum(dim=1).tolist()) == {0, 1, 2, 3}


def test_training_presets_fill_only_unset_keys():
    config = {"experiments": {"e": {"training": {"preset": "saluki", "batch_size": 8}}}}
    training = apply_training_presets(config)["experiments"]["e"]["training"]
    assert training["learning_rate"] == 1e-4 and training["betas"] == [0.9, 0.998]
    assert training["gradient_clip"] == 0.5 and training["random_shift"] == 3
    assert training["batch_size"] == 8  # explicit keys win
    port = TRAINING_PRESETS["rna_saluki_cnn"]
    assert port["learning_rate"] == 1e-3 and port["gradient_clip"] == 0.4
    assert port["weight_decay"] == 0.001 and port["batch_size"] == 32
