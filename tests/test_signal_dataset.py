"""Time-warp augmentation and the signal dataset (batched fetching, shuffling of variants)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nucflow.data.signal_dataset import SignalDataset, time_warp
from nucflow.errors import InputError

T = 64


def _row(n: int, length: int = T, dtype: type = np.float32, offset: float = 0.0) -> np.ndarray:
    """A centred real span of n samples (a ramp plus a sine) with NaN padding, as stored."""
    row = np.full(length, np.nan, dtype=dtype)
    t = np.arange(n, dtype=np.float64)
    values = offset + t / max(n - 1, 1) + 0.3 * np.sin(t / 3.0)
    if n <= length:
        left = (length - n) // 2
        row[left : left + n] = values
    else:
        start = (n - length) // 2
        row[:] = values[start : start + length]
    return row


def _real(row: np.ndarray | torch.Tensor) -> np.ndarray:
    values = np.asarray(row)
    return np.flatnonzero(~np.isnan(values))


def _rows(n_examples: int, dtype: type = np.float32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = np.stack(
        [_row(int(rng.integers(20, 41)), dtype=dtype, offset=float(i)) for i in range(n_examples)]
    )
    labels = np.arange(n_examples) % 4
    return x, labels


# ---------------------------------------------------------------- time_warp


@pytest.mark.parametrize("n,factor", [(40, 0.8), (40, 1.2), (31, 0.55), (30, 1.5), (50, 0.9)])
def test_time_warp_length_centred_and_nan_padding(n: int, factor: float) -> None:
    warped = time_warp(_row(n), factor)
    assert warped.shape == (T,)
    assert warped.dtype == np.float32
    m = math.floor(n * factor)
    real = _real(warped)
    assert len(real) == m  # fits in T
    left = (T - m) // 2
    assert real[0] == left and real[-1] == left + m - 1  # contiguous, centred
    assert np.isnan(warped[:left]).all() and np.isnan(warped[left + m :]).all()


def test_time_warp_endpoints_and_linearity() -> None:
    row = _row(40)
    real = row[~np.isnan(row)]
    for factor in (0.7, 1.3):
        warped = time_warp(row, factor)
        span = warped[~np.isnan(warped)]
        assert span[0] == pytest.approx(real[0])
        assert span[-1] == pytest.approx(real[-1])
        expected = np.interp(np.linspace(0, 39, len(span)), np.arange(40), real)
        np.testing.assert_allclose(span, expected, rtol=1e-6)


def test_time_warp_factor_one_is_identity() -> None:
    for n in (20, 21, 40, 63, T):
        row = _row(n)
        np.testing.assert_array_equal(time_warp(row, 1.0), row)


def test_time_warp_expanded_beyond_t_is_centre_cropped() -> None:
    n, factor = 60, 1.2
    row = _row(n)
    warped = time_warp(row, factor)
    assert not np.isnan(warped).any()
    m = math.floor(n * factor)
    full = np.interp(np.linspace(0, n - 1, m), np.arange(n), row[~np.isnan(row)])
    start = (m - T) // 2
    np.testing.assert_allclose(warped, full[start : start + T], rtol=1e-6)


def test_time_warp_full_row_squished_gets_nan_padding() -> None:
    row = _row(T)  # no padding at all
    warped = time_warp(row, 0.75)
    assert len(_real(warped)) == 48
    assert np.isnan(warped[:8]).all() and np.isnan(warped[-8:]).all()


def test_time_warp_never_warps_padding() -> None:
    """The real span is resampled on its own: values stay within the signal's range."""
    row = _row(30)
    warped = time_warp(row, 1.4)
    real = row[~np.isnan(row)]
    span = warped[~np.isnan(warped)]
    assert span.min() >= real.min() - 1e-6 and span.max() <= real.max() + 1e-6
    assert len(span) == 42


