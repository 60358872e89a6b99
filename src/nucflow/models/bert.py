"""Transformer encoder (BERT / CSE-BERT) with a classification head and a masked-LM head.

One encoder, :class:`BertEncoder`, takes either token ids (nuc / k-mer / BPE rows
``CLS t1 … tn SEP PAD …``) or CSE nucleotide codes (A0 C1 G2 T3, 4 = N, 5 = padding), which a
convolution with kernel = stride = ``kernel_size`` turns into one position per window, after a
learned CLS vector. Both heads, :class:`BertClassifier` and :class:`BertMaskedLM`, keep the
encoder as ``self.encoder``, so a pretrained encoder moves into a classifier with
``classifier.encoder.load_state_dict(mlm.encoder.state_dict())``.

Padding is never attended: every attention uses a boolean key-padding mask (token != PAD, or
the CSE window count, where a partial last window is masked too). Mean pooling averages the
content positions only — never CLS, SEP, PAD or MASK tokens, never masked CSE windows — and a
row without any content position falls back to its CLS vector.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nucflow.errors import InputError
from nucflow.tokenize.base import FIRST_CONTENT_ID, PAD_ID, UNK_ID
from nucflow.tokenize.cse import CSE_PAD_CODE, one_hot_codes

INPUTS: tuple[str, ...] = ("tokens", "cse")
"""Input kinds of :class:`BertEncoder`: token ids or CSE nucleotide codes."""
ATTENTIONS: tuple[str, ...] = ("sdpa", "explicit")
"""Attention implementations: PyTorch's fused kernel, or softmax(QK^T/sqrt(d))V by hand."""
POOLINGS: tuple[str, ...] = ("cls", "mean")
"""Pooling rules for a sequence embedding: position 0, or the mean of the content positions."""


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InputError(message)


def sinusoidal_positions(length: int, d_model: int) -> torch.Tensor:
    """Fixed sinusoidal position encodings, shape (length, d_model), as in Vaswani et al."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model)
    )
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: d_model // 2])
    return table


def pool(hidden: torch.Tensor, content: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool ``hidden`` (B, P, d) to (B, d): ``cls`` = position 0, ``mean`` = mean over ``content``.

    ``content`` (B, P) bool marks the positions averaged by ``mean``; a row without any falls
    back to its position-0 (CLS) vector, so the result never holds NaN.
    """
    _require(pooling in POOLINGS, f"pooling must be one of {POOLINGS}, not {pooling!r}")
    first = hidden[:, 0]
    if pooling == "cls":
        return first
    weights = content.unsqueeze(-1).to(hidden.dtype)
    count = weights.sum(dim=1)
    mean = (hidden * weights).sum(dim=1) / count.clamp(min=1)
    return torch.where(count > 0, mean, first)


class _SelfAttention(nn.Module):
    """Multi-head self-attention with a boolean key-padding mask (True = may be attended)."""

    def __init__(self, d_model: int, h: int, dropout: float, attention: str) -> None:
        super().__init__()
        self.h, self.dropout, self.attention = h, dropout, attention
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def reset_parameters(self) -> None:
        """Xavier-uniform on each of the Q, K, V and output projections (as four Linears)."""
        for weight in (*self.qkv.weight.chunk(3), self.out.weight):
            nn.init.xavier_uniform_(weight)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        """Multi-head self-attention; ``key_mask`` (B, 1, 1, P) marks attended keys (None: all)."""
        batch, positions, d_model = x.shape
        q, k, v = self.qkv(x).view(batch, positions, 3, self.h, -1).permute(2, 0, 3, 1, 4)
        dropout = self.dropout if self.training else 0.0
        if self.attention == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, dropout_p=dropout)
        else:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
            scores = scores.float()
            if key_mask is not None:
                scores = scores.masked_fill(~key_mask, float("-inf"))
            weights = F.dropout(scores.softmax(dim=-1), dropout, self.training)
            y = weights.to(v.dtype) @ v
        return self.out(y.transpose(1, 2).reshape(batch, positions, d_model))


class _Block(nn.Module):
    """Pre-LN transformer block: x + Dropout(MHA(LN(x))), then x + Dropout(FF(LN(x)))."""

    def __init__(self, d_model: int, h: int, d_ff: int, dropout: float, attention: str) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attention = _SelfAttention(d_model, h, dropout, attention)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        """One pre-LN block."""
        x = x + self.dropout(self.attention(self.norm1(x), key_mask))
        return x + self.dropout(self.ff(self.norm2(x)))


