"""Deterministic synthetic demo data with planted ground truth (``nucflow simulate``).

Four generators, one per data kind; each writes its files into ``out_dir`` (atomically, one
file at a time) and returns their paths. Same arguments and seed give byte-identical files.

- :func:`simulate_transcripts`: coding vs lncRNA-like FASTA (+ unlabelled FASTA and its truth).
- :func:`simulate_regression_table`: token table whose label is a sum of planted motif effects.
- :func:`simulate_signals`: Capfinder cap-signal CSVs with a class-specific planted pattern.
- :func:`simulate_genome`: 2bit genome, ATAC/ChIP bigWigs and peaks, maxATAC meta TSV.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nucflow.data import SIMULATED_DATASETS
from nucflow.data.simulate_nanopore import CAP_CLASSES, CAP_PATTERNS, simulate_signals
from nucflow.data.simulate_rna import (
    LNCRNA_MAX_ORF_CODONS,
    REGRESSION_MOTIF_EFFECTS,
    REGRESSION_NOISE_SD,
    codon_usage,
    simulate_regression_table,
    simulate_transcripts,
)
from nucflow.data.simulate_tracks import (
    DEFAULT_CHROMOSOME_LENGTHS,
    META_COLUMNS,
    SIM_TF,
    simulate_genome,
)
from nucflow.errors import InputError

__all__ = [
    "CAP_CLASSES",
    "CAP_PATTERNS",
    "DEFAULT_CHROMOSOME_LENGTHS",
    "LNCRNA_MAX_ORF_CODONS",
    "META_COLUMNS",
    "REGRESSION_MOTIF_EFFECTS",
    "REGRESSION_NOISE_SD",
    "SIM_TF",
    "codon_usage",
    "simulate_dataset",
    "simulated_file_names",
    "simulate_genome",
    "simulate_regression_table",
    "simulate_signals",
    "simulate_transcripts",
]


def simulated_file_names(name: str, settings: Mapping[str, Any] | None = None) -> list[str]:
    """Names of the files the generator of dataset ``name`` writes (for workflow outputs)."""
    if name == "transcripts":
        return ["protein_coding.fa", "lncrna.fa", "unlabelled.fa", "unlabelled_truth.tsv"]
    if name == "regression":
        return ["table.tsv", "motifs.tsv"]
    if name == "signals":
        unlabelled = ["unlabelled.csv", "unlabelled_truth.csv"]
        return [f"{cap_class}.csv" for cap_class in CAP_CLASSES] + (
            unlabelled if (settings or {}).get("n_unlabelled") else []
        )
    if name == "genome":
        cells = (settings or {}).get("cell_lines") or inspect.signature(simulate_genome).parameters[
            "cell_lines"
        ].default
        per_cell = [
            f"{cell}_{assay}.{ext}"
            for cell in cells
            for assay in ("atac", "chip")
            for ext in ("bw", "narrowPeak")
        ]
        return ["genome.2bit", "chrom.sizes", "blacklist.bed", "motif_sites.bed", "meta.tsv"] + (
            per_cell
        )
    raise InputError(
        f"unknown simulated dataset '{name}' (expected one of: {', '.join(SIMULATED_DATASETS)})"
    )


def simulate_dataset(
    name: str, out_dir: Path, seed: int, settings: Mapping[str, Any] | None = None
) -> dict[str, Path]:
    """Run the generator of dataset ``name`` (transcripts, regression, signals or genome)."""
    generators = dict(
        zip(
            SIMULATED_DATASETS,
            (simulate_transcripts, simulate_regression_table, simulate_signals, simulate_genome),
            strict=True,
        )
    )
    if name not in generators:
        raise InputError(
            f"unknown simulated dataset '{name}' (expected one of: {', '.join(generators)})"
        )
    generator = generators[name]
    accepted = [
        parameter
        for parameter in inspect.signature(generator).parameters
        if parameter not in ("out_dir", "seed")
    ]
    unknown = sorted(set(settings or {}) - set(accepted))
    if unknown:
        raise InputError(
            f"unknown setting {', '.join(map(repr, unknown))} for simulated dataset '{name}' "
            f"(expected: {', '.join(accepted)})"
        )
    return generator(Path(out_dir), seed=seed, **dict(settings or {}))
