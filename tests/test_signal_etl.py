"""Signal CSV parsing and the signal ETL (fit, balance, split, shards, fingerprint, errors)."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pytest

from nucflow.data.signal_etl import (
    PARTS,
    etl_signals,
    fit_rows,
    fit_to_length,
    load_etl,
    read_signals_for_prediction,
)
from nucflow.data.simulate_nanopore import simulate_signals
from nucflow.errors import InputError
from nucflow.io import signal_csv
from nucflow.io.signal_csv import HEADER, read_signal_chunks

CLASS_NAMES = {0: "cap_0", 1: "cap_1", 2: "cap_2", 3: "cap_2-1", -99: "cap_unknown"}
AB = {0: "a", 1: "b", -99: "unknown"}
T = 16

Row = tuple[str, int | str, Sequence[float] | str]


def write_csv(
    path: Path, rows: Iterable[Row], *, newline: str = "\n", header: str = HEADER
) -> Path:
    """Write a signal CSV; a row's series is a list of floats or the raw field text."""
    lines = [header]
    for read_id, label, series in rows:
        field = series if isinstance(series, str) else ",".join(f"{v:.8f}" for v in series)
        lines.append(f'{read_id},{label},"{field}"')
    path.write_text(newline.join(lines) + newline)
    return path


def random_rows(prefix: str, label: int, n: int, seed: int, lo: int = 5, hi: int = 30) -> list[Row]:
    """``n`` rows with ids ``<prefix><i>`` and random series of lengths in [lo, hi]."""
    rng = np.random.default_rng(seed)
    return [
        (f"{prefix}{i}", label, rng.normal(size=int(rng.integers(lo, hi + 1))).round(6).tolist())
        for i in range(n)
    ]


