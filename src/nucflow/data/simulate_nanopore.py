"""Synthetic nanopore cap-signal CSVs in Capfinder's format, one file per cap class."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import numpy as np

from nucflow.data.simulate_util import check_int, check_length_range
from nucflow.io.atomic import atomic_path

logger = logging.getLogger(__name__)

#: Cap class name (file stem) -> integer label, as in Capfinder.
CAP_CLASSES: Mapping[str, int] = MappingProxyType(
    {"cap_0": 0, "cap_1": 1, "cap_2": 2, "cap_2-1": 3}
)
#: Capfinder's label of reads whose class is unknown (reads to predict).
UNKNOWN_LABEL = -99
#: Class-specific level pattern (pA offsets from the baseline level) planted in each read.
CAP_PATTERNS: Mapping[str, tuple[float, ...]] = MappingProxyType(
    {
        "cap_0": (30.0, -25.0, 30.0, -25.0, 30.0),
        "cap_1": (30.0, 30.0, -25.0, -25.0, 30.0),
        "cap_2": (-25.0, 30.0, 30.0, -25.0, -25.0),
        "cap_2-1": (-25.0, -25.0, 30.0, 30.0, -25.0),
    }
)
_BASELINE_PA = 90.0
_LEVEL_SD_PA = 10.0
_NOISE_SD_PA = 2.0
_MEAN_DWELL = 9.0
_PATTERN_DWELL = 12
_CLIP = 4.0
_MIN_LENGTH = 100  # the planted block is at most 5 x 18 samples


def _levels(rng: np.random.Generator, length: int, pattern: tuple[float, ...]) -> np.ndarray:
    """One read's ROI in pA: random k-mer-like levels with geometric dwell times, the class
    pattern inserted near the middle (position jittered by +-15 % of the length)."""
    n_events = length + 1  # every dwell is >= 1 sample, so the levels always cover the ROI
    dwell = rng.geometric(1.0 / _MEAN_DWELL, size=n_events)
    levels = rng.normal(_BASELINE_PA, _LEVEL_SD_PA, size=n_events)
    signal = np.repeat(levels, dwell)[:length]
    pattern_dwell = np.clip(
        np.round(rng.normal(_PATTERN_DWELL, 2.0, size=len(pattern))), 6, 18
    ).astype(np.int64)
    pattern_levels = _BASELINE_PA + np.asarray(pattern) + rng.normal(0.0, 3.0, size=len(pattern))
    block = np.repeat(pattern_levels, pattern_dwell)
    jitter = int(round(rng.uniform(-0.15, 0.15) * length))
    start = int(np.clip(length // 2 - block.size // 2 + jitter, 0, length - block.size))
    signal[start : start + block.size] = block
    return signal + rng.normal(0.0, _NOISE_SD_PA, size=length)


def _normalise(signal: np.ndarray) -> np.ndarray:
    """Capfinder's ROI semantics: z-normalise with the read's mean and std, clip to [-4, 4]."""
    std = signal.std()
    return np.clip((signal - signal.mean()) / (std if std > 0 else 1.0), -_CLIP, _CLIP)


def _read_line(rng: np.random.Generator, label: int, name: str, length: int) -> str:
    """One CSV row: a UUID4 read id drawn from ``rng``, the label and the quoted series."""
    read_id = uuid.UUID(bytes=rng.bytes(16), version=4)
    series = _normalise(_levels(rng, length, CAP_PATTERNS[name]))
    values = ",".join(f"{value:.8f}" for value in series.tolist())
    return f'{read_id},{label},"{values}"\n'


def simulate_signals(
    out_dir: Path,
    *,
    n_per_class: int = 100,
    n_unlabelled: int = 0,
    min_length: int = 200,
    max_length: int = 600,
    seed: int = 0,
) -> dict[str, Path]:
    """Simulate Capfinder cap-signal CSVs with a planted, class-specific level pattern.

    Each read is a noisy piecewise-constant "squiggle" (random levels around 90 pA, geometric
    dwell times, Gaussian noise) with the 5-level pattern of its class (:data:`CAP_PATTERNS`,
    ~60 samples) inserted near the middle at a jittered position. As in Capfinder, the written
    series is z-normalised per read, clipped to [-4, 4] and printed with 8 decimals. Lengths
    are uniform in ``[min_length, max_length]``; read ids are UUID4 strings drawn from the seed.

    Returns paths keyed by class name: ``cap_0``, ``cap_1``, ``cap_2``, ``cap_2-1`` (files
    ``<name>.csv`` with header ``read_id,cap_class,timeseries``; labels 0, 1, 2, 3). With
    ``n_unlabelled`` > 0 also ``unlabelled`` (``unlabelled.csv``: reads of random classes
    labelled -99, Capfinder's "unknown", as reads to predict) and ``unlabelled_truth``
    (``unlabelled_truth.csv``: read_id, cap_class).
    """
    n_per_class = check_int("n_per_class", n_per_class, 1)
    n_unlabelled = check_int("n_unlabelled", n_unlabelled, 0)
    min_length, max_length = check_length_range(min_length, max_length, _MIN_LENGTH)
    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    header = "read_id,cap_class,timeseries\n"
    paths: dict[str, Path] = {}
    for name, label in CAP_CLASSES.items():
        lengths = rng.integers(min_length, max_length + 1, size=n_per_class)
        lines = [_read_line(rng, label, name, int(length)) for length in lengths]
        paths[name] = out_dir / f"{name}.csv"
        with atomic_path(paths[name]) as tmp:
            tmp.write_text(header + "".join(lines))
    if n_unlabelled:
        names = list(CAP_CLASSES)
        truth = rng.integers(0, len(names), size=n_unlabelled)
        lengths = rng.integers(min_length, max_length + 1, size=n_unlabelled)
        lines = [
            _read_line(rng, UNKNOWN_LABEL, names[k], int(length))
            for k, length in zip(truth, lengths, strict=True)
        ]
        paths["unlabelled"] = out_dir / "unlabelled.csv"
        with atomic_path(paths["unlabelled"]) as tmp:
            tmp.write_text(header + "".join(lines))
        paths["unlabelled_truth"] = out_dir / "unlabelled_truth.csv"
        rows = [
            f"{line.split(',', 1)[0]},{CAP_CLASSES[names[k]]}\n"
            for line, k in zip(lines, truth, strict=True)
        ]
        with atomic_path(paths["unlabelled_truth"]) as tmp:
            tmp.write_text("read_id,cap_class\n" + "".join(rows))
    logger.info(
        "simulated %d reads in each of %d cap classes (+ %d unlabelled) in %s",
        n_per_class,
        len(CAP_CLASSES),
        n_unlabelled,
        out_dir,
    )
    return paths
