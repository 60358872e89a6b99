"""Fine-tuning from a pretrained encoder: weights transferred, freezing, and its bad inputs."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import experiment_defaults

from nucflow.data.sequence import prepare_pretraining_data, prepare_sequences
from nucflow.data.simulate import simulate_transcripts
from nucflow.data.splits import write_fold_split
from nucflow.errors import InputError
from nucflow.models.files import load_model
from nucflow.train.fit import fit_fold
from nucflow.train.pretrain import pretrain_model

EXPERIMENT = experiment_defaults(
    encoding={"method": "cse", "kernel_size": 3, "n_kernels": 8, "context_length": 32},
    model={"name": "bert", "d_model": 8, "N": 1, "h": 2},
    pretrain={"epochs": 1, "n_samples_per_epoch": 32, "batch_size": 16, "warmup_steps": 4},
    training={"batch_size": 16, "epochs": 1, "n_samples_per_epoch": 32, "learning_rate": 0.01},
)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """CSE-encoded demo transcripts, a fold split and a tiny pretrained MLM."""
    work = tmp_path_factory.mktemp("finetune")
    sim = simulate_transcripts(work / "sim", n_per_class=20, n_unlabelled=2, max_length=600)
    classes = {"pc": sim["protein_coding"], "nc": sim["lncrna"]}
    prepare_sequences(classes, EXPERIMENT["encoding"], work / "enc.npz", work / "tok.json")
    write_fold_split(work / "enc.npz", EXPERIMENT["splits"], 1, "0", work / "split.json")
    prepare_pretraining_data(
        [sim["protein_coding"], sim["lncrna"]],
        work / "tok.json",
        work / "pre.npz",
        work / "pre.json",
        0.2,
        1,
    )
    pretrain_model(
        work / "pre.npz",
        work / "tok.json",
        work / "pre.json",
        work / "mlm",
        work / "mlm.csv",
        work / "mlm.png",
        model_settings=EXPERIMENT["model"],
        encoding=EXPERIMENT["encoding"],
        pretrain=EXPERIMENT["pretrain"],
        seed=1,
    )
    return work


def _fit(work, name: str, pretrained=None, split: str = "split.json", **training):
    fit_fold(
        work / "enc.npz",
        work / "tok.json",
        work / split,
        work / name,
        work / f"{name}.csv",
        work / f"{name}.png",
        model_settings=EXPERIMENT["model"],
        encoding=EXPERIMENT["encoding"],
        training={**EXPERIMENT["training"], **training},
        task="classification",
        seed=3,
        pretrained=pretrained,
    )
    return load_model(work / name)


def _encoder_state(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.encoder.state_dict().items()}


def test_fine_tuning_starts_from_the_pretrained_encoder(work):
    pretrained, _ = load_model(work / "mlm")
    model, config = _fit(work, "tuned", work / "mlm")
    assert config.architecture == "bert" and config.hyperparameters["pooling"] == "cls"
    tuned, start = model.encoder.state_dict(), _encoder_state(pretrained)
    assert any(not torch.equal(tuned[k], start[k]) for k in start)  # it trained
    scratch, _ = _fit(work, "scratch")
    assert not torch.equal(scratch.encoder.conv.weight, pretrained.encoder.conv.weight)


def test_freeze_network_keeps_the_encoder_and_pools_the_mean(work):
    pretrained, _ = load_model(work / "mlm")
    model, config = _fit(work, "probe", work / "mlm", freeze_network=True)
    assert config.hyperparameters["pooling"] == "mean"
    start = _encoder_state(pretrained)
    for name, tensor in model.encoder.state_dict().items():
        assert torch.equal(tensor, start[name]), name


def test_freeze_kernels_keeps_only_the_cse_convolution(work):
    pretrained, _ = load_model(work / "mlm")
    model, _ = _fit(work, "kernels", work / "mlm", freeze_kernels=True)
    assert torch.equal(model.encoder.conv.weight, pretrained.encoder.conv.weight)
    assert torch.equal(model.encoder.conv.bias, pretrained.encoder.conv.bias)
    start = _encoder_state(pretrained)
    changed = [k for k, v in model.encoder.state_dict().items() if not torch.equal(v, start[k])]
    assert changed and not any(name.startswith("conv.") for name in changed)


def test_pretrained_model_errors(work, tmp_path):
    with pytest.raises(InputError, match="pretrained model directory not found"):
        _fit(work, "x", tmp_path / "missing")
    with pytest.raises(InputError, match="need a pretrained model"):
        _fit(work, "x", freeze_network=True)
    other = experiment_defaults(encoding={"method": "kmer", "k": 3, "context_length": 32})
    sim = work / "sim"
    prepare_sequences(
        {"pc": sim / "protein_coding.fa", "nc": sim / "lncrna.fa"},
        other["encoding"],
        tmp_path / "enc.npz",
        tmp_path / "tok.json",
    )
    write_fold_split(tmp_path / "enc.npz", other["splits"], 1, "0", tmp_path / "split.json")
    with pytest.raises(InputError, match=r"pretrained with encoding cse .* encoded with kmer"):
        fit_fold(
            tmp_path / "enc.npz",
            tmp_path / "tok.json",
            tmp_path / "split.json",
            tmp_path / "m",
            tmp_path / "h.csv",
            tmp_path / "h.png",
            model_settings=EXPERIMENT["model"],
            encoding=other["encoding"],
            training=EXPERIMENT["training"],
            task="classification",
            seed=3,
            pretrained=work / "mlm",
        )
    assert not (tmp_path / "m").exists()
    cnn = experiment_defaults(
        model={"name": "cnn"}, encoding={"method": "kmer", "k": 3, "context_length": 32}
    )
    fit_fold(
        tmp_path / "enc.npz",
        tmp_path / "tok.json",
        tmp_path / "split.json",
        tmp_path / "cnn",
        tmp_path / "c.csv",
        tmp_path / "c.png",
        model_settings=cnn["model"],
        encoding=cnn["encoding"],
        training={**EXPERIMENT["training"]},
        task="classification",
        seed=3,
    )
    with pytest.raises(InputError, match="architecture cnn has no BERT encoder"):
        fit_fold(
            tmp_path / "enc.npz",
            tmp_path / "tok.json",
            tmp_path / "split.json",
            tmp_path / "m2",
            tmp_path / "h.csv",
            tmp_path / "h.png",
            model_settings=EXPERIMENT["model"],
            encoding=cnn["encoding"],
            training=EXPERIMENT["training"],
            task="classification",
            seed=3,
            pretrained=tmp_path / "cnn",
        )


def test_empty_validation_part(work, tmp_path):
    split = json.loads((work / "split.json").read_text())
    split["train"] += split.pop("valid")
    (tmp_path / "novalid.json").write_text(json.dumps({**split, "valid": []}))
    with pytest.raises(InputError, match="empty validation part"):
        fit_fold(
            work / "enc.npz",
            work / "tok.json",
            tmp_path / "novalid.json",
            tmp_path / "m",
            tmp_path / "h.csv",
            tmp_path / "h.png",
            model_settings=EXPERIMENT["model"],
            encoding=EXPERIMENT["encoding"],
            training=EXPERIMENT["training"],
            task="classification",
            seed=3,
        )
