"""Regression pieces: label scaling, weighted loss, metrics, rank deltas, split modes, weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nucflow.data.splits import fold_names, make_splits
from nucflow.data.table_data import quality_weights
from nucflow.errors import InputError
from nucflow.io.table import TableFormat, read_table
from nucflow.train.metrics import rank_deltas, regression_metrics
from nucflow.train.module import SupervisedModule
from nucflow.train.scaling import LabelScaler, fit_scaler

IDS = [f"s{i}" for i in range(40)]
SPLITS = {
    "mode": "kfold",
    "folds": 4,
    "valid_fraction": 0.1,
    "ratio": [0.8, 0.1, 0.1],
    "devsplits": [],
    "testsplits": [],
}


@pytest.mark.parametrize("method", ["log", "minmax", "standard", "none"])
def test_scalers_round_trip_and_fit_on_given_labels(method):
    train = np.array([0.5, 2.0, 4.0, 8.0])
    scaler = fit_scaler(method, train)
    assert scaler.inverse(scaler.transform(train)) == pytest.approx(train)
    scaled = scaler.transform(train)
    if method == "standard":
        assert scaled.mean() == pytest.approx(0) and scaled.std() == pytest.approx(1)
    if method == "minmax":
        assert (scaled.min(), scaled.max()) == pytest.approx((0, 1))
    assert LabelScaler(**scaler.to_dict()) == scaler


def test_log_scaling_rejects_non_positive_labels():
    with pytest.raises(
        InputError, match="log scaling needs labels > 0, but 2 are ≤ 0 .* use scaling: standard"
    ):
        fit_scaler("log", np.array([1.0, 0.0, -2.0]), "fold 0")


def test_weighted_mse_equals_hand_computed_value():
    module = SupervisedModule(torch.nn.Identity(), "regression", 1e-3, 0.0)
    outputs = torch.tensor([[1.0], [2.0], [0.0]])
    labels = torch.tensor([0.0, 0.0, 1.0])
    weights = torch.tensor([1.0, 0.25, 0.5])
    expected = (1.0 * 1.0 + 0.25 * 4.0 + 0.5 * 1.0) / 3
    assert module.loss(outputs, labels, weights).item() == pytest.approx(expected)
    assert module.loss(outputs, labels).item() == pytest.approx((1 + 4 + 1) / 3)


def test_regression_metrics_and_rank_deltas():
    labels = np.array([1.0, 2.0, 3.0, 4.0])
    predictions = np.array([1.5, 1.0, 3.5, 5.0])
    metrics = regression_metrics(labels, predictions)
    assert metrics["mse"] == pytest.approx((0.25 + 1 + 0.25 + 1) / 4)
    assert metrics["pearson_r"] == pytest.approx(np.corrcoef(labels, predictions)[0, 1])
    assert metrics["spearman_rho"] == pytest.approx(0.8)
    deltas = rank_deltas(np.array(["a", "b", "c", "d"]), labels, predictions)
    assert deltas["id"].tolist() == ["a", "b", "c", "d"]
    assert deltas["pred_rank"].tolist() == [2.0, 1.0, 3.0, 4.0]
    assert deltas["rank_delta"].tolist() == [-1.0, 1.0, 0.0, 0.0]


def test_random_kfold_for_regression_tests_every_sequence_once():
    labels = np.linspace(0, 1, len(IDS))
    splits = make_splits(IDS, labels, [], SPLITS, seed=3)
    assert sorted(i for s in splits for i in s.test) == sorted(IDS)
    assert splits == make_splits(IDS, labels, [], SPLITS, seed=3)
    for split in splits:
        assert not set(split.train) & set(split.valid) and split.valid


def test_predefined_and_predefined_cv_and_repeated_holdout():
    values = np.arange(len(IDS)) % 5
    labels = np.zeros(len(IDS))
    one = make_splits(
        IDS,
        labels,
        [],
        {**SPLITS, "mode": "predefined", "devsplits": [1], "testsplits": [2]},
        0,
        values,
    )
    assert len(one) == 1 and set(one[0].valid) == {
        i for i, v in zip(IDS, values, strict=True) if v == 1
    }
    assert set(one[0].test) == {i for i, v in zip(IDS, values, strict=True) if v == 2}
    settings = {
        **SPLITS,
        "mode": "predefined_cv",
        "devsplits": [[0], [1], [2]],
        "testsplits": [[1], [2], [3]],
    }
    cv = make_splits(IDS, labels, [], settings, 0, values)
    assert fold_names(settings) == ["0", "1", "2"] and len(cv) == 3
    assert all(len(s.train) == 24 for s in cv)
    holdout = make_splits(IDS, labels, [], {**SPLITS, "mode": "repeated_holdout", "folds": 3}, 0)
    assert len(holdout) == 3 and holdout[0].test != holdout[1].test


def test_split_bad_inputs():
    values = np.arange(len(IDS)) % 5
    labels = np.zeros(len(IDS))
    with pytest.raises(InputError, match=r"split values \[7\] \(fold 0\) do not occur"):
        make_splits(
            IDS,
            labels,
            [],
            {**SPLITS, "mode": "predefined", "devsplits": [7], "testsplits": []},
            0,
            values,
        )
    with pytest.raises(InputError, match="fold 1 has an empty test part"):
        make_splits(
            IDS,
            labels,
            [],
            {**SPLITS, "mode": "predefined_cv", "devsplits": [[0], [1]], "testsplits": [[2], []]},
            0,
            values,
        )
    with pytest.raises(InputError, match="needs a split column"):
        make_splits(IDS, labels, [], {**SPLITS, "mode": "predefined", "devsplits": [1]}, 0)


def test_quality_weights_and_unknown_quality(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("a\tACGT\t1.5\tSTRONG\nb\tACGA\t2.0\tPOOR\nc\tAAAA\t0.1\tSUPERB\n")
    fmt = TableFormat(idpos=1, seqpos=2, labelpos=3, weightpos=4)
    records = read_table(path, fmt, labels="float")
    weight_map = {"STRONG": 1.0, "GOOD": 0.75, "WEAK": 0.5, "POOR": 0.25}
    with pytest.raises(InputError, match=r"line 3 \('c'\) has quality 'SUPERB'"):
        quality_weights(records, weight_map)
    path.write_text("a\tACGT\t1.5\tSTRONG\nb\tACGA\t2.0\tPOOR\n")
    weights = quality_weights(read_table(path, fmt, labels="float"), weight_map)
    assert weights.tolist() == [1.0, 0.25]


def _table(path, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    lines = ["id\tsequence\tlabel\tfold\tquality"]
    for i in range(n):
        atoms = rng.choice(list("ACGT"), 40)
        label = 1.0 + (atoms == "G").mean() * 10 + rng.normal(0, 0.1)
        lines.append(f"q{i}\t{','.join(atoms)}\t{label:.4f}\t{i % 4}\t{['STRONG', 'WEAK'][i % 2]}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_regression_fold_scales_on_training_labels_only(tmp_path):
    from conftest import experiment_defaults

    from nucflow.data.encoded import load_encoded
    from nucflow.data.prepare import learn_vocabulary, prepare_data
    from nucflow.data.splits import load_split, write_fold_split
    from nucflow.models.files import load_model
    from nucflow.train.fit import fit_fold

    experiment = experiment_defaults(
        task="regression",
        data={
            "format": "table",
            "path": str(_table(tmp_path / "t.tsv", 48)),
            "tokensep": ",",
            "idpos": 1,
            "seqpos": 2,
            "labelpos": 3,
            "splitpos": 4,
            "weightpos": 5,
            "stripheader": True,
        },
        encoding={"method": "atomic", "blocksize": 64},
        model={"name": "saluki", "saluki": {"channels": 4, "n_layers": 1}},
        training={"scaling": "standard", "epochs": 2, "batch_size": 8, "n_samples_per_epoch": None},
        splits={"mode": "predefined", "devsplits": [1], "testsplits": [2]},
    )
    data, encoding = experiment["data"], experiment["encoding"]
    learn_vocabulary(data, encoding, "regression", tmp_path / "vocab.json")
    prepare_data(
        data,
        encoding,
        "regression",
        tmp_path / "enc.npz",
        tmp_path / "tok.json",
        tmp_path / "vocab.json",
    )
    encoded = load_encoded(tmp_path / "enc.npz")
    assert encoded.weights.tolist()[:2] == [1.0, 0.5] and encoded.split_values[:4].tolist() == [
        0,
        1,
        2,
        3,
    ]
    write_fold_split(tmp_path / "enc.npz", experiment["splits"], 0, "0", tmp_path / "s.json")
    fit_fold(
        tmp_path / "enc.npz",
        tmp_path / "tok.json",
        tmp_path / "s.json",
        tmp_path / "m",
        tmp_path / "h.csv",
        tmp_path / "h.png",
        model_settings=experiment["model"],
        encoding=encoding,
        training=experiment["training"],
        task="regression",
        seed=0,
    )
    _, config = load_model(tmp_path / "m")
    train = encoded.select(load_split(tmp_path / "s.json").train)
    assert config.label_scaler["shift"] == pytest.approx(train.labels.mean())
    assert config.label_scaler["scale"] == pytest.approx(train.labels.std())
    assert config.label_scaler["shift"] != pytest.approx(encoded.labels.mean())
