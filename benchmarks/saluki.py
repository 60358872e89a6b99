"""Saluki throughput: training steps, the batch loader and the atomic encoder at 12,288 tokens.

Run from the repository root (``-P``: benchmarks/tokenize.py would shadow the standard library)::

    .venv/bin/python -P benchmarks/saluki.py [--repeats 5] [--batch-size 8] [--gpu-batch-size 64]

The model is :class:`nucflow.models.saluki.SalukiModel` at the paper's size: 12,288 positions
× 6 one-hot input channels (6 atoms, no specifiers, so one encoded row is (12288, 1) float32),
64 channels, 6 tower blocks, one regression output. Rows are full (no padding: the GRU runs all
188 steps). Each figure is the median of ``--repeats`` timed runs after ``--warmup`` untimed:

* ``saluki.train_samples_per_s``: CPU training with ``--batch-size`` rows per step: random
  shift (≤ 3 nt) → forward → MSE → backward → global-norm clip 0.5 → Adam step (the original
  recipe's optimiser settings, :data:`nucflow.train.presets.TRAINING_PRESETS`), fp32;
* ``saluki.loader_over_step``: batches/s of the real loader path — ``torch`` ``TensorDataset``
  + ``DataLoader`` (shuffled, ``--batch-size`` rows, main process) over an in-memory float32
  array of ``--loader-rows`` encoded rows (n, 12288, 1) — divided by the CPU training steps/s
  above (> 1: the loader outruns training by that factor);
* ``saluki.encode_seqs_per_s``: sequences of 12,288 tokens per second through
  :meth:`nucflow.tokenize.atomic.AtomicTokenizer.encode` (vocabulary from ``learn_atomic``) plus
  ``np.savez`` of the array to a temporary file (the on-disk step). Rows are lists of atoms
  with two multi-character atoms in the vocabulary (the general dictionary path);
  ``saluki.encode_chars_seqs_per_s`` is the same with single-character atoms only (the
  vectorised path a FASTA / plain nucleotide table takes);
* on a GPU also ``saluki.gpu.train_samples_per_s``: the training step with
  ``--gpu-batch-size`` rows under bf16 autocast.

The figures are printed last, as ``key: value`` lines; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from nucflow.models.saluki import SalukiModel, random_shift
from nucflow.tokenize.atomic import learn_atomic
from nucflow.train.presets import TRAINING_PRESETS

LENGTH = 12_288
N_ATOMS = 6
GENERAL_ATOMS = ("A", "C", "G", "U", "cds", "gej")
CHAR_ATOMS = ("A", "C", "G", "U", "a", "c")


def log(message: str) -> None:
    """Progress line on stderr (the figures go to stdout)."""
    print(message, file=sys.stderr, flush=True)


def timed(run: Callable[[], None], warmup: int, repeats: int, sync: bool = False) -> float:
    """Median seconds of ``repeats`` calls of ``run`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        run()
    if sync:
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def encoded_rows(rows: int, generator: torch.Generator) -> torch.Tensor:
    """Full rows (rows, 12288, 1) of random atom ids 2 … N_ATOMS + 1 (no PAD)."""
    ids = torch.randint(2, N_ATOMS + 2, (rows, LENGTH, 1), generator=generator)
    return ids.float()


def train_step_seconds(
    device: torch.device, batch_size: int, warmup: int, repeats: int, bf16: bool
) -> float:
    """Median seconds of one training step (shift, forward, MSE, backward, clip, Adam)."""
    torch.manual_seed(0)
    preset = TRAINING_PRESETS["saluki"]
    model = SalukiModel(n_atoms=N_ATOMS).to(device).train()
    optimiser = torch.optim.Adam(
        model.parameters(), lr=preset["learning_rate"], betas=tuple(preset["betas"])
    )
    generator = torch.Generator().manual_seed(1)
    x = encoded_rows(batch_size, generator).to(device)
    y = torch.randn(batch_size, generator=generator).to(device)
    shifts = torch.Generator(device=device).manual_seed(2)

    def step() -> None:
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(random_shift(x, preset["random_shift"], shifts)).squeeze(1)
        loss = F.mse_loss(out.float(), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), preset["gradient_clip"])
        optimiser.step()

    return timed(step, warmup, repeats, sync=device.type == "cuda")


def loader_batches_per_s(rows: int, batch_size: int, repeats: int) -> float:
    """Batches/s of a shuffled TensorDataset + DataLoader over in-memory encoded rows."""
    generator = torch.Generator().manual_seed(3)
    array = encoded_rows(rows, generator).numpy()  # float32 (rows, 12288, 1), as loaded
    labels = np.random.default_rng(0).standard_normal(rows).astype(np.float32)
    dataset = TensorDataset(torch.from_numpy(array), torch.from_numpy(labels))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator)
    batches = len(loader)

    def epoch() -> None:
        for x, _ in loader:
            assert x.shape[1:] == (LENGTH, 1)

    return batches / timed(epoch, 1, repeats)


def encode_seqs_per_s(atoms: tuple[str, ...], n: int, repeats: int) -> float:
    """Sequences/s of learn_atomic's tokenizer encoding n rows of 12,288 atoms + np.savez."""
    rng = np.random.default_rng(4)
    pool = np.array(atoms, dtype=object)
    rows = [pool[rng.integers(0, len(atoms), LENGTH)].tolist() for _ in range(n)]
    tokenizer = learn_atomic(rows, blocksize=LENGTH)
    assert tokenizer.n_atoms == len(atoms)
    with tempfile.TemporaryDirectory(prefix="nucflow-saluki-bench-") as tmp:
        target = Path(tmp) / "encoded.npz"

        def encode() -> None:
            tokens = tokenizer.encode(rows)
            np.savez(target, tokens=tokens)

        return n / timed(encode, 1, repeats)


def main() -> None:
    """Run the measurements and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--gpu-batch-size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--loader-rows", type=int, default=512)
    parser.add_argument("--encode-rows", type=int, default=64)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    cuda = torch.cuda.is_available()
    parameters = sum(p.numel() for p in SalukiModel(n_atoms=N_ATOMS).parameters())

    threads = torch.get_num_threads()
    log(f"CPU training, batch {args.batch_size} × {LENGTH} × {N_ATOMS} ({threads} threads)")
    cpu_step = train_step_seconds(
        torch.device("cpu"), args.batch_size, args.warmup, args.repeats, bf16=False
    )
    log(f"  {cpu_step:.3f} s/step")
    log(f"loader, {args.loader_rows} rows, batch {args.batch_size}")
    loader = loader_batches_per_s(args.loader_rows, args.batch_size, args.repeats)
    log(f"  {loader:.1f} batches/s")
    log(f"atomic encoding of {args.encode_rows} × {LENGTH} tokens + np.savez")
    encode = encode_seqs_per_s(GENERAL_ATOMS, args.encode_rows, args.repeats)
    encode_chars = encode_seqs_per_s(CHAR_ATOMS, args.encode_rows, args.repeats)
    log(f"  {encode:.1f} / {encode_chars:.1f} sequences/s")
    gpu_step = None
    if cuda:
        log(f"GPU training (bf16 autocast), batch {args.gpu_batch_size}")
        gpu_step = train_step_seconds(
            torch.device("cuda"), args.gpu_batch_size, args.warmup + 3, 3 * args.repeats, True
        )
        log(f"  {gpu_step:.4f} s/step")

    print(f"saluki.parameters: {parameters}")
    print(f"saluki.batch_size: {args.batch_size}")
    print(f"saluki.train_steps_per_s: {1 / cpu_step:.3f}")
    print(f"saluki.loader_batches_per_s: {loader:.1f}")
    print(f"saluki.encode_chars_seqs_per_s: {encode_chars:.1f}")
    print(f"saluki.encode_seqs_per_s: {encode:.1f}")
    print(f"saluki.loader_over_step: {loader * cpu_step:.1f}")
    print(f"saluki.train_samples_per_s: {args.batch_size / cpu_step:.2f}")
    print(f"saluki.device: {'cuda' if cuda else 'cpu'}")
    if gpu_step is not None:
        print(f"saluki.gpu.batch_size: {args.gpu_batch_size}")
        print(f"saluki.gpu.train_samples_per_s: {args.gpu_batch_size / gpu_step:.1f}")


if __name__ == "__main__":
    main()
