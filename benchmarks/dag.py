"""Dry-run time of the workflow's DAG at cluster scale: 4 sequence experiments × 100 folds.

Run from the repository root::

    .venv/bin/python -P benchmarks/dag.py [--repeats 3] [--experiments 4] [--folds 100]

The config is the demo's (config/config.yaml) with the signal and tracks experiments removed
and the sequence experiments (copies of the demo's, cycled) set to ``--experiments`` experiments
with ``splits: {mode: kfold, folds: --folds}``. Each run is ``snakemake --dry-run --quiet`` in a
fresh temporary working directory (so nothing exists yet and every job is planned), timed from
process start to exit, so Python start-up, imports and parsing count. The target is under
10 s. Printed last as ``key: value`` lines: ``dag.experiments``, ``dag.folds``,
``dag.repeats``, ``dag.jobs`` (jobs of the dry run) and ``dag.dryrun_s`` (median).
"""

from __future__ import annotations

import argparse
import copy
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]


def bench_config(n_experiments: int, n_folds: int) -> dict[str, Any]:
    """The demo config with ``n_experiments`` sequence experiments of ``n_folds`` folds each."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    demo = {
        name: settings
        for name, settings in config["experiments"].items()
        if settings["kind"] == "sequence"
    }
    names = list(demo)
    experiments = {}
    for i in range(n_experiments):
        source = names[i % len(names)]
        settings = copy.deepcopy(demo[source])
        settings["splits"] = {"mode": "kfold", "folds": n_folds}
        experiments[source if i < len(names) else f"{source}_{i}"] = settings
    config["experiments"] = experiments
    return config


def dry_run(config_path: Path, workdir: Path) -> tuple[float, int]:
    """One dry run; returns (seconds, number of jobs)."""
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(config_path),
            "--dry-run",
            "--quiet",
            "rules",
        ],
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"dry run failed:\n{result.stderr[-2000:]}")
    match = re.search(r"^total\s+(\d+)", result.stdout, flags=re.MULTILINE)
    if match is None:
        raise SystemExit(f"no job count in the dry run's output:\n{result.stdout[-2000:]}")
    return elapsed, int(match.group(1))


def main() -> None:
    """Time the dry runs and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--experiments", type=int, default=4)
    parser.add_argument("--folds", type=int, default=100)
    args = parser.parse_args()
    times, jobs = [], 0
    with tempfile.TemporaryDirectory(prefix="nucflow-dag-") as tmp:
        config_path = Path(tmp) / "config.yaml"
        config_path.write_text(yaml.safe_dump(bench_config(args.experiments, args.folds)))
        for repeat in range(args.repeats):
            workdir = Path(tmp) / f"run{repeat}"
            workdir.mkdir()
            elapsed, jobs = dry_run(config_path, workdir)
            times.append(elapsed)
    print(f"dag.experiments: {args.experiments}")
    print(f"dag.folds: {args.folds}")
    print(f"dag.repeats: {args.repeats}")
    print(f"dag.jobs: {jobs}")
    print(f"dag.dryrun_s: {statistics.median(times):.2f}")


if __name__ == "__main__":
    main()
