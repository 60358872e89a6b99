"""MLM masking of tokens and nucleotides, random reading frames and the Noam schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nucflow.errors import InputError
from nucflow.tokenize import CLS_ID, FIRST_CONTENT_ID, MASK_ID, PAD_ID, SEP_ID, UNK_ID
from nucflow.train.masking import (
    IGNORE_INDEX,
    crop_reading_frame,
    first_reading_frame,
    mask_nucleotides,
    mask_tokens,
    random_reading_frame,
    reading_frame_offsets,
)
from nucflow.train.schedules import inverse_sqrt_warmup, noam_scheduler

VOCAB = 69  # 3-mers
ROWS, WIDTH = 512, 512


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _token_batch(rows: int = ROWS, width: int = WIDTH, seed: int = 0) -> torch.Tensor:
    """Rows ``CLS t1 … tn SEP PAD …`` with random lengths and a few UNK tokens."""
    rng = np.random.default_rng(seed)
    tokens = np.full((rows, width), PAD_ID, dtype=np.int32)
    lengths = rng.integers(width // 4, width, rows)  # content tokens; SEP fits after them
    lengths[:8] = width - 1  # some full rows without SEP
    for row, n in enumerate(lengths):
        tokens[row, 0] = CLS_ID
        tokens[row, 1 : n + 1] = rng.integers(FIRST_CONTENT_ID, VOCAB, n)
        if n + 1 < width:
            tokens[row, n + 1] = SEP_ID
    unk = rng.random(tokens.shape) < 0.01
    tokens[unk & (tokens >= FIRST_CONTENT_ID)] = UNK_ID
    return torch.from_numpy(tokens)


def _code_batch(rows: int = ROWS, width: int = WIDTH, seed: int = 0) -> torch.Tensor:
    """CSE codes: random bases with a few N, padding (5) after a random length."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 4, (rows, width)).astype(np.uint8)
    codes[rng.random(codes.shape) < 0.01] = 4
    lengths = rng.integers(width // 4, width + 1, rows)
    codes[np.arange(width)[None, :] >= lengths[:, None]] = 5
    return torch.from_numpy(codes)


def _within(observed: float, expected: float, n: float, p: float) -> None:
    """``observed`` share within 5 binomial standard deviations of ``expected``."""
    sd = math.sqrt(p * (1 - p) / n)
    assert abs(observed - expected) < 5 * sd, (observed, expected, sd)


@pytest.mark.parametrize("mask_size", [1, 3])
def test_token_selection_rate_and_corruption_shares(mask_size):
    tokens = _token_batch()
    inputs, targets = mask_tokens(tokens, VOCAB, 0.15, 0.8, 0.1, mask_size, _generator(1))
    assert inputs.dtype == tokens.dtype and targets.dtype == torch.int64
    eligible = (tokens >= FIRST_CONTENT_ID) | (tokens == UNK_ID)
    selected = targets != IGNORE_INDEX
    n_eligible = int(eligible.sum())
    # spans: blocks of mask_size positions are the independent sampling unit
    _within(float(selected.sum()) / n_eligible, 0.15, n_eligible / mask_size, 0.15)

    n = int(selected.sum())
    masked = selected & (inputs == MASK_ID)
    changed = selected & (inputs != MASK_ID) & (inputs != tokens)
    unchanged = selected & (inputs == tokens)
    content = VOCAB - FIRST_CONTENT_ID  # a random draw equals the original with 1/content
    _within(float(masked.sum()) / n, 0.8, n, 0.8)
    _within(float(changed.sum()) / n, 0.1 * (1 - 1 / content), n, 0.1)
    _within(float(unchanged.sum()) / n, 0.1 + 0.1 / content, n, 0.1)
    # random replacements are content ids
    replaced = inputs[selected & (inputs != MASK_ID) & (inputs != tokens)]
    assert replaced.min() >= FIRST_CONTENT_ID and replaced.max() < VOCAB
    # targets hold the originals; nothing else changes
    assert torch.equal(targets[selected], tokens[selected].long())
    assert torch.equal(inputs[~selected], tokens[~selected])


def test_specials_and_padding_are_never_selected():
    tokens = _token_batch(rows=256, width=128)
    inputs, targets = mask_tokens(tokens, VOCAB, 0.9, 0.8, 0.1, 4, _generator(2))
    special = (tokens == CLS_ID) | (tokens == SEP_ID) | (tokens == PAD_ID)
    assert (targets[special] == IGNORE_INDEX).all()
    assert torch.equal(inputs[special], tokens[special])
    # UNK is content: it can be selected
    assert (targets[tokens == UNK_ID] != IGNORE_INDEX).any()


def _runs(row: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each run of True in a boolean row."""
    padded = np.concatenate([[False], row, [False]]).astype(np.int8)
    starts = np.flatnonzero(np.diff(padded) == 1)
    stops = np.flatnonzero(np.diff(padded) == -1)
    return list(zip(starts.tolist(), (stops - starts).tolist(), strict=True))


@pytest.mark.parametrize("mask_size", [2, 3, 5])
def test_spans_have_mask_size(mask_size):
    tokens = _token_batch(rows=128, width=256, seed=3)
    _, targets = mask_tokens(tokens, VOCAB, 0.15, 0.8, 0.1, mask_size, _generator(4))
    selected = (targets != IGNORE_INDEX).numpy()
    eligible = ((tokens >= FIRST_CONTENT_ID) | (tokens == UNK_ID)).numpy()
    starts_mod = set()
    interior = 0
    for row in range(len(tokens)):
        content = np.flatnonzero(eligible[row])
        first, last = content[0], content[-1]
        for start, length in _runs(selected[row]):
            if start > first and start + length - 1 < last:
                assert length % mask_size == 0, (row, start, length)
                starts_mod.add(start % mask_size)
                interior += 1
    assert interior > 100
    assert starts_mod == set(range(mask_size))  # spans start in every phase


def test_same_seed_same_masks():
    tokens = _token_batch(rows=64, width=128)
    first = mask_tokens(tokens, VOCAB, 0.15, 0.8, 0.1, 2, _generator(5))
    second = mask_tokens(tokens, VOCAB, 0.15, 0.8, 0.1, 2, _generator(5))
    other = mask_tokens(tokens, VOCAB, 0.15, 0.8, 0.1, 2, _generator(6))
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not torch.equal(first[1], other[1])
    codes = _code_batch(rows=64, width=128)
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            mask_nucleotides(codes, 0.15, 0.8, 0.1, 1, _generator(7)),
            mask_nucleotides(codes, 0.15, 0.8, 0.1, 1, _generator(7)),
            strict=True,
        )
    )


@pytest.mark.parametrize("mask_size", [1, 4])
def test_nucleotide_masking(mask_size):
    codes = _code_batch()
    inputs, targets = mask_nucleotides(codes, 0.15, 0.8, 0.1, mask_size, _generator(8))
    assert inputs.dtype == codes.dtype and inputs.shape == codes.shape
    selected = targets != IGNORE_INDEX
    bases = codes < 4
    assert not selected[~bases].any()  # N (4) and padding (5) never selected
    assert torch.equal(inputs[~selected], codes[~selected])
    assert torch.equal(targets[selected], codes[selected].long())
    assert targets[selected].max() <= 3
    n_bases = int(bases.sum())
    _within(float(selected.sum()) / n_bases, 0.15, n_bases / mask_size, 0.15)
    n = int(selected.sum())
    masked = selected & (inputs == 4)
    _within(float(masked.sum()) / n, 0.8, n, 0.8)
    changed = selected & (inputs != 4) & (inputs != codes)
    _within(float(changed.sum()) / n, 0.1 * 3 / 4, n, 0.1)
    assert inputs[selected & (inputs != 4)].max() <= 3  # random replacements are bases


def test_random_reading_frame():
    k = 9
    codes = _code_batch(rows=4000, width=(32 - 1) * k + k - 1)
    cropped = random_reading_frame(codes, k, _generator(9))
    offsets = reading_frame_offsets(len(codes), k, _generator(9))
    assert cropped.shape == (len(codes), 31 * k)
    assert offsets.min() >= 0 and offsets.max() <= k - 1
    counts = np.bincount(offsets.numpy(), minlength=k)
    expected = len(codes) / k
    assert np.all(np.abs(counts - expected) < 5 * math.sqrt(expected * (1 - 1 / k)))
    for row in range(0, len(codes), 97):
        start = int(offsets[row])
        assert torch.equal(cropped[row], codes[row, start : start + 31 * k])
    assert torch.equal(crop_reading_frame(codes, offsets, k), cropped)
    assert torch.equal(first_reading_frame(codes, k), codes[:, : 31 * k])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cpu_generator_gives_the_same_masks_on_the_gpu():
    tokens = _token_batch(rows=64, width=128)
    cpu = mask_tokens(tokens, VOCAB, 0.15, 0.8, 0.1, 3, _generator(10))
    gpu = mask_tokens(tokens.cuda(), VOCAB, 0.15, 0.8, 0.1, 3, _generator(10))
    assert all(torch.equal(a, b.cpu()) for a, b in zip(cpu, gpu, strict=True))
    codes = _code_batch(rows=64, width=26)
    cropped = random_reading_frame(codes.cuda(), 3, _generator(11))
    assert torch.equal(cropped.cpu(), random_reading_frame(codes, 3, _generator(11)))


@pytest.mark.parametrize(
    "settings",
    [(1.5, 0.8, 0.1, 1), (0.15, 0.8, 0.3, 1), (0.15, -0.1, 0.1, 1), (0.15, 0.8, 0.1, 0)],
)
def test_bad_masking_settings(settings):
    with pytest.raises(InputError):
        mask_tokens(_token_batch(rows=2, width=16), VOCAB, *settings, _generator(0))


@pytest.mark.parametrize(
    ("step", "expected", "digits"),
    [(8000, 5.0e-5, 2), (32000, 2.02e-4, 3), (64000, 1.43e-4, 3), (500000, 5.1e-5, 2)],
)
def test_noam_values(step, expected, digits):
    """The published figures (lncRNA-Py reference §5.2), to the digits they are given with."""
    value = inverse_sqrt_warmup(step, 768, 32000)
    assert float(f"{value:.{digits}g}") == pytest.approx(expected)


def test_noam_peaks_at_warmup_and_step_zero_is_step_one():
    values = [inverse_sqrt_warmup(s, 768, 32000) for s in (31999, 32000, 32001)]
    assert values[1] == max(values)
    assert inverse_sqrt_warmup(0, 768, 32000) == inverse_sqrt_warmup(1, 768, 32000)
    assert inverse_sqrt_warmup(100, 64, 0) == pytest.approx(64**-0.5 * 100**-0.5)
    with pytest.raises(InputError):
        inverse_sqrt_warmup(1, 768, -1)


def test_noam_scheduler_multiplies_the_base_lr():
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([weight], lr=1.0, betas=(0.9, 0.98))
    scheduler = noam_scheduler(optimizer, 768, 32000)
    for step in range(1, 6):
        # the step-th optimizer step runs at the factor of step
        assert optimizer.param_groups[0]["lr"] == pytest.approx(
            inverse_sqrt_warmup(step, 768, 32000)
        )
        optimizer.step()
        scheduler.step()
    half = torch.optim.SGD([weight], lr=0.5)
    noam_scheduler(half, 768, 32000)
    assert half.param_groups[0]["lr"] == pytest.approx(0.5 * inverse_sqrt_warmup(1, 768, 32000))
