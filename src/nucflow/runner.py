"""Running one step with its log file: the shared entry point of Snakemake scripts and the CLI."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from nucflow.errors import InputError

log = logging.getLogger("nucflow")

# Where a step ran: the SLURM job and the GPUs SLURM (or the user) assigned to it.
JOB_ENVIRONMENT = ("SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES")


def configure_logging(log_path: str | os.PathLike[str] | None = None) -> None:
    """Send nucflow's log records to ``log_path`` (appending) or, without one, to stderr."""
    handler: logging.Handler = (
        logging.FileHandler(log_path, mode="a") if log_path else logging.StreamHandler()
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)  # warnings go to the same log
    for noisy in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def job_environment(environ: Mapping[str, str] = os.environ) -> str:
    """The set variables of :data:`JOB_ENVIRONMENT` as ``NAME=value`` words ("" when none is)."""
    return " ".join(f"{name}={environ[name]}" for name in JOB_ENVIRONMENT if name in environ)


def run_logged(
    log_path: str | os.PathLike[str] | None, step: Callable[..., Any], /, **arguments: Any
) -> int:
    """Run ``step(**arguments)`` with logging set up; return a process exit status.

    Bad input (:class:`InputError`) is logged as one ``error:`` line and gives status 1;
    other exceptions propagate with their traceback.
    """
    configure_logging(log_path)
    if environment := job_environment():
        log.info("job environment: %s", environment)
    started = time.perf_counter()
    try:
        step(**arguments)
    except InputError as error:
        if log_path:
            log.error("error: %s", error)
        print(f"nucflow: error: {error}", file=sys.stderr)
        return 1
    log.info("%s finished in %.1f s", step.__name__, time.perf_counter() - started)
    return 0
