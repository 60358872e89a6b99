"""Leave-one-out interpretation: rows, offsets, signs, edits (against direct predictions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nucflow.errors import InputError
from nucflow.interpret.loo import loo_scores
from nucflow.models import build_model
from nucflow.models.files import ModelConfig
from nucflow.predict import model_predictions
from nucflow.tokenize import MASK_ID, PAD_ID, build_tokenizer, learn_atomic

SEQS = ["ACGTTGCAACGTAG", "acgtAACCGGTTacgtAC"]


def _cnn(k: int, context_length: int):
    tokenizer = build_tokenizer(
        "kmer" if k > 1 else "nuc", k=k, context_length=context_length, keep="five_prime"
    )
    hyper = {
        "vocab_size": tokenizer.vocab_size,
        "n_classes": 3,
        "pad_id": PAD_ID,
        "embedding_dim": 4,
        "channels": 8,
        "kernel_size": 3,
        "n_layers": 1,
        "dropout": 0.0,
        "hidden_cls_layers": [],
    }
    torch.manual_seed(0)
    model = build_model("cnn", **hyper).eval()
    config = ModelConfig("cnn", hyper, tokenizer.to_spec(), "classification", ["x", "y", "z"])
    return model, config, tokenizer


ATOM_SEQS = [
    ["A", "C", "gej", "G", "T", "a", "c", "G"],
    ["T", "T", "g", "A", "gej", "C", "C", "A", "t", "G", "A"],
]
ATOM_SPECS = [
    [(), (0.5,), (), (), (1.0,), (), (), ()],
    [(), (), (0.2,), (), (), (), (), (), (), (), (0.7,)],
]


def _saluki():
    tokenizer = learn_atomic(ATOM_SEQS, ATOM_SPECS, blocksize=24)
    hyper = {
        "n_atoms": tokenizer.n_atoms,
        "n_specifiers": tokenizer.n_specifiers,
        "n_outputs": 1,
        "channels": 4,
        "n_layers": 1,
    }
    torch.manual_seed(0)
    model = build_model("saluki", **hyper).eval()
    config = ModelConfig(
        "saluki",
        hyper,
        tokenizer.to_spec(),
        "regression",
        [],
        label_scaler={"method": "standard", "shift": 2.0, "scale": 3.0},
    )
    return model, config, tokenizer


def _prob(model, config, inputs, target):
    return model_predictions(model, config, inputs, 8)[:, target]


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("mode", ["remove", "mask"])
def test_kmer_rows_offsets_and_sign(k, mode):
    model, config, tokenizer = _cnn(k, context_length=6 if k == 1 else 5)
    table = loo_scores(
        model, config, None, ["a", "b"], SEQS, labels=["x", "y"], mode=mode, batch_size=3
    )
    assert list(table.columns) == [
        "sequence",
        "token",
        "label",
        "pred",
        "start_offset",
        "end_offset",
        "loo",
    ]
    n_units = [min(len(s), tokenizer.max_nucleotides) // k for s in SEQS]
    assert len(table) == sum(n_units)
    first = table[table["sequence"] == "a"]
    assert first["start_offset"].tolist() == [i * k for i in range(n_units[0])]
    assert (first["end_offset"] - first["start_offset"]).eq(k).all()
    assert first["token"].tolist()[1] == SEQS[0][k : 2 * k]
    # Sign: edited minus original probability of the predicted class.
    original = tokenizer.encode([SEQS[0]])
    probabilities = model_predictions(model, config, original, 8)[0]
    target = int(np.argmax(probabilities))
    assert first["pred"].iloc[0] == pytest.approx(probabilities[target])
    i = 2
    if mode == "remove":
        edited = tokenizer.encode([SEQS[0][: i * k] + SEQS[0][(i + 1) * k :]])
    else:
        edited = original.copy()
        edited[0, i + 1] = MASK_ID
    expected = _prob(model, config, edited, target)[0] - probabilities[target]
    assert first["loo"].iloc[i] == pytest.approx(expected, abs=1e-6)


def test_remove_shifts_downstream_tokens():
    # The removed k-mer's neighbours shift left, and nucleotides beyond the cap move in.
    model, config, tokenizer = _cnn(3, context_length=5)  # 4 k-mers = 12 nt of 14 kept
    seq = SEQS[0]
    table = loo_scores(model, config, tokenizer, ["a"], [seq], mode="remove")
    shortened = tokenizer.encode([seq[3:]])
    assert tokenizer.decode(shortened)[0][1:4] == [seq[3:6], seq[6:9], seq[9:12]]
    target = int(np.argmax(model_predictions(model, config, tokenizer.encode([seq]), 8)[0]))
    direct = _prob(model, config, shortened, target)[0] - table["pred"].iloc[0]
    assert table["loo"].iloc[0] == pytest.approx(direct, abs=1e-6)


def test_replace_nucleotides_default_and_target_class():
    model, config, tokenizer = _cnn(1, context_length=32)
    table = loo_scores(model, config, tokenizer, ["a", "b"], SEQS, mode="replace", target_class=2)
    assert list(table.columns)[:3] == ["sequence", "token", "replacement"]
    assert len(table) == 3 * sum(map(len, SEQS))
    second = table[table["sequence"] == "b"]
    assert second["replacement"].tolist()[:3] == ["c", "g", "t"]  # case kept
    row = second.iloc[5]  # position 1 (c) → a, g, t
    assert (row["token"], row["replacement"], row["start_offset"]) == ("c", "t", 1)
    seq = SEQS[1]
    edited = tokenizer.encode([seq[0] + "t" + seq[2:]])
    original = tokenizer.encode([seq])
    expected = _prob(model, config, edited, 2)[0] - _prob(model, config, original, 2)[0]
    assert row["loo"] == pytest.approx(expected, abs=1e-6)


def test_replace_kmer_mapping():
    model, config, tokenizer = _cnn(3, context_length=8)
    table = loo_scores(
        model,
        config,
        tokenizer,
        ["a"],
        [SEQS[0]],
        mode="replace",
        replacement={"ACG": ["TTT", "aaa"], "CGT": ["CCC"], "TAG": ["GGG"]},
    )
    # Units are the encoded k-mers ACG TTG CAA CGT; the trailing partial "AG" is no unit.
    assert table["token"].tolist() == ["ACG", "ACG", "CGT"]
    assert table["replacement"].tolist() == ["TTT", "aaa", "CCC"]
    assert table["start_offset"].tolist() == [0, 0, 9]
    assert table["end_offset"].tolist() == [3, 3, 12]
    target = int(np.argmax(model_predictions(model, config, tokenizer.encode([SEQS[0]]), 8)[0]))
    edited = tokenizer.encode(["ACGTTGCAACCCAG"])
    expected = _prob(model, config, edited, target)[0] - table["pred"].iloc[0]
    assert table["loo"].iloc[2] == pytest.approx(expected, abs=1e-6)


def test_atomic_remove_mask_replace():
    model, config, tokenizer = _saluki()
    seq, specs = ATOM_SEQS[0], ATOM_SPECS[0]
    common = {"specifiers": ATOM_SPECS, "labels": [1.5, -0.5], "batch_size": 4}
    removed = loo_scores(model, config, tokenizer, ["a", "b"], ATOM_SEQS, mode="remove", **common)
    assert len(removed) == sum(map(len, ATOM_SEQS))
    first = removed[removed["sequence"] == "a"]
    assert first["token"].tolist()[:3] == ["A", "C#0.5", "gej"]
    assert first["start_offset"].tolist()[:5] == [0, 1, 2, 5, 6]
    assert first["end_offset"].tolist()[2] == 5
    assert first["label"].iloc[0] == 1.5
    original = tokenizer.encode([seq], [specs])
    pred = model_predictions(model, config, original, 8)[0]
    assert first["pred"].iloc[0] == pytest.approx(pred)
    shortened = tokenizer.encode([seq[:2] + seq[3:]], [specs[:2] + specs[3:]])
    expected = model_predictions(model, config, shortened, 8)[0] - pred
    assert first["loo"].iloc[2] == pytest.approx(expected, abs=1e-5)

    masked = loo_scores(model, config, tokenizer, ["a", "b"], ATOM_SEQS, mode="mask", **common)
    zero_row = original.copy()
    zero_row[0, 1, :] = 0.0  # "C#0.5": one-hot zero row (UNK) and its specifier zeroed
    zero_row[0, 1, 0] = 1.0
    expected = model_predictions(model, config, zero_row, 8)[0] - pred
    assert masked["loo"].iloc[1] == pytest.approx(expected, abs=1e-5)

    replaced = loo_scores(
        model,
        config,
        tokenizer,
        ["a", "b"],
        ATOM_SEQS,
        mode="replace",
        replacement={"gej": ["A", "g"], "C": ["T"]},
        **common,
    )
    first = replaced[replaced["sequence"] == "a"]
    assert first["replacement"].tolist() == ["T", "A", "g"]
    swapped = tokenizer.encode([seq[:1] + ["T"] + seq[2:]], [specs])  # specifiers kept
    expected = model_predictions(model, config, swapped, 8)[0] - pred
    assert first["loo"].iloc[0] == pytest.approx(expected, abs=1e-5)
    assert first["start_offset"].tolist() == [1, 2, 2]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "drop"}, "unknown LOO mode"),
        ({"mode": "replace", "replacement": ["A"]}, "must be a mapping"),
        ({"mode": "replace", "replacement": {"A": "C"}}, "lists of strings"),
        ({"mode": "replace", "replacement": {"A": ["AC"]}}, "length k = 1"),
        ({"mode": "replace", "replacement": {"A": ["X"]}}, "length k = 1"),
        ({"mode": "replace", "replacement": {"AC": ["A"]}}, "'AC' is not a nucleotide string"),
        ({"mode": "mask", "target_class": 7}, "target_class"),
    ],
)
def test_bad_kmer_inputs(kwargs, message):
    model, config, tokenizer = _cnn(1, context_length=16)
    with pytest.raises(InputError, match=message):
        loo_scores(model, config, tokenizer, ["a"], [SEQS[0]], **kwargs)


def test_bad_atomic_and_unsupported_inputs():
    model, config, tokenizer = _saluki()
    with pytest.raises(InputError, match="not in the model's vocabulary"):
        loo_scores(
            model, config, tokenizer, ["a"], ATOM_SEQS[:1], mode="replace", replacement={"A": ["Z"]}
        )
    with pytest.raises(InputError, match="2 labels for 1 sequences"):
        loo_scores(model, config, tokenizer, ["a"], ATOM_SEQS[:1], labels=[1, 2], mode="mask")
    with pytest.raises(InputError, match="replacementdict atom 'Q' is not in the model's"):
        loo_scores(
            model, config, tokenizer, ["a"], ATOM_SEQS[:1], mode="replace", replacement={"Q": ["A"]}
        )
