"""maxATAC training batches: ROI and random windows paired with a cell line's ATAC and binding.

An example is a 1024-bp window. Its input ``X`` (1024, 5) holds the one-hot DNA (channels A, C,
G, T; N and other codes all zero) and the cell line's normalized ATAC signal; its target ``y``
(32,) bins the cell line's binding track into 32-bp bins (reference §4).

Deliberate deviations from maxATAC (reference §13/§14):

- only the cell lines given in ``cells`` (the Train cell lines) are ever read, also by the
  pan-cell shuffle and for random windows (the original leaked Test cell lines);
- ``rand_ratio > 0`` works, with random windows supplied by the caller (see
  :func:`nucflow.data.roi.random_windows`, which filters blacklist and N runs);
- ``rev_comp`` is a true reverse complement (:func:`reverse_complement`);
- the batch order is shuffled (the original put ROI examples first, then random ones);
- the validation set is fixed and seeded (:func:`fixed_validation_set`);
- NaN signal is read as 0 in the ATAC channel too;
- tracks are read once per (chromosome, cell line) group and batch, not once per example.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from nucflow.data.track_cache import one_hot as one_hot_codes
from nucflow.errors import InputError

WIDTH = 1024
"""Input window length in bp."""

BINS = 32
"""Target bins per window (32 bp each)."""

_BASE_CHANNELS = 4
_RC_CHANNELS = np.array([3, 2, 1, 0, 4])  # reversed ACGT order is the complement; ATAC stays


class TrackSource(Protocol):
    """Reads genome sequence codes and bigWig signal for many windows of one chromosome."""

    def codes(self, chrom: str, starts: np.ndarray, width: int = WIDTH) -> np.ndarray:
        """Base codes, uint8 ``(n, width)``: A 0, C 1, G 2, T 3, N (or other) 4."""
        ...

    def signal(
        self,
        bigwig_path: str | os.PathLike[str],
        chrom: str,
        starts: np.ndarray,
        width: int = WIDTH,
    ) -> np.ndarray:
        """bigWig values, float32 ``(n, width)``, with NaN (no data) already replaced by 0."""
        ...


def bin_targets(
    binding: np.ndarray, bins: int = BINS, *, quantitative: bool = False, scale: float = 1.0
) -> np.ndarray:
    """Bin a per-base binding track ``(n, L)`` into ``(n, bins)`` float32 targets.

    Binary (default): a bin is 1.0 when MORE than half of its positions have a value > 0
    (with 32-bp bins: 17 or more of 32), else 0.0. On maxATAC's 0/1 binding tracks this equals
    the original rule "bin sum > 16"; on a non-binary track it still means "more than half of
    the bin is bound", whatever the signal scale (the original would threshold summed coverage).
    Quantitative: the mean value per bin times ``scale`` (quant-maxATAC). NaN counts as 0.
    """
    b = np.nan_to_num(np.asarray(binding, dtype=np.float32), nan=0.0)
    if b.ndim != 2:
        raise ValueError(f"binding must be (n, length), got shape {b.shape}")
    if bins <= 0 or b.shape[1] % bins:
        raise ValueError(f"window length {b.shape[1]} is not divisible into {bins} bins")
    per_bin = b.reshape(b.shape[0], bins, b.shape[1] // bins)
    if quantitative:
        return (per_bin.mean(axis=2) * np.float32(scale)).astype(np.float32)
    positive = (per_bin > 0).sum(axis=2)
    return (2 * positive > per_bin.shape[2]).astype(np.float32)


def reverse_complement(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True reverse complement of inputs ``(..., L, 5)`` and targets ``(..., bins)``.

    Every channel is reversed along positions; the base channels swap A<->T and C<->G (the
    reversed ACGT channel order); the ATAC channel is only reversed; the target bins are
    reversed. Applying it twice gives the inputs back.
    """
    xa = np.asarray(x)
    ya = np.asarray(y)
    if xa.shape[-1] != _BASE_CHANNELS + 1:
        raise ValueError(f"inputs must have 5 channels (A, C, G, T, ATAC), got shape {xa.shape}")
    x_rc = np.ascontiguousarray(xa[..., ::-1, :][..., _RC_CHANNELS])
    y_rc = np.ascontiguousarray(ya[..., ::-1])
    return x_rc, y_rc


