"""The Snakemake workflow end to end on a tiny demo config, plus lint and a 10-fold dry run."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO
from sklearn.metrics import roc_auc_score

pytestmark = pytest.mark.workflow
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
EXP = "lncrna_cnn"
CSE = "lncrna_cse_bert"
SALUKI = "saluki_regression"
SIGNAL = "capfinder_signals"  # run as configured by tests/test_signal_workflow.py
TRACKS = "maxatac_tracks"  # run as configured by tests/test_tracks_workflow.py


def _tiny_config(**splits) -> dict:
    """The demo config at tiny size: fewer and shorter transcripts, fewer epochs."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    del config["experiments"][SIGNAL], config["experiments"][TRACKS]
    config["simulate"] = {
        "datasets": [],
        "regression": {"n_sequences": 600, "min_length": 150, "max_length": 400},
        "transcripts": {
            "n_per_class": 90,
            "n_unlabelled": 30,
            "min_length": 300,
            "max_length": 1500,
        },
    }
    experiment = config["experiments"][EXP]
    experiment["encoding"]["context_length"] = 256
    experiment["model"].update({"channels": 32, "n_layers": 2})
    experiment["training"].update(
        {"batch_size": 16, "epochs": 15, "patience": 6, "learning_rate": 0.003}
    )
    experiment["splits"] = {"mode": "kfold", "folds": 3, "valid_fraction": 0.2, **splits}
    cse = config["experiments"][CSE]
    cse["encoding"]["context_length"] = 64
    cse["pretrain"].update({"epochs": 2, "n_samples_per_epoch": 128})
    cse["training"].update({"epochs": 10, "patience": 5})
    cse["splits"] = {"mode": "kfold", "folds": 2, "valid_fraction": 0.2}
    saluki = config["experiments"][SALUKI]
    saluki["encoding"]["blocksize"] = 400
    saluki["training"].update({"epochs": 15, "patience": None, "replicates": 2})
    saluki["splits"] = {"mode": "kfold", "folds": 2, "valid_fraction": 0.15}
    return config


def _snakemake(workdir: Path, config: dict, *args: str) -> subprocess.CompletedProcess:
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), "--cores", "2", *args],
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("demo")
    result = _snakemake(workdir, _tiny_config())
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


def test_metrics_over_folds_show_learnt_classes(demo_run):
    metrics = pd.read_csv(demo_run / "results" / EXP / "metrics.csv")
    assert metrics["fold"].astype(str).tolist() == ["0", "1", "2", "mean", "sd"]
    folds = metrics.iloc[:3]
    assert (folds["n_test"] == 60).all()
    mean = metrics.set_index("fold").loc["mean"]
    assert mean["macro_f1"] > 0.7, metrics  # chance is 0.5
    assert mean["auroc"] > 0.8
    assert metrics.set_index("fold").loc["sd", "macro_f1"] >= 0


def test_cse_bert_pretrains_then_fine_tunes(demo_run):
    pretrain = pd.read_csv(demo_run / "results" / CSE / "pretrain" / "history.csv")
    assert len(pretrain) == 2 and pretrain["best"].sum() == 1
    assert {"val_accuracy", "train_loss", "learning_rate"} <= set(pretrain.columns)
    log = (demo_run / "logs" / "fit" / CSE / "0_r0.log").read_text()
    assert f"fine-tuning from results/{CSE}/pretrain/model" in log
    metrics = pd.read_csv(demo_run / "results" / CSE / "metrics.csv").set_index("fold")
    assert metrics.loc["mean", "macro_f1"] > 0.65, metrics  # chance is 0.5
    predictions = pd.read_csv(
        demo_run / "results" / CSE / "predict" / "unlabelled" / "predictions.csv"
    )
    assert len(predictions) == 30


