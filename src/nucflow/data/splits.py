"""Train / valid / test splits: stratified, seeded K-fold and fixed-ratio modes."""

from __future__ import annotations

# scikit-learn is imported inside the split functions: this module is imported when the
# workflow is parsed (by every job, too), and scikit-learn takes about a second to import.
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from nucflow.data.encoded import load_encoded
from nucflow.errors import InputError
from nucflow.io.atomic import write_text_atomic


@dataclass(frozen=True)
class Split:
    """The ids of one fold's train, valid and test parts."""

    fold: str
    train: list[str]
    valid: list[str]
    test: list[str]


def _check_classes(labels: np.ndarray, class_names: Sequence[str], needed: int, what: str) -> None:
    """Every class must have at least ``needed`` members for a stratified split."""
    counts = np.bincount(labels, minlength=len(class_names))
    for name, count in zip(class_names, counts, strict=True):
        if count == 0:
            raise InputError(f"class '{name}' has no sequences (expected at least {needed})")
        if count < needed:
            raise InputError(
                f"class '{name}' has {count} sequences, fewer than {needed} needed for {what}"
            )


def kfold_splits(
    ids: Sequence[str],
    labels: Sequence[int],
    class_names: Sequence[str],
    folds: int,
    valid_fraction: float,
    seed: int,
) -> list[Split]:
    """Stratified K-fold: fold k tests on part k; ``valid_fraction`` of the rest validates.

    Every id is in exactly one test part. The validation part is drawn stratified from the
    training part with seed ``seed + k``.
    """
    from sklearn.model_selection import StratifiedKFold, train_test_split

    y = np.asarray(labels)
    if len(ids) < folds:
        raise InputError(f"{len(ids)} sequences are fewer than folds: {folds}")
    _check_classes(y, class_names, folds, f"folds: {folds}")
    ids_array = np.asarray(ids, dtype=object)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    result = []
    for k, (rest, test) in enumerate(splitter.split(ids_array, y)):
        train, valid = train_test_split(
            rest, test_size=valid_fraction, stratify=y[rest], random_state=seed + k
        )
        result.append(_split(str(k), ids_array, train, valid, test))
    return result


def ratio_split(
    ids: Sequence[str],
    labels: Sequence[int],
    class_names: Sequence[str],
    ratio: Sequence[float],
    seed: int,
) -> list[Split]:
    """One fold ``0`` with train / valid / test proportions ``ratio`` (stratified, seeded)."""
    from sklearn.model_selection import train_test_split

    y = np.asarray(labels)
    _check_classes(y, class_names, 3, "a train/valid/test split")
    train_share, valid_share, test_share = np.asarray(ratio, dtype=float) / float(sum(ratio))
    index = np.arange(len(ids))
    rest, test = train_test_split(index, test_size=test_share, stratify=y, random_state=seed)
    train, valid = train_test_split(
        rest,
        test_size=valid_share / (train_share + valid_share),
        stratify=y[rest],
        random_state=seed + 1,
    )
    return [_split("0", np.asarray(ids, dtype=object), train, valid, test)]


def _split(fold: str, ids: np.ndarray, train, valid, test) -> Split:
    """Build a :class:`Split`, keeping ids in input order within each part."""
    parts = (np.sort(np.asarray(part, dtype=np.int64)) for part in (train, valid, test))
    return Split(fold, *(ids[part].tolist() for part in parts))


def holdout_split(ids: Sequence[str], valid_fraction: float, seed: int) -> Split:
    """Unstratified train / valid split of unlabelled ids (fold ``pretrain``, no test part)."""
    from sklearn.model_selection import train_test_split

    if len(ids) < 2:
        raise InputError(f"{len(ids)} sequences: pretraining needs at least 2 (train and valid)")
    index = np.arange(len(ids))
    train, valid = train_test_split(index, test_size=valid_fraction, random_state=seed)
    return _split("pretrain", np.asarray(ids, dtype=object), train, valid, [])


def random_kfold_splits(
    ids: Sequence[str], folds: int, valid_fraction: float, seed: int
) -> list[Split]:
    """Unstratified K-fold partition (regression): every id is tested exactly once."""
    from sklearn.model_selection import KFold, train_test_split

    if len(ids) < folds:
        raise InputError(f"{len(ids)} sequences are fewer than folds: {folds}")
    ids_array = np.asarray(ids, dtype=object)
    result = []
    for k, (rest, test) in enumerate(
        KFold(folds, shuffle=True, random_state=seed).split(ids_array)
    ):
        train, valid = train_test_split(rest, test_size=valid_fraction, random_state=seed + k)
        result.append(_split(str(k), ids_array, train, valid, test))
    return result


def random_ratio_split(
    ids: Sequence[str], ratio: Sequence[float], seed: int, fold: str = "0"
) -> Split:
    """Unstratified train / valid / test split with proportions ``ratio`` (regression)."""
    from sklearn.model_selection import train_test_split

    train_share, valid_share, test_share = np.asarray(ratio, dtype=float) / float(sum(ratio))
    index = np.arange(len(ids))
    rest, test = train_test_split(index, test_size=test_share, random_state=seed)
    train, valid = train_test_split(
        rest, test_size=valid_share / (train_share + valid_share), random_state=seed + 1
    )
    return _split(fold, np.asarray(ids, dtype=object), train, valid, test)


