"""GPUs go only to the rules that declare a `gpu` resource: asking for them elsewhere (command
line or profile) stops the workflow before any job, with a message naming the rule."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

pytestmark = pytest.mark.workflow
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]


def _dry_run(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """`snakemake -n` of the demo config in ``workdir`` (stdout and stderr in ``.stdout``)."""
    if not (workdir / "config").is_dir():
        shutil.copytree(REPO / "config", workdir / "config")
    return subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), "--dry-run", "--quiet", "rules", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _profile(path: Path, settings: dict) -> Path:
    """A profile directory holding ``settings`` as its config.yaml."""
    path.mkdir()
    (path / "config.yaml").write_text(yaml.safe_dump(settings))
    return path


@pytest.mark.parametrize("request_", ["split:gpu=1", "aggregate:gpu_model=a100"])
def test_gpu_for_a_cpu_rule_fails(tmp_path, request_):
    result = _dry_run(tmp_path, "--set-resources", request_)
    assert result.returncode != 0
    assert f"set-resources {request_}: rule does not use GPUs" in result.stdout
    assert "GPU rules: evaluate, fit," in result.stdout
    assert not (tmp_path / "results").exists()


def test_gpu_for_an_unknown_rule_fails(tmp_path):
    result = _dry_run(tmp_path, "--set-resources", "fitt:gpu=1")
    assert result.returncode != 0
    assert "set-resources fitt:gpu=1: no such rule" in result.stdout


def test_gpu_for_gpu_rules_and_zero_gpus_pass(tmp_path):
    result = _dry_run(tmp_path, "--set-resources", "fit:gpu=1", "pretrain:gpu=2", "split:gpu=0")
    assert result.returncode == 0, result.stdout


def test_profile_asking_gpus_for_a_cpu_rule_fails(tmp_path):
    profile = _profile(tmp_path / "profile", {"set-resources": {"encode": {"gpu": 1}}})
    result = _dry_run(tmp_path, "--profile", str(profile))
    assert result.returncode != 0
    assert "set-resources encode:gpu=1: rule does not use GPUs" in result.stdout


def test_profile_asking_gpus_for_gpu_rules_passes(tmp_path):
    settings = {"set-resources": {"fit": {"gpu": 1}, "tracks_train": {"gpu": 1}}}
    result = _dry_run(tmp_path, "--profile", str(_profile(tmp_path / "profile", settings)))
    assert result.returncode == 0, result.stdout


def test_default_gpus_for_every_rule_fail(tmp_path):
    result = _dry_run(tmp_path, "--default-resources", "gpu=1")
    assert result.returncode != 0
    assert "default-resources gpu=1: would give GPUs to every rule" in result.stdout
