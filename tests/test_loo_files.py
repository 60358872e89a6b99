"""LOO on files: input checks, id selection, shards, gathering, the arrays file, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO, experiment_defaults, write_fasta

from nucflow.errors import InputError
from nucflow.interpret.run import interpret_file, read_loo_input, select_sequences, shard_of
from nucflow.interpret.tables import gather_loo, read_loo_table, sequence_letters
from nucflow.models import build_model
from nucflow.models.files import ModelConfig, save_model
from nucflow.tokenize import PAD_ID, build_tokenizer, learn_atomic

TABLE_FORMAT = {
    "format": "table",
    "columnsep": "\t",
    "tokensep": ",",
    "specifiersep": "#",
    "idpos": 1,
    "seqpos": 2,
    "labelpos": 3,
    "splitpos": None,
    "weightpos": None,
    "stripheader": True,
}
ROWS = {
    "r1": "A,C#0.5,gej,G,T,T,a,c,G,A,A,C",
    "r2": "T,T,g,A,gej#1,C,C,A",
    "r3": "G,G,C,C,A#0.2,T,T,A,c,c",
}


def _table(tmp_path) -> str:
    lines = ["id\tsequence\tlabel"] + [f"{k}\t{v}\t{i}.5" for i, (k, v) in enumerate(ROWS.items())]
    path = tmp_path / "table.tsv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture
def saluki_dir(tmp_path):
    atoms = [[a.split("#")[0] for a in row.split(",")] for row in ROWS.values()]
    tokenizer = learn_atomic(atoms, [[(0.0,)] * len(a) for a in atoms], blocksize=32)
    hyper = {
        "n_atoms": tokenizer.n_atoms,
        "n_specifiers": 1,
        "channels": 4,
        "kernel_size": 3,
        "n_layers": 1,
        "dropout": 0.0,
    }
    torch.manual_seed(0)
    config = ModelConfig(
        "saluki",
        hyper,
        tokenizer.to_spec(),
        "regression",
        [],
        {"method": "standard", "shift": 1.0, "scale": 2.0},
    )
    save_model(tmp_path / "model", build_model("saluki", **hyper), config)
    return tmp_path / "model"


@pytest.fixture
def cnn_dir(tmp_path):
    tokenizer = build_tokenizer("nuc", k=1, context_length=40, keep="five_prime")
    hyper = {
        "vocab_size": tokenizer.vocab_size,
        "n_classes": 2,
        "pad_id": PAD_ID,
        "embedding_dim": 4,
        "channels": 4,
        "kernel_size": 3,
        "n_layers": 1,
    }
    torch.manual_seed(0)
    config = ModelConfig("cnn", hyper, tokenizer.to_spec(), "classification", ["p", "q"])
    save_model(tmp_path / "cnn", build_model("cnn", **hyper), config)
    return tmp_path / "cnn"


def test_shards_gather_into_the_single_run(tmp_path, saluki_dir):
    table = _table(tmp_path)
    common = {"mode": "replace", "table_format": TABLE_FORMAT, "replacespecifier": True}
    whole = interpret_file([saluki_dir], table, tmp_path / "all.csv", **common)
    shards = [tmp_path / f"{i}.csv" for i in range(4)]  # 3 sequences: one shard is empty
    for i, path in enumerate(shards):
        interpret_file([saluki_dir], table, path, shard=i, n_shards=4, **common)
    assert sorted(len(pd.read_csv(p)) == 0 for p in shards) == [False, False, False, True]
    out = tmp_path / "out"
    gathered = gather_loo(
        shards, out / "loo.csv", out / "loo.npz", "replace", out / "plots", n_plots=2
    )
    pd.testing.assert_frame_equal(
        read_loo_table(out / "loo.csv"), read_loo_table(tmp_path / "all.csv")
    )
    assert gathered["sequence"].unique().tolist() == ["r1", "r2", "r3"]
    assert (whole["label"].unique() == [0.5, 1.5, 2.5]).all()
    assert {"C#0.5", "gej#1", "A#0.2"} <= set(whole["token"])
    assert sorted(p.name for p in (out / "plots").iterdir()) == ["r1.png", "r2.png"]

    arrays = np.load(out / "loo.npz")  # no pickles needed
    assert arrays["sequence_ids"].tolist() == ["r1", "r2", "r3"]
    splits = arrays["row_splits"]
    assert splits[0] == 0 and splits[-1] == len(whole)
    first = whole[whole["sequence"] == "r2"]
    np.testing.assert_allclose(arrays["values"][splits[1] : splits[2]], first["loo"], atol=1e-6)
    assert arrays["base_values"][1] == pytest.approx(first["pred"].iloc[0])
    assert arrays["replacements"][splits[1] : splits[2]].tolist() == first["replacement"].tolist()
    assert sequence_letters(first) == "TTgAgejCCA"


def test_select_and_shard():
    from nucflow.interpret.run import LooInput

    data = LooInput("f.fa", ["a", "b", "c", "d", "e"], list("ACGTA"), None, [1, 2, 3, 4, 5])
    chosen = select_sequences(data, ["d", "a"])
    assert chosen.ids == ["d", "a"] and chosen.labels == [4, 1]
    parts = [shard_of(data, i, 3) for i in range(3)]
    assert sum((p.ids for p in parts), []) == data.ids
    with pytest.raises(
        InputError, match=r"f\.fa: 2 selected sequence id\(s\) not in the file: x, y"
    ):
        select_sequences(data, ["a", "x", "y"])
    with pytest.raises(InputError, match="shard 3 is outside"):
        shard_of(data, 3, 3)


def test_model_and_file_format_must_match(tmp_path, saluki_dir, cnn_dir):
    fasta = write_fasta(tmp_path / "x.fa", [("s1", "ACGTACGT")])
    from nucflow.models.files import read_model_config

    with pytest.raises(InputError, match="reads 1 specifier channel.*no specifiers"):
        read_loo_input(fasta, read_model_config(saluki_dir))
    with pytest.raises(InputError, match="line 2 \\('r1'\\) has multi-letter tokens"):
        read_loo_input(
            _table(tmp_path), read_model_config(cnn_dir), {**TABLE_FORMAT, "specifiersep": None}
        )
    with pytest.raises(InputError, match="has specifiers, but the model's nuc encoding"):
        plain = tmp_path / "plain.tsv"
        plain.write_text("id\tsequence\tlabel\nq\tA,C#1,G\tp\n")
        read_loo_input(plain, read_model_config(cnn_dir), TABLE_FORMAT)


def _nucflow(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nucflow.cli", *args], capture_output=True, text=True, cwd=REPO
    )


def test_cli_interpret_and_bad_inputs(tmp_path, cnn_dir):
    fasta = write_fasta(tmp_path / "x.fa", [("s1", "ACGTACGTTT"), ("s2", "GGGCCCAAT")])
    out = tmp_path / "loo.csv"
    base = ["interpret", "--model", str(cnn_dir), "--input", str(fasta), "--out", str(out)]
    result = _nucflow(*base, "--mode", "replace", "--sequences", "s2", "--target-class", "q")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out)
    assert len(table) == 27 and set(table["sequence"]) == {"s2"}
    assert list(table.columns) == [
        "sequence", "token", "replacement", "label", "pred", "start_offset", "end_offset", "loo",
    ]  # fmt: skip
    for extra, message in [
        (["--replacementdict", '{"A": ["Z"]}'], "replacementdict atom 'Z' (for 'A')"),
        (["--sequences", "s1,nope"], "not in the file: nope"),
    ]:
        target = tmp_path / "bad.csv"
        result = _nucflow(*base[:-1], str(target), "--mode", "replace", *extra)
        assert result.returncode != 0
        assert message in result.stderr.strip().splitlines()[-1], result.stderr
        assert not target.exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"replacementdict": {"A": "C"}}, "must map strings to lists of strings"),
        ({"replacementdict": ["A"]}, "must be a mapping"),
        ({"replacementdict": {"A": ["C", 3]}}, "holds a non-string 3"),
        ({"target_class": "zz"}, "target_class 'zz' is not a class"),
    ],
)
def test_bad_interpret_settings_write_nothing(tmp_path, cnn_dir, kwargs, message):
    fasta = write_fasta(tmp_path / "x.fa", [("s1", "ACGTACGTTT")])
    target = tmp_path / "bad.csv"
    with pytest.raises(InputError, match=message):
        interpret_file([cnn_dir], fasta, target, mode="replace", **kwargs)
    assert not target.exists()


def test_config_checks_interpret_settings():
    with pytest.raises(
        InputError, match=r"interpret\.replacementdict\.A: 'C' is not of type 'array'"
    ):
        experiment_defaults(interpret={"replacementdict": {"A": "C"}})
    with pytest.raises(InputError, match=r"interpret\.handletokens\.0: 'drop' is not one of"):
        experiment_defaults(interpret={"handletokens": ["drop"]})
    settings = experiment_defaults(interpret={"enabled": True})["interpret"]
    assert settings["sequences"] == "all" and settings["model"] == "ensemble"
    assert json.dumps(settings)  # plain JSON-able values for the rules' params
