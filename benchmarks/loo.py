"""Leave-one-out throughput: fast (incremental) vs reference LOO for Saluki at 12,288 nt.

Run from the repository root (``-P``: benchmarks/tokenize.py would shadow the standard library)::

    .venv/bin/python -P benchmarks/loo.py [--repeats 3] [--batch-size 64] [--edits 128]

The model is :class:`nucflow.models.saluki.SalukiModel` at the paper's size (64 channels,
6 blocks, kernel 5, one output) with random weights, on one random sequence of 12,288
nucleotides (atomic tokens A, C, G, T). Both methods score the same ``--edits`` edited
sequences in batches of ``--batch-size`` (runs of consecutive units, as LOO batches them, spread
evenly from the start to the end of the sequence), through the
real code path (:class:`nucflow.interpret.edits.SequenceEdits` builds the rows,
:class:`nucflow.interpret.scoring.EnsembleScorer` predicts them); the reference runs every
edited sequence through the whole model, the fast method recomputes only each edit's receptive
field (:mod:`nucflow.interpret.incremental`). Results must agree (checked, 1e-4).

Figures (medians of ``--repeats`` timed runs after one warm-up), edited sequences per second:
``loo.<mode>.fast_seqs_per_s``, ``loo.<mode>.reference_seqs_per_s`` and their ratio
``loo.<mode>.speedup`` for ``mask``, ``replace`` (3 alternatives per unit) and ``remove``
(every unit after the deletion shifts, so only the upstream part is reused). On a GPU the
same figures are printed with the prefix ``loo.gpu.``. Printed last as ``key: value`` lines.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch

from nucflow.interpret.edits import SequenceEdits
from nucflow.interpret.scoring import EnsembleScorer
from nucflow.models.files import ModelConfig
from nucflow.models.saluki import SalukiModel
from nucflow.tokenize.atomic import learn_atomic

LENGTH = 12_288
MODES = ("mask", "replace", "remove")


def log(message: str) -> None:
    """Progress line on stderr (the figures go to stdout)."""
    print(message, file=sys.stderr, flush=True)


def _setup(
    edits_per_mode: int, batch_size: int
) -> tuple[SalukiModel, ModelConfig, dict[str, tuple]]:
    """Model, its config and, per mode, the sequence's edits and their encoded rows."""
    rng = np.random.default_rng(0)
    atoms = list(rng.choice(list("ACGT"), size=LENGTH))
    tokenizer = learn_atomic([atoms], blocksize=LENGTH)
    torch.manual_seed(0)
    model = SalukiModel(n_atoms=tokenizer.n_atoms).eval()
    config = ModelConfig(
        "saluki",
        {"n_atoms": tokenizer.n_atoms},
        tokenizer.to_spec(),
        "regression",
        [],
        {"method": "standard", "shift": 0.0, "scale": 1.0},
    )
    sequence = SequenceEdits(tokenizer, atoms)
    work = {}
    for mode in MODES:
        edits = sequence.edits(mode)
        # as loo_scores batches them: runs of consecutive edits, spread along the sequence
        n_runs = max(edits_per_mode // batch_size, 1)
        firsts = np.linspace(0, len(edits) - batch_size, n_runs).round().astype(int)
        picked = [edits[i] for first in firsts for i in range(first, first + batch_size)]
        work[mode] = (sequence.original, sequence.rows(mode, picked))
    return model, config, work


def _time(scorer: EnsembleScorer, original: np.ndarray, rows: np.ndarray, batch: int):
    """Seconds to score ``rows`` in batches (after :meth:`start`), and the predictions."""
    sync = torch.cuda.synchronize if scorer.device.type == "cuda" else (lambda: None)
    begin = time.perf_counter()
    scorer.start(original)
    out = [scorer.score(rows[i : i + batch]) for i in range(0, len(rows), batch)]
    sync()
    return time.perf_counter() - begin, np.concatenate(out)


def measure(device: torch.device, args: argparse.Namespace, prefix: str) -> dict[str, float]:
    """Figures of every mode on ``device``."""
    model, config, work = _setup(args.edits, args.batch_size)
    figures: dict[str, float] = {}
    for mode in MODES:
        original, rows = work[mode]
        rates, results = {}, {}
        for method in ("fast", "reference"):
            scorer = EnsembleScorer([(model, config)], method, device)
            _time(scorer, original, rows[: args.batch_size], args.batch_size)  # warm-up
            seconds = []
            for _ in range(args.repeats):
                elapsed, results[method] = _time(scorer, original, rows, args.batch_size)
                seconds.append(elapsed)
            rates[method] = len(rows) / statistics.median(seconds)
            log(f"{prefix}{mode} {method}: {rates[method]:.1f} edited sequences/s")
        gap = float(np.abs(results["fast"] - results["reference"]).max())
        if gap > 1e-4 and device.type == "cpu":
            raise SystemExit(f"fast and reference LOO differ by {gap:g} in mode {mode}")
        figures[f"{prefix}{mode}.fast_seqs_per_s"] = rates["fast"]
        figures[f"{prefix}{mode}.reference_seqs_per_s"] = rates["reference"]
        figures[f"{prefix}{mode}.speedup"] = rates["fast"] / rates["reference"]
        figures[f"{prefix}{mode}.max_abs_diff"] = gap
    return figures


def main() -> None:
    """Parse arguments, measure on the CPU (and the GPU when present), print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--edits", type=int, default=128, help="edited sequences per mode")
    args = parser.parse_args()
    figures = measure(torch.device("cpu"), args, "loo.")
    if torch.cuda.is_available():
        figures.update(measure(torch.device("cuda"), args, "loo.gpu."))
    for key, value in figures.items():
        print(f"{key}: {value:.4g}")


if __name__ == "__main__":
    main()
