"""Training / inference throughput and memory of paper-size BERT classifiers (CSE k=9, 3-mer).

Run from the repository root (``-P``: benchmarks/tokenize.py would shadow the standard library)::

    .venv/bin/python -P benchmarks/bert.py [--batch-size 2] [--repeats 2] [--d-model 768] …

Both models are :class:`nucflow.models.bert.BertClassifier` at the lncRNA-BERT size by default
(d_model 768, N 12, d_ff 3072, h 12, 768 positions): CSE-BERT reads (768 - 1) × 9 nt through a
Conv1d(4 → 768, kernel = stride = 9), the 3-mer BERT a 69-token vocabulary. Inputs are full
rows (no padding), two classes, dropout 0.1 as in training. Each model is measured in its own
spawned process, so that its peak memory is its own. Every figure is the median of
``--repeats`` timed runs after ``--warmup`` untimed ones:

* ``train_samples_per_s``: forward + cross-entropy + backward + AdamW step, fp32;
* ``infer_samples_per_s``: eval-mode forward under ``torch.inference_mode``, fp32;
* ``peak_mem_mb``: CPU — growth of the process's peak RSS (``resource.getrusage``) from just
  before the model is built to after the training and inference runs (weights, gradients,
  AdamW state, activations); GPU — ``torch.cuda.max_memory_allocated``;
* ``bert.sdpa_speedup``: 3-mer training step time with the explicit softmax(QK^T/sqrt(d))V
  attention ÷ the time with ``scaled_dot_product_attention``, same model weights, same batch,
  the two steps interleaved in each repeat (> 1: SDPA is faster);
* on a GPU also bf16-autocast training with ``--gpu-batch-size`` rows: ``tokens_per_s``
  (positions per second), the model FLOPs utilisation ``mfu`` (see ``model_flops_per_token``;
  peak ``--peak-tflops``) and the SDPA / explicit ratio again (``bert.gpu.*`` = 3-mer BERT).

``--compile`` wraps the models in ``torch.compile`` (off by default: on an H200 it gave about
+22 % bf16 tokens/s for about two minutes of compilation; it skips the attention comparison).

The figures are printed last, as ``key: value`` lines; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch
import torch.nn.functional as F

from nucflow.models.bert import BertClassifier
from nucflow.tokenize import CLS_ID, FIRST_CONTENT_ID, SEP_ID

KMER_VOCAB = 5 + 4**3
CSE_KERNEL = 9
N_CLASSES = 2


def log(message: str) -> None:
    """Progress line on stderr (the figures go to stdout)."""
    print(message, file=sys.stderr, flush=True)


def build(kind: str, args: argparse.Namespace) -> BertClassifier:
    """The benchmarked classifier: ``cse`` (k 9, n_kernels = d_model) or ``kmer`` (3-mer)."""
    size = {"context_length": args.context, "d_model": args.d_model, "N": args.layers}
    if kind == "cse":
        return BertClassifier(
            n_classes=N_CLASSES, input="cse", kernel_size=CSE_KERNEL, n_kernels=args.d_model, **size
        )
    return BertClassifier(n_classes=N_CLASSES, input="tokens", vocab_size=KMER_VOCAB, **size)


def batch(kind: str, rows: int, context: int, generator: torch.Generator) -> torch.Tensor:
    """Full rows: CSE codes of the stored width (bases only), or ``CLS k-mers… SEP`` tokens."""
    if kind == "cse":
        width = (context - 1) * CSE_KERNEL + CSE_KERNEL - 1
        return torch.randint(0, 4, (rows, width), generator=generator)
    tokens = torch.randint(FIRST_CONTENT_ID, KMER_VOCAB, (rows, context), generator=generator)
    tokens[:, 0], tokens[:, -1] = CLS_ID, SEP_ID
    return tokens


def set_attention(model: BertClassifier, attention: str) -> None:
    """Switch every block between ``sdpa`` and ``explicit`` attention (same weights)."""
    for block in model.encoder.blocks:
        block.attention.attention = attention


def timed(step: Callable[[], None], device: torch.device) -> float:
    """Seconds one call of ``step`` takes (synchronising the GPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def model_flops_per_token(model: BertClassifier) -> float:
    """Training FLOPs per position: 6 × non-embedding parameters + 12 × N × context × d_model.

    The first term is the forward (2) + backward (4) multiply-adds of every weight (the token
    embedding is a lookup, so it is left out); the second the attention score and weighted-sum
    products (QK^T and AV: 2 × 2 × context × d_model FLOPs forward per layer, × 3 with the
    backward), as in the PaLM paper's MFU. Dropout, softmax, norms and the AdamW step are
    not counted.
    """
    encoder = model.encoder
    embedding = encoder.embedding.weight.numel() if encoder.input == "tokens" else 0
    parameters = sum(p.numel() for p in model.parameters()) - embedding
    return 6 * parameters + 12 * encoder.N * encoder.context_length * encoder.d_model


def warm_libraries(kind: str, device: torch.device) -> None:
    """One training and one inference step of a tiny model: loads kernels, thread pools, …"""
    tiny = argparse.Namespace(context=8, d_model=16, layers=1)
    model = build(kind, tiny).to(device)
    x = batch(kind, 2, tiny.context, torch.Generator().manual_seed(0)).to(device)
    optimizer = torch.optim.AdamW(model.parameters())
    F.cross_entropy(model(x), torch.zeros(2, dtype=torch.long, device=device)).backward()
    optimizer.step()
    with torch.inference_mode():
        model.eval()(x)


def measure(kind: str, args: argparse.Namespace) -> dict[str, float]:
    """All figures of one model, run in a fresh process (returns ``{key: value}``)."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(1)
    x = batch(kind, args.batch_size, args.context, generator).to(device)
    y = torch.randint(0, N_CLASSES, (args.batch_size,), generator=generator).to(device)
    warm_libraries(kind, device)  # so that the RSS growth below is the model's own
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss_before = peak_rss_mb()
    model = build(kind, args).to(device)
    forward = torch.compile(model) if args.compile else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    figures: dict[str, float] = {"params": sum(p.numel() for p in model.parameters())}

    def train_step(rows: torch.Tensor = x, labels: torch.Tensor = y, bf16: bool = False) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(forward(rows), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def infer_step() -> None:
        with torch.inference_mode():
            forward(x)

    log(f"{kind}: {figures['params'] / 1e6:.2f}M parameters, batch {args.batch_size}, {device}")
    model.train()
    for _ in range(args.warmup):
        log(f"{kind}: warm-up training step {timed(train_step, device):.2f} s")
    model.eval()
    for _ in range(args.warmup):
        timed(infer_step, device)
    infer = [timed(infer_step, device) for _ in range(args.repeats)]
    figures["infer_samples_per_s"] = args.batch_size / statistics.median(infer)
    if device.type == "cuda":
        figures["peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        figures["peak_mem_mb"] = peak_rss_mb() - rss_before

    model.train()
    compare = kind == "kmer" and not args.compile
    if compare:
        set_attention(model, "explicit")
        for _ in range(args.warmup):
            timed(train_step, device)
    sdpa, explicit = [], []
    for repeat in range(args.repeats):
        set_attention(model, "sdpa")
        sdpa.append(timed(train_step, device))
        if compare:
            set_attention(model, "explicit")
            explicit.append(timed(train_step, device))
        log(f"{kind}: training step {repeat + 1}/{args.repeats}: sdpa {sdpa[-1]:.2f} s")
    set_attention(model, "sdpa")
    figures["train_samples_per_s"] = args.batch_size / statistics.median(sdpa)
    if compare:
        figures["explicit_train_samples_per_s"] = args.batch_size / statistics.median(explicit)
        figures["sdpa_speedup"] = statistics.median(explicit) / statistics.median(sdpa)

    if device.type == "cuda" and args.gpu_batch_size > 0:
        rows = batch(kind, args.gpu_batch_size, args.context, generator).to(device)
        labels = torch.randint(0, N_CLASSES, (args.gpu_batch_size,), generator=generator)
        labels = labels.to(device)

        def bf16_step() -> None:
            train_step(rows, labels, bf16=True)

        torch.cuda.reset_peak_memory_stats()
        for _ in range(max(args.warmup, 2)):
            timed(bf16_step, device)
        figures["gpu_peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
        steps = [timed(bf16_step, device) for _ in range(max(args.repeats, 5))]
        tokens_per_s = args.gpu_batch_size * args.context / statistics.median(steps)
        figures["gpu_tokens_per_s"] = tokens_per_s
        figures["gpu_samples_per_s"] = args.gpu_batch_size / statistics.median(steps)
        figures["gpu_mfu"] = tokens_per_s * model_flops_per_token(model) / (args.peak_tflops * 1e12)
        log(f"{kind}: bf16 batch {args.gpu_batch_size}: {tokens_per_s:,.0f} tokens/s")
        if compare:  # the same SDPA / explicit comparison at this batch size, in bf16
            set_attention(model, "explicit")
            timed(bf16_step, device)
            sdpa, explicit = [], []
            for _ in range(max(args.repeats, 5)):
                set_attention(model, "sdpa")
                sdpa.append(timed(bf16_step, device))
                set_attention(model, "explicit")
                explicit.append(timed(bf16_step, device))
            set_attention(model, "sdpa")
            figures["gpu_sdpa_speedup"] = statistics.median(explicit) / statistics.median(sdpa)
    return figures


def main() -> None:
    """Measure both models (each in a spawned process) and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=2, help="rows per fp32 step")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    parser.add_argument("--d-model", type=int, default=768)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--context", type=int, default=768, help="positions incl. CLS")
    parser.add_argument("--gpu-batch-size", type=int, default=32, help="rows per bf16 GPU step")
    parser.add_argument(
        "--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100/H200 SXM: 989)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", action="store_true", help="torch.compile the models")
    parser.add_argument("--models", default="cse,kmer", help="comma-separated: cse, kmer")
    args = parser.parse_args()
    started = time.perf_counter()
    results: dict[str, dict[str, float]] = {}
    context = multiprocessing.get_context("spawn")
    for kind in args.models.split(","):
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            results[kind] = pool.submit(measure, kind, args).result()
    figures: dict[str, Any] = {
        "bert.batch_size": args.batch_size,
        "bert.repeats": args.repeats,
        "bert.d_model": args.d_model,
        "bert.layers": args.layers,
        "bert.context": args.context,
        "bert.threads": torch.get_num_threads(),
        "bert.compile": args.compile,
        "bert.wall_s": round(time.perf_counter() - started, 1),
    }
    for kind, values in results.items():
        figures[f"bert.{kind}.params"] = int(values["params"])
        for key in (
            "explicit_train_samples_per_s",
            "gpu_samples_per_s",
            "gpu_peak_mem_mb",
            "gpu_sdpa_speedup",
        ):
            if key in values:
                figures[f"bert.{kind}.{key}"] = round(values[key], 3)
        for key in ("gpu_tokens_per_s", "gpu_mfu"):
            if key in values:
                figures[f"bert.{kind}.{key}"] = round(values[key], 4 if "mfu" in key else 0)
    for key in ("train_samples_per_s", "infer_samples_per_s"):
        for kind, values in results.items():
            figures[f"bert.{kind}.{key}"] = round(values[key], 3)
    if "sdpa_speedup" in results.get("kmer", {}):
        figures["bert.sdpa_speedup"] = round(results["kmer"]["sdpa_speedup"], 3)
    for kind, values in results.items():
        figures[f"bert.{kind}.peak_mem_mb"] = round(values["peak_mem_mb"], 1)
    figures["bert.device"] = (
        torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    )
    if "gpu_tokens_per_s" in results.get("kmer", {}):
        figures["bert.gpu.tokens_per_s"] = round(results["kmer"]["gpu_tokens_per_s"])
        figures["bert.gpu.mfu"] = round(results["kmer"]["gpu_mfu"], 4)
    if "gpu_sdpa_speedup" in results.get("kmer", {}):
        figures["bert.gpu.sdpa_speedup"] = round(results["kmer"]["gpu_sdpa_speedup"], 3)
    for key, value in figures.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
