"""Signal ETL: Capfinder cap-signal CSVs -> balanced, split, memory-mappable shards.

:func:`etl_signals` streams every CSV (bounded memory), fits each series to ``target_length``
(symmetric pad/trim as Capfinder, padding = NaN), draws a uniform per-class sample of equal
size from *all* reads of each class, splits it per class into train / valid / test with every
read in exactly one part, and writes::

    out_dir/manifest.json
    out_dir/shards/<fingerprint>/{train,valid,test}.x.npy        (n, T) float16|float32
                                 {part}.y.npy                    int64 class index
                                 {part}.ids.txt                  one read id per line
                                 {part}.lengths.npy              int32 length before fitting

Unlike the original (reference §13), sampling is uniform over every file of a class, train,
valid and test are disjoint by construction (a duplicate read id is an error), the rows of a
part are shuffled (classes mixed) instead of interleaved round-robin, no read is dropped to
fill whole batches, and class labels need not be contiguous. The output directory is keyed by
a fingerprint of the parameters and the inputs' content, so an unchanged rerun is skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from nucflow.errors import InputError
from nucflow.io.atomic import atomic_dir, write_text_atomic
from nucflow.io.signal_csv import SignalChunk, expand_signal_paths, read_signal_chunks

logger = logging.getLogger(__name__)

PARTS: tuple[str, ...] = ("train", "valid", "test")
"""The parts of a signal dataset, in the order they are written."""
DTYPES: tuple[str, ...] = ("float16", "float32")
"""Storage precisions of the shards (computation precision is the model's business)."""
ETL_FORMAT = "nucflow.signal_etl/1"
"""Version of the ETL output layout; part of the fingerprint."""
SHARD_FILES: tuple[str, ...] = (".x.npy", ".y.npy", ".ids.txt", ".lengths.npy")
"""Files of each part in a shard directory: ``<part><suffix>``."""

_FIT_BYTES = 4 << 20  # bound on one fitted batch (rows x T x 4 bytes)
_GATHER_ROWS_BYTES = 16 << 20  # bound on one gathered output block in pass 2
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_EPS = 1e-9  # fraction x count is floored with this tolerance (0.29 * 100 -> 29, not 28)


# --------------------------------------------------------------------------- fitting


def _check_length(target_length: object) -> int:
    """``target_length`` as a positive int, or :class:`InputError`."""
    if isinstance(target_length, bool) or not isinstance(target_length, int | np.integer):
        raise InputError(f"target_length must be a positive integer, got {target_length!r}")
    if target_length < 1:
        raise InputError(f"target_length must be a positive integer, got {target_length!r}")
    return int(target_length)


def fit_to_length(values: np.ndarray, target_length: int) -> np.ndarray:
    """Pad or trim one series symmetrically to ``target_length`` (Capfinder's rule).

    With L values and T = ``target_length``: if L < T, ``(T - L) // 2`` NaNs go before the
    series and the rest after; if L >= T, the central ``values[(L - T) // 2 :][:T]`` is kept.
    NaN marks "no signal" (models turn it into zeros and a padding mask). Returns float32 (T,).
    """
    target = _check_length(target_length)
    series = np.asarray(values, dtype=np.float32).reshape(-1)
    length = series.size
    out = np.full(target, np.nan, dtype=np.float32)
    if length < target:
        pad = (target - length) // 2
        out[pad : pad + length] = series
    else:
        skip = (length - target) // 2
        out[:] = series[skip : skip + target]
    return out


def fit_rows(values: np.ndarray, offsets: np.ndarray, target_length: int) -> np.ndarray:
    """:func:`fit_to_length` for many rows at once: row i is ``values[offsets[i]:offsets[i+1]]``.

    Vectorised: every output row is one window of the NaN-extended values, gathered in a
    single fancy-indexing call, then the padding is set to NaN. Returns float32 (n, T).
    """
    target = _check_length(target_length)
    offsets = np.asarray(offsets, dtype=np.int64)
    n = max(len(offsets) - 1, 0)
    if n == 0:
        return np.empty((0, target), dtype=np.float32)
    base = int(offsets[0])
    used = np.asarray(values, dtype=np.float32)[base : int(offsets[-1])]
    starts = offsets[:-1] - base
    lengths = np.diff(offsets)
    if (lengths < 0).any() or starts[0] != 0 or int(offsets[-1]) - base != used.size:
        raise ValueError("offsets must be non-decreasing indices into values")
    pad = np.maximum((target - lengths) // 2, 0)
    skip = np.maximum((lengths - target) // 2, 0)
    keep = np.minimum(lengths, target)
    extended = np.full(used.size + 2 * target, np.nan, dtype=np.float32)
    extended[target : target + used.size] = used
    windows = np.lib.stride_tricks.sliding_window_view(extended, target)
    out = windows[starts + skip - pad + target]
    if (keep < target).any():
        cols = np.arange(target)
        out[(cols < pad[:, None]) | (cols >= (pad + keep)[:, None])] = np.nan
    return out


def _fit_batches(chunk: SignalChunk, target_length: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """Fit a chunk's rows in batches of bounded size: ``(first row, end row, (rows, T))``."""
    per_batch = max(1, _FIT_BYTES // (4 * target_length))
    for a in range(0, len(chunk), per_batch):
        b = min(a + per_batch, len(chunk))
        yield a, b, fit_rows(chunk.values, chunk.offsets[a : b + 1], target_length)


# --------------------------------------------------------------------------- parameters


def _model_classes(
    class_names: Mapping[int, str], unknown_label: int
) -> tuple[list[int], list[str]]:
    """Labels (sorted ascending, without ``unknown_label``) and their names, or InputError."""
    if not isinstance(class_names, Mapping) or not class_names:
        raise InputError(
            f"class_names must be a non-empty mapping label -> name, got {class_names!r}"
        )
    for label, name in class_names.items():
        if isinstance(label, bool) or not isinstance(label, int | np.integer):
            raise InputError(
                f"class_names: label {label!r} is not an integer (expected int -> name)"
            )
        if not isinstance(name, str) or not name.strip():
            raise InputError(
                f"class_names: class {label} has name {name!r} (expected a non-empty string)"
            )
    labels = sorted(int(label) for label in class_names if label != unknown_label)
    if not labels:
        raise InputError(
            f"class_names {dict(class_names)!r} holds no class besides the unknown label "
            f"{unknown_label} (expected at least one trainable class)"
        )
    names = [class_names[label] for label in labels]
    if len(set(names)) != len(names):
        raise InputError(f"class_names: class names must be unique, got {names}")
    return labels, names


def _floor(fraction: float, count: int) -> int:
    """``floor(fraction * count)`` with a tiny tolerance for binary rounding."""
    return min(count, math.floor(fraction * count + _EPS))


def _parameters(
    class_names: Mapping[int, str],
    unknown_label: int,
    target_length: int,
    examples_per_class: int | None,
    train_test_fraction: float,
    train_val_fraction: float,
    dtype: str,
    one_class_per_file: bool,
    seed: int,
) -> dict[str, Any]:
    """Validate the ETL parameters; return them as a JSON-able dict (the fingerprinted part)."""
    if isinstance(unknown_label, bool) or not isinstance(unknown_label, int | np.integer):
        raise InputError(f"unknown_label must be an integer, got {unknown_label!r}")
    labels, names = _model_classes(class_names, int(unknown_label))
    target = _check_length(target_length)
    if examples_per_class is not None and (
        isinstance(examples_per_class, bool)
        or not isinstance(examples_per_class, int | np.integer)
        or examples_per_class < 1
    ):
        raise InputError(
            f"examples_per_class must be a positive integer or None, got {examples_per_class!r}"
        )
    for key, value in (
        ("train_test_fraction", train_test_fraction),
        ("train_val_fraction", train_val_fraction),
    ):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
            raise InputError(f"{key} must be a number in (0, 1], got {value!r}")
    if dtype not in DTYPES:
        raise InputError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if not isinstance(one_class_per_file, bool):
        raise InputError(f"one_class_per_file must be true or false, got {one_class_per_file!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    return {
        "format": ETL_FORMAT,
        "classes": [[label, name] for label, name in zip(labels, names, strict=True)],
        "unknown_label": int(unknown_label),
        "target_length": target,
        "examples_per_class": None if examples_per_class is None else int(examples_per_class),
        "train_test_fraction": float(train_test_fraction),
        "train_val_fraction": float(train_val_fraction),
        "dtype": dtype,
        "one_class_per_file": one_class_per_file,
        "seed": int(seed),
    }


def _sha256(path: Path) -> str:
    """Hex sha256 of a file's content."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _fingerprint(parameters: Mapping[str, Any], inputs: Sequence[Mapping[str, Any]]) -> str:
    """sha256 over the parameters and the (path, content sha256) of every input."""
    digest = hashlib.sha256(json.dumps(parameters, sort_keys=True).encode())
    for entry in inputs:
        digest.update(b"\0" + entry["path"].encode() + b"\0" + entry["sha256"].encode())
    return digest.hexdigest()


def _complete(shard_dir: Path) -> bool:
    """Whether ``shard_dir`` holds every part's files."""
    return all(
        (shard_dir / f"{part}{suffix}").is_file() for part in PARTS for suffix in SHARD_FILES
    )


# --------------------------------------------------------------------------- pass 1


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    """Concatenate ``parts`` (possibly none) and keep the result as the only part."""
    whole = np.concatenate(parts) if parts else np.empty(0, dtype=dtype)
    parts[:] = [whole]
    return whole


@dataclass
class _Class:
    """Pass-1 state of one model class: its reads (in file order) and their fitted rows.

    Per-read data are kept compact (about 70 bytes a read): the read ids as one UTF-8 text of
    newline-terminated ids, plus numpy arrays of the ids' hashes, the places and the lengths.
    """

    label: int
    name: str
    raw_path: Path
    handle: BinaryIO | None = None
    id_text: list[bytes] = field(default_factory=list)
    hashes: list[np.ndarray] = field(default_factory=list)  # hash(read id), int64
    places: list[np.ndarray] = field(default_factory=list)  # (file index << 40) + line
    lengths: list[np.ndarray] = field(default_factory=list)  # int32
    count: int = 0
    _id_ends: np.ndarray | None = None

    def add(self, ids: list[str], places: np.ndarray, lengths: np.ndarray) -> None:
        """Record reads (their fitted rows are written separately)."""
        self.id_text.append(("\n".join(ids) + "\n").encode("utf-8"))
        self.hashes.append(np.fromiter(map(hash, ids), dtype=np.int64, count=len(ids)))
        self.places.append(places.astype(np.int64))
        self.lengths.append(lengths.astype(np.int32))
        self.count += len(ids)

    def read_id(self, row: int) -> bytes:
        """The UTF-8 id of read ``row`` (after :meth:`freeze`)."""
        assert self._id_ends is not None
        start = int(self._id_ends[row - 1]) + 1 if row else 0
        return self.id_text[0][start : int(self._id_ends[row])]

    def freeze(self) -> None:
        """Concatenate the per-chunk records once pass 1 is over."""
        text = b"".join(self.id_text)
        self.id_text = [text]
        self._id_ends = np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == ord("\n"))
        _concat(self.hashes, np.int64)
        _concat(self.places, np.int64)
        _concat(self.lengths, np.int32)


def _label_error(
    chunk: SignalChunk, i: int, labels: Sequence[int], names: Sequence[str], unknown: int
) -> InputError:
    """The error for row ``i`` whose cap_class is not a trainable class."""
    label = int(chunk.labels[i])
    known = ", ".join(f"{lab} ({name})" for lab, name in zip(labels, names, strict=True))
    if label == unknown:
        return InputError(
            f"{chunk.where(i)}: cap_class {label} is the unknown label, allowed only for "
            f"prediction (expected one of {known})"
        )
    return InputError(
        f"{chunk.where(i)}: cap_class {label} is not in the class map (expected one of {known})"
    )


def _class_indices(chunk: SignalChunk, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class index of every row (clipped) and whether its label is one of ``labels``."""
    index = np.searchsorted(labels, chunk.labels)
    np.minimum(index, len(labels) - 1, out=index)
    return index, labels[index] == chunk.labels


_LINE_BITS = 40  # a read's place is (file index << _LINE_BITS) + line


def _place(code: int, files: Sequence[str]) -> str:
    """``"<file>: line <n>"`` for a packed place."""
    return f"{files[code >> _LINE_BITS]}: line {code & ((1 << _LINE_BITS) - 1)}"


def _check_duplicates(classes: Sequence[_Class], files: Sequence[str]) -> None:
    """Raise :class:`InputError` for the first repeated read id (in file and line order).

    Candidates are reads with equal id hashes (one sort over all reads); their ids are then
    compared for real.
    """
    hashes = np.concatenate([c.hashes[0] for c in classes])
    order = np.argsort(hashes, kind="stable")
    ordered = hashes[order]
    equal = np.flatnonzero(ordered[1:] == ordered[:-1])
    if not equal.size:
        return
    starts = np.cumsum([0] + [c.count for c in classes])
    groups: dict[bytes, list[int]] = {}
    for index in np.unique(np.concatenate([order[equal], order[equal + 1]])).tolist():
        k = int(np.searchsorted(starts, index, side="right")) - 1
        row = index - int(starts[k])
        groups.setdefault(classes[k].read_id(row), []).append(int(classes[k].places[0][row]))
    repeats = [(sorted(p)[1], sorted(p)[0], i) for i, p in groups.items() if len(p) > 1]
    if repeats:
        second, first, read_id = min(repeats)
        raise InputError(
            f"{_place(second, files)} (read {read_id.decode('utf-8')}): duplicate read_id, first "
            f"seen at {_place(first, files)} (expected unique read ids: a duplicate would leak "
            "between train, valid and test)"
        )


def _pass1(
    files: Sequence[Path],
    classes: list[_Class],
    unknown_label: int,
    target_length: int,
    one_class_per_file: bool,
    chunk_bytes: int,
    inputs: list[dict[str, Any]],
    value_limit: float | None,
) -> None:
    """Stream every file: validate rows, append fitted float32 rows to the class raw files.

    Files whose ``inputs`` entry has no ``sha256`` yet are hashed while they are read.

    With ``value_limit`` (the float16 maximum when storing float16), a fitted value beyond it
    is an error rather than a silent inf.
    """
    labels = np.asarray([c.label for c in classes], dtype=np.int64)
    names = [c.name for c in classes]
    for file_index, path in enumerate(files):
        started, reads, file_label, first_where = time.perf_counter(), 0, None, ""
        digest = hashlib.sha256() if inputs[file_index]["sha256"] is None else None
        for chunk in read_signal_chunks(path, chunk_bytes=chunk_bytes, digest=digest):
            index, known = _class_indices(chunk, labels)
            stop = len(chunk) if known.all() else int(np.argmin(known))
            error = (
                _label_error(chunk, stop, labels.tolist(), names, unknown_label)
                if stop < len(chunk)
                else None
            )
            if one_class_per_file:
                if file_label is None:
                    file_label, first_where = int(chunk.labels[0]), chunk.where(0)
                mixed = np.flatnonzero(chunk.labels[:stop] != file_label)
                if mixed.size:
                    i = int(mixed[0])
                    stop = i
                    error = InputError(
                        f"{chunk.where(i)}: cap_class {int(chunk.labels[i])} in a file of class "
                        f"{file_label} (first row: {first_where}); expected one class per file "
                        "(set one_class_per_file to false to allow mixed files)"
                    )
            if error is not None:
                raise error
            for a, b, fitted in _fit_batches(chunk, target_length):
                if value_limit is not None:
                    over = (np.abs(fitted) > value_limit).any(axis=1)
                    if over.any():
                        i = a + int(np.argmax(over))
                        worst = float(np.max(np.abs(chunk.series(i))))
                        raise InputError(
                            f"{chunk.where(i)}: value {worst:g} is beyond the float16 range "
                            f"(±{value_limit:g}); expected smaller values, or use dtype float32"
                        )
                batch_index = index[a:b]
                for k in np.unique(batch_index).tolist():
                    rows = np.flatnonzero(batch_index == k)
                    part = fitted if rows.size == fitted.shape[0] else fitted[rows]
                    cls = classes[k]
                    assert cls.handle is not None
                    cls.handle.write(memoryview(np.ascontiguousarray(part)).cast("B"))
                    whole = rows.size == b - a
                    cls.add(
                        chunk.ids[a:b] if whole else [chunk.ids[a + j] for j in rows.tolist()],
                        (file_index << _LINE_BITS) + chunk.lines[a:b][rows],
                        chunk.lengths[a:b][rows],
                    )
            reads += len(chunk)
        if digest is not None:
            inputs[file_index]["sha256"] = digest.hexdigest()
        seconds = time.perf_counter() - started
        size = inputs[file_index]["bytes"]
        inputs[file_index]["reads"] = reads
        if reads == 0:
            logger.warning("%s: no reads (header only)", path)
        logger.info(
            "read %s: %d reads, %.1f MB in %.2f s (%.0f MB/s)",
            path,
            reads,
            size / 1e6,
            seconds,
            size / 1e6 / max(seconds, 1e-9),
        )


# --------------------------------------------------------------------------- split and pass 2


def _split(
    sizes: Sequence[int], epc: int, train_test_fraction: float, train_val_fraction: float, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per part: (class index, row within class) of every selected read, classes shuffled.

    Each class contributes a uniform sample of ``epc`` of its rows (a seeded permutation of
    all of them, cut to ``epc``): its first ``floor(train_val_fraction * n_trainval)`` rows go
    to train, the rest of the first ``n_trainval = floor(train_test_fraction * epc)`` to valid,
    the last ``epc - n_trainval`` to test.
    """
    rng = np.random.default_rng(seed)
    n_trainval = _floor(train_test_fraction, epc)
    n_train = _floor(train_val_fraction, n_trainval)
    bounds = {"train": (0, n_train), "valid": (n_train, n_trainval), "test": (n_trainval, epc)}
    picked: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {part: [] for part in PARTS}
    for k, size in enumerate(sizes):
        order = rng.permutation(size)[:epc]
        for part, (a, b) in bounds.items():
            picked[part].append((np.full(b - a, k, dtype=np.int64), order[a:b]))
    out = {}
    for part in PARTS:
        cls = np.concatenate([c for c, _ in picked[part]])
        rows = np.concatenate([r for _, r in picked[part]])
        shuffle = rng.permutation(cls.size)
        out[part] = (cls[shuffle], rows[shuffle].astype(np.int64))
    return out


def _write_x(
    path: Path,
    cls: np.ndarray,
    rows: np.ndarray,
    classes: Sequence[_Class],
    target_length: int,
    dtype: str,
) -> None:
    """Gather the selected rows from the class raw files into a memory-mappable .npy.

    The file is created with ``open_memmap`` (header + full size); the data are then written
    block by block through a plain file handle. Each block's rows are read from the class
    files with one positioned read per row (in file order), not through a mapping, whose
    fault-around would count whole neighbourhoods of random rows as resident memory.
    """
    shape = (int(cls.size), target_length)
    created = np.lib.format.open_memmap(path, mode="w+", dtype=np.dtype(dtype), shape=shape)
    offset = int(created.offset)
    del created
    row_bytes = 4 * target_length
    per_block = max(1, _GATHER_ROWS_BYTES // row_bytes)
    descriptors = [os.open(c.raw_path, os.O_RDONLY) for c in classes]
    try:
        with open(path, "r+b") as handle:
            handle.seek(offset)
            for a in range(0, shape[0], per_block):
                b = min(a + per_block, shape[0])
                block = np.empty((b - a, target_length), dtype=np.float32)
                buffer = memoryview(block).cast("B")
                order = np.lexsort((rows[a:b], cls[a:b]))  # by class, then position in file
                in_order = (order.tolist(), cls[a:b][order].tolist(), rows[a:b][order].tolist())
                for j, k, r in zip(*in_order, strict=True):
                    got = os.preadv(
                        descriptors[k], [buffer[j * row_bytes : (j + 1) * row_bytes]], r * row_bytes
                    )
                    if got != row_bytes:
                        raise OSError(f"{classes[k].raw_path}: short read of row {r}")
                handle.write(memoryview(block.astype(dtype, copy=False)).cast("B"))
    finally:
        for fd in descriptors:
            os.close(fd)


def _write_part(
    shard: Path,
    part: str,
    cls: np.ndarray,
    rows: np.ndarray,
    classes: Sequence[_Class],
    target_length: int,
    dtype: str,
) -> None:
    """Write one part's four files into ``shard``."""
    _write_x(shard / f"{part}.x.npy", cls, rows, classes, target_length, dtype)
    np.save(shard / f"{part}.y.npy", cls.astype(np.int64))
    ids = [classes[k].read_id(r) for k, r in zip(cls.tolist(), rows.tolist(), strict=True)]
    (shard / f"{part}.ids.txt").write_bytes(b"".join(i + b"\n" for i in ids))
    lengths = np.empty(cls.size, dtype=np.int32)
    for k in np.unique(cls).tolist():
        where = cls == k
        lengths[where] = classes[k].lengths[0][rows[where]]
    np.save(shard / f"{part}.lengths.npy", lengths)


def _remove_stale(shards: Path, keep: str) -> None:
    """Remove fingerprint directories under ``shards`` other than ``keep``."""
    if not shards.is_dir():
        return
    for entry in shards.iterdir():
        if entry.name != keep and entry.is_dir() and _FINGERPRINT.fullmatch(entry.name):
            shutil.rmtree(entry, ignore_errors=True)
            logger.info("removed stale shards %s", entry)


# --------------------------------------------------------------------------- public API


def etl_settings(experiment: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """Keyword arguments of :func:`etl_signals` from a `kind: signal` experiment's config."""
    data, etl = experiment["data"], experiment["etl"]
    return {
        "class_names": {int(label): name for label, name in data["classes"].items()},
        "unknown_label": data["unknown_label"],
        "one_class_per_file": data["one_class_per_file"],
        "target_length": etl["target_length"],
        "examples_per_class": etl["examples_per_class"],
        "train_test_fraction": etl["train_test_fraction"],
        "train_val_fraction": etl["train_val_fraction"],
        "dtype": etl["dtype"],
        "chunk_bytes": etl["chunk_mb"] << 20,
        "seed": seed,
    }


def etl_signals(
    paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    class_names: Mapping[int, str],
    unknown_label: int = -99,
    target_length: int = 500,
    examples_per_class: int | None = None,
    train_test_fraction: float = 0.95,
    train_val_fraction: float = 0.8,
    dtype: str = "float32",
    one_class_per_file: bool = True,
    seed: int = 42,
    chunk_bytes: int = 32 << 20,
) -> dict[str, Any]:
    """Turn signal CSVs into balanced train / valid / test shards under ``out_dir``; return the
    manifest.

    ``paths`` are CSV files or directories (every ``*.csv`` directly inside). Model classes are
    the labels of ``class_names`` except ``unknown_label``, sorted; a class's index is its
    position. Each class contributes ``epc = min(examples_per_class, smallest class)`` reads
    (``None``: the smallest class), drawn uniformly from all its reads with ``seed``, split per
    class into test (the last ``epc - floor(train_test_fraction * epc)``), train
    (``floor(train_val_fraction * rest)``) and valid (the remainder). Series are fitted to
    ``target_length`` (NaN padding) and stored as ``dtype``. Memory is bounded: values go
    through temporary per-class files. Everything is written under temporary names and
    renamed, so a failure leaves nothing new. If ``out_dir/manifest.json`` already has the
    same fingerprint (parameters + input contents) and complete shards, nothing is redone.

    Bad input raises :class:`InputError` naming file, line and read: malformed rows, a label
    that is not a trainable class (or the unknown label), a file mixing classes (with
    ``one_class_per_file``), a duplicate read id, or a class without reads.
    """
    parameters = _parameters(
        class_names,
        unknown_label,
        target_length,
        examples_per_class,
        train_test_fraction,
        train_val_fraction,
        dtype,
        one_class_per_file,
        seed,
    )
    if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes < 1:
        raise InputError(f"chunk_bytes must be a positive integer, got {chunk_bytes!r}")
    files = expand_signal_paths(paths)
    inputs: list[dict[str, Any]] = [
        {"path": str(f), "sha256": None, "bytes": f.stat().st_size, "reads": None} for f in files
    ]
    out = Path(out_dir)
    manifest_path = out / "manifest.json"
    old = _previous_manifest(out)
    if old is not None and _maybe_unchanged(old, parameters, inputs):
        for entry in inputs:  # otherwise the files are hashed while pass 1 reads them
            entry["sha256"] = _sha256(Path(entry["path"]))
        fingerprint = _fingerprint(parameters, inputs)
        kept = out / f"shards/{fingerprint}"
        if old["fingerprint"] == fingerprint and _complete(kept):
            logger.info("unchanged inputs and parameters: keeping %s", kept)
            write_text_atomic(manifest_path, json.dumps(old, indent=1) + "\n")
            return old

    fresh = not out.exists()
    shards_existed = (out / "shards").exists()
    new_shard: Path | None = None  # a shard dir this call created, until the manifest names it
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".signal-etl-", suffix=".tmp", dir=out) as work:
            manifest, new_shard = _run(
                files, inputs, parameters, Path(work), out, examples_per_class, chunk_bytes
            )
        write_text_atomic(manifest_path, json.dumps(manifest, indent=1) + "\n")
        new_shard = None
    except BaseException:
        if fresh:
            shutil.rmtree(out, ignore_errors=True)
        else:
            if new_shard is not None:
                shutil.rmtree(new_shard, ignore_errors=True)
            if not shards_existed and (out / "shards").is_dir():
                with contextlib.suppress(OSError):
                    (out / "shards").rmdir()
        raise
    _remove_stale(out / "shards", manifest["fingerprint"])
    logger.info(
        "signal ETL: %d per class x %d classes -> train %d, valid %d, test %d in %s",
        manifest["examples_per_class"],
        len(manifest["class_names"]),
        manifest["totals"]["train"],
        manifest["totals"]["valid"],
        manifest["totals"]["test"],
        out / manifest["shard_dir"],
    )
    return manifest


def _previous_manifest(out: Path) -> dict[str, Any] | None:
    """The manifest of the last run: ``out/manifest.json``, else the copy in its shard dir."""
    manifest = _read_manifest(out / "manifest.json", quiet=True)
    if manifest is not None:
        return manifest
    copies = sorted((out / "shards").glob("*/manifest.json"), key=lambda p: p.stat().st_mtime)
    return _read_manifest(copies[-1], quiet=True) if copies else None


def _maybe_unchanged(
    old: Mapping[str, Any], parameters: Mapping[str, Any], inputs: Sequence[Mapping[str, Any]]
) -> bool:
    """Whether ``old`` may have the same fingerprint: same parameters, paths and file sizes."""
    recorded = old.get("inputs")
    if old.get("parameters") != parameters or not isinstance(recorded, list):
        return False
    try:
        before = [(entry["path"], entry["bytes"]) for entry in recorded]
    except (TypeError, KeyError):
        return False
    return before == [(entry["path"], entry["bytes"]) for entry in inputs]


def _run(
    files: Sequence[Path],
    inputs: list[dict[str, Any]],
    parameters: Mapping[str, Any],
    work: Path,
    out: Path,
    examples_per_class: int | None,
    chunk_bytes: int,
) -> tuple[dict[str, Any], Path | None]:
    """Pass 1, sampling, split and pass 2; returns the manifest and the new shard dir (None if
    it replaced an existing one)."""
    target = parameters["target_length"]
    dtype = parameters["dtype"]
    labels = [label for label, _ in parameters["classes"]]
    names = [name for _, name in parameters["classes"]]
    classes = [
        _Class(label, name, work / f"class{k}.f32")
        for k, (label, name) in enumerate(zip(labels, names, strict=True))
    ]
    try:
        for cls in classes:
            cls.handle = open(cls.raw_path, "wb")  # noqa: SIM115 - closed below
        _pass1(
            files,
            classes,
            parameters["unknown_label"],
            target,
            parameters["one_class_per_file"],
            chunk_bytes,
            inputs,
            float(np.finfo(np.float16).max) if dtype == "float16" else None,
        )
    finally:
        for cls in classes:
            if cls.handle is not None:
                cls.handle.close()
    for cls in classes:
        cls.freeze()
    _check_duplicates(classes, [str(f) for f in files])
    empty = [f"{c.label} ({c.name})" for c in classes if c.count == 0]
    if empty:
        shown = ", ".join(str(f) for f in files[:3]) + (", ..." if len(files) > 3 else "")
        raise InputError(
            f"class {', '.join(empty)} has no reads in the {len(files)} input file(s) "
            f"({shown}); expected reads of every class in class_names"
        )
    sizes = [c.count for c in classes]
    smallest = min(sizes)
    epc = smallest if examples_per_class is None else min(int(examples_per_class), smallest)
    if examples_per_class is not None and examples_per_class > smallest:
        logger.warning(
            "examples_per_class=%d is larger than the smallest class (%s: %d reads); "
            "using %d per class",
            examples_per_class,
            classes[sizes.index(smallest)].name,
            smallest,
            smallest,
        )
    fingerprint = _fingerprint(parameters, inputs)
    shard_rel = f"shards/{fingerprint}"
    shard_dir = out / shard_rel
    existed = shard_dir.exists()
    split = _split(
        sizes,
        epc,
        parameters["train_test_fraction"],
        parameters["train_val_fraction"],
        parameters["seed"],
    )
    counts = {
        part: {name: int(np.count_nonzero(split[part][0] == k)) for k, name in enumerate(names)}
        for part in PARTS
    }
    manifest = {
        "format": ETL_FORMAT,
        "fingerprint": fingerprint,
        "shard_dir": shard_rel,
        "class_labels": labels,
        "class_names": names,
        "unknown_label": parameters["unknown_label"],
        "target_length": target,
        "dtype": dtype,
        "padding": "nan",
        "examples_per_class": epc,
        "class_sizes": dict(zip(names, sizes, strict=True)),
        "counts": counts,
        "totals": {part: int(split[part][0].size) for part in PARTS},
        "inputs": inputs,
        "parameters": dict(parameters),
        "seed": parameters["seed"],
    }
    with atomic_dir(shard_dir) as staging:
        for part in PARTS:
            cls_index, rows = split[part]
            _write_part(staging, part, cls_index, rows, classes, target, dtype)
        # A copy beside the shards: a rerun finds them even when the workflow has deleted
        # the top-level manifest (Snakemake removes a job's outputs before running it).
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest, None if existed else shard_dir


@dataclass
class SignalPart:
    """One part of a signal dataset: memory-mapped (n, T) signals and per-read data."""

    x: np.ndarray  # memory-mapped (n, T), float16 or float32, NaN padding
    y: np.ndarray  # int64 class indices
    ids: list[str]
    lengths: np.ndarray  # int32 series length before fitting

    def __len__(self) -> int:
        """Number of reads."""
        return len(self.ids)


_MANIFEST_KEYS = (
    "fingerprint",
    "shard_dir",
    "class_labels",
    "class_names",
    "target_length",
    "dtype",
    "counts",
)


def _read_manifest(path: Path, *, quiet: bool = False) -> dict[str, Any] | None:
    """The manifest at ``path``; None if absent (or unreadable when ``quiet``)."""
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        if quiet:
            return None
        raise InputError(f"{path}: not a readable JSON manifest ({err})") from None
    if not isinstance(manifest, dict) or any(key not in manifest for key in _MANIFEST_KEYS):
        if quiet:
            return None
        missing = [k for k in _MANIFEST_KEYS if not isinstance(manifest, dict) or k not in manifest]
        raise InputError(f"{path}: not a signal ETL manifest (missing {', '.join(missing)})")
    return manifest


def load_manifest(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of an :func:`etl_signals` output (InputError when there is none)."""
    path = Path(out_dir) / "manifest.json"
    manifest = _read_manifest(path)
    if manifest is None:
        raise InputError(f"{path}: no signal ETL manifest (expected the output of the signal ETL)")
    return manifest


def load_etl(out_dir: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, SignalPart]]:
    """Open the output of :func:`etl_signals`: the manifest and ``{"train", "valid", "test"}``.

    ``x`` is memory-mapped read-only. Raises :class:`InputError` if the manifest or a shard
    file is missing, or if the files disagree with the manifest.
    """
    manifest = load_manifest(out_dir)
    path = Path(out_dir) / "manifest.json"
    shard = Path(out_dir) / manifest["shard_dir"]
    target, n_classes = int(manifest["target_length"]), len(manifest["class_names"])
    parts: dict[str, SignalPart] = {}
    for part in PARTS:
        files = {suffix: shard / f"{part}{suffix}" for suffix in SHARD_FILES}
        missing = [str(p.name) for p in files.values() if not p.is_file()]
        if missing:
            raise InputError(
                f"{shard}: missing {', '.join(missing)} (incomplete signal ETL output; "
                "rerun the ETL)"
            )
        try:
            x = np.load(files[".x.npy"], mmap_mode="r")
            y = np.load(files[".y.npy"])
            lengths = np.load(files[".lengths.npy"])
            text = files[".ids.txt"].read_text(encoding="utf-8")
        except (OSError, ValueError, UnicodeDecodeError) as err:
            raise InputError(f"{shard}: unreadable {part} files ({err}); rerun the ETL") from None
        ids = text.split("\n")[:-1] if text else []
        n = sum(int(v) for v in manifest["counts"].get(part, {}).values())
        ok = (
            x.ndim == 2
            and x.shape == (n, target)
            and str(x.dtype) == manifest["dtype"]
            and y.shape == (n,)
            and lengths.shape == (n,)
            and len(ids) == n
            and (n == 0 or (int(y.min()) >= 0 and int(y.max()) < n_classes))
        )
        if not ok:
            raise InputError(
                f"{shard}: {part} files disagree with {path} (expected {n} reads of length "
                f"{target} as {manifest['dtype']}; got x {x.shape} {x.dtype}, {y.shape[0]} labels, "
                f"{len(ids)} ids); rerun the ETL"
            )
        parts[part] = SignalPart(x=x, y=y, ids=ids, lengths=lengths)
    return manifest, parts


def read_signals_for_prediction(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    target_length: int,
    class_names: Mapping[int, str],
    unknown_label: int = -99,
    chunk_bytes: int = 32 << 20,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Read signal CSVs (files or directories) for prediction, fitted to ``target_length``.

    Returns the read ids (files in sorted path order, rows in file order), x (n, T) float32
    with NaN padding, and each read's class index (classes = labels of ``class_names`` except
    ``unknown_label``, sorted) or -1 for reads labelled ``unknown_label``. Files may mix
    classes; a label outside ``class_names`` (and not ``unknown_label``) raises
    :class:`InputError`.
    """
    target = _check_length(target_length)
    if isinstance(unknown_label, bool) or not isinstance(unknown_label, int | np.integer):
        raise InputError(f"unknown_label must be an integer, got {unknown_label!r}")
    labels, names = _model_classes(class_names, int(unknown_label))
    label_array = np.asarray(labels, dtype=np.int64)
    files = expand_signal_paths(paths)
    ids: list[str] = []
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for path in files:
        for chunk in read_signal_chunks(path, chunk_bytes=chunk_bytes):
            index, known = _class_indices(chunk, label_array)
            unknown = chunk.labels == unknown_label
            bad = np.flatnonzero(~known & ~unknown)
            if bad.size:
                raise _label_error(chunk, int(bad[0]), labels, names, int(unknown_label))
            ys.append(np.where(unknown, -1, index).astype(np.int64))
            xs.extend(fitted for _, _, fitted in _fit_batches(chunk, target))
            ids.extend(chunk.ids)
    if not ids:
        raise InputError(
            f"no reads in {', '.join(str(f) for f in files)} (expected at least one data row)"
        )
    if len(set(ids)) != len(ids):
        logger.warning("%d duplicate read ids among the reads to predict", len(ids) - len(set(ids)))
    return ids, np.concatenate(xs), np.concatenate(ys)
