"""The demo's signal experiment end to end through Snakemake, as configured in config.yaml."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO

pytestmark = pytest.mark.workflow

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
SIGNAL = "capfinder_signals"


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), "--cores", "2", *args],
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def signal_run(tmp_path_factory) -> Path:
    """The demo config with only its signal experiment (and the simulated signals)."""
    workdir = tmp_path_factory.mktemp("signal_demo")
    demo = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config = {**demo, "simulate": {**demo["simulate"], "datasets": []}}
    config["experiments"] = {SIGNAL: demo["experiments"][SIGNAL]}
    (workdir / "config").mkdir()
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = _snakemake(workdir)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


def test_demo_signals_are_classified_well_above_chance(signal_run):
    final = signal_run / "results" / SIGNAL / "final"
    metrics = json.loads((final / "metrics.json").read_text())
    assert metrics["test"]["n"] == 160  # 40 held-out reads of each of 4 classes
    assert metrics["test"]["accuracy"] >= 0.8  # chance: 0.25
    assert metrics["test"]["macro_f1"] >= 0.8
    matrix = pd.read_csv(final / "confusion_test.csv", index_col=0)
    assert matrix.to_numpy().sum() == 160 and (matrix.sum(axis=1) == 40).all()
    history = pd.read_csv(final / "history.csv")
    assert history["best"].sum() == 1
    tune = signal_run / "results" / SIGNAL / "tune"
    best = json.loads((tune / "best_params.json").read_text())
    # two workers share the study: max_trials 2, plus at most one still running in the other
    assert best["architecture"] == "attention_cnn_lstm" and 2 <= best["trials"] <= 3
    trials = pd.read_csv(tune / "trials.csv")
    assert len(trials) == best["trials"]
    ran = [json.loads((tune / "workers" / f"{w}.json").read_text())["trials"] for w in (0, 1)]
    assert sorted(ran[0] + ran[1]) == sorted(trials["number"])  # each trial run by one worker
    assert (tune / "study.db").is_file()


def test_unlabelled_reads_get_their_planted_class(signal_run):
    predictions = pd.read_csv(
        signal_run / "results" / SIGNAL / "predict" / "unlabelled" / "predictions.csv"
    )
    truth = pd.read_csv(signal_run / "results" / "simulated" / "signals" / "unlabelled_truth.csv")
    names = {0: "cap_0", 1: "cap_1", 2: "cap_2", 3: "cap_2-1"}
    merged = predictions.merge(truth, on="read_id", validate="one_to_one")
    assert len(merged) == 100
    assert (merged["predicted_class"] == merged["cap_class"].map(names)).mean() >= 0.8
    metrics = json.loads(
        (signal_run / "results" / SIGNAL / "predict" / "unlabelled" / "metrics.json").read_text()
    )
    assert metrics == {"n_reads": 100, "n_labelled": 0}


def test_unchanged_etl_rerun_keeps_its_shards(signal_run):
    manifest = signal_run / "results" / SIGNAL / "data" / "signal" / "manifest.json"
    shard_dir = manifest.parent / json.loads(manifest.read_text())["shard_dir"]
    shard = next(shard_dir.glob("train.x.npy"))
    before = shard.stat().st_mtime_ns
    result = _snakemake(signal_run, "--forcerun", "signal_etl", "--until", "signal_etl")
    assert result.returncode == 0, result.stderr[-3000:]
    assert shard.stat().st_mtime_ns == before
    log = (signal_run / "logs" / "signal_etl" / f"{SIGNAL}.log").read_text()
    assert "unchanged inputs and parameters" in log


def test_signal_predict_cli_needs_only_model_and_csv(signal_run, tmp_path):
    model = signal_run / "results" / SIGNAL / "final" / "model"
    csv = signal_run / "results" / "simulated" / "signals" / "cap_2.csv"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "nucflow.cli",
            "signal-predict",
            "--model",
            str(model),
            "--input",
            str(csv),
            "--out",
            str(tmp_path / "p.csv"),
            "--metrics",
            str(tmp_path / "m.json"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["n_labelled"] == 200 and metrics["accuracy"] >= 0.8