def read_all(path: Path, chunk_bytes: int) -> tuple[list[str], np.ndarray, np.ndarray, list]:
    """ids, lines, labels and per-row series of a file read in chunks."""
    ids, lines, labels, series = [], [], [], []
    for chunk in read_signal_chunks(path, chunk_bytes=chunk_bytes):
        ids.extend(chunk.ids)
        lines.append(chunk.lines)
        labels.append(chunk.labels)
        series.extend(chunk.series(i) for i in range(len(chunk)))
    return ids, np.concatenate(lines), np.concatenate(labels), series


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four simulated class files (25 reads each, 100–260 values)."""
    out = tmp_path_factory.mktemp("signals")
    return simulate_signals(out, n_per_class=25, min_length=100, max_length=260, seed=3)


@pytest.fixture
def ab_files(tmp_path: Path) -> list[Path]:
    """Class a: 40 reads in a_1.csv + 40 in a_2.csv; class b: 30 reads in b.csv."""
    data = tmp_path / "data"
    data.mkdir()
    return [
        write_csv(data / "a_1.csv", random_rows("a1_", 0, 40, seed=1)),
        write_csv(data / "a_2.csv", random_rows("a2_", 0, 40, seed=2)),
        write_csv(data / "b.csv", random_rows("b_", 1, 30, seed=3)),
    ]


def run_ab(files: Sequence[Path], out: Path, **kwargs) -> dict:
    """etl_signals on the a/b files with small defaults."""
    options = {"class_names": AB, "target_length": T, "chunk_bytes": 1000, **kwargs}
    return etl_signals(files, out, **options)


def part_ids(out: Path) -> dict[str, list[str]]:
    """Read ids of each part."""
    _, parts = load_etl(out)
    return {name: part.ids for name, part in parts.items()}


# --------------------------------------------------------------------------- fitting


def test_fit_to_length_symmetric_pad_and_trim() -> None:
    nan = np.nan
    np.testing.assert_array_equal(fit_to_length(np.array([1, 2]), 6), [nan, nan, 1, 2, nan, nan])
    np.testing.assert_array_equal(fit_to_length(np.array([1, 2, 3]), 6), [nan, 1, 2, 3, nan, nan])
    np.testing.assert_array_equal(fit_to_length(np.arange(6), 6), np.arange(6))
    np.testing.assert_array_equal(fit_to_length(np.arange(10), 6), np.arange(2, 8))
    np.testing.assert_array_equal(fit_to_length(np.arange(9), 6), np.arange(1, 7))
    np.testing.assert_array_equal(fit_to_length(np.arange(7), 6), np.arange(0, 6))
    assert np.isnan(fit_to_length(np.array([]), 3)).all()
    out = fit_to_length(np.arange(3, dtype=np.float64), 5)
    assert out.dtype == np.float32 and out.shape == (5,)


@pytest.mark.parametrize("target", [1, 7, 8])
def test_fit_rows_matches_fit_to_length(target: int) -> None:
    rng = np.random.default_rng(target)
    lengths = np.array([1, target - 1, target, target + 1, target + 2, 2 * target + 3, 5, 0])
    lengths = np.concatenate([lengths[lengths >= 0], rng.integers(0, 3 * target, size=20)])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    values = rng.normal(size=int(offsets[-1])).astype(np.float32)
    fitted = fit_rows(values, offsets, target)
    assert fitted.shape == (len(lengths), target) and fitted.dtype == np.float32
    for i in range(len(lengths)):
        expected = fit_to_length(values[offsets[i] : offsets[i + 1]], target)
        np.testing.assert_array_equal(fitted[i], expected)
    # a slice of the offsets (not starting at 0) fits the same rows
    np.testing.assert_array_equal(fit_rows(values, offsets[3:9], target), fitted[3:8])


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("parse_bytes", [8 << 20, 3000])
def test_chunked_parsing_is_identical(
    simulated: dict[str, Path], monkeypatch: pytest.MonkeyPatch, parse_bytes: int
) -> None:
    monkeypatch.setattr(signal_csv, "_PARSE_BYTES", parse_bytes)  # several parser calls a chunk
    path = simulated["cap_2"]
    big = read_all(path, 32 << 20)
    small = read_all(path, 100)
    assert small[0] == big[0] and len(big[0]) == 25
    np.testing.assert_array_equal(small[1], big[1])
    np.testing.assert_array_equal(big[1], np.arange(2, 27))
    np.testing.assert_array_equal(small[2], big[2])
    assert (big[2] == 2).all()
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    for (_, _, text), a, b in zip(rows, small[3], big[3], strict=True):
        expected = np.array([float(v) for v in text.split(",")], dtype=np.float32)
        np.testing.assert_array_equal(a, expected)
        np.testing.assert_array_equal(b, expected)
    assert [r[0] for r in rows] == big[0]


def test_crlf_bom_blank_lines_and_no_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    text = f'{HEADER}\r\nr1,-99,"1.5,-2"\r\n\r\nr2,3,"4e-1"\r\nr3,+2,"0.25, 7 "'
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    for chunk_bytes in (5, 1 << 20):
        ids, lines, labels, series = read_all(path, chunk_bytes)
        assert ids == ["r1", "r2", "r3"]
        np.testing.assert_array_equal(lines, [2, 4, 5])
        np.testing.assert_array_equal(labels, [-99, 3, 2])
        np.testing.assert_array_equal(series[0], np.array([1.5, -2], dtype=np.float32))
        np.testing.assert_array_equal(series[1], np.array([0.4], dtype=np.float32))
        np.testing.assert_array_equal(series[2], np.array([0.25, 7], dtype=np.float32))


BAD_ROWS = {
    "header": None,
    "fields": "bad_read,1",
    "unquoted": "bad_read,0,1.0,2.0",
    "unterminated": 'bad_read,0,"1.0,2.0',
    "trailing": 'bad_read,0,"1.0,2.0",x',
    "label": 'bad_read,zero,"1.0"',
    "float_label": 'bad_read,0.5,"1.0"',
    "empty_series": 'bad_read,0,""',
    "non_numeric": 'bad_read,0,"1.0,abc,2"',
    "empty_value": 'bad_read,0,"1.0,,2"',
    "trailing_comma": 'bad_read,0,"1.0,2,"',
    "nan": 'bad_read,0,"1.0,nan"',
    "inf": 'bad_read,0,"-inf,1.0"',
    "overflow": 'bad_read,0,"1e39"',
    "quote_inside": 'bad_read,0,"1.0","2.0"',
}
EXPECTED_TEXT = {
    "header": "expected 'read_id,cap_class,timeseries'",
    "fields": "expected 3",
    "unquoted": "double-quoted",
    "unterminated": "unterminated",
    "trailing": "after the quoted timeseries",
    "label": "'zero' is not an integer",
    "float_label": "'0.5' is not an integer",
    "empty_series": "empty timeseries",
    "non_numeric": "'abc'",
    "empty_value": "empty value 2 of 3",
    "trailing_comma": "empty value 3 of 3",
    "nan": "NaN value 2 of 2",
    "inf": "'-inf'",
    "overflow": "'1e39'",
    "quote_inside": "stray",
}


def bad_class_file(path: Path, case: str) -> Path:
    """A class-a file whose line 4 is the bad row of ``case`` (or whose header is wrong)."""
    rows = [
        f'{rid},0,"{",".join(f"{v:.6f}" for v in series)}"'
        for rid, _, series in random_rows("a_", 0, 6, seed=5)
    ]
    if case == "header":
        return _raw(path, ["read_id,cap_class,signal", *rows])
    rows.insert(2, BAD_ROWS[case])
    return _raw(path, [HEADER, *rows])


def _raw(path: Path, lines: list[str]) -> Path:
    """Write ``lines`` as a file."""
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
@pytest.mark.parametrize("chunk_bytes", [64, 1 << 20])
def test_bad_rows_raise_precise_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, chunk_bytes: int
) -> None:
    monkeypatch.setattr(signal_csv, "_PARSE_BYTES", 150)
    data = tmp_path / "data"
    data.mkdir()
    bad = bad_class_file(data / "class_a.csv", case).resolve()
    good = write_csv(data / "class_b.csv", random_rows("b_", 1, 6, seed=6))
    with pytest.raises(InputError) as info:
        for _ in read_signal_chunks(bad, chunk_bytes=chunk_bytes):
            pass
    message = str(info.value)
    assert "\n" not in message and "class_a.csv" in message
    assert EXPECTED_TEXT[case] in message
    if case == "header":
        assert "line 1" in message and "read_id,cap_class,signal" in message
    else:
        assert "line 4" in message and "bad_read" in message
    out = tmp_path / "etl"
    with pytest.raises(InputError) as etl_info:
        etl_signals([good, bad], out, class_names=AB, target_length=T, chunk_bytes=chunk_bytes)
    assert str(etl_info.value) == message
    assert not out.exists()


def test_first_bad_line_is_reported(tmp_path: Path) -> None:
    path = _raw(tmp_path / "x.csv", [HEADER, 'r1,0,"1"', 'r2,0,"1,x"', "r3,zero,2", 'r4,0,"nan"'])
    with pytest.raises(InputError, match=r"line 3 \(read r2\).*'x'"):
        list(read_signal_chunks(path))
    path = _raw(tmp_path / "y.csv", [HEADER, 'r1,0,"1"', "r2,zero,2", 'r3,0,"1,x"'])
    with pytest.raises(InputError, match=r"line 3 \(read r2\)"):
        list(read_signal_chunks(path))


def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nope.csv"):
        list(read_signal_chunks(tmp_path / "nope.csv"))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match=r"empty.csv: line 1: empty file"):
        list(read_signal_chunks(tmp_path / "empty.csv"))
    only_header = _raw(tmp_path / "h.csv", [HEADER])
    assert list(read_signal_chunks(only_header)) == []


# --------------------------------------------------------------------------- ETL


def test_etl_shards_hold_fitted_inputs(simulated: dict[str, Path], tmp_path: Path) -> None:
    files = [simulated[name] for name in ("cap_0", "cap_1", "cap_2", "cap_2-1")]
    manifest = etl_signals(files, tmp_path / "etl", class_names=CLASS_NAMES, target_length=200)
    assert manifest["class_labels"] == [0, 1, 2, 3]
    assert manifest["class_names"] == ["cap_0", "cap_1", "cap_2", "cap_2-1"]
    assert manifest["examples_per_class"] == 25 and manifest["dtype"] == "float32"
    # 25 per class: trainval = floor(0.95 * 25) = 23, train = floor(0.8 * 23) = 18
    expected = {"train": 18, "valid": 5, "test": 2}
    for part, n in expected.items():
        assert manifest["counts"][part] == {name: n for name in manifest["class_names"]}
    source = {}
    for path in files:
        for chunk in read_signal_chunks(path):
            for i in range(len(chunk)):
                source[chunk.ids[i]] = (int(chunk.labels[i]), chunk.series(i).copy())
    loaded, parts = load_etl(tmp_path / "etl")
    assert loaded == manifest
    seen: set[str] = set()
    for name, part in parts.items():
        assert part.x.shape == (len(part.ids), 200) and part.x.dtype == np.float32
        assert isinstance(part.x, np.memmap)
        assert part.y.dtype == np.int64 and part.lengths.dtype == np.int32
        assert not seen & set(part.ids)
        seen |= set(part.ids)
        for i, read_id in enumerate(part.ids):
            label, series = source[read_id]
            assert manifest["class_labels"][part.y[i]] == label
            assert part.lengths[i] == len(series)
            np.testing.assert_array_equal(part.x[i], fit_to_length(series, 200))
        assert np.any(np.diff(part.y) < 0), f"{name} rows are not shuffled"
    assert seen == set(source)  # 25 per class = every read, each in exactly one part


def test_etl_float16_and_nan_padding(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    write_csv(data / "a.csv", [(f"a{i}", 0, [0.5] * (4 + i)) for i in range(10)])
    write_csv(data / "b.csv", [(f"b{i}", 1, [-0.25] * (30 + i)) for i in range(10)])
    etl_signals([data], tmp_path / "etl", class_names=AB, target_length=T, dtype="float16")
    manifest, parts = load_etl(tmp_path / "etl")
    assert manifest["dtype"] == "float16"
    for part in parts.values():
        assert part.x.dtype == np.float16
        for row, length, y in zip(part.x, part.lengths, part.y, strict=True):
            if y == 0:  # short: NaN on both sides, (T - L) // 2 on the left
                pad = (T - length) // 2
                assert np.isnan(row[:pad]).all() and np.isnan(row[pad + length :]).all()
                assert (row[pad : pad + length] == 0.5).all()
            else:
                assert not np.isnan(row).any() and (row == -0.25).all()


def test_balancing_explicit_none_and_too_large(
    ab_files: list[Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    m = run_ab(ab_files, tmp_path / "e10", examples_per_class=10)
    assert m["examples_per_class"] == 10
    assert [sum(m["counts"][p][c] for p in PARTS) for c in ("a", "b")] == [10, 10]
    m = run_ab(ab_files, tmp_path / "none")
    assert m["examples_per_class"] == 30 and m["class_sizes"] == {"a": 80, "b": 30}
    assert [sum(m["counts"][p][c] for p in PARTS) for c in ("a", "b")] == [30, 30]
    with caplog.at_level(logging.WARNING, logger="nucflow.data.signal_etl"):
        m = run_ab(ab_files, tmp_path / "big", examples_per_class=1000)
    assert m["examples_per_class"] == 30
    assert "smallest class" in caplog.text and "b: 30 reads" in caplog.text


def test_stratified_split_counts(ab_files: list[Path], tmp_path: Path) -> None:
    m = run_ab(
        ab_files,
        tmp_path / "etl",
        examples_per_class=20,
        train_test_fraction=0.8,
        train_val_fraction=0.75,
    )
    # trainval = floor(0.8 * 20) = 16, train = floor(0.75 * 16) = 12, valid 4, test 4
    assert m["counts"] == {
        p: {"a": n, "b": n} for p, n in (("train", 12), ("valid", 4), ("test", 4))
    }
    _, parts = load_etl(tmp_path / "etl")
    for name, part in parts.items():
        assert np.bincount(part.y, minlength=2).tolist() == [m["counts"][name]["a"]] * 2


def test_uniform_sampling_reaches_late_rows_and_files(ab_files: list[Path], tmp_path: Path) -> None:
    order = [f"a1_{i}" for i in range(40)] + [f"a2_{i}" for i in range(40)]
    position = {read_id: i for i, read_id in enumerate(order)}
    all_positions = []
    for seed in range(4):
        run_ab(ab_files, tmp_path / f"s{seed}", seed=seed)
        ids = part_ids(tmp_path / f"s{seed}")
        chosen = [position[i] for p in PARTS for i in ids[p] if i.startswith("a")]
        assert len(chosen) == 30 and len(set(chosen)) == 30
        assert any(p >= 40 for p in chosen), "nothing from the second file of class a"
        assert any(p >= 64 for p in chosen), "nothing from the last 20 % of class a"
        all_positions.extend(chosen)
    assert 30 < np.mean(all_positions) < 50  # uniform over 0..79 has mean 39.5


def test_split_disjoint_and_deterministic(ab_files: list[Path], tmp_path: Path) -> None:
    for name, seed in (("one", 7), ("two", 7), ("three", 8)):
        run_ab(ab_files, tmp_path / name, seed=seed)
    first, again, other = (part_ids(tmp_path / name) for name in ("one", "two", "three"))
    assert first == again
    assert first != other
    sets = [set(first[p]) for p in PARTS]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert sum(len(s) for s in sets) == 60 == len(set().union(*sets))


def test_non_contiguous_labels_and_mixed_files(tmp_path: Path) -> None:
    rows = random_rows("x", 5, 12, seed=1) + random_rows("y", 2, 12, seed=2)
    path = write_csv(tmp_path / "mixed.csv", rows)
    names = {5: "five", 2: "two"}
    with pytest.raises(InputError, match=r"mixed.csv: line 14 \(read y0\).*cap_class 2.*class 5"):
        etl_signals([path], tmp_path / "no", class_names=names, target_length=T)
    assert not (tmp_path / "no").exists()
    m = etl_signals(
        [path], tmp_path / "ok", class_names=names, target_length=T, one_class_per_file=False
    )
    assert m["class_labels"] == [2, 5] and m["class_names"] == ["two", "five"]
    _, parts = load_etl(tmp_path / "ok")
    for part in parts.values():
        for read_id, y in zip(part.ids, part.y, strict=True):
            assert y == (0 if read_id.startswith("y") else 1)


@pytest.mark.parametrize(
    ("rows_b", "pattern"),
    [
        ([("b0", 1, [1.0]), ("b1", -99, [1.0])], r"b.csv: line 3 \(read b1\).*-99.*prediction"),
        (
            [("b0", 1, [1.0]), ("b1", 7, [1.0])],
            r"b.csv: line 3 \(read b1\).*7 is not in the class map",
        ),
        (
            [("b0", 1, [1.0]), ("b0", 1, [2.0])],
            r"b.csv: line 3 \(read b0\): duplicate.*b.csv: line 2",
        ),
        (
            [("b0", 1, [1.0]), ("a1_3", 1, [2.0])],
            r"b.csv: line 3 \(read a1_3\): duplicate.*a_1.csv: line 5",
        ),
        ([], r"class 1 \(b\) has no reads"),
    ],
    ids=["unknown", "not_in_map", "duplicate", "duplicate_across_files", "empty_class"],
)
def test_etl_label_errors(
    ab_files: list[Path], tmp_path: Path, rows_b: list[Row], pattern: str
) -> None:
    write_csv(ab_files[2], rows_b)
    out = tmp_path / "etl"
    with pytest.raises(InputError, match=pattern):
        run_ab(ab_files, out)
    assert not out.exists()


def test_failure_keeps_previous_output(ab_files: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "etl"
    m = run_ab(ab_files, out)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    write_csv(ab_files[2], [("b0", 1, [1.0]), ("b1", 1, "1,zz")])
    with pytest.raises(InputError, match="zz"):
        run_ab(ab_files, out)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert load_etl(out)[0] == m


def test_fingerprint_skip_and_change(
    ab_files: list[Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "etl"
    first = run_ab(ab_files, out)
    shard = out / first["shard_dir"]
    stats = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in shard.iterdir()}
    manifest_inode = (out / "manifest.json").stat().st_ino
    with caplog.at_level(logging.INFO, logger="nucflow.data.signal_etl"):
        again = run_ab(ab_files, out, chunk_bytes=77)  # chunk size is not a parameter
    assert again == first
    assert "unchanged inputs and parameters: keeping" in caplog.text
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in shard.iterdir()} == stats
    assert (out / "manifest.json").stat().st_ino != manifest_inode  # rewritten atomically
    changed = run_ab(ab_files, out, seed=1)
    assert changed["fingerprint"] != first["fingerprint"]
    assert not shard.exists() and (out / changed["shard_dir"]).is_dir()
    assert [p.name for p in (out / "shards").iterdir()] == [changed["fingerprint"]]
    assert json.loads((out / "manifest.json").read_text()) == changed
    text = ab_files[2].read_text()
    ab_files[2].write_text(text.replace("b_7,1,", "b_x,1,"))  # same size, other content
    again = run_ab(ab_files, out, seed=1)
    assert again["fingerprint"] != changed["fingerprint"]
    assert "b_x" in {i for ids in part_ids(out).values() for i in ids}
    write_csv(ab_files[2], random_rows("b_", 1, 31, seed=3))  # other size
    assert run_ab(ab_files, out, seed=1)["fingerprint"] != again["fingerprint"]


def test_unchanged_rerun_without_the_top_manifest_keeps_the_shards(
    ab_files: list[Path], tmp_path: Path
) -> None:
    """Snakemake deletes a job's outputs (manifest.json) before rerunning it: the copy beside
    the shards still lets an unchanged rerun keep them."""
    out = tmp_path / "etl"
    first = run_ab(ab_files, out)
    shard = out / first["shard_dir"]
    stamp = (shard / "train.x.npy").stat().st_mtime_ns
    (out / "manifest.json").unlink()
    assert run_ab(ab_files, out) == first
    assert (shard / "train.x.npy").stat().st_mtime_ns == stamp
    assert json.loads((out / "manifest.json").read_text()) == first


def test_manifest_records_input_hashes(ab_files: list[Path], tmp_path: Path) -> None:
    manifest = run_ab(ab_files, tmp_path / "etl")
    expected = [
        {
            "path": str(p.resolve()),
            "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
            "bytes": p.stat().st_size,
            "reads": n,
        }
        for p, n in zip(sorted(ab_files), (40, 40, 30), strict=True)
    ]
    assert manifest["inputs"] == expected
    digest = hashlib.sha256()
    for _ in read_signal_chunks(ab_files[0], chunk_bytes=50, digest=digest):
        pass
    assert digest.hexdigest() == expected[0]["sha256"]


def test_load_etl_errors(ab_files: list[Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="manifest.json: no signal ETL manifest"):
        load_etl(tmp_path / "none")
    m = run_ab(ab_files, tmp_path / "etl")
    (tmp_path / "etl" / m["shard_dir"] / "valid.ids.txt").unlink()
    with pytest.raises(InputError, match=r"missing valid.ids.txt.*incomplete"):
        load_etl(tmp_path / "etl")
    # an incomplete shard dir is rebuilt, not kept
    assert run_ab(ab_files, tmp_path / "etl") == m
    assert len(load_etl(tmp_path / "etl")[1]["valid"]) == m["totals"]["valid"]


def test_bad_parameters(ab_files: list[Path], tmp_path: Path) -> None:
    for kwargs, pattern in [
        ({"dtype": "float64"}, "dtype must be one of"),
        ({"examples_per_class": 0}, "examples_per_class"),
        ({"train_test_fraction": 0}, "train_test_fraction"),
        ({"target_length": 0}, "target_length"),
        ({"class_names": {-99: "unknown"}}, "no class besides"),
    ]:
        with pytest.raises(InputError, match=pattern):
            run_ab(ab_files, tmp_path / "etl", **kwargs)
    with pytest.raises(InputError, match="no such file"):
        run_ab([tmp_path / "missing.csv"], tmp_path / "etl")
    assert not (tmp_path / "etl").exists()


def test_read_signals_for_prediction(tmp_path: Path) -> None:
    paths = simulate_signals(
        tmp_path / "sim", n_per_class=3, n_unlabelled=5, min_length=100, max_length=150, seed=1
    )
    ids, x, labels = read_signals_for_prediction(
        [paths["unlabelled"], paths["cap_1"]], target_length=120, class_names=CLASS_NAMES
    )
    assert len(ids) == 8 and x.shape == (8, 120) and x.dtype == np.float32
    assert labels.tolist() == [1] * 3 + [-1] * 5  # files in sorted path order
    chunk = next(read_signal_chunks(paths["cap_1"]))
    assert ids[:3] == chunk.ids
    np.testing.assert_array_equal(x[1], fit_to_length(chunk.series(1), 120))
    mixed = write_csv(tmp_path / "m.csv", [("r1", -99, [1.0]), ("r2", 3, [2.0]), ("r3", 0, [3.0])])
    ids, x, labels = read_signals_for_prediction(mixed, target_length=4, class_names=CLASS_NAMES)
    assert ids == ["r1", "r2", "r3"] and labels.tolist() == [-1, 3, 0]
    assert np.isnan(x[0, [0, 2, 3]]).all() and x[0, 1] == 1.0
    bad = write_csv(tmp_path / "bad.csv", [("r1", -99, [1.0]), ("r2", 7, [2.0])])
    with pytest.raises(InputError, match=r"bad.csv: line 3 \(read r2\).*7 is not in the class map"):
        read_signals_for_prediction(bad, target_length=4, class_names=CLASS_NAMES)


def test_float16_range_is_checked(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    write_csv(data / "a.csv", [("a0", 0, [1.0, 2.0]), ("a1", 0, [3.0, 70000.0]), ("a2", 0, [1.0])])
    write_csv(data / "b.csv", [("b0", 1, [1.0]), ("b1", 1, [2.0]), ("b2", 1, [3.0])])
    with pytest.raises(InputError, match=r"a.csv: line 3 \(read a1\): value 70000 .*float16"):
        etl_signals([data], tmp_path / "f16", class_names=AB, target_length=T, dtype="float16")
    assert not (tmp_path / "f16").exists()
    etl_signals([data], tmp_path / "f32", class_names=AB, target_length=T, dtype="float32")
    _, parts = load_etl(tmp_path / "f32")
    assert 70000.0 in np.concatenate([np.nan_to_num(p.x).ravel() for p in parts.values()])


def test_first_duplicate_in_line_order_is_reported(ab_files: list[Path], tmp_path: Path) -> None:
    rows = [("b0", 1, [1.0]), ("a2_5", 1, [1.0]), ("a1_7", 1, [1.0]), ("b0", 1, [2.0])]
    write_csv(ab_files[2], rows)
    with pytest.raises(InputError) as info:
        run_ab(ab_files, tmp_path / "etl")
    message = str(info.value)
    assert message.startswith(f"{ab_files[2].resolve()}: line 3 (read a2_5): duplicate read_id")
    assert f"first seen at {ab_files[1].resolve()}: line 7 " in message


def test_empty_parts_are_valid(ab_files: list[Path], tmp_path: Path) -> None:
    m = run_ab(ab_files, tmp_path / "etl", train_test_fraction=1.0, train_val_fraction=1.0)
    assert m["totals"] == {"train": 60, "valid": 0, "test": 0}
    _, parts = load_etl(tmp_path / "etl")
    assert parts["valid"].x.shape == (0, T) and parts["test"].ids == []
    assert len(parts["train"]) == 60
