"""Bad input through the `nucflow` CLI: one-line error, non-zero exit, no output left behind."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig
import pytest
import yaml
from conftest import REPO, write_fasta

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
GOOD = [(f"s{i}", "ACGT" * (10 + i)) for i in range(12)]


def _config(tmp_path, classes: dict, folds: int = 3, **data) -> str:
    config = {
        "experiments": {
            "e": {
                "kind": "sequence",
                "data": {"classes": classes, **data},
                "encoding": {"method": "kmer", "k": 3, "context_length": 32},
                "splits": {"folds": folds},
            }
        }
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


def _nucflow(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nucflow.cli", *args], capture_output=True, text=True, cwd=REPO
    )


def _experiment_step(step: str, config: str, *args: str) -> subprocess.CompletedProcess:
    """Run a config-driven step on experiment `e`."""
    return _nucflow(step, "--config", config, "--experiment", "e", "--schema", str(SCHEMA), *args)


def _encode(tmp_path, config: str) -> subprocess.CompletedProcess:
    out = tmp_path / "out"
    return _experiment_step(
        "encode", config, "--encoded", str(out / "enc.npz"), "--tokenizer", str(out / "tok.json")
    )


def _assert_failed_cleanly(result: subprocess.CompletedProcess, tmp_path, *expected: str) -> None:
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("nucflow: error:")]
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0]
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir()), "partial output left behind"


def _good_b(tmp_path):
    return str(write_fasta(tmp_path / "b.fa", [(f"b{i}", "GGCA" * 12) for i in range(12)]))


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([], "file is empty"),
        ([("x", "")], "record 'x' has no sequence"),
        ([("x", "ACGT"), ("y", "ACGJ")], "record 'y' has invalid character 'J'"),
        ([("x", "ACGT"), ("x", "ACGT")], "duplicate id 'x'"),
    ],
)
def test_bad_fasta(tmp_path, records, expected):
    bad = write_fasta(tmp_path / "a.fa", records)
    result = _encode(tmp_path, _config(tmp_path, {"a": str(bad), "b": _good_b(tmp_path)}))
    _assert_failed_cleanly(result, tmp_path, str(bad), expected)


def test_missing_file(tmp_path):
    missing = tmp_path / "missing.fa"
    result = _encode(tmp_path, _config(tmp_path, {"a": str(missing), "b": _good_b(tmp_path)}))
    _assert_failed_cleanly(result, tmp_path, str(missing), "file not found")


def test_duplicate_id_across_class_files(tmp_path):
    a = write_fasta(tmp_path / "a.fa", [("b3", "ACGTACGT")])
    result = _encode(tmp_path, _config(tmp_path, {"a": str(a), "b": _good_b(tmp_path)}))
    _assert_failed_cleanly(result, tmp_path, "duplicate id 'b3'", "a.fa")


def test_invalid_characters_replaced_when_configured(tmp_path):
    a = write_fasta(tmp_path / "a.fa", [("x", "ACGJACGT" * 4)])
    config = _config(tmp_path, {"a": str(a), "b": _good_b(tmp_path)}, invalid_characters="replace")
    assert _encode(tmp_path, config).returncode == 0
    assert (tmp_path / "out" / "enc.npz").is_file()


def test_gzip_and_crlf_inputs_work(tmp_path):
    a = write_fasta(tmp_path / "a.fa.gz", GOOD, gz=True, crlf=True)
    b = write_fasta(tmp_path / "b.fa", [(f"b{i}", "GGCA" * 12) for i in range(12)], crlf=True)
    result = _encode(tmp_path, _config(tmp_path, {"a": str(a), "b": str(b)}))
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "out" / "enc.npz") as arrays:
        assert arrays["tokens"].shape == (24, 32)
        assert arrays["labels"].tolist() == [0] * 12 + [1] * 12


def _split(tmp_path, config: str) -> subprocess.CompletedProcess:
    assert _encode(tmp_path, config).returncode == 0
    split = str(tmp_path / "splits" / "0.json")
    encoded = str(tmp_path / "out" / "enc.npz")
    return _experiment_step("split", config, "--encoded", encoded, "--fold", "0", "--out", split)


def test_fewer_sequences_than_folds(tmp_path):
    a = write_fasta(tmp_path / "a.fa", GOOD[:2])
    b = write_fasta(tmp_path / "b.fa", [("b0", "GGCA" * 9)])
    result = _split(tmp_path, _config(tmp_path, {"a": str(a), "b": str(b)}, folds=5))
    assert result.returncode == 1
    assert "3 sequences are fewer than folds: 5" in result.stderr
    assert not (tmp_path / "splits").exists() or not any((tmp_path / "splits").iterdir())


def test_class_with_no_members(tmp_path):
    a = write_fasta(tmp_path / "a.fa", GOOD)
    config = _config(tmp_path, {"a": str(a), "b": []})
    result = _encode(tmp_path, config)
    assert result.returncode == 1
    assert "experiments.e.data.classes.b" in result.stderr


def test_unknown_config_key_is_reported(tmp_path):
    config = _config(tmp_path, {"a": "a.fa", "b": "b.fa"}, colour="blue")
    result = _nucflow("validate-config", config, "--schema", str(SCHEMA))
    assert result.returncode == 1
    assert "experiments.e.data: unknown key 'colour'" in result.stderr


def test_simulate_cli(tmp_path):
    out = tmp_path / "sim"
    result = _nucflow(
        "simulate",
        "transcripts",
        "--out",
        str(out),
        "--param",
        "n_per_class=4",
        "--param",
        "n_unlabelled=2",
    )
    assert result.returncode == 0, result.stderr
    assert (out / "lncrna.fa").read_text().count(">") == 4
    bad = _nucflow("simulate", "transcripts", "--out", str(tmp_path / "x"), "--param", "n=4")
    assert bad.returncode == 1 and "unknown setting 'n'" in bad.stderr
    assert not (tmp_path / "x").exists()


def test_bpe_learned_then_used_and_required(tmp_path):
    a = write_fasta(tmp_path / "a.fa", [(f"a{i}", "ACGTTGCA" * 10) for i in range(12)])
    config = _config(tmp_path, {"a": str(a), "b": _good_b(tmp_path)})
    text = yaml.safe_load(Path(config).read_text())
    text["experiments"]["e"]["encoding"] = {"method": "bpe", "vocab_size": 20, "context_length": 16}
    Path(config).write_text(yaml.safe_dump(text, sort_keys=False))
    result = _encode(tmp_path, config)  # no learned vocabulary given
    _assert_failed_cleanly(result, tmp_path, "BPE needs a learned vocabulary")
    learned = tmp_path / "bpe.json"
    result = _experiment_step("learn-vocabulary", config, "--out", str(learned))
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    result = _experiment_step(
        "encode",
        config,
        "--encoded",
        str(out / "enc.npz"),
        "--tokenizer",
        str(out / "tok.json"),
        "--learned",
        str(learned),
    )
    assert result.returncode == 0, result.stderr
    with np.load(out / "enc.npz") as arrays:
        tokens = arrays["tokens"]
    assert tokens.shape == (24, 16) and tokens.max() < 20
    # the repeated 8-mer became one piece: 80 nt -> 10 pieces
    assert (tokens[:12, 1:] >= 5).sum(axis=1).tolist() == [10] * 12


def test_saluki_tracks_cli(tmp_path):
    genome = write_fasta(tmp_path / "g.fa", [("chr1", "ACGTACGTAA" * 5)])
    gtf = tmp_path / "a.gtf"
    attributes = 'gene_id "g"; transcript_id "t1";'
    gtf.write_text(
        f"chr1\tsim\texon\t1\t10\t.\t+\t.\t{attributes}\n"
        f"chr1\tsim\texon\t21\t30\t.\t+\t.\t{attributes}\n"
        f"chr1\tsim\tCDS\t4\t9\t.\t+\t0\t{attributes}\n"
    )
    out = tmp_path / "tracks.tsv"
    result = _nucflow(
        "saluki-tracks", "--annotation", str(gtf), "--genome", str(genome), "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    header, row = out.read_text().splitlines()
    assert header == "id\tsequence"
    tokens = row.split("\t")[1].split(",")
    assert len(tokens) == 20 and tokens[3] == "T#1#0" and tokens[9].endswith("#1")
    missing = tmp_path / "b.gtf"
    missing.write_text(f"chr9\tsim\texon\t1\t10\t.\t+\t.\t{attributes}\n")
    result = _nucflow(
        "saluki-tracks",
        "--annotation",
        str(missing),
        "--genome",
        str(genome),
        "--out",
        str(tmp_path / "none.tsv"),
    )
    _assert_failed_cleanly(result, tmp_path / "nothing", "chr9")
    assert not (tmp_path / "none.tsv").exists()


def _signal_config(tmp_path, paths: list[Path], **etl) -> str:
    config = {
        "experiments": {
            "e": {
                "kind": "signal",
                "data": {"paths": [str(p) for p in paths], "classes": {"0": "a", "1": "b"}},
                "etl": {"target_length": 16, **etl},
            }
        }
    }
    path = tmp_path / "signal.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


def _signal_csv(path: Path, rows: list[str], header: str = "read_id,cap_class,timeseries") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


GOOD_A = [f'a{i},0,"{",".join(["0.5"] * (10 + i))}"' for i in range(6)]
GOOD_B = [f'b{i},1,"{",".join(["-0.5"] * (12 + i))}"' for i in range(6)]


@pytest.mark.parametrize(
    ("header", "bad_row", "expected"),
    [
        ("read_id,class,timeseries", None, "header"),
        (None, 'b9,1,"0.1,x,0.3"', r"line 8 \(read b9\).*'x'"),
        (None, 'b9,1,""', r"line 8 \(read b9\).*empty"),
        (None, 'b9,1,"0.1,nan,0.3"', r"line 8 \(read b9\).*(NaN|finite)"),
        (None, 'b9,1,"0.1,inf"', r"line 8 \(read b9\).*(inf|finite)"),
        (None, 'b9,0,"0.1,0.2"', r"line 8 \(read b9\).*(mix|class)"),
        (None, 'b9,7,"0.1,0.2"', r"line 8 \(read b9\).*7"),
    ],
)
def test_bad_signal_csv(tmp_path, header, bad_row, expected):
    a = _signal_csv(tmp_path / "a.csv", GOOD_A)
    rows = GOOD_B + ([bad_row] if bad_row else [])
    b = _signal_csv(tmp_path / "b.csv", rows, *([header] if header else []))
    out = tmp_path / "etl"
    config = _signal_config(tmp_path, [a, b])
    result = _nucflow(
        "--log", str(tmp_path / "log"), "signal-etl", "--config", config, "--experiment", "e",
        "--schema", str(SCHEMA), "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nucflow: error: ")
    assert "b.csv" in lines[0]
    assert re.search(expected, lines[0]), lines[0]
    assert not out.exists()


def test_signal_class_without_reads_and_oversized_examples_per_class(tmp_path):
    a = _signal_csv(tmp_path / "a.csv", GOOD_A)
    result = _experiment_step(
        "signal-etl", _signal_config(tmp_path, [a]), "--out", str(tmp_path / "etl")
    )
    assert result.returncode == 1
    assert re.search(r"class .*b.* no reads", result.stderr), result.stderr
    assert not (tmp_path / "etl").exists()
    b = _signal_csv(tmp_path / "b.csv", GOOD_B[:4])
    config = _signal_config(tmp_path, [a, b], examples_per_class=50)
    log = tmp_path / "etl.log"
    result = _nucflow(
        "--log", str(log), "signal-etl", "--config", config, "--experiment", "e",
        "--schema", str(SCHEMA), "--out", str(tmp_path / "etl"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "examples_per_class=50 is larger than the smallest class" in log.read_text()
    manifest = json.loads((tmp_path / "etl" / "manifest.json").read_text())
    assert manifest["examples_per_class"] == 4


@pytest.fixture(scope="module")
def mini_genome(tmp_path_factory) -> Path:
    """A small simulated genome with its maxATAC meta table."""
    from nucflow.data.simulate import simulate_genome

    out = tmp_path_factory.mktemp("genome")
    simulate_genome(out, chromosome_lengths={"chr1": 60_000, "chr2": 40_000})
    return out


def _tracks_pools(tmp_path, genome: Path, meta: Path) -> subprocess.CompletedProcess:
    config = {
        "experiments": {
            "e": {
                "kind": "tracks",
                "data": {"meta": str(meta), "genome": str(genome / "genome.2bit")},
                "rois": {"tchroms": ["chr1"], "vchroms": ["chr2"]},
            }
        }
    }
    path = tmp_path / "tracks.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return _nucflow(
        "--log", str(tmp_path / "log"), "tracks-pools", "--config", str(path),
        "--experiment", "e", "--schema", str(SCHEMA), "--out", str(tmp_path / "pools"),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace("Train_Test_Label", "Split"), r"Train_Test_Label"),
        (lambda t: t.replace("\tTest\n", "\ttest\n"), r"line 4.*'test'.*Train.*Test"),
        (lambda t: t.replace("CL2_atac.bw", "missing.bw"), r"missing\.bw"),
    ],
)
def test_bad_tracks_meta(tmp_path, mini_genome, edit, expected):
    meta = mini_genome / "bad_meta.tsv"
    meta.write_text(edit((mini_genome / "meta.tsv").read_text()))
    result = _tracks_pools(tmp_path, mini_genome, meta)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nucflow: error: ")
    assert "bad_meta.tsv" in lines[0] and re.search(expected, lines[0]), lines[0]
    assert not (tmp_path / "pools").exists()


def test_tracks_pools_cli(tmp_path, mini_genome):
    result = _tracks_pools(tmp_path, mini_genome, mini_genome / "meta.tsv")
    assert result.returncode == 0, result.stderr
    counts = pd.read_csv(tmp_path / "pools" / "counts.tsv", sep="\t")
    assert set(counts["pool"]) == {"train", "valid"}
    assert "CL3" not in set(counts["cell_line"])  # the Test cell line contributes no ROI


@pytest.fixture(scope="module")
def dcnn_model(tmp_path_factory) -> Path:
    """An untrained DCNN model directory (prediction needs only its shape)."""
    from nucflow.models.registry import build_model
    from nucflow.train.tracks_fit import LOSS_OUTPUTS, save_track_model

    hyperparameters = {"dense": False, "output": LOSS_OUTPUTS["bce"]}
    model_dir = tmp_path_factory.mktemp("dcnn") / "model"
    save_track_model(
        model_dir,
        build_model("dcnn", **hyperparameters),
        hyperparameters,
        training={},
        target={"quantitative": False, "target_scale_factor": 1.0},
    )
    return model_dir


def _one_chrom_bigwig(path: Path, chrom: str, length: int) -> Path:
    with pyBigWig.open(str(path), "w") as bigwig:
        bigwig.addHeader([(chrom, length)])
        bigwig.addEntries(chrom, 0, values=np.full(length // 100, 0.5), span=100, step=100)
    return path


@pytest.mark.parametrize(
    ("signal_chrom", "policy", "expected"),
    [
        ("chr1", "error", r"'chr2' not found; the file has 'chr1'"),
        ("2", "error", r"'chr2' not found.*like '2' \(naming mismatch"),
        ("chr1", "zero", None),
    ],
)
def test_tracks_predict_chromosome_missing_from_bigwig(
    tmp_path, mini_genome, dcnn_model, signal_chrom, policy, expected
):
    signal = _one_chrom_bigwig(tmp_path / "atac.bw", signal_chrom, 40_000)
    out = tmp_path / "pred" / "prediction.bw"
    log = tmp_path / "predict.log"
    result = _nucflow(
        "--log", str(log), "tracks-predict", "--model", str(dcnn_model),
        "--genome", str(mini_genome / "genome.2bit"), "--signal", str(signal),
        "--cache", str(tmp_path / "cache"), "--out", str(out),
        "--peaks", str(tmp_path / "pred" / "peaks.bed"), "--chroms", "chr2",
        "--missing-chromosomes", policy,
    )  # fmt: skip
    if expected is None:  # the explicit zero-fill policy: predicted, and the fill is logged
        assert result.returncode == 0, result.stderr
        assert "chr2" in log.read_text() and "zero" in log.read_text().lower()
        with pyBigWig.open(str(out)) as bigwig:
            assert bigwig.chroms() == {"chr2": 40_000}
        return
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nucflow: error: ")
    assert "atac.bw" in lines[0] and re.search(expected, lines[0]), lines[0]
    assert not out.exists() and not (tmp_path / "pred" / "peaks.bed").exists()
