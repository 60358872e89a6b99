"""Fast LOO (incremental conv towers, batched attention) equals the reference, for every mode."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from nucflow.interpret.incremental import IncrementalForward
from nucflow.interpret.loo import loo_scores
from nucflow.models import build_model
from nucflow.models.files import ModelConfig
from nucflow.tokenize import PAD_ID, CseEncoding, build_tokenizer, learn_atomic, learn_bpe

MODES = ["remove", "mask", "replace"]
RNG = np.random.default_rng(0)


def _text(length: int) -> str:
    return "".join(RNG.choice(list("ACGT"), size=length))


TEXTS = [_text(n) for n in (2, 9, 40, 75)]  # shorter than a kernel … longer than the row


def _compare(models, config, tokenizer, sequences, mode, **kwargs) -> pd.DataFrame:
    ids = [f"s{i}" for i in range(len(sequences))]
    common = {"mode": mode, "batch_size": 16, **kwargs}
    fast = loo_scores(models, config, tokenizer, ids, sequences, method="fast", **common)
    reference = loo_scores(models, config, tokenizer, ids, sequences, method="reference", **common)
    assert len(fast) > 0
    pd.testing.assert_frame_equal(fast.drop(columns="loo"), reference.drop(columns="loo"))
    np.testing.assert_allclose(fast["loo"], reference["loo"], rtol=0, atol=1e-4)
    assert fast["loo"].abs().max() > 1e-6  # the edits do change predictions
    return fast


def _cnn(tokenizer, seed: int = 0):
    hyper = {
        "vocab_size": tokenizer.vocab_size,
        "n_classes": 3,
        "pad_id": PAD_ID,
        "embedding_dim": 6,
        "channels": 8,
        "kernel_size": 4,  # even: "same" padding is asymmetric
        "n_layers": 3,
        "dropout": 0.0,
        "hidden_cls_layers": [],
    }
    torch.manual_seed(seed)
    model = build_model("cnn", **hyper).eval()
    return model, ModelConfig("cnn", hyper, tokenizer.to_spec(), "classification", ["a", "b", "c"])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("k", "keep"), [(1, "five_prime"), (3, "five_prime"), (3, "three_prime")], ids=str
)
def test_cnn_fast_equals_reference(mode, k, keep):
    tokenizer = build_tokenizer("nuc" if k == 1 else "kmer", k=k, context_length=20, keep=keep)
    model, config = _cnn(tokenizer)
    replacement = {"ACG": ["TTT", "GGA"], "TTA": ["CCC"]} if k == 3 else None
    texts = [t.replace("CAT", "ACG") for t in TEXTS]  # mapped units occur
    _compare(model, config, tokenizer, texts, mode, replacement=replacement)


ATOMS = ["A", "C", "G", "T", "a", "c", "g", "t", "gej"]


def _atom_rows(lengths: list[int]) -> tuple[list[list[str]], list[list[tuple[float, ...]]]]:
    rows = [list(RNG.choice(ATOMS, size=n)) for n in lengths]
    specs = [[tuple(RNG.choice([0.0, 0.0, 0.5, 1.5], size=2)) for _ in row] for row in rows]
    return rows, specs


def _saluki(tokenizer, seed: int = 0, shift: float = 2.0):
    hyper = {
        "n_atoms": tokenizer.n_atoms,
        "n_specifiers": tokenizer.n_specifiers,
        "n_outputs": 1,
        "channels": 6,
        "kernel_size": 5,
        "n_layers": 2,  # receptive field 20, stride 4
        "dropout": 0.0,
    }
    torch.manual_seed(seed)
    model = build_model("saluki", **hyper).eval()
    scaler = {"method": "standard", "shift": shift, "scale": 3.0}
    config = ModelConfig("saluki", hyper, tokenizer.to_spec(), "regression", [], scaler)
    return model, config


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("window", ["five_prime", "lefttailing", "centertoken"])
def test_saluki_fast_equals_reference(mode, window):
    # lengths: shorter than the receptive field, odd, exactly the blocksize, longer than it
    rows, specs = _atom_rows([7, 33, 64, 90])
    rows[3][70] = "gej"
    tokenizer = learn_atomic(
        rows,
        specs,
        blocksize=64,
        lefttailing=window == "lefttailing",
        centertoken="gej" if window == "centertoken" else None,
    )
    model, config = _saluki(tokenizer)
    fast = _compare(
        model,
        config,
        tokenizer,
        rows,
        mode,
        specifiers=specs,
        replacespecifier=True,
        labels=[1.0, 2.0, 3.0, 4.0],
    )
    long = fast[fast["sequence"] == "s3"]
    n_units = 64 if mode != "replace" else None
    if n_units:
        assert len(long) == n_units  # only the kept window is scored
    if window == "lefttailing":
        assert long["end_offset"].max() == sum(len(a) for a in rows[3])
    if mode == "replace":  # replacespecifier: decorated atoms also get their plain form
        plain = fast[fast["token"].str.contains("#")]
        assert (plain["replacement"] == plain["token"].str.split("#").str[0]).any()


def test_saluki_ensemble_is_the_mean_of_its_members():
    rows, specs = _atom_rows([30, 50])
    tokenizer = learn_atomic(rows, specs, blocksize=64)
    first, second = _saluki(tokenizer, seed=1, shift=0.0), _saluki(tokenizer, seed=2, shift=5.0)
    ensemble = _compare([first, second], None, tokenizer, rows, "mask", specifiers=specs)
    alone = [
        loo_scores(*member, tokenizer, ["s0", "s1"], rows, specs, mode="mask")
        for member in (first, second)
    ]
    np.testing.assert_allclose(
        ensemble["loo"], (alone[0]["loo"] + alone[1]["loo"]) / 2, rtol=0, atol=1e-5
    )
    np.testing.assert_allclose(
        ensemble["pred"], (alone[0]["pred"] + alone[1]["pred"]) / 2, rtol=0, atol=1e-5
    )


BERT = {"d_model": 16, "N": 2, "h": 2, "dropout": 0.0}


def _bert(tokenizer, **extra):
    hyper = {"n_classes": 2, "context_length": tokenizer.context_length, **BERT, **extra}
    torch.manual_seed(0)
    model = build_model("bert", **hyper).eval()
    return model, ModelConfig("bert", hyper, tokenizer.to_spec(), "classification", ["x", "y"])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("encoding", ["nuc", "bpe", "cse"])
def test_bert_fast_equals_reference(mode, encoding):
    if encoding == "nuc":
        tokenizer = build_tokenizer("nuc", k=1, context_length=24, keep="five_prime")
        extra = {"input": "tokens", "vocab_size": tokenizer.vocab_size}
    elif encoding == "bpe":
        tokenizer = learn_bpe(TEXTS * 3, vocab_size=24, context_length=16)
        extra = {"input": "tokens", "vocab_size": tokenizer.vocab_size}
    else:
        tokenizer = CseEncoding(kernel_size=3, context_length=9)
        extra = {"input": "cse", "kernel_size": 3, "n_kernels": 8}
    model, config = _bert(tokenizer, **extra)
    table = _compare(model, config, tokenizer, TEXTS, mode)
    for name, text in zip(["s0", "s1", "s2", "s3"], TEXTS, strict=True):
        rows = table[table["sequence"] == name]
        if mode != "replace":  # units tile the kept part of the sequence, in order
            starts, ends = rows["start_offset"].to_numpy(), rows["end_offset"].to_numpy()
            assert (starts[1:] == ends[:-1]).all()
            assert "".join(text[s:e] for s, e in zip(starts, ends, strict=True)) == "".join(
                rows["token"]
            )


def test_identical_rows_are_not_recomputed():
    tokenizer = learn_atomic(*_atom_rows([40]), blocksize=64)
    model, _ = _saluki(tokenizer)
    row = torch.from_numpy(tokenizer.encode([["A"] * 40]))
    row = model.fit_width(row, model.input_width(torch.tensor([40])))
    engine = IncrementalForward(model, row)
    same = engine(row.repeat(3, 1, 1))
    torch.testing.assert_close(same, engine.output.expand(3, -1), rtol=0, atol=0)


def test_attention_scoring_skips_unchanged_rows():
    from nucflow.interpret.scoring import EnsembleScorer

    tokenizer = build_tokenizer("nuc", k=1, context_length=24, keep="five_prime")
    model, config = _bert(tokenizer, input="tokens", vocab_size=tokenizer.vocab_size)
    calls = []
    model.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    scorer = EnsembleScorer([(model, config)], "fast")
    original = tokenizer.encode([TEXTS[2]])[0]
    base = scorer.start(original)
    edited = np.repeat(original[None], 3, axis=0)
    edited[1, 4] = 0  # only this row differs
    probabilities = scorer.score(edited)
    assert calls == [1, 1]  # the original once, then only the one changed row
    np.testing.assert_array_equal(probabilities[0], base)
    assert not np.allclose(probabilities[1], base)
