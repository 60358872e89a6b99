"""Fixed-length signal rows as a torch dataset, with Capfinder's on-the-fly time-warp augmentation.

Rows have length T and mark padding with NaN around a centred, contiguous real span. With
augmentation each example yields three items (original, squished, expanded) at separate
indices, so a shuffled loader spreads them over batches. Two defects of the original are fixed:
only the real span is warped (never the padding), and squish and expand draw independent
magnitudes.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np
import torch

from nucflow.data.signal_etl import fit_to_length
from nucflow.errors import InputError

# Tolerance against float rounding in floor(n · factor) (e.g. 100 · 0.29 must give 29, not 28).
_FLOOR_EPS = 1e-9


def time_warp(row: np.ndarray, factor: float) -> np.ndarray:
    """Resample the real (non-NaN) span of ``row`` by ``factor`` and re-centre it in length T.

    The n real samples are linearly interpolated (endpoints aligned) to m = max(1, ⌊n·factor⌋)
    samples. If m ≤ T they are placed at offset ⌊(T−m)/2⌋ with NaN padding either side;
    otherwise the central T samples (from ⌊(m−T)/2⌋) are kept. Returns a new float32 array of
    length T; a row with no real samples comes back as all NaN.
    """
    values = np.asarray(row, dtype=np.float32)
    if values.ndim != 1:
        raise InputError(f"time_warp expects one row (1-D), got shape {values.shape}")
    if not (math.isfinite(factor) and factor > 0):
        raise InputError(f"time_warp factor must be a finite number > 0, got {factor}")
    real = values[~np.isnan(values)]
    n = real.shape[0]
    if n == 0:
        return np.full(values.shape[0], np.nan, dtype=np.float32)
    m = max(1, math.floor(n * factor + _FLOOR_EPS))
    positions = np.linspace(0.0, n - 1.0, m)
    warped = np.interp(positions, np.arange(n, dtype=np.float64), real)
    return fit_to_length(warped, values.shape[0])


class SignalDataset(torch.utils.data.Dataset):
    """Rows of ``x`` (N, T) with integer ``labels`` (N,), optionally tripled by time warping.

    Without augmentation item i is ``(x[i] as float32, labels[i])``. With augmentation there
    are 3N items: item i is example i // 3, variant i % 3 — 0 the stored row, 1 squished by
    1 − u, 2 expanded by 1 + u, with a fresh u ~ U(0, max_warp) drawn independently for every
    fetch from a generator seeded with ``seed`` (so epochs differ, yet a run is reproducible).
    In DataLoader workers the generator is re-seeded from ``seed`` and the worker's torch seed
    so that workers do not repeat each other's draws. ``x`` is not copied (a memmap stays one).
    """

    def __init__(
        self,
        x: np.ndarray,
        labels: np.ndarray,
        *,
        augment: bool = False,
        max_warp: float = 0.2,
        seed: int = 0,
    ) -> None:
        if getattr(x, "ndim", None) != 2:
            raise InputError(f"signal rows must be a 2-D array (N, T), got shape {np.shape(x)}")
        if not np.issubdtype(x.dtype, np.floating):
            raise InputError(f"signal rows must be floating point, got dtype {x.dtype}")
        label_array = np.asarray(labels)
        if label_array.shape != (x.shape[0],):
            raise InputError(
                f"labels must have shape ({x.shape[0]},) to match the signal rows, "
                f"got {label_array.shape}"
            )
        if label_array.size and not np.all(np.equal(np.mod(label_array, 1), 0)):
            raise InputError("labels must be whole numbers (class ids)")
        if not (math.isfinite(max_warp) and 0 <= max_warp < 1):
            raise InputError(f"max_warp must be in [0, 1), got {max_warp}")
        self._x = x
        self._labels = label_array.astype(np.int64)
        self.augment = bool(augment)
        self.max_warp = float(max_warp)
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)
        self._worker_seed: int | None = None

    def __len__(self) -> int:
        return self._x.shape[0] * (3 if self.augment else 1)

    @property
    def num_examples(self) -> int:
        """N, the number of stored rows."""
        return int(self._x.shape[0])

    def _generator(self) -> np.random.Generator:
        """This process's generator: re-seeded once per DataLoader worker (per worker seed)."""
        info = torch.utils.data.get_worker_info()
        if info is not None and info.seed != self._worker_seed:
            self._rng = np.random.default_rng([self.seed, info.seed])
            self._worker_seed = info.seed
        return self._rng

    def _locate(self, index: Any) -> tuple[int, int]:
        """(example, variant) of item ``index``; negative indices count from the end."""
        i = operator.index(index)
        total = len(self)
        if i < 0:
            i += total
        if not 0 <= i < total:
            raise IndexError(f"index {index} out of range for {total} items")
        return (i // 3, i % 3) if self.augment else (i, 0)

    def _warped(self, example: int, variant: int) -> np.ndarray:
        u = float(self._generator().uniform(0.0, self.max_warp))
        factor = 1.0 - u if variant == 1 else 1.0 + u
        return time_warp(self._x[example], factor)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(float32 tensor (T,), int64 scalar tensor)`` of item ``index``."""
        example, variant = self._locate(index)
        if variant == 0:
            row = np.array(self._x[example], dtype=np.float32)
        else:
            row = self._warped(example, variant)
        return torch.from_numpy(row), torch.tensor(self._labels[example], dtype=torch.int64)

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Items ``indices`` at once, as the list of pairs the default collate expects.

        Stored (unwarped) rows are read in one sorted fancy-indexing step and cast to float32
        together; warped variants are drawn in index order, so the result equals
        ``[self[i] for i in indices]`` for the same generator state.
        """
        located = [self._locate(index) for index in indices]
        if not located:
            return []
        examples = np.fromiter((e for e, _ in located), dtype=np.int64, count=len(located))
        variants = np.fromiter((v for _, v in located), dtype=np.int64, count=len(located))
        rows = np.empty((len(located), self._x.shape[1]), dtype=np.float32)
        plain = variants == 0
        if plain.any():
            unique, inverse = np.unique(examples[plain], return_inverse=True)
            rows[plain] = np.asarray(self._x[unique], dtype=np.float32)[inverse]
        for k in np.flatnonzero(~plain):
            rows[k] = self._warped(int(examples[k]), int(variants[k]))
        xs = torch.from_numpy(rows)
        ys = torch.from_numpy(self._labels[examples])
        return [(xs[k], ys[k]) for k in range(len(located))]
