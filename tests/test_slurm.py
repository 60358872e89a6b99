"""The workflow on a real SLURM through the repository's `slurm/` profile.

Needs a SLURM with an idle node that offers `gpu` GRES, e.g. the single-node cluster that
`.ci/slurm-up` starts (fake GPUs: SLURM assigns them, torch finds no CUDA and uses the CPU).
Skipped without `sbatch`; with NUCFLOW_REQUIRE_SLURM=1 (as `.ci/run` sets) a missing or busy
SLURM fails instead.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from test_workflow import EXP, _tiny_config

from nucflow.runner import job_environment

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

REQUIRE = os.environ.get("NUCFLOW_REQUIRE_SLURM") == "1"
GPU_RULES = {"fit", "evaluate", "predict"}  # the rules of EXP that declare gpu=resources.gpu
# Test-only settings on top of `--profile slurm` (the command line beats every profile):
TEST_FLAGS = [
    # No conda here. --sdm needs some method, and no rule has `envmodules:`: nothing is deployed.
    *("--sdm", "env-modules"),
    "--slurm-no-account",  # the test cluster has no accounting ...
    *("--slurm-status-command", "squeue"),  # ... so sacct knows no jobs
    # The plugin polls after N s, then after N + 10 s, N + 20 s, ... until a job has finished;
    # N a bit above a tiny job's run time (two Snakemake start-ups, 5-15 s) lets one poll do.
    *("--slurm-init-seconds-before-status-checks", "15"),
    "--slurm-keep-successful-logs",
    *("--retries", "0"),  # fail fast
    *("--default-resources", "mem_mb=1000", "runtime=10"),
    "--verbose",  # prints every "sbatch call:"
]


def _slurm_problem() -> str | None:
    """Why SLURM cannot run the test here, or None when an idle node with GPUs is up."""
    missing = [tool for tool in ("sbatch", "sinfo", "squeue") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not found"
    try:
        nodes = subprocess.run(
            ["sinfo", "--noheader", "--format=%t %G"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        return "sinfo does not answer"
    if nodes.returncode != 0:
        return f"sinfo failed: {nodes.stderr.strip()}"
    if not any(line.split()[0] == "idle" and "gpu" in line for line in nodes.stdout.splitlines()):
        return f"no idle node with gpu GRES (sinfo: {nodes.stdout.strip() or 'no nodes'})"
    return None


@pytest.fixture(scope="module")
def slurm() -> None:
    """Skip (or, with NUCFLOW_REQUIRE_SLURM=1, fail) unless SLURM can run the workflow."""
    problem = _slurm_problem()
    if problem and REQUIRE:
        pytest.fail(f"NUCFLOW_REQUIRE_SLURM=1 but {problem}")
    if problem:
        pytest.skip(f"no usable SLURM: {problem}")


def _config() -> dict:
    """One tiny 2-fold sequence experiment whose training, evaluation and prediction want a GPU."""
    config = _tiny_config()
    config["experiments"] = {EXP: config["experiments"][EXP]}
    config["simulate"] = {
        "datasets": [],
        "transcripts": {
            "n_per_class": 40,
            "n_unlabelled": 10,
            "min_length": 200,
            "max_length": 600,
        },
    }
    experiment = config["experiments"][EXP]
    experiment["training"].update({"epochs": 2, "patience": None})
    experiment["splits"] = {"mode": "kfold", "folds": 2, "valid_fraction": 0.2}
    experiment["resources"] = {"gpu": 1, "threads": 1, "mem_mb": 1000, "runtime": 10}
    return config


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the workflow in ``workdir`` with `--profile slurm`, launched from the repository root."""
    command = [
        *(sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")),
        *("--directory", str(workdir), "--cores", "2", "--profile", "slurm"),
        *TEST_FLAGS,
        *args,
    ]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def _submissions(output: str) -> list[tuple[str, list[str]]]:
    """(job comment, sbatch arguments) of every "sbatch call:" line in Snakemake's output.

    The plugin's comment names the job, e.g. ``rule_fit_wildcards_lncrna_cnn_1_0``.
    """
    calls = []
    for line in output.splitlines():
        if "sbatch call:" not in line:
            continue
        words = shlex.split(line.split("sbatch call:", 1)[1])
        calls.append((words[words.index("--comment") + 1], words))
    return calls


def _job(comment: str) -> tuple[str, str]:
    """(rule, wildcard values joined by "_") of a job comment like ``rule_fit_wildcards_x_1_0``."""
    match = re.fullmatch(r"rule_(\w+?)(?:_wildcards_(.*))?", comment)
    assert match, comment
    return match[1], match[2] or ""


@pytest.fixture(scope="module")
def first_run(slurm, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The whole tiny workflow on SLURM: (working directory, Snakemake's result)."""
    workdir = tmp_path_factory.mktemp("slurm")
    (workdir / "config").mkdir()
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(_config(), sort_keys=False))
    result = _snakemake(workdir)
    assert result.returncode == 0, result.stderr[-6000:]
    return workdir, result


def test_job_environment_lists_only_set_variables():
    assert job_environment({}) == ""
    assert job_environment({"HOME": "/root"}) == ""
    environ = {"CUDA_VISIBLE_DEVICES": "1", "SLURM_JOB_ID": "123"}
    assert job_environment(environ) == "SLURM_JOB_ID=123 CUDA_VISIBLE_DEVICES=1"


def test_profile_parses_from_the_repository_root(tmp_path):
    """`--profile slurm` resolves against the current directory; a dry run needs no SLURM."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(_config(), sort_keys=False))
    command = [
        *(sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")),
        *("--directory", str(tmp_path), "--cores", "8", "--profile", "slurm"),
        *("--sdm", "env-modules", "--dry-run"),
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert re.search(r"^fit\s+2$", result.stdout, re.MULTILINE), result.stdout[-2000:]
    # elsewhere it is not found (unless a user or site profile of that name exists: hide those)
    xdg = {"XDG_CONFIG_HOME": str(tmp_path / "home"), "XDG_CONFIG_DIRS": str(tmp_path / "site")}
    elsewhere = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, env={**os.environ, **xdg}
    )
    assert elsewhere.returncode != 0 and "profile" in elsewhere.stderr


def test_gpus_reach_slurm_only_through_the_gpu_resource(first_run):
    workdir, result = first_run
    jobs = {_job(comment): words for comment, words in _submissions(result.stdout + result.stderr)}
    rules = {rule for rule, _ in jobs}
    assert {"simulate_transcripts", "encode", "split", "aggregate"} <= rules
    assert rules >= GPU_RULES
    for (rule, wildcards), words in jobs.items():
        gpus = [word for word in words if word.startswith("--gpus")]
        assert gpus == (["--gpus=1"] if rule in GPU_RULES else []), (rule, wildcards, words)
        assert not any(word.startswith("--gres") for word in words), words
    assert (workdir / "results" / EXP / "metrics.csv").is_file()
    assert (workdir / "results" / EXP / "predict" / "unlabelled" / "predictions.csv").is_file()


def test_gpu_job_logs_record_slurm_job_and_gpus(first_run):
    workdir, _ = first_run
    logs = workdir / "logs"
    gpu_logs = [
        *(logs / "fit" / EXP).glob("*.log"),
        *(logs / "evaluate" / EXP).glob("*.log"),
        *(logs / "predict" / EXP).glob("*.log"),
    ]
    assert len(gpu_logs) == 5  # 2 fits, 2 evaluations, 1 prediction
    for log in gpu_logs:
        line = next(
            (line for line in log.read_text().splitlines() if "job environment:" in line), ""
        )
        assert re.search(r"SLURM_JOB_ID=\d+ CUDA_VISIBLE_DEVICES=\d", line), (log, line)
    if "CUDA_VISIBLE_DEVICES" not in os.environ:  # else every job inherits it (--export=ALL)
        text = (logs / "encode" / f"{EXP}.log").read_text()
        assert re.search(r"job environment: SLURM_JOB_ID=\d+$", text, re.MULTILINE), text
    slurm_logs = list((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert slurm_logs  # kept by --slurm-keep-successful-logs


def test_rerunning_one_fold_resubmits_only_that_fold(first_run):
    workdir, _ = first_run
    model = f"results/{EXP}/folds/1/r0/model"
    result = _snakemake(workdir, "--forcerun", model)
    assert result.returncode == 0, result.stderr[-6000:]
    submitted = sorted(_job(comment) for comment, _ in _submissions(result.stdout + result.stderr))
    assert submitted == [
        ("aggregate", EXP),
        ("evaluate", f"{EXP}_1"),
        ("fit", f"{EXP}_1_0"),
        ("predict", f"{EXP}_unlabelled"),
    ]
