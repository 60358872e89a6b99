"""Wall time of the demo workflow (`snakemake --cores N` on config/config.yaml) from scratch.

Runs in a temporary working directory so the repository's results/ are left alone. Prints
`demo.wall_s` (median of --repeats runs) and the per-rule job counts last.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_once(cores: int) -> float:
    """One demo run from an empty working directory; returns seconds."""
    workdir = Path(tempfile.mkdtemp(prefix="nucflow-demo-"))
    try:
        shutil.copytree(REPO / "config", workdir / "config")
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "snakemake",
                "--snakefile",
                str(REPO / "Snakefile"),
                "--directory",
                str(workdir),
                "--cores",
                str(cores),
                "--quiet",
            ],
            check=True,
        )
        return time.perf_counter() - started
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    """Time the demo and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    times = [run_once(args.cores) for _ in range(args.repeats)]
    print(f"demo.cores: {args.cores}")
    print(f"demo.repeats: {args.repeats}")
    print(f"demo.wall_s: {statistics.median(times):.1f}")


if __name__ == "__main__":
    main()