class BertEncoder(nn.Module):
    """Input layer (token embedding or CSE) + sinusoidal positions + pre-LN blocks + final LN.

    Parameters
    ----------
    input
        ``"tokens"`` (token ids; needs ``vocab_size``) or ``"cse"`` (nucleotide codes).
    context_length
        Positions including CLS. CSE reads ``(context_length - 1) * kernel_size`` nt.
    d_model, N, d_ff, h
        Width, number of blocks, feed-forward width (None: 4·d_model) and heads
        (None: max(1, d_model // 64)).
    dropout
        Dropout inside the encoder (embedding, attention weights, residual branches, FF).
    attention
        ``"sdpa"`` (``scaled_dot_product_attention``) or ``"explicit"`` (same maths by hand,
        for benchmarks).
    vocab_size, pad_id
        Token input only: vocabulary size (specials included) and the PAD id.
    kernel_size, n_kernels, input_relu, input_linear
        CSE only: Conv1d(4, n_kernels, kernel = stride = kernel_size), a ReLU after it, and a
        Linear(n_kernels, d_model) after that (None: on iff n_kernels != d_model).
    """

    def __init__(
        self,
        *,
        input: str = "tokens",
        context_length: int = 768,
        d_model: int = 768,
        N: int = 12,
        d_ff: int | None = None,
        h: int | None = None,
        dropout: float = 0.1,
        attention: str = "sdpa",
        vocab_size: int | None = None,
        pad_id: int = PAD_ID,
        kernel_size: int = 9,
        n_kernels: int = 768,
        input_relu: bool = True,
        input_linear: bool | None = None,
    ) -> None:
        super().__init__()
        _require(input in INPUTS, f"input must be one of {INPUTS}, not {input!r}")
        _require(
            attention in ATTENTIONS, f"attention must be one of {ATTENTIONS}, not {attention!r}"
        )
        _require(
            _positive_int(context_length) and context_length >= 2,
            f"context_length must be an integer >= 2 (CLS + content), not {context_length!r}",
        )
        _require(_positive_int(d_model), f"d_model must be a positive integer, not {d_model!r}")
        _require(_positive_int(N), f"N (number of blocks) must be a positive integer, not {N!r}")
        d_ff = 4 * d_model if d_ff is None else d_ff
        h = max(1, d_model // 64) if h is None else h
        _require(_positive_int(d_ff), f"d_ff must be a positive integer, not {d_ff!r}")
        _require(_positive_int(h), f"h (attention heads) must be a positive integer, not {h!r}")
        _require(d_model % h == 0, f"d_model ({d_model}) must be divisible by h ({h})")
        _require(
            isinstance(dropout, int | float) and 0.0 <= dropout < 1.0,
            f"dropout must be in [0, 1), not {dropout!r}",
        )
        self.input = input
        self.context_length = context_length
        self.d_model, self.N, self.d_ff, self.h = d_model, N, d_ff, h
        self.attention = attention
        self.scale = math.sqrt(d_model)
        if input == "tokens":
            _require(
                _positive_int(vocab_size),
                f"token input needs vocab_size (a positive integer), not {vocab_size!r}",
            )
            _require(
                isinstance(pad_id, int) and 0 <= pad_id < vocab_size,
                f"pad_id must be an id below vocab_size ({vocab_size}), not {pad_id!r}",
            )
            self.vocab_size, self.pad_id = vocab_size, pad_id
            self.embedding = nn.Embedding(vocab_size, d_model)
        else:
            _require(
                _positive_int(kernel_size),
                f"kernel_size must be a positive integer, not {kernel_size!r}",
            )
            _require(
                _positive_int(n_kernels), f"n_kernels must be a positive integer, not {n_kernels!r}"
            )
            input_linear = n_kernels != d_model if input_linear is None else bool(input_linear)
            _require(
                input_linear or n_kernels == d_model,
                f"input_linear=False needs n_kernels == d_model (got {n_kernels} and {d_model})",
            )
            self.kernel_size, self.n_kernels = kernel_size, n_kernels
            self.input_relu = bool(input_relu)
            self.n_nucleotides = (context_length - 1) * kernel_size
            self.conv = nn.Conv1d(4, n_kernels, kernel_size, stride=kernel_size)
            self.input_linear = nn.Linear(n_kernels, d_model) if input_linear else None
            self.cls = nn.Parameter(torch.empty(1, 1, d_model))
        self.register_buffer(
            "positions", sinusoidal_positions(context_length, d_model), persistent=False
        )
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(_Block(d_model, h, d_ff, dropout, attention) for _ in range(N))
        self.norm = nn.LayerNorm(d_model)
        for parameter in self.parameters():
            if parameter.dim() >= 2:
                nn.init.xavier_uniform_(parameter)
        for block in self.blocks:
            block.attention.reset_parameters()

    def _embed_tokens(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        width = tokens.shape[1]
        _require(
            width <= self.context_length,
            f"token rows have {width} positions; this model takes at most {self.context_length}",
        )
        attend = tokens != self.pad_id
        attend[:, 0] = True  # CLS; keeps every attention row non-empty
        return self.embedding(tokens) * self.scale, attend

    def _embed_codes(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes = codes[:, : self.n_nucleotides]
        if codes.shape[1] < self.n_nucleotides:
            codes = F.pad(codes, (0, self.n_nucleotides - codes.shape[1]), value=CSE_PAD_CODE)
        n_full = (codes != CSE_PAD_CODE).sum(dim=1, keepdim=True) // self.kernel_size
        windows = torch.arange(self.context_length - 1, device=codes.device)
        attend = torch.cat([torch.ones_like(n_full, dtype=torch.bool), windows < n_full], dim=1)
        hidden = self.conv(one_hot_codes(codes, self.conv.weight.dtype))
        if self.input_relu:
            hidden = F.relu(hidden)
        hidden = hidden.transpose(1, 2)
        if self.input_linear is not None:
            hidden = self.input_linear(hidden)
        cls = self.cls.expand(hidden.shape[0], -1, -1).to(hidden.dtype)
        return torch.cat([cls, hidden], dim=1) * self.scale, attend

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode ``x`` (B, width): returns hidden states (B, P, d_model) and ``attend`` (B, P).

        Tokens: P = width, ``attend`` = token != PAD. CSE: the codes are cropped (or padded) to
        ``(context_length - 1) * kernel_size``, P = context_length and ``attend`` marks CLS and
        the full windows.
        """
        _require(
            x.dim() == 2 and x.shape[1] > 0,
            f"expected a (batch, width > 0) tensor, got shape {tuple(x.shape)}",
        )
        if self.input == "tokens":
            hidden, attend = self._embed_tokens(x)
        else:
            hidden, attend = self._embed_codes(x)
        hidden = self.dropout(hidden + self.positions[: hidden.shape[1]])
        # Without padding in the batch no mask is needed, which lets SDPA use its fastest
        # (flash) kernels; one device-to-host check per forward, not per block.
        key_mask = None if bool(attend.all()) else attend[:, None, None, :]
        for block in self.blocks:
            hidden = block(hidden, key_mask)
        return self.norm(hidden), attend

    def content_mask(self, x: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        """Positions that mean pooling averages: content tokens (ids >= 5 or UNK) / full windows."""
        if self.input == "tokens":
            return ((x >= FIRST_CONTENT_ID) | (x == UNK_ID)) & attend
        content = attend.clone()
        content[:, 0] = False
        return content

    def embed(self, x: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
        """Pooled sequence embedding (B, d_model) of ``x`` (see :func:`pool`)."""
        hidden, attend = self(x)
        return pool(hidden, self.content_mask(x, attend), pooling)


def _xavier(module: nn.Module) -> None:
    for parameter in module.parameters():
        if parameter.dim() >= 2:
            nn.init.xavier_uniform_(parameter)


class BertClassifier(nn.Module):
    """Encoder → pooled embedding → Dropout → [Linear + ReLU + Dropout]* → Linear(n_classes).

    Parameters
    ----------
    n_classes
        Number of output logits.
    pooling
        ``"cls"`` (position 0) or ``"mean"`` (content positions, see :func:`pool`).
    head_dropout
        Dropout before the head and after each hidden layer.
    hidden_cls_layers
        Widths of hidden Linear + ReLU layers between the embedding and the output layer.
    **encoder
        Hyperparameters of :class:`BertEncoder` (``input``, ``context_length``, ``d_model``, …).
    """

    def __init__(
        self,
        *,
        n_classes: int,
        pooling: str = "cls",
        head_dropout: float = 0.0,
        hidden_cls_layers: Sequence[int] = (),
        **encoder: Any,
    ) -> None:
        super().__init__()
        _require(
            _positive_int(n_classes), f"n_classes must be a positive integer, not {n_classes!r}"
        )
        _require(pooling in POOLINGS, f"pooling must be one of {POOLINGS}, not {pooling!r}")
        _require(
            isinstance(head_dropout, int | float) and 0.0 <= head_dropout < 1.0,
            f"head_dropout must be in [0, 1), not {head_dropout!r}",
        )
        _require(
            isinstance(hidden_cls_layers, Sequence)
            and all(_positive_int(width) for width in hidden_cls_layers),
            f"hidden_cls_layers must be a list of positive integers, not {hidden_cls_layers!r}",
        )
        self.encoder = BertEncoder(**encoder)
        self.pooling = pooling
        layers: list[nn.Module] = [nn.Dropout(head_dropout)]
        width = self.encoder.d_model
        for hidden in hidden_cls_layers:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(head_dropout)]
            width = hidden
        layers.append(nn.Linear(width, n_classes))
        self.head = nn.Sequential(*layers)
        _xavier(self.head)

    def embed(self, x: torch.Tensor, pooling: str | None = None) -> torch.Tensor:
        """Pooled embedding (B, d_model); ``pooling`` None uses the model's own rule."""
        return self.encoder.embed(x, self.pooling if pooling is None else pooling)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, n_classes) for token ids or CSE codes ``x`` (B, width)."""
        return self.head(self.embed(x))


class _NucleotideHead(nn.Module):
    """CSE MLM head: Dropout → [Linear(d, n_kernels)] → transpose → [ReLU] → ConvTranspose1d."""

    def __init__(
        self,
        d_model: int,
        n_kernels: int,
        kernel_size: int,
        dropout: float,
        output_linear: bool,
        output_relu: bool,
    ) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(d_model, n_kernels) if output_linear else None
        self.relu = output_relu
        channels = n_kernels if output_linear else d_model
        self.deconv = nn.ConvTranspose1d(channels, 4, kernel_size, stride=kernel_size)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        hidden = self.dropout(windows)
        if self.linear is not None:
            hidden = self.linear(hidden)
        hidden = hidden.transpose(1, 2)
        if self.relu:
            hidden = F.relu(hidden)
        return self.deconv(hidden)


class BertMaskedLM(nn.Module):
    """Encoder + masked-LM head: token logits per position, or nucleotide logits for CSE.

    Parameters
    ----------
    head_dropout
        Dropout before the head.
    output_linear, output_relu
        CSE only: Linear(d_model, n_kernels) before the transposed convolution (default on) and
        a ReLU after it (default off).
    **encoder
        Hyperparameters of :class:`BertEncoder` (``input``, ``context_length``, ``d_model``, …).
    """

    def __init__(
        self,
        *,
        head_dropout: float = 0.0,
        output_linear: bool = True,
        output_relu: bool = False,
        **encoder: Any,
    ) -> None:
        super().__init__()
        _require(
            isinstance(head_dropout, int | float) and 0.0 <= head_dropout < 1.0,
            f"head_dropout must be in [0, 1), not {head_dropout!r}",
        )
        self.encoder = BertEncoder(**encoder)
        d_model = self.encoder.d_model
        if self.encoder.input == "tokens":
            self.head: nn.Module = nn.Sequential(
                nn.Dropout(head_dropout), nn.Linear(d_model, self.encoder.vocab_size)
            )
        else:
            self.head = _NucleotideHead(
                d_model,
                self.encoder.n_kernels,
                self.encoder.kernel_size,
                head_dropout,
                bool(output_linear),
                bool(output_relu),
            )
        _xavier(self.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens: logits (B, P, vocab_size). CSE: nucleotide logits (B, 4, (context-1)·k)."""
        hidden, _ = self.encoder(x)
        if self.encoder.input == "tokens":
            return self.head(hidden)
        return self.head(hidden[:, 1:])

    def embed(self, x: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
        """Pooled embedding (B, d_model), mean over the content positions by default."""
        return self.encoder.embed(x, pooling)
