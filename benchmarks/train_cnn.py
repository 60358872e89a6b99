"""Training throughput of the CNN baseline through the real fit path (GPU in bf16 when present).

Simulates transcripts, encodes them, trains fold 0 with `fit_fold` for a fixed number of
epochs (no early stopping) and evaluates it. Prints the figures last as
`key: value` lines: device, epochs, samples/s (median over --repeats) and test macro-F1.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import torch

from nucflow.config import sequence_experiment
from nucflow.data.sequence import prepare_sequences
from nucflow.data.simulate import simulate_transcripts
from nucflow.data.splits import load_split, write_fold_split
from nucflow.predict import evaluate_fold
from nucflow.train.fit import fit_fold

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-per-class", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="nucflow-bench-"))
    experiment = sequence_experiment(
        SCHEMA,
        encoding={"method": "kmer", "k": 3, "context_length": 512},
        model={"name": "cnn", "embedding_dim": 32, "channels": 64, "n_layers": 3, "dropout": 0.1},
        training={
            "batch_size": args.batch_size,
            "epochs": args.epochs,
            "n_samples_per_epoch": None,
            "learning_rate": 3e-3,
            "weight_decay": 0.01,
            "patience": None,
            "monitor": "val_loss",
        },
    )
    sim = simulate_transcripts(work / "sim", n_per_class=args.n_per_class, seed=1)
    prepare_sequences(
        {"protein_coding": sim["protein_coding"], "lncrna": sim["lncrna"]},
        experiment["encoding"],
        work / "enc.npz",
        work / "tok.json",
    )
    split = write_fold_split(
        work / "enc.npz",
        {"mode": "kfold", "folds": 5, "valid_fraction": 0.1},
        42,
        "0",
        work / "s.json",
    )
    rates = []
    for repeat in range(args.repeats):
        started = time.perf_counter()
        fit_fold(
            work / "enc.npz",
            work / "tok.json",
            work / "s.json",
            work / f"m{repeat}",
            work / "h.csv",
            work / "h.png",
            model_settings=experiment["model"],
            encoding=experiment["encoding"],
            training=experiment["training"],
            task="classification",
            seed=42,
            threads=torch.get_num_threads(),
        )
        rates.append(
            len(load_split(work / "s.json").train) * args.epochs / (time.perf_counter() - started)
        )
    metrics = evaluate_fold(
        work / "m0", work / "enc.npz", work / "s.json", work / "m.json", work / "p.csv"
    )
    print(json.dumps({"train": len(split.train), "test": len(split.test)}))
    print(f"cnn.device: {'cuda' if torch.cuda.is_available() else 'cpu'}")
    print(f"cnn.epochs: {args.epochs}")
    print(f"cnn.train_samples_per_s: {statistics.median(rates):.1f}")
    print(f"cnn.test_macro_f1: {metrics['macro_f1']:.3f}")


if __name__ == "__main__":
    main()