@dataclass
class TrackBatches:
    """Draws maxATAC batches from an ROI pool and the Train cell lines' tracks.

    ``pool`` holds ROI rows (``chrom, start, end, cell_line``) of one split's chromosomes;
    ``cells`` maps each Train cell line to its (ATAC bigWig, binding bigWig). Only those files
    are read. ``random_region(rng, n)`` returns ``n`` random windows (``chrom, start``) and is
    required when ``rand_ratio > 0``. If ``test_cells`` is given, none of them may be in
    ``cells``. ROI rows are re-centred to ``width`` bp on their midpoint (a no-op for pools from
    :func:`nucflow.data.roi.roi_pool`).
    """

    pool: pd.DataFrame
    cells: Mapping[str, tuple[Path, Path]]
    source: TrackSource
    batch_size: int
    rand_ratio: float = 0.0
    shuffle_cell_type: bool = True
    rev_comp: bool = False
    quantitative: bool = False
    target_scale: float = 1.0
    random_region: Callable[[np.random.Generator, int], pd.DataFrame] | None = None
    test_cells: Collection[str] = ()
    width: int = WIDTH
    bins: int = BINS
    _cell_names: list[str] = field(init=False, repr=False)
    _roi_chrom: np.ndarray = field(init=False, repr=False)
    _roi_start: np.ndarray = field(init=False, repr=False)
    _roi_cell: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        """Check the configuration and index the pool."""
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0.0 <= self.rand_ratio <= 1.0:
            raise ValueError(f"rand_ratio must be in [0, 1], got {self.rand_ratio}")
        if self.n_rand > 0 and self.random_region is None:
            raise ValueError("rand_ratio > 0 needs a random_region function")
        if self.width % self.bins:
            raise ValueError(f"width {self.width} is not divisible into {self.bins} bins")
        if not self.cells:
            raise InputError("track batches: no Train cell lines (expected at least one)")
        leaked = sorted(set(self.cells) & set(self.test_cells))
        if leaked:
            raise InputError(
                f"track batches: Test cell line(s) {', '.join(leaked)} among the training "
                "cells (expected Train cell lines only)"
            )
        missing = [c for c in ("chrom", "start", "end", "cell_line") if c not in self.pool.columns]
        if missing:
            raise InputError(f"ROI pool: missing column(s) {', '.join(missing)}")
        if len(self.pool) < self.n_roi:
            raise InputError(
                f"ROI pool has {len(self.pool)} rows, fewer than the {self.n_roi} ROI examples "
                "drawn without replacement per batch"
            )
        self._cell_names = sorted(self.cells)
        starts = self.pool["start"].to_numpy(dtype=np.int64)
        ends = self.pool["end"].to_numpy(dtype=np.int64)
        self._roi_chrom = self.pool["chrom"].astype(str).to_numpy(dtype=object)
        self._roi_start = starts + (ends - starts) // 2 - self.width // 2
        self._roi_cell = self.pool["cell_line"].astype(str).to_numpy(dtype=object)
        if not self.shuffle_cell_type:
            unknown = sorted(set(self._roi_cell) - set(self.cells))
            if unknown:
                raise InputError(
                    f"ROI pool: cell line {unknown[0]} has no tracks (without the cell-type "
                    "shuffle every ROI's own cell line must be a Train cell line)"
                )

    @property
    def n_roi(self) -> int:
        """ROI examples per batch: ``round(batch_size * (1 - rand_ratio))``."""
        return round(self.batch_size * (1.0 - self.rand_ratio))

    @property
    def n_rand(self) -> int:
        """Random-window examples per batch."""
        return self.batch_size - self.n_roi

    def draw(self, rng: np.random.Generator) -> pd.DataFrame:
        """Draw one batch plan, in final batch order.

        Columns ``chrom, start`` (window start), ``cell_line``, ``random`` (a random window, not
        an ROI) and ``rev_comp`` (reverse-complemented). ROI rows are drawn without replacement.
        """
        n_roi, n_rand = self.n_roi, self.n_rand
        rows = rng.choice(len(self.pool), size=n_roi, replace=False)
        chrom = self._roi_chrom[rows]
        start = self._roi_start[rows]
        names = np.asarray(self._cell_names, dtype=object)
        if self.shuffle_cell_type:
            cell = names[rng.integers(len(names), size=n_roi)]
        else:
            cell = self._roi_cell[rows]
        if n_rand > 0:
            assert self.random_region is not None  # checked in __post_init__
            regions = self.random_region(rng, n_rand)
            if len(regions) != n_rand:
                raise ValueError(f"random_region returned {len(regions)} windows, not {n_rand}")
            chrom = np.concatenate([chrom, regions["chrom"].astype(str).to_numpy(dtype=object)])
            start = np.concatenate([start, regions["start"].to_numpy(dtype=np.int64)])
            cell = np.concatenate([cell, names[rng.integers(len(names), size=n_rand)]])
        is_random = np.arange(self.batch_size) >= n_roi
        if self.rev_comp:
            flip = rng.random(self.batch_size) < 0.5
        else:
            flip = np.zeros(self.batch_size, dtype=bool)
        order = rng.permutation(self.batch_size)
        return pd.DataFrame(
            {
                "chrom": chrom[order],
                "start": start[order].astype(np.int64),
                "cell_line": cell[order],
                "random": is_random[order],
                "rev_comp": flip[order],
            }
        )

    def assemble(self, plan: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Read the tracks of a :meth:`draw` plan: float32 ``X (n, width, 5)``, ``y (n, bins)``.

        The sequence is read once per chromosome and each bigWig once per (chromosome, cell
        line), with the vector of window starts.
        """
        n = len(plan)
        x = np.zeros((n, self.width, _BASE_CHANNELS + 1), dtype=np.float32)
        binding = np.zeros((n, self.width), dtype=np.float32)
        starts = plan["start"].to_numpy(dtype=np.int64)
        for chrom, rows in plan.groupby("chrom", sort=True).indices.items():
            codes = self.source.codes(str(chrom), starts[rows], self.width)
            x[rows, :, :_BASE_CHANNELS] = one_hot_codes(self._checked(codes, chrom, "sequence"))
        groups = plan.groupby(["chrom", "cell_line"], sort=True).indices
        for (chrom, cell), rows in groups.items():
            atac_path, binding_path = self.cells[cell]
            atac = self.source.signal(atac_path, str(chrom), starts[rows], self.width)
            x[rows, :, _BASE_CHANNELS] = self._checked(atac, chrom, atac_path)
            bound = self.source.signal(binding_path, str(chrom), starts[rows], self.width)
            binding[rows] = self._checked(bound, chrom, binding_path)
        np.nan_to_num(x, copy=False, nan=0.0)
        y = bin_targets(binding, self.bins, quantitative=self.quantitative, scale=self.target_scale)
        flip = plan["rev_comp"].to_numpy(dtype=bool)
        if flip.any():
            x[flip], y[flip] = reverse_complement(x[flip], y[flip])
        return x, y

    def batch(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One shuffled batch: float32 ``X (batch_size, width, 5)`` and ``y (batch_size, bins)``."""
        return self.assemble(self.draw(rng))

    def _checked(self, values: np.ndarray, chrom: object, what: object) -> np.ndarray:
        """Source output must be one row of ``width`` values per requested window."""
        arr = np.asarray(values)
        if arr.ndim != 2 or arr.shape[1] != self.width:
            raise ValueError(f"{what} on {chrom}: track source returned shape {arr.shape}")
        return arr


def fixed_validation_plans(batches: TrackBatches, n_batches: int, seed: int) -> list[pd.DataFrame]:
    """The plans (see :meth:`TrackBatches.draw`) of a fixed validation set seeded by ``seed``.

    Re-assembling these each epoch gives the same examples as :func:`fixed_validation_set`
    without holding the arrays in memory.
    """
    if n_batches < 1:
        raise ValueError(f"n_batches must be >= 1, got {n_batches}")
    rng = np.random.default_rng(seed)
    return [batches.draw(rng) for _ in range(n_batches)]


def fixed_validation_set(
    batches: TrackBatches,
    n_batches: int,
    seed: int,
    directory: str | os.PathLike[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A fixed validation set: ``n_batches`` batches drawn with ``default_rng(seed)``, stacked.

    Built once and reused every epoch (the original resampled it each epoch). ``rev_comp`` and
    the other options apply as configured. X takes ``n_batches * batch_size * width * 5 * 4``
    bytes (2 GiB at maxATAC's 100 x 1000): with ``directory`` the arrays are memory-mapped
    ``.npy`` files written there batch by batch (``validation_x.npy``, ``validation_y.npy``),
    so the set lives in the page cache rather than in the process's own memory.
    """
    plans = fixed_validation_plans(batches, n_batches, seed)
    size = batches.batch_size
    shapes = {
        "x": (n_batches * size, batches.width, _BASE_CHANNELS + 1),
        "y": (n_batches * size, batches.bins),
    }
    if directory is None:
        x, y = (np.empty(shape, dtype=np.float32) for shape in shapes.values())
    else:
        x, y = (
            np.lib.format.open_memmap(
                Path(directory) / f"validation_{name}.npy", "w+", np.float32, shape
            )
            for name, shape in shapes.items()
        )
    for i, plan in enumerate(plans):
        x[i * size : (i + 1) * size], y[i * size : (i + 1) * size] = batches.assemble(plan)
    return x, y
