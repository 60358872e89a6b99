"""Shared fixtures: repository paths, the shared real data, small FASTA writers."""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data (real public files); tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not available")
    return SHARED_DATA


def write_fasta(
    path: Path, records: Iterable[tuple[str, str]], *, crlf: bool = False, gz: bool = False
) -> Path:
    """Write (id, sequence) records as FASTA, optionally with CRLF line ends or gzip."""
    newline = "\r\n" if crlf else "\n"
    text = "".join(f">{rid}{newline}{seq}{newline}" for rid, seq in records)
    if gz:
        with gzip.open(path, "wt", newline="") as handle:
            handle.write(text)
    else:
        path.write_bytes(text.encode())
    return path


def experiment_defaults(**sections: dict) -> dict:
    """A schema-validated sequence experiment (defaults filled) with ``sections`` overriding."""
    from nucflow.config import sequence_experiment

    return sequence_experiment(REPO / "workflow" / "schemas" / "config.schema.yaml", **sections)
