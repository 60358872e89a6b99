"""Splits: disjoint, complete, stratified, seeded; and their bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from nucflow.data.splits import fold_names, holdout_split, kfold_splits, make_splits, ratio_split
from nucflow.errors import InputError

CLASSES = ["a", "b"]


def _data(n_a: int = 60, n_b: int = 40):
    ids = [f"s{i}" for i in range(n_a + n_b)]
    labels = np.array([0] * n_a + [1] * n_b)
    return ids, labels


def test_kfold_parts_disjoint_and_every_id_tested_once():
    ids, labels = _data()
    splits = kfold_splits(ids, labels, CLASSES, folds=5, valid_fraction=0.1, seed=1)
    assert [s.fold for s in splits] == ["0", "1", "2", "3", "4"]
    tested = [i for s in splits for i in s.test]
    assert sorted(tested) == sorted(ids)
    for s in splits:
        train, valid, test = set(s.train), set(s.valid), set(s.test)
        assert not (train & valid or train & test or valid & test)
        assert train | valid | test == set(ids)
        assert len(valid) > 0


def test_kfold_is_stratified():
    ids, labels = _data(60, 40)
    share = dict(zip(ids, labels, strict=True))
    for s in kfold_splits(ids, labels, CLASSES, folds=5, valid_fraction=0.2, seed=3):
        assert sum(share[i] for i in s.test) == 8  # 40 b's over 5 folds
        assert len(s.test) == 20
        assert sum(share[i] for i in s.valid) in (6, 7)


def test_seeded_and_seed_dependent():
    ids, labels = _data()
    first = kfold_splits(ids, labels, CLASSES, 4, 0.1, seed=7)
    again = kfold_splits(ids, labels, CLASSES, 4, 0.1, seed=7)
    other = kfold_splits(ids, labels, CLASSES, 4, 0.1, seed=8)
    assert first == again
    assert first != other


def test_ratio_split_proportions_and_stratification():
    ids, labels = _data(80, 20)
    (split,) = ratio_split(ids, labels, CLASSES, [0.8, 0.1, 0.1], seed=0)
    assert (len(split.train), len(split.valid), len(split.test)) == (80, 10, 10)
    share = dict(zip(ids, labels, strict=True))
    assert sum(share[i] for i in split.test) == 2
    assert set(split.train) | set(split.valid) | set(split.test) == set(ids)


def test_make_splits_dispatch_and_fold_names():
    ids, labels = _data()
    settings = {"mode": "ratio", "folds": 5, "valid_fraction": 0.1, "ratio": [0.6, 0.2, 0.2]}
    assert [s.fold for s in make_splits(ids, labels, CLASSES, settings, 0)] == ["0"]
    assert fold_names(settings) == ["0"]
    assert fold_names({**settings, "mode": "kfold", "folds": 10}) == [str(k) for k in range(10)]


def test_fewer_sequences_than_folds():
    with pytest.raises(InputError, match="3 sequences are fewer than folds: 5"):
        kfold_splits(["a", "b", "c"], [0, 1, 0], CLASSES, 5, 0.1, 0)


def test_class_with_no_members():
    ids, _ = _data()
    with pytest.raises(InputError, match="class 'b' has no sequences"):
        kfold_splits(ids, np.zeros(len(ids), dtype=int), CLASSES, 5, 0.1, 0)


def test_class_smaller_than_folds():
    ids, labels = _data(60, 3)
    with pytest.raises(InputError, match="class 'b' has 3 sequences, fewer than 5"):
        kfold_splits(ids, labels, CLASSES, 5, 0.1, 0)


def test_part_too_small_for_stratification_is_an_input_error():
    ids, labels = _data(5, 5)
    settings = {"mode": "kfold", "folds": 2, "valid_fraction": 0.1, "ratio": [0.8, 0.1, 0.1]}
    with pytest.raises(InputError, match="cannot split 10 sequences as configured"):
        make_splits(ids, labels, CLASSES, settings, 0)


def test_holdout_split_for_pretraining():
    ids = [f"u{i}" for i in range(40)]
    split = holdout_split(ids, 0.1, seed=3)
    assert split.fold == "pretrain" and split.test == []
    assert len(split.valid) == 4 and sorted(split.train + split.valid) == sorted(ids)
    assert holdout_split(ids, 0.1, seed=3) == split
    with pytest.raises(InputError, match="at least 2"):
        holdout_split(["only"], 0.1, seed=3)