def test_saluki_regression_learns_the_planted_motifs(demo_run):
    results = demo_run / "results" / SALUKI
    metrics = pd.read_csv(results / "metrics.csv").set_index("fold")
    assert list(metrics.columns[:5]) == ["n_test", "models", "mse", "pearson_r", "spearman_rho"]
    assert (metrics.loc[["0", "1"], "models"] == 2).all()  # 2 replicates per fold
    assert metrics.loc["mean", "pearson_r"] > 0.3, metrics  # label units; chance is 0
    predictions = pd.read_csv(results / "folds" / "0" / "test_predictions.csv")
    assert list(predictions.columns) == ["id", "label", "prediction"]
    table = pd.read_csv(demo_run / "results" / "simulated" / "regression" / "table.tsv", sep="\t")
    truth = table.set_index("id").loc[predictions["id"], "label"].to_numpy()
    assert predictions["label"].to_numpy() == pytest.approx(truth)  # label units, not scaled
    deltas = pd.read_csv(results / "folds" / "1" / "rank_deltas.csv")
    assert sorted(deltas["label_rank"]) == sorted(deltas["pred_rank"].rank())
    row = deltas.iloc[0]
    assert row["rank_delta"] == row["label_rank"] - row["pred_rank"]
    config = json.loads((results / "folds" / "0" / "r1" / "model" / "config.json").read_text())
    assert config["label_scaler"]["method"] == "standard" and config["task"] == "regression"
    ensemble = json.loads((results / "predict" / "table" / "metrics.json").read_text())
    assert ensemble["n"] == 600 and ensemble["pearson_r"] > 0.3
    per_model = pd.read_csv(results / "predict" / "table" / "predictions_per_fold.csv")
    assert per_model["model"].nunique() == 4  # 2 folds × 2 replicates


def _motif_auroc(loo: pd.DataFrame, motifs: pd.DataFrame) -> float:
    """AUROC of per-position max |loo| against the simulator's planted-motif positions."""
    scores, truth = [], []
    for name, rows in loo.groupby("sequence"):
        score = np.zeros(int(rows["end_offset"].max()))
        offsets = zip(rows["start_offset"], rows["end_offset"], rows["loo"].abs(), strict=True)
        for start, end, value in offsets:
            score[start:end] = np.maximum(score[start:end], value)
        planted = np.zeros(score.size, dtype=bool)
        for start, end in motifs.loc[motifs["id"] == name, ["start", "end"]].to_numpy():
            planted[start:end] = True
        scores.append(score)
        truth.append(planted)
    return roc_auc_score(np.concatenate(truth), np.concatenate(scores))


def _interpret_settings() -> dict:
    demo = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    return demo["experiments"][SALUKI]["interpret"]


def test_loo_tables_arrays_and_plots(demo_run):
    interpret = demo_run / "results" / SALUKI / "interpret"
    chosen = _interpret_settings()["sequences"]
    for mode in ("mask", "replace"):
        loo = pd.read_csv(interpret / f"loo_{mode}.csv")
        assert loo["sequence"].unique().tolist() == chosen  # both shards, in order
        plots = sorted(p.name for p in (interpret / "plots" / mode).glob("*.png"))
        assert plots == sorted(f"{name}.png" for name in chosen)
        arrays = np.load(interpret / f"loo_{mode}.npz")
        np.testing.assert_allclose(arrays["values"], loo["loo"], rtol=1e-6)
    masked = pd.read_csv(interpret / "loo_mask.csv")
    assert len(pd.read_csv(interpret / "loo_replace.csv")) == 3 * len(masked)
    table = pd.read_csv(demo_run / "results" / "simulated" / "regression" / "table.tsv", sep="\t")
    lengths = table.set_index("id").loc[chosen, "sequence"].str.count(",") + 1
    assert masked.groupby("sequence", sort=False).size().tolist() == lengths.tolist()


def test_demo_loo_recovers_the_planted_motifs(tmp_path):
    """The demo's Saluki experiment as configured: |loo| ranks the planted motif positions."""
    demo = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config = {**demo, "simulate": {**demo["simulate"], "datasets": []}}
    config["experiments"] = {SALUKI: demo["experiments"][SALUKI]}
    result = _snakemake(tmp_path, config)
    assert result.returncode == 0, result.stderr[-4000:]
    motifs = pd.read_csv(tmp_path / "results" / "simulated" / "regression" / "motifs.tsv", sep="\t")
    for mode in ("mask", "replace"):
        loo = pd.read_csv(tmp_path / "results" / SALUKI / "interpret" / f"loo_{mode}.csv")
        assert _motif_auroc(loo, motifs) >= 0.9


