"""Masked-language-model corruption of token ids and CSE nucleotide codes, and reading frames.

Every function draws its random numbers from a caller-supplied :class:`torch.Generator` (never
from the global RNG), so a seeded generator reproduces the same masks. The numbers are drawn
on the generator's device and moved to the data's device, so a CPU generator gives the same
masks whether the batch lives on the CPU or the GPU. Everything is vectorised over the batch.

Selection with spans (``mask_size`` = m ≥ 1)
---------------------------------------------
Each row is cut into consecutive blocks of m positions, the block grid shifted by a random
phase in ``[0, m − 1]`` drawn per row (so spans start anywhere, not only at multiples of m).
Every block is selected independently with probability ``p_mlm``, and a position is selected
when its block is and it is eligible (a content token, or a base A/C/G/T). Each eligible
position lies in exactly one block, so it is selected with probability exactly ``p_mlm``:
the expected selection rate is ``p_mlm`` for any m, with no overlap correction needed, and
spans never overlap. A span is the m contiguous positions of a selected block; it is cut short
only where the block meets an ineligible position (CLS, SEP, PAD, padding code, N) or a row
edge, which is never covered. With m = 1 this is plain per-position Bernoulli selection.

Corruption of the selected positions: a share ``p_mask`` becomes the mask (``[MASK]`` for
tokens, code 4 = N for nucleotides), a share ``p_random`` a random content token / random base
(which may equal the original), and the rest stays unchanged. Targets hold the original
token id / base index at selected positions and :data:`IGNORE_INDEX` (−100, the default
``ignore_index`` of :func:`torch.nn.functional.cross_entropy`) elsewhere.
"""

from __future__ import annotations

import torch

from nucflow.errors import InputError
from nucflow.tokenize import FIRST_CONTENT_ID, MASK_ID, UNK_ID
from nucflow.tokenize.cse import CSE_N_CODE

IGNORE_INDEX = -100
"""Target value of positions that are not predicted."""
N_BASES = 4
"""Bases A, C, G, T have codes 0 … 3."""


def check_masking(p_mlm: float, p_mask: float, p_random: float, mask_size: int) -> None:
    """Raise :class:`InputError` unless the masking settings are valid probabilities / sizes."""
    for name, value in (("p_mlm", p_mlm), ("p_mask", p_mask), ("p_random", p_random)):
        if not 0.0 <= float(value) <= 1.0:
            raise InputError(f"{name} must be between 0 and 1, got {value!r}")
    if p_mask + p_random > 1.0 + 1e-9:
        raise InputError(f"p_mask + p_random must be at most 1, got {p_mask} + {p_random}")
    if isinstance(mask_size, bool) or not isinstance(mask_size, int) or mask_size < 1:
        raise InputError(f"mask_size must be an integer ≥ 1, got {mask_size!r}")


def select_spans(
    eligible: torch.Tensor, p_mlm: float, mask_size: int, generator: torch.Generator
) -> torch.Tensor:
    """Boolean (B, L) selection of eligible positions in spans of ``mask_size`` (module doc).

    Each eligible position is selected with probability exactly ``p_mlm``; ineligible ones never.
    """
    batch, length = eligible.shape
    device = generator.device
    if mask_size == 1:
        chosen = torch.rand((batch, length), generator=generator, device=device) < p_mlm
        return chosen.to(eligible.device) & eligible
    phase = torch.randint(0, mask_size, (batch, 1), generator=generator, device=device)
    block = (torch.arange(length, device=device) + phase) // mask_size
    n_blocks = (length + mask_size - 1) // mask_size + 1
    chosen_blocks = torch.rand((batch, n_blocks), generator=generator, device=device) < p_mlm
    return torch.gather(chosen_blocks, 1, block).to(eligible.device) & eligible


