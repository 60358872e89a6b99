"""Tabular reader (nucflow.io.table) and the atomic tokenizer (nucflow.tokenize.atomic)."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from nucflow.errors import InputError
from nucflow.io.table import TableFormat, read_table
from nucflow.tokenize import (
    ATOMIC_PAD_ID,
    ATOMIC_UNK_ID,
    TOKENIZER_METHODS,
    AtomicTokenizer,
    Tokenizer,
    build_tokenizer,
    learn_atomic,
    load_tokenizer,
    one_hot_atoms,
    save_tokenizer,
    tokenizer_from_spec,
)


def write(path: Path, lines: list[str], *, crlf: bool = False, gz: bool = False) -> Path:
    """Write lines of a table (optionally CRLF line ends or gzip)."""
    newline = "\r\n" if crlf else "\n"
    data = "".join(line + newline for line in lines).encode()
    if gz:
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)
    return path


COMMA = TableFormat(idpos=1, seqpos=3, labelpos=2, tokensep=",")
ROWS = ["t1\t0.5\ta,c,gej,t", "t2\t-1.25\tc,c,aej"]


# --- TableFormat -------------------------------------------------------------------------


def test_format_from_config_ignores_other_keys_and_null_tokensep() -> None:
    fmt = TableFormat.from_config(
        {"path": "x.tsv", "format": "table", "idpos": 2, "seqpos": 4, "tokensep": None}
    )
    assert (fmt.idpos, fmt.seqpos, fmt.tokensep, fmt.columnsep) == (2, 4, "", "\t")
    assert fmt.labelpos is None and fmt.specifiersep is None and fmt.stripheader is False


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"seqpos": 2}, "idpos must be set"),
        ({"idpos": 0, "seqpos": 2}, "idpos must be an integer ≥ 1"),
        ({"idpos": 1, "seqpos": 1}, "idpos and seqpos share column 1"),
        ({"idpos": 1, "seqpos": 2, "tokensep": "\t"}, "tokensep and columnsep must differ"),
        ({"idpos": 1, "seqpos": 2, "specifiersep": "#"}, "needs a non-empty tokensep"),
        ({"idpos": 1, "seqpos": 2, "tokensep": ",", "specifiersep": ","}, "must differ"),
        ({"idpos": 1, "seqpos": 2, "stripheader": "yes"}, "stripheader must be true or false"),
    ],
)
def test_format_rejects_bad_layouts(config: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        TableFormat.from_config(config, source="data")


# --- read_table --------------------------------------------------------------------------


@pytest.mark.parametrize(("crlf", "gz"), [(False, False), (True, False), (False, True)])
def test_read_table_plain_crlf_gzip(tmp_path: Path, crlf: bool, gz: bool) -> None:
    path = write(tmp_path / "t.tsv", ROWS, crlf=crlf, gz=gz)
    table = read_table(path, COMMA, labels="float")
    assert table.ids == ["t1", "t2"]
    assert table.tokens == [["a", "c", "gej", "t"], ["c", "c", "aej"]]
    assert table.labels.dtype == np.float64  # type: ignore[union-attr]
    np.testing.assert_array_equal(table.labels, [0.5, -1.25])
    assert table.specifiers is None and table.splits is None and table.weights is None
    assert table.line_numbers.tolist() == [1, 2] and len(table) == 2


def test_read_table_header_quotes_split_weight_string_labels(tmp_path: Path) -> None:
    fmt = TableFormat(
        idpos=1, seqpos=5, labelpos=2, splitpos=3, weightpos=4, stripheader=True, columnsep=";"
    )
    path = write(
        tmp_path / "t.csv",
        [
            '"id";"label";"split";"q";"seq"',
            '"x1";"mRNA";"3";"GOOD";"ACGT"',
            "",
            "x2;lnc;0;POOR;TTa",
        ],
    )
    table = read_table(path, fmt, labels="string")
    assert table.ids == ["x1", "x2"]
    assert table.tokens == [list("ACGT"), list("TTa")]  # tokensep "": one atom per character
    assert table.labels == ["mRNA", "lnc"]
    assert table.splits is not None and table.splits.dtype == np.int64
    assert table.splits.tolist() == [3, 0]
    assert table.weights == ["GOOD", "POOR"]
    assert table.line_numbers.tolist() == [2, 4]
    unlabelled = read_table(path, fmt)  # labels=None: the label column is not read
    assert unlabelled.labels is None


def test_read_table_specifiers(tmp_path: Path) -> None:
    fmt = TableFormat(idpos=1, seqpos=2, tokensep=",", specifiersep="#")
    path = write(tmp_path / "s.tsv", ["r1\ta#2.5#0.2,g#5.7,c", "r2\tgej,t"])
    table = read_table(path, fmt)
    assert table.tokens == [["a", "g", "c"], ["gej", "t"]]
    assert table.specifiers == [[(2.5, 0.2), (5.7,), ()], [(), ()]]
    assert table.max_specifiers == 2


@pytest.mark.parametrize(
    ("lines", "fmt", "labels", "message"),
    [
        (["a\t1\tACG", "b\t2"], COMMA, "float", r"line 2 has 2 columns, expected at least 3 "),
        (["a\tx1\tACG"], COMMA, "float", r"line 1 \(id 'a'\) has label 'x1', expected a number"),
        (["a\tnan\tACG"], COMMA, "float", "expected a finite number"),
        (["a\t1\tACG", "a\t2\tCC"], COMMA, "float", "duplicate id 'a' on lines 1 and 2"),
        (["a\t1\t"], COMMA, "float", r"line 1 \(id 'a'\) has an empty sequence"),
        (["a\t1\ta,,c"], COMMA, "float", r"line 1 \(id 'a'\): token 2 is empty"),
        (["\t1\tACG"], COMMA, "float", "line 1 has an empty id"),
    ],
)
def test_read_table_bad_lines(
    tmp_path: Path, lines: list[str], fmt: TableFormat, labels: str, message: str
) -> None:
    path = write(tmp_path / "bad.tsv", lines)
    with pytest.raises(InputError, match=message) as err:
        read_table(path, fmt, labels=labels)  # type: ignore[arg-type]
    text = str(err.value)
    assert "\n" not in text and str(path) in text


def test_read_table_bad_columns_split_specifier(tmp_path: Path) -> None:
    fmt = TableFormat(idpos=1, seqpos=2, labelpos=5, tokensep=",")
    path = write(tmp_path / "few.tsv", ["a\tc,g\t1\t2\t3", "b\tc\t1"])
    with pytest.raises(
        InputError, match=r"line 2 has 3 columns, expected at least 5 \(labelpos 5\), id 'b'"
    ):
        read_table(path, fmt, labels="float")
    split = TableFormat(idpos=1, seqpos=2, splitpos=3)
    path = write(tmp_path / "split.tsv", ["a\tACG\t1", "b\tACG\t1.5"])
    with pytest.raises(InputError, match=r"line 2 \(id 'b'\) has split '1.5', expected an integ"):
        read_table(path, split)
    spec = TableFormat(idpos=1, seqpos=2, tokensep=",", specifiersep="#")
    path = write(tmp_path / "spec.tsv", ["a\ta#1,c#x"])
    with pytest.raises(
        InputError, match=r"line 1 \(id 'a'\): token 2 'c#x' has specifier 'x', expected a fin"
    ):
        read_table(path, spec)
    path = write(tmp_path / "inf.tsv", ["a\ta#1,c#1#inf"])
    with pytest.raises(InputError, match="token 2 'c#1#inf' has specifier 'inf'"):
        read_table(path, spec)
    path = write(tmp_path / "atom.tsv", ["a\tc#1,#1"])
    with pytest.raises(InputError, match="token 2 '#1' has no atom before"):
        read_table(path, spec)


def test_read_table_missing_empty_and_header_only(tmp_path: Path) -> None:
    fmt = TableFormat(idpos=1, seqpos=2, stripheader=True)
    with pytest.raises(InputError, match="file not found"):
        read_table(tmp_path / "none.tsv", fmt)
    (tmp_path / "empty.tsv").write_bytes(b"")
    with pytest.raises(InputError, match="empty.tsv: file is empty"):
        read_table(tmp_path / "empty.tsv", fmt)
    path = write(tmp_path / "header.tsv", ["id\tseq"])
    with pytest.raises(InputError, match="no data lines"):
        read_table(path, fmt)
    with pytest.raises(InputError, match="labelpos is not set"):
        read_table(path, fmt, labels="float")
    (tmp_path / "latin.tsv").write_bytes(b"a\tACG\nb\tAC\xe9\n")
    with pytest.raises(InputError, match="latin.tsv: line 2 is not UTF-8"):
        read_table(tmp_path / "latin.tsv", TableFormat(idpos=1, seqpos=2))
    (tmp_path / "bom.tsv").write_bytes(b"\xef\xbb\xbfa\tACG\n")
    assert read_table(tmp_path / "bom.tsv", TableFormat(idpos=1, seqpos=2)).ids == ["a"]


# --- atomic tokenizer --------------------------------------------------------------------


def test_learn_vocabulary_ids_and_protocol() -> None:
    tokenizer = learn_atomic([["c", "gej", "a"], ["T", "a"]], blocksize=6)
    assert tokenizer.atoms == ("T", "a", "c", "gej")  # sorted, case-sensitive
    assert tokenizer.vocab_size == 6 and tokenizer.n_atoms == 4
    assert tokenizer.context_length == 6 and tokenizer.input_channels == 4
    assert tokenizer.n_specifiers == 0 and tokenizer.method == "atomic"
    assert isinstance(tokenizer, Tokenizer)
    x = tokenizer.encode([["a", "gej", "c"], "aTc"])
    assert x.dtype == np.float32 and x.shape == (2, 6, 1)
    assert x[0, :, 0].tolist() == [3, 5, 4, 0, 0, 0]
    assert x[1, :, 0].tolist() == [3, 2, 4, 0, 0, 0]  # a string: each character an atom
    assert tokenizer.decode(x) == [["a", "gej", "c"], ["a", "T", "c"]]
    assert "atomic" in TOKENIZER_METHODS
    with pytest.raises(InputError, match="atomic needs a learned vocabulary"):
        build_tokenizer("atomic", k=1, context_length=8, keep="five_prime")


def test_learn_samplesize_is_seeded() -> None:
    rows = [[f"x{i}"] for i in range(50)]
    first = learn_atomic(rows, samplesize=10, seed=3)
    assert first == learn_atomic(rows, samplesize=10, seed=3)
    assert first.n_atoms == 10
    assert learn_atomic(rows, samplesize=10, seed=4) != first
    assert learn_atomic(rows, samplesize=500).n_atoms == 50
    with pytest.raises(InputError, match="samplesize must be an integer ≥ 1"):
        learn_atomic(rows, samplesize=0)
    with pytest.raises(InputError, match="at least one sequence"):
        learn_atomic([])


def test_unknown_atoms_become_unk_and_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    tokenizer = learn_atomic([["a", "c", "gej"]], blocksize=8)
    with caplog.at_level(logging.WARNING, logger="nucflow.tokenize.atomic"):
        x = tokenizer.encode([["a", "zz", "c", "zz"], "acgN"])
    assert x[0, :4, 0].tolist() == [2, ATOMIC_UNK_ID, 3, ATOMIC_UNK_ID]
    assert x[1, :4, 0].tolist() == [2, 3, ATOMIC_UNK_ID, ATOMIC_UNK_ID]
    records = [r for r in caplog.records if "unknown atoms" in r.getMessage()]
    assert len(records) == 1
    message = records[0].getMessage()
    assert "4 unknown atoms in 2 of 2 sequences" in message and "'zz'" in message
    assert tokenizer.decode(x)[0] == ["a", "[UNK]", "c", "[UNK]"]


def test_specifiers_padded_to_most_decorated_token(tmp_path: Path) -> None:
    fmt = TableFormat(idpos=1, seqpos=2, tokensep=",", specifiersep="#")
    table = read_table(write(tmp_path / "s.tsv", ["r1\ta#2.5#0.2,g#5.7,c", "r2\tgej,t"]), fmt)
    tokenizer = learn_atomic(table.tokens, table.specifiers, blocksize=4)
    assert tokenizer.n_specifiers == 2 and tokenizer.input_channels == 5 + 2
    x = tokenizer.encode(table.tokens, table.specifiers)
    assert x.shape == (2, 4, 3)
    np.testing.assert_allclose(x[0, :, 1:], [[2.5, 0.2], [5.7, 0], [0, 0], [0, 0]], rtol=1e-6)
    assert not x[1, :, 1:].any()
    assert not x[:, 3].any()  # PAD rows: id 0 and zero specifiers
    with pytest.raises(InputError, match="has 3 specifiers, but this tokenizer has 2"):
        tokenizer.encode([["a"]], [[(1.0, 2.0, 3.0)]])
    with pytest.raises(InputError, match="2 tokens but 1 specifier tuples"):
        tokenizer.encode([["a", "c"]], [[(1.0,)]])


@pytest.mark.parametrize("lefttailing", [False, True])
def test_truncation_cuts_tokens_and_specifiers_alike(lefttailing: bool) -> None:
    atoms = [f"t{i:02d}" for i in range(10)]
    specs = [(float(i),) for i in range(10)]
    tokenizer = learn_atomic([atoms], [specs], blocksize=4, lefttailing=lefttailing)
    x = tokenizer.encode([atoms], [specs])[0]
    kept = tokenizer.decode(x[None])[0]
    expected = atoms[-4:] if lefttailing else atoms[:4]
    assert kept == expected
    # each kept token still carries its own specifier (t07 ↔ 7.0)
    assert x[:, 1].tolist() == [float(a[1:]) for a in expected]
    assert tokenizer.window(atoms) == ((6, 10) if lefttailing else (0, 4))
    assert tokenizer.window(atoms[:3]) == (0, 3)
    # the string path cuts the same way
    text = tokenizer.encode(["0123456789"])[0, :, 0]
    assert (text == ATOMIC_UNK_ID).all()


def test_centertoken_window_and_fallback() -> None:
    row = ["a"] * 10 + ["gej"] + ["c"] * 10  # centre token at index 10
    tokenizer = AtomicTokenizer(("a", "c", "gej"), blocksize=5, centertoken="ej", lefttailing=True)
    assert tokenizer.window(row) == (8, 13)  # 2 left, centre, 2 right
    even = AtomicTokenizer(("a", "c", "gej"), blocksize=4, centertoken="ej")
    assert even.window(row) == (8, 12)  # the odd spare slot goes left
    assert even.window(["gej"] + ["c"] * 9) == (0, 4)  # no room on the left: right gets it
    assert even.window(["a"] * 9 + ["gej"]) == (6, 10)  # no room on the right: left gets it
    assert even.window(["a"] * 9) == (0, 4)  # no centre token: lefttailing rule (False)
    assert tokenizer.window(["a"] * 9) == (4, 9)  # lefttailing True
    with_specs = AtomicTokenizer(("a", "c", "gej"), 1, blocksize=5, centertoken="ej")
    x = with_specs.encode([row], [[(float(i),) for i in range(21)]])
    assert with_specs.decode(x)[0] == ["a", "a", "gej", "c", "c"]
    assert x[0, :, 1].tolist() == [8, 9, 10, 11, 12]
    centred = AtomicTokenizer(("a", "c", "g"), 1, blocksize=3, centertoken="g")
    x = centred.encode(["aaaagcccc"], [[(float(i),) for i in range(9)]])[0]
    assert centred.decode(x[None])[0] == ["a", "g", "c"] and x[:, 1].tolist() == [3, 4, 5]


def test_spec_round_trip(tmp_path: Path) -> None:
    tokenizer = AtomicTokenizer(
        ("A", "a", "gej"), n_specifiers=2, blocksize=32, lefttailing=True, centertoken="ej"
    )
    spec = tokenizer.to_spec()
    assert spec["method"] == "atomic" and spec["vocab_size"] == 5 and "nucflow_version" in spec
    save_tokenizer(tokenizer, tmp_path / "tokenizer.json")
    loaded = load_tokenizer(tmp_path / "tokenizer.json")
    assert loaded == tokenizer and isinstance(loaded, AtomicTokenizer)
    assert json.loads((tmp_path / "tokenizer.json").read_text())["atoms"] == ["A", "a", "gej"]
    for bad, message in [
        ({**spec, "extra": 1}, "unknown keys 'extra'"),
        ({k: v for k, v in spec.items() if k != "centertoken"}, "missing keys 'centertoken'"),
        ({**spec, "vocab_size": 9}, "vocab_size is 9"),
        ({**spec, "atoms": ["b", "a"]}, "unique and sorted"),
        ({**spec, "lefttailing": "yes"}, "lefttailing must be true or false"),
        ({**spec, "blocksize": 0}, "blocksize must be an integer ≥ 1"),
    ]:
        with pytest.raises(InputError, match=message):
            tokenizer_from_spec(bad, source="tok.json")


def test_decode_rejects_bad_ids() -> None:
    tokenizer = AtomicTokenizer(("a",), blocksize=3)
    assert tokenizer.decode(np.array([2, 1, 0])) == [["a", "[UNK]"]]
    with pytest.raises(InputError, match="integral"):
        tokenizer.decode(np.array([[2.5, 0.0, 0.0]]))
    with pytest.raises(InputError, match="must be in 0 … 2"):
        tokenizer.decode(np.array([[7, 0, 0]]))


def test_one_hot_atoms_values() -> None:
    tokenizer = AtomicTokenizer(("a", "c", "g"), n_specifiers=1, blocksize=5)
    x = tokenizer.encode([["a", "zz", "g", "c"]], [[(0.5,), (), (2.0,), ()]])
    hot = one_hot_atoms(torch.from_numpy(x), tokenizer.n_atoms)
    assert hot.shape == (1, 5, tokenizer.input_channels) and hot.dtype == torch.float32
    expected = torch.tensor(
        [
            [1, 0, 0, 0.5],  # a + specifier
            [0, 0, 0, 0.0],  # UNK: all-zero one-hot
            [0, 0, 1, 2.0],  # g
            [0, 1, 0, 0.0],  # c
            [0, 0, 0, 0.0],  # PAD
        ]
    )
    torch.testing.assert_close(hot[0], expected)
    assert x[0, 4, 0] == ATOMIC_PAD_ID
    with pytest.raises(InputError, match="float tensor"):
        one_hot_atoms(torch.zeros(1, 2, 1, dtype=torch.long), 3)
    with pytest.raises(InputError, match=r"shape \(B, L, 1 \+ S\)"):
        one_hot_atoms(torch.zeros(2, 3), 3)