def test_fold_outputs(demo_run):
    fold = demo_run / "results" / EXP / "folds" / "1"
    predictions = pd.read_csv(fold / "test_predictions.csv")
    assert list(predictions.columns) == [
        "id",
        "label",
        "prob_protein_coding",
        "prob_lncrna",
        "predicted_class",
    ]
    assert predictions[["prob_protein_coding", "prob_lncrna"]].sum(axis=1).round(5).eq(1).all()
    replicate = fold / "r0"
    history = pd.read_csv(replicate / "history.csv")
    assert history["best"].sum() == 1
    assert {"train_loss", "val_loss", "val_macro_f1"} <= set(history.columns)
    model_files = sorted(p.name for p in (replicate / "model").iterdir() if p.name[0] != ".")
    assert model_files == ["config.json", "model.safetensors"]
    assert (replicate / "history.png").read_bytes()[:4] == b"\x89PNG"
    log = demo_run / "logs" / "fit" / EXP / "1_r0.log"
    assert log.read_text().count("best epoch") == 1


def test_ensemble_predictions_recover_truth(demo_run):
    predict = demo_run / "results" / EXP / "predict" / "unlabelled"
    ensemble = pd.read_csv(predict / "predictions.csv")
    truth = pd.read_csv(
        demo_run / "results" / "simulated" / "transcripts" / "unlabelled_truth.tsv", sep="\t"
    )
    merged = ensemble.merge(truth, on="id")
    assert len(merged) == 30
    assert (merged["predicted_class"] == merged["class"]).mean() > 0.7
    per_fold = pd.read_csv(predict / "predictions_per_fold.csv")
    mean = per_fold.groupby("id")["prob_lncrna"].mean()
    assert mean.loc[ensemble["id"]].to_numpy() == pytest.approx(ensemble["prob_lncrna"], abs=1e-6)


def test_predict_cli_needs_only_model_and_fasta(demo_run, tmp_path):
    model = demo_run / "results" / EXP / "folds" / "0" / "r0" / "model"
    fasta = demo_run / "results" / "simulated" / "transcripts" / "unlabelled.fa"
    out = tmp_path / "p.csv"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "nucflow.cli",
            "predict",
            "--model",
            str(model),
            "--fasta",
            str(fasta),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert len(pd.read_csv(out)) == 30