def _corrupt(
    values: torch.Tensor,
    selected: torch.Tensor,
    mask_value: int,
    random_low: int,
    random_high: int,
    p_mask: float,
    p_random: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply mask / random / keep to the selected positions; targets are the originals."""
    shape, device = values.shape, generator.device
    draw = torch.rand(shape, generator=generator, device=device).to(values.device)
    replacement = torch.randint(
        random_low, random_high, shape, generator=generator, device=device
    ).to(device=values.device, dtype=values.dtype)
    inputs = torch.where(selected & (draw < p_mask), mask_value, values)
    random = selected & (draw >= p_mask) & (draw < p_mask + p_random)
    inputs = torch.where(random, replacement, inputs)
    targets = torch.where(selected, values.long(), IGNORE_INDEX)
    return inputs, targets


def mask_tokens(
    tokens: torch.Tensor,
    vocab_size: int,
    p_mlm: float,
    p_mask: float,
    p_random: float,
    mask_size: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupt token ids (B, P) for masked-token prediction.

    Eligible positions are content tokens (ids ≥ 5) and ``[UNK]``; ``[CLS]``, ``[SEP]``,
    ``[PAD]`` and ``[MASK]`` never are. Selection (rate ``p_mlm``, spans of ``mask_size``) is
    described in the module docstring. Of the selected positions a share ``p_mask`` becomes
    ``[MASK]``, a share ``p_random`` a uniformly random content id in ``[5, vocab_size)``, the
    rest is unchanged. Returns ``(inputs, targets)``: inputs of the same dtype as ``tokens``,
    int64 targets holding the original id at selected positions and −100 elsewhere.
    """
    check_masking(p_mlm, p_mask, p_random, mask_size)
    if vocab_size <= FIRST_CONTENT_ID:
        raise InputError(f"vocab_size must exceed {FIRST_CONTENT_ID}, got {vocab_size}")
    eligible = (tokens >= FIRST_CONTENT_ID) | (tokens == UNK_ID)
    selected = select_spans(eligible, p_mlm, mask_size, generator)
    return _corrupt(
        tokens, selected, MASK_ID, FIRST_CONTENT_ID, vocab_size, p_mask, p_random, generator
    )


def mask_nucleotides(
    codes: torch.Tensor,
    p_mlm: float,
    p_mask: float,
    p_random: float,
    mask_size: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupt CSE nucleotide codes (B, L) for masked-nucleotide prediction.

    Eligible positions are bases A/C/G/T (codes 0 … 3); N (4) and padding (5) are never
    selected. Selection as in the module docstring. Of the selected positions a share
    ``p_mask`` becomes N (code 4, one-hot ¼ each), a share ``p_random`` a uniformly random
    base 0 … 3, the rest is unchanged. Returns ``(inputs, targets)``: inputs of the same dtype
    as ``codes``, int64 targets holding the base index 0 … 3 at selected positions and −100
    elsewhere.
    """
    check_masking(p_mlm, p_mask, p_random, mask_size)
    eligible = codes < N_BASES
    selected = select_spans(eligible, p_mlm, mask_size, generator)
    return _corrupt(codes, selected, CSE_N_CODE, 0, N_BASES, p_mask, p_random, generator)


def reading_frame_offsets(
    n_rows: int, kernel_size: int, generator: torch.Generator
) -> torch.Tensor:
    """Uniform random reading-frame offsets in ``[0, kernel_size − 1]`` (int64, on the CPU)."""
    offsets = torch.randint(0, kernel_size, (n_rows,), generator=generator, device=generator.device)
    return offsets.cpu()


def crop_reading_frame(
    codes: torch.Tensor, offsets: torch.Tensor, kernel_size: int
) -> torch.Tensor:
    """Crop row i of codes (B, W) to ``codes[i, offsets[i] : offsets[i] + W − (k − 1)]``."""
    width = codes.shape[1] - (kernel_size - 1)
    if width < 1:
        raise InputError(
            f"codes of width {codes.shape[1]} are too narrow for kernel_size {kernel_size}"
        )
    index = offsets.to(codes.device).view(-1, 1) + torch.arange(width, device=codes.device)
    return torch.gather(codes, 1, index)


def random_reading_frame(
    codes: torch.Tensor, kernel_size: int, generator: torch.Generator
) -> torch.Tensor:
    """Crop each row of CSE codes (B, W) at a uniform random offset to width ``W − (k − 1)``.

    The stored CSE width holds ``k − 1`` extra codes so that every offset in ``[0, k − 1]``
    leaves ``(context_length − 1)·k`` codes: the convolution windows then fall in a random
    reading frame. The offsets are :func:`reading_frame_offsets` with the same generator.
    """
    offsets = reading_frame_offsets(codes.shape[0], kernel_size, generator)
    return crop_reading_frame(codes, offsets, kernel_size)


def first_reading_frame(codes: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """The evaluation crop: ``codes[:, : W − (k − 1)]`` (offset 0 for every row)."""
    return codes[:, : codes.shape[1] - (kernel_size - 1)]
