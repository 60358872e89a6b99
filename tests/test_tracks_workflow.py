"""The demo's tracks experiment (maxATAC) end to end through Snakemake, as configured."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig
import pytest
import yaml
from conftest import REPO

pytestmark = pytest.mark.workflow

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
TRACKS = "maxatac_tracks"


@pytest.fixture(scope="module")
def tracks_run(tmp_path_factory) -> Path:
    """The demo config with only its tracks experiment (and the simulated genome)."""
    workdir = tmp_path_factory.mktemp("tracks_demo")
    demo = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config = {**demo, "simulate": {**demo["simulate"], "datasets": []}}
    config["experiments"] = {TRACKS: demo["experiments"][TRACKS]}
    (workdir / "config").mkdir()
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), "--cores", "2"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


def test_demo_binding_is_learnt(tracks_run):
    table = pd.read_csv(tracks_run / "results" / TRACKS / "benchmark.tsv", sep="\t")
    pooled = table[(table["cell_line"] == "CL3") & (table["chrom"] == "all")].iloc[0]
    assert pooled["positives"] > 0
    # well above the random baseline (positives / bins): at least 3 times the precision
    assert pooled["AUPRC"] >= 3 * pooled["random_AUPRC"]
    assert pooled["average_precision"] >= 3 * pooled["random_AUPRC"]
    history = pd.read_csv(tracks_run / "results" / TRACKS / "history.csv")
    assert history["best"].sum() == 1
    assert history.loc[history["best"], "val_dice"].item() == history["val_dice"].max()


def test_test_cell_tracks_are_never_read_in_training(tracks_run):
    log = (tracks_run / "logs" / "tracks_train" / f"{TRACKS}.log").read_text()
    opened = [line for line in log.splitlines() if "to build its cache" in line]
    assert any("CL1_atac.bw" in line for line in opened)
    assert any("CL2_chip.bw" in line for line in opened)
    assert not any("CL3" in line for line in opened)  # CL3 is the Test cell line


def test_prediction_covers_every_base_of_the_chromosome(tracks_run):
    predict = tracks_run / "results" / TRACKS / "predict" / "CL3"
    with pyBigWig.open(str(predict / "prediction.bw")) as bigwig:
        assert bigwig.chroms() == {"chr3": 150_000}
        intervals = np.array(bigwig.intervals("chr3"))
    assert intervals[0, 0] == 0 and intervals[-1, 1] == 150_000
    assert (intervals[1:, 0] == intervals[:-1, 1]).all()  # contiguous: no gap, no dropped tail
    assert ((intervals[:, 2] >= 0) & (intervals[:, 2] <= 1)).all()
    peaks = pd.read_csv(predict / "peaks.bed", sep="\t", header=None)
    assert len(peaks) > 0 and (peaks[3] >= 0.5).all()


def test_pools_hold_only_train_cell_lines(tracks_run):
    pools = tracks_run / "results" / TRACKS / "data" / "pools"
    train = pd.read_csv(pools / "train.tsv", sep="\t")
    valid = pd.read_csv(pools / "valid.tsv", sep="\t")
    assert set(train["chrom"]) == {"chr1"} and set(valid["chrom"]) == {"chr2"}
    assert set(train["cell_line"]) == {"CL1", "CL2"} == set(valid["cell_line"])
    assert ((train["end"] - train["start"]) == 1024).all()
    counts = pd.read_csv(pools / "counts.tsv", sep="\t")
    assert set(counts["pool"]) == {"train", "valid"}