def test_classify_and_embed_cli(demo_run, tmp_path):
    fasta = demo_run / "results" / "simulated" / "transcripts" / "unlabelled.fa"
    model = demo_run / "results" / CSE / "folds" / "1" / "r0" / "model"
    out = tmp_path / "c.csv"
    run = [sys.executable, "-m", "nucflow.cli"]
    result = subprocess.run(
        [*run, "classify", "--model", str(model), "--fasta", str(fasta), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert list(pd.read_csv(out).columns) == [
        "id",
        "prob_protein_coding",
        "prob_lncrna",
        "predicted_class",
    ]
    pretrained = demo_run / "results" / CSE / "pretrain" / "model"
    result = subprocess.run(
        [
            *run,
            "embed",
            "--model",
            str(pretrained),
            "--fasta",
            str(fasta),
            "--out",
            str(tmp_path / "e.csv"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    embeddings = pd.read_csv(tmp_path / "e.csv")
    assert embeddings.shape == (30, 1 + 32) and embeddings.columns[-1] == "L31"
    values = embeddings.drop(columns="id").to_numpy()
    assert (values.std(axis=0) > 0).all()  # sequences get different embeddings


def test_one_fold_reruns_alone(demo_run, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(demo_run, workdir, symlinks=True)
    folds = workdir / "results" / EXP / "folds"
    untouched = (folds / "0" / "r0" / "model" / "model.safetensors").stat().st_mtime_ns
    shutil.rmtree(folds / "2")
    target = f"results/{EXP}/folds/2/metrics.json"
    result = _snakemake(workdir, _tiny_config(), target)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fit" in result.stderr and (folds / "2" / "metrics.json").is_file()
    assert (folds / "0" / "r0" / "model" / "model.safetensors").stat().st_mtime_ns == untouched
    assert "jobid" not in result.stderr or result.stderr.count("rule fit:") == 1


def test_bad_input_fails_job_without_outputs(tmp_path):
    config = _tiny_config()
    bad = tmp_path / "bad.fa"
    bad.write_text(">good\nACGTACGT\n>oops\nACGT?ACGT\n")
    config["experiments"][EXP]["data"]["classes"]["lncrna"] = str(bad)
    result = _snakemake(tmp_path, config)
    assert result.returncode != 0
    assert "record 'oops' has invalid character '?'" in result.stderr
    assert not (tmp_path / "results" / EXP / "data").exists() or not any(
        (tmp_path / "results" / EXP / "data").iterdir()
    )


def test_invalid_config_stops_before_any_job(tmp_path):
    config = _tiny_config()
    config["experiments"][EXP]["training"]["max_epochs"] = 3
    result = _snakemake(tmp_path, config)
    assert result.returncode != 0
    assert f"experiments.{EXP}.training: unknown key 'max_epochs'" in result.stderr
    assert not (tmp_path / "results").exists()


def test_dry_run_with_ten_folds(tmp_path):
    config = copy.deepcopy(_tiny_config(folds=10))
    del config["experiments"][CSE], config["experiments"][SALUKI]
    result = _snakemake(tmp_path, config, "--dry-run", "--quiet", "rules")
    assert result.returncode == 0, result.stderr
    counts = dict(
        line.split()[:2]
        for line in result.stdout.splitlines()
        if line.split()[:1] and line.split()[0] in ("fit", "evaluate", "split")
    )
    assert counts == {"split": "10", "fit": "10", "evaluate": "10"}


def test_snakemake_lint_is_clean():
    result = subprocess.run([*SNAKEMAKE, "--lint"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_report_holds_metrics_and_histories(demo_run):
    import zipfile

    result = _snakemake(demo_run, _tiny_config(), "--report", "report.zip")
    assert result.returncode == 0, result.stderr[-3000:]
    with zipfile.ZipFile(demo_run / "report.zip") as archive:
        names = archive.namelist()
    assert any(name.endswith("metrics.csv") for name in names), names
    # 3 CNN folds + 2 CSE-BERT folds + the pretraining history + 2 × 2 Saluki replicates
    assert sum(name.endswith("history.png") for name in names) == 10, names
    assert sum(name.endswith("scatter.png") for name in names) == 2, names


def test_every_report_item_has_a_caption():
    import re

    rules = REPO / "workflow" / "rules"
    items = 0
    for smk in sorted(rules.glob("*.smk")):
        for block in re.findall(r"report\((.*?)\n\s*\)", smk.read_text(), flags=re.S):
            items += 1
            caption = re.search(r'caption="([^"]+)"', block)
            assert caption, f"{smk.name}: report item without a caption: {block.strip()[:80]}"
            text = (rules / caption.group(1)).read_text().strip()
            assert len(text) > 40, f"{smk.name}: caption {caption.group(1)} is too short"
    assert items >= 15


def test_bpe_experiment_learns_its_vocabulary_unless_given(tmp_path):
    config = _tiny_config()
    del config["experiments"][CSE], config["experiments"][SALUKI]
    config["experiments"][EXP]["encoding"] = {"method": "bpe", "vocab_size": 64}
    result = _snakemake(tmp_path, config, "--dry-run", "--quiet", "rules")
    assert result.returncode == 0, result.stderr
    assert "learn_vocabulary" in result.stdout
    config["experiments"][EXP]["encoding"]["bpe_file"] = "my_bpe.json"
    (tmp_path / "my_bpe.json").write_text("{}")
    result = _snakemake(tmp_path, config, "--dry-run", "--quiet", "rules")
    assert result.returncode == 0, result.stderr
    assert "learn_vocabulary" not in result.stdout


def test_own_configfile_replaces_the_demo_config(tmp_path):
    config = _tiny_config(folds=4)
    own = {"experiments": {"mine": config["experiments"][EXP]}}
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(own, sort_keys=False))
    result = _snakemake(
        tmp_path,
        config,
        "--configfile",
        str(tmp_path / "mine.yaml"),
        "--dry-run",
        "--quiet",
        "rules",
    )
    assert result.returncode == 0, result.stderr
    counts = dict(
        line.split()[:2]
        for line in result.stdout.splitlines()
        if line.split()[:1] and line.split()[0] in ("fit", "pretrain", "encode")
    )
    assert counts == {"encode": "1", "fit": "4"}  # the demo's three experiments are not run