def test_time_warp_edge_cases() -> None:
    empty = np.full(T, np.nan, dtype=np.float32)
    assert np.isnan(time_warp(empty, 0.8)).all()
    one = empty.copy()
    one[T // 2] = 3.0
    assert len(_real(time_warp(one, 0.5))) == 1  # at least one sample
    assert np.nanmax(time_warp(one, 3.0)) == pytest.approx(3.0)
    half = time_warp(_row(40, dtype=np.float16), 0.5)
    assert half.dtype == np.float32
    with pytest.raises(InputError):
        time_warp(_row(40), 0.0)
    with pytest.raises(InputError):
        time_warp(_row(40), float("nan"))
    with pytest.raises(InputError):
        time_warp(np.zeros((2, T)), 1.0)


# ---------------------------------------------------------------- dataset basics


def test_dataset_lengths_and_original_variant() -> None:
    x, labels = _rows(10)
    plain = SignalDataset(x, labels)
    augmented = SignalDataset(x, labels, augment=True)
    assert len(plain) == 10
    assert len(augmented) == 30
    for i in range(10):
        xi, yi = plain[i]
        assert xi.dtype == torch.float32 and xi.shape == (T,)
        assert yi.dtype == torch.int64 and yi.shape == () and int(yi) == labels[i]
        np.testing.assert_array_equal(xi.numpy(), x[i])
        x0, y0 = augmented[3 * i]
        np.testing.assert_array_equal(x0.numpy(), x[i])
        assert int(y0) == labels[i]
        for v in (1, 2):
            assert int(augmented[3 * i + v][1]) == labels[i]
    np.testing.assert_array_equal(plain[-1][0].numpy(), x[-1])
    with pytest.raises(IndexError):
        plain[10]
    with pytest.raises(IndexError):
        augmented[30]


def test_squished_and_expanded_differ() -> None:
    row = _row(40)
    squished, expanded = time_warp(row, 0.85), time_warp(row, 1.15)
    assert not np.array_equal(squished, row, equal_nan=True)
    assert not np.array_equal(expanded, row, equal_nan=True)
    assert not np.array_equal(squished, expanded, equal_nan=True)
    # in the dataset: a draw u < 1/n leaves the length (and the row) unchanged, so only most
    # variants differ from the original
    x, labels = _rows(20)
    data = SignalDataset(x, labels, augment=True, max_warp=0.2, seed=3)
    differ = 0
    for e in range(20):
        n = len(_real(x[e]))
        original = data[3 * e][0].numpy()
        squished = data[3 * e + 1][0].numpy()
        expanded = data[3 * e + 2][0].numpy()
        assert len(_real(squished)) <= n <= len(_real(expanded))
        differ += not np.array_equal(squished, original, equal_nan=True)
        differ += not np.array_equal(expanded, original, equal_nan=True)
    assert differ >= 30


def test_float16_input_gives_float32() -> None:
    x, labels = _rows(4, dtype=np.float16)
    data = SignalDataset(x, labels, augment=True)
    for i in range(len(data)):
        assert data[i][0].dtype == torch.float32
    np.testing.assert_array_equal(data[0][0].numpy(), x[0].astype(np.float32))
    batch = data.__getitems__([0, 1, 2, 3])
    assert all(item[0].dtype == torch.float32 for item in batch)


def test_memmap_input(tmp_path) -> None:
    x, labels = _rows(5, dtype=np.float16)
    path = tmp_path / "x.npy"
    np.save(path, x)
    mapped = np.load(path, mmap_mode="r")
    data = SignalDataset(mapped, labels)
    batch = data.__getitems__([4, 0, 2])
    np.testing.assert_array_equal(batch[0][0].numpy(), x[4].astype(np.float32))


@pytest.mark.parametrize(
    "kw",
    [
        {"x": np.zeros(T, dtype=np.float32)},
        {"x": np.zeros((3, T), dtype=np.int64)},
        {"labels": np.arange(2)},
        {"labels": np.array([0.0, 0.5, 1.0])},
        {"max_warp": 1.0},
        {"max_warp": -0.1},
    ],
)
def test_dataset_bad_input(kw: dict) -> None:
    args = {"x": np.zeros((3, T), dtype=np.float32), "labels": np.arange(3)} | kw
    x, labels = args.pop("x"), args.pop("labels")
    with pytest.raises(InputError):
        SignalDataset(x, labels, **args)


# ---------------------------------------------------------------- randomness


def test_fresh_draws_per_fetch_and_reproducible_by_seed() -> None:
    x, labels = _rows(3)
    a = SignalDataset(x, labels, augment=True, seed=11)
    b = SignalDataset(x, labels, augment=True, seed=11)
    c = SignalDataset(x, labels, augment=True, seed=12)
    first_a = [a[i][0].numpy() for i in range(9)]
    second_a = [a[i][0].numpy() for i in range(9)]  # a second "epoch"
    first_b = [b[i][0].numpy() for i in range(9)]
    first_c = [c[i][0].numpy() for i in range(9)]
    for i in range(9):
        np.testing.assert_array_equal(first_a[i], first_b[i])  # same seed → same draws
        if i % 3 == 0:
            np.testing.assert_array_equal(first_a[i], second_a[i])  # originals never change
    warped = [i for i in range(9) if i % 3]
    assert any(not np.array_equal(first_a[i], second_a[i], equal_nan=True) for i in warped)
    assert any(not np.array_equal(first_a[i], first_c[i], equal_nan=True) for i in warped)


def test_squish_and_expand_magnitudes_independent() -> None:
    """With one shared u, len(squished) + len(expanded) would stay within 2 of 2n."""
    n = 40
    x = _row(n)[None, :]
    data = SignalDataset(x, np.array([0]), augment=True, max_warp=0.3, seed=5)
    sums, squish, expand = [], [], []
    for _ in range(300):
        s = len(_real(data[1][0]))
        e = len(_real(data[2][0]))
        assert math.floor(n * 0.7) <= s <= n and n <= e <= math.floor(n * 1.3) + 1
        squish.append(s)
        expand.append(e)
        sums.append(s + e)
    assert max(sums) - min(sums) > 6
    assert abs(np.corrcoef(squish, expand)[0, 1]) < 0.3
    # u covers the range: squished lengths from near 0.7n to near n
    assert min(squish) <= 30 and max(squish) >= 38
    assert max(expand) >= 50


# ---------------------------------------------------------------- batched fetching


def test_getitems_matches_getitem_plain() -> None:
    x, labels = _rows(12, dtype=np.float16)
    data = SignalDataset(x, labels)
    indices = [7, 3, 3, 11, 0, -1]
    batch = data.__getitems__(indices)
    assert len(batch) == len(indices)
    for (bx, by), i in zip(batch, indices, strict=True):
        gx, gy = data[i]
        np.testing.assert_array_equal(bx.numpy(), gx.numpy())
        assert by.dtype == torch.int64 and int(by) == int(gy)
    assert data.__getitems__([]) == []
    with pytest.raises(IndexError):
        data.__getitems__([0, 12])


def test_getitems_matches_getitem_augmented_same_seed() -> None:
    x, labels = _rows(5)
    a = SignalDataset(x, labels, augment=True, seed=2)
    b = SignalDataset(x, labels, augment=True, seed=2)
    indices = [14, 0, 5, 9, 4, 12, 1]
    batch = a.__getitems__(indices)
    for (bx, by), i in zip(batch, indices, strict=True):
        gx, gy = b[i]
        np.testing.assert_array_equal(bx.numpy(), gx.numpy())
        assert int(by) == int(gy)


def test_dataloader_shuffle_spreads_variants() -> None:
    n = 30
    x, labels = _rows(n)
    data = SignalDataset(x, labels, augment=True, seed=0)
    generator = torch.Generator().manual_seed(0)
    loader = torch.utils.data.DataLoader(data, batch_size=8, shuffle=True, generator=generator)
    xs, ys = [], []
    for bx, by in loader:
        assert bx.dtype == torch.float32 and bx.shape[1] == T
        assert by.dtype == torch.int64
        xs.append(bx)
        ys.append(by)
    x_all = torch.cat(xs).numpy()
    y_all = torch.cat(ys).numpy()
    assert x_all.shape == (3 * n, T)
    # identify each item's example by its offset (the ramp starts at the example index)
    first = np.array([row[~np.isnan(row)][0] for row in x_all])
    example = np.rint(first).astype(int)
    np.testing.assert_array_equal(np.sort(example), np.repeat(np.arange(n), 3))
    np.testing.assert_array_equal(y_all, labels[example])
    # the three variants of an example are not in consecutive positions
    consecutive = sum(
        1
        for e in range(n)
        if np.ptp(np.flatnonzero(example == e)) == 2  # all three in a run of 3
    )
    assert consecutive < n // 3
    # and triplets are spread over different batches
    batch_of = np.arange(3 * n) // 8
    same_batch = sum(1 for e in range(n) if len(set(batch_of[example == e])) == 1)
    assert same_batch < n // 3


def test_dataloader_uses_getitems() -> None:
    class NoSingle(SignalDataset):
        def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
            raise AssertionError("the loader should fetch whole batches")

    x, labels = _rows(9)
    data = NoSingle(x, labels, augment=True)
    loader = torch.utils.data.DataLoader(data, batch_size=4, shuffle=True)
    assert sum(len(by) for _, by in loader) == 27


def test_dataloader_epochs_differ() -> None:
    x, labels = _rows(4)
    data = SignalDataset(x, labels, augment=True, seed=1)
    loader = torch.utils.data.DataLoader(data, batch_size=12, shuffle=False)
    epoch1 = next(iter(loader))[0].numpy()
    epoch2 = next(iter(loader))[0].numpy()
    np.testing.assert_array_equal(epoch1[0::3], epoch2[0::3])
    assert not np.array_equal(epoch1[1::3], epoch2[1::3], equal_nan=True)


def test_dataloader_workers_draw_differently() -> None:
    """Two workers start from copies of one generator; they must not repeat each other."""
    x = np.stack([_row(40)] * 4)
    data = SignalDataset(x, np.zeros(4, dtype=np.int64), augment=True, seed=0)
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(data, batch_size=6, shuffle=False, num_workers=2)
    first, second = (batch[0].numpy() for batch in loader)  # one batch per worker
    # same examples and variants in both batches; the warps must differ
    assert not np.array_equal(first[1::3], second[1::3], equal_nan=True)