def predefined_splits(
    ids: Sequence[str],
    split_values: np.ndarray,
    devsplits: Sequence,
    testsplits: Sequence,
    cross_validation: bool,
) -> list[Split]:
    """Splits from a split column: valid = rows whose value is in ``devsplits``, test likewise.

    Without cross-validation ``devsplits`` / ``testsplits`` are flat lists (one fold ``0``);
    with it they are lists of lists, fold k using entry k. Train is everything else.
    """
    ids_array = np.asarray(ids, dtype=object)
    present = set(np.unique(split_values).tolist())
    dev_sets = [list(d) for d in devsplits] if cross_validation else [list(devsplits)]
    if cross_validation:
        test_sets = [list(t) for t in testsplits] if testsplits else [[] for _ in dev_sets]
    else:
        test_sets = [list(testsplits)]
    if len(test_sets) != len(dev_sets):
        raise InputError(
            f"testsplits has {len(test_sets)} entries, devsplits {len(dev_sets)} (expected equal)"
        )
    result = []
    for k, (dev, test) in enumerate(zip(dev_sets, test_sets, strict=True)):
        missing = sorted(set(dev + test) - present)
        if missing:
            raise InputError(
                f"split values {missing} (fold {k}) do not occur in the split column "
                f"(values present: {sorted(present)})"
            )
        valid_rows = np.isin(split_values, dev)
        test_rows = np.isin(split_values, test)
        train_rows = ~(valid_rows | test_rows)
        parts = [np.flatnonzero(rows) for rows in (train_rows, valid_rows, test_rows)]
        result.append(_split(str(k), ids_array, *parts))
    return result


def make_splits(
    ids: Sequence[str],
    labels: Sequence,
    class_names: Sequence[str],
    settings: dict,
    seed: int,
    split_values: np.ndarray | None = None,
) -> list[Split]:
    """Splits for the config's ``splits`` section.

    Modes: ``kfold`` (stratified by class for classification, plain for regression — i.e. when
    there are no ``class_names``), ``ratio``, ``predefined`` and ``predefined_cv`` (from the
    table's split column), ``repeated_holdout`` (``folds`` independent random ratio splits:
    biolm_utils' "random cross-validation"; test parts overlap). Every fold must have a
    non-empty train and valid part, and a non-empty test part except in ``predefined`` mode.
    A part too small to hold every class (sklearn's stratification refuses it) is reported as
    an :class:`InputError`.
    """
    mode = settings["mode"]
    try:
        if mode in ("predefined", "predefined_cv"):
            if split_values is None:
                raise InputError(f"splits mode {mode} needs a split column (data.splitpos)")
            splits = predefined_splits(
                ids,
                split_values,
                settings["devsplits"],
                settings["testsplits"],
                mode == "predefined_cv",
            )
        elif mode == "repeated_holdout":
            splits = [
                random_ratio_split(ids, settings["ratio"], seed + k, str(k))
                for k in range(settings["folds"])
            ]
        elif class_names:
            if mode == "kfold":
                splits = kfold_splits(
                    ids, labels, class_names, settings["folds"], settings["valid_fraction"], seed
                )
            else:
                splits = ratio_split(ids, labels, class_names, settings["ratio"], seed)
        elif mode == "kfold":
            splits = random_kfold_splits(ids, settings["folds"], settings["valid_fraction"], seed)
        else:
            splits = [random_ratio_split(ids, settings["ratio"], seed)]
    except ValueError as error:
        if isinstance(error, InputError):
            raise
        raise InputError(
            f"cannot split {len(ids)} sequences as configured ({error}); use more sequences "
            "or larger valid/test shares"
        ) from error
    for split in splits:
        empty = [name for name in ("train", "valid") if not getattr(split, name)]
        if not split.test and mode != "predefined":
            empty.append("test")
        if empty:
            raise InputError(f"fold {split.fold} has an empty {' and '.join(empty)} part")
    return splits


def fold_names(settings: dict) -> list[str]:
    """Fold names that the ``splits`` settings produce (``0`` … ``K-1``, or ``0``)."""
    mode = settings["mode"]
    if mode in ("kfold", "repeated_holdout"):
        return [str(k) for k in range(settings["folds"])]
    if mode == "predefined_cv":
        return [str(k) for k in range(len(settings["devsplits"]))]
    return ["0"]


def save_split(split: Split, path: str | os.PathLike[str]) -> None:
    """Write a split as JSON (``fold``, ``train``, ``valid``, ``test`` id lists)."""
    write_text_atomic(path, json.dumps(asdict(split), indent=1) + "\n")


def load_split(path: str | os.PathLike[str]) -> Split:
    """Read a split written by :func:`save_split`."""
    with open(path) as handle:
        return Split(**json.load(handle))


def write_fold_split(
    encoded_path: str | os.PathLike[str],
    settings: dict,
    seed: int,
    fold: str,
    out_path: str | os.PathLike[str],
) -> Split:
    """Compute the configured splits of an encoded set and write the one of ``fold``.

    Splitting is deterministic and cheap, so each fold's file is its own job.
    """
    data = load_encoded(encoded_path)
    splits = {
        s.fold: s
        for s in make_splits(
            data.ids.tolist(), data.labels, data.class_names, settings, seed, data.split_values
        )
    }
    if fold not in splits:
        raise InputError(f"fold '{fold}' is not produced by the splits settings ({sorted(splits)})")
    save_split(splits[fold], out_path)
    return splits[fold]
