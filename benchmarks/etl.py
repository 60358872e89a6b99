"""Benchmark the signal ETL (:func:`nucflow.data.signal_etl.etl_signals`) against a naive one.

Run from the repository root::

    .venv/bin/python -P benchmarks/etl.py [--sizes-mb 200 2000] [--repeats 3] [--workdir DIR]

For each size, Capfinder-like signal CSVs totalling about that many MB are written to a
temporary directory (4 classes, one file each, series of 300–700 values printed with 8
decimals; a block of rows is formatted once and repeated with fresh read ids). Every run
happens in a fresh subprocess, so its peak RSS (``VmHWM``) is its own:

* nucflow: ``etl_signals`` on the directory (examples_per_class None, target_length 500,
  float16), i.e. hashing, parsing, validating, fitting, balancing, splitting and writing the
  shards. Throughput = CSV MB / wall seconds of that call (imports excluded).
* baseline: ``pandas.read_csv`` of each whole file, then every row's timeseries converted with
  ``[float(v) for v in s.split(",")]`` and padded / trimmed into a numpy array row by row
  (parsing only: no balancing, splitting or writing). Run only on sizes up to
  ``--baseline-max-mb`` (default 500 MB), because it holds whole files in memory and is slow.

Then the training throughput of each model family's default network at T = 500 (Adam steps
on NaN-padded random batches through the real model code): on the CPU, and on the GPU in
bf16 autocast when one is present (``train.<family>.{cpu,gpu}_samples_per_s``).

Medians over ``--repeats`` (default 3, and 1 for sizes over 1000 MB). Progress goes to
stderr; the figures are printed last on stdout as ``key: value`` lines, ending with:

* ``etl.mb_per_s``: nucflow MB/s at the largest size;
* ``etl.speedup``: nucflow MB/s / baseline MB/s at the smallest size (200 MB by default);
* ``etl.rss_ratio``: nucflow peak RSS at the largest size / at the smallest size;
* before them: ``train.<family>.*``, ``etl.baseline_mb_per_s``, ``etl.mb_per_s_<size>``,
  ``etl.peak_rss_mb_<size>``, ``etl.baseline_peak_rss_mb_<size>``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CLASSES = {0: "cap_0", 1: "cap_1", 2: "cap_2", 3: "cap_2-1"}
CLASS_NAMES = {**CLASSES, -99: "cap_unknown"}
MIN_LENGTH, MAX_LENGTH, TARGET_LENGTH = 300, 700, 500
BLOCK_ROWS = 1000
"""Rows formatted once per class; the file repeats them with fresh read ids."""


def log(message: str) -> None:
    """Progress line on stderr (the figures go to stdout)."""
    print(message, file=sys.stderr, flush=True)


def _block(rng: np.random.Generator, label: int) -> list[bytes]:
    """BLOCK_ROWS row tails ``,<label>,"v1,...,vL"\\n`` (values in [-4, 4], 8 decimals)."""
    lengths = rng.integers(MIN_LENGTH, MAX_LENGTH + 1, size=BLOCK_ROWS)
    values = np.clip(rng.normal(size=int(lengths.sum())), -4, 4)
    text = np.char.mod("%.8f", values).tolist()
    tails, start = [], 0
    for length in lengths.tolist():
        tails.append(f',{label},"{",".join(text[start : start + length])}"\n'.encode())
        start += length
    return tails


def write_csvs(directory: Path, size_mb: float, seed: int) -> int:
    """Write one CSV per class totalling about ``size_mb`` MB; return the bytes written."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    per_class = size_mb * 1e6 / len(CLASSES)
    total = 0
    for label, name in CLASSES.items():
        tails = _block(rng, label)
        block_bytes = sum(len(t) for t in tails) + 37 * len(tails)
        repeats = max(1, round(per_class / block_bytes))
        with open(directory / f"data__{name}.csv", "wb") as handle:
            handle.write(b"read_id,cap_class,timeseries\n")
            for _ in range(repeats):
                ids = rng.bytes(16 * len(tails)).hex()
                handle.write(
                    b"".join(
                        f"{ids[32 * i : 32 * i + 8]}-{ids[32 * i + 8 : 32 * i + 12]}-"
                        f"{ids[32 * i + 12 : 32 * i + 16]}-{ids[32 * i + 16 : 32 * i + 20]}-"
                        f"{ids[32 * i + 20 : 32 * i + 32]}".encode()
                        + tail
                        for i, tail in enumerate(tails)
                    )
                )
            total += handle.tell()
    return total


def _peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_nucflow(csv_dir: Path, out_dir: Path) -> dict[str, float]:
    """Run etl_signals once (in this fresh process); seconds and peak RSS."""
    from nucflow.data.signal_etl import etl_signals

    started = time.perf_counter()
    manifest = etl_signals(
        [csv_dir],
        out_dir,
        class_names=CLASS_NAMES,
        target_length=TARGET_LENGTH,
        examples_per_class=None,
        dtype="float16",
    )
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "peak_rss_mb": _peak_rss_mb(),
        "reads": sum(manifest["totals"].values()),
    }


def child_baseline(csv_dir: Path) -> dict[str, float]:
    """Naive ETL parse: pandas.read_csv per file, per-value Python floats, row-by-row padding."""
    import pandas as pd

    started = time.perf_counter()
    reads = 0
    for path in sorted(csv_dir.glob("*.csv")):
        frame = pd.read_csv(path)
        x = np.zeros((len(frame), TARGET_LENGTH), dtype=np.float32)
        for i, series in enumerate(frame["timeseries"]):
            values = np.array([float(v) for v in series.split(",")], dtype=np.float32)
            length = len(values)
            if length < TARGET_LENGTH:
                pad = (TARGET_LENGTH - length) // 2
                x[i, pad : pad + length] = values
            else:
                skip = (length - TARGET_LENGTH) // 2
                x[i] = values[skip : skip + TARGET_LENGTH]
        reads += len(frame)
        del frame, x
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_rss_mb": _peak_rss_mb(), "reads": reads}


def run_child(kind: str, csv_dir: Path, out_dir: Path) -> dict[str, float]:
    """Run one measurement in a fresh Python process; its JSON result."""
    command = [sys.executable, "-P", __file__, "--child", kind, str(csv_dir), str(out_dir)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _training_rate(model, x, y, learning_rate: float, steps: int, repeats: int) -> float:
    """Median samples/s of ``steps`` Adam steps of ``model`` on one batch (x, y)."""
    import torch

    device = x.device.type
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda")

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()
        optimizer.step()

    step()
    step()
    timings = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(steps):
            step()
        if device == "cuda":
            torch.cuda.synchronize()
        timings.append(time.perf_counter() - started)
    return steps * len(y) / statistics.median(timings)


def training_throughput(
    device: str, batch_size: int, steps: int, repeats: int, target_length: int = 500
) -> dict[str, float]:
    """Training samples/s (median of ``repeats``) of each model family's default network:
    Adam steps on NaN-padded random signal, bf16 autocast on a GPU."""
    import torch

    from nucflow.models import build_model
    from nucflow.models.signal import SIGNAL_ARCHITECTURES
    from nucflow.models.signal_search import default_hyperparameters

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, target_length, generator=generator)
    x[:, :50] = float("nan")  # symmetric padding, as the ETL writes it
    x[:, -50:] = float("nan")
    y = torch.randint(0, 4, (batch_size,), generator=generator)
    x, y = x.to(device), y.to(device)
    rates = {}
    for family in SIGNAL_ARCHITECTURES:
        settings = default_hyperparameters(family, target_length)
        learning_rate = settings.pop("learning_rate")
        model = build_model(family, target_length=target_length, n_classes=4, **settings)
        model.to(device).train()
        rates[family] = _training_rate(model, x, y, learning_rate, steps, repeats)
        log(f"training {family} on {device}: {rates[family]:.0f} samples/s (batch {batch_size})")
    return rates


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, generate data, run the measurements, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[200.0, 2000.0])
    parser.add_argument("--repeats", type=int, default=3, help="repeats for sizes <= 1000 MB")
    parser.add_argument("--baseline-max-mb", type=float, default=500.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-steps", type=int, default=5, help="0: skip training figures")
    parser.add_argument("--train-batch", type=int, default=64, help="CPU batch (GPU: ×16)")
    parser.add_argument(
        "--child", nargs=3, metavar=("KIND", "CSV_DIR", "OUT_DIR"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        kind, csv_dir, out_dir = args.child
        result = (
            child_nucflow(Path(csv_dir), Path(out_dir))
            if kind == "nucflow"
            else child_baseline(Path(csv_dir))
        )
        print(json.dumps(result))
        return 0

    sizes = sorted(args.sizes_mb)
    root = Path(tempfile.mkdtemp(prefix="nucflow-etl-bench-", dir=args.workdir))
    figures: dict[str, float] = {}
    speeds: dict[float, float] = {}
    rss: dict[float, float] = {}
    baseline: dict[float, float] = {}
    try:
        for size in sizes:
            csv_dir = root / f"csv_{size:g}"
            started = time.perf_counter()
            written = write_csvs(csv_dir, size, args.seed)
            mb = written / 1e6
            log(f"{size:g} MB: wrote {mb:.1f} MB of CSV in {time.perf_counter() - started:.1f} s")
            repeats = args.repeats if size <= 1000 else 1
            runs = []
            for r in range(repeats):
                out_dir = root / f"out_{size:g}_{r}"
                result = run_child("nucflow", csv_dir, out_dir)
                shutil.rmtree(out_dir, ignore_errors=True)
                runs.append(result)
                log(
                    f"  nucflow run {r + 1}/{repeats}: {result['seconds']:.2f} s "
                    f"({mb / result['seconds']:.0f} MB/s), {int(result['reads'])} reads kept, "
                    f"peak RSS {result['peak_rss_mb']:.0f} MB"
                )
            speeds[size] = mb / statistics.median(r["seconds"] for r in runs)
            rss[size] = statistics.median(r["peak_rss_mb"] for r in runs)
            figures[f"etl.mb_per_s_{size:g}"] = speeds[size]
            figures[f"etl.peak_rss_mb_{size:g}"] = rss[size]
            if size <= args.baseline_max_mb:
                base_runs = []
                for r in range(repeats):
                    result = run_child("baseline", csv_dir, root / "unused")
                    base_runs.append(result)
                    log(
                        f"  baseline run {r + 1}/{repeats}: {result['seconds']:.2f} s "
                        f"({mb / result['seconds']:.1f} MB/s), peak RSS "
                        f"{result['peak_rss_mb']:.0f} MB"
                    )
                baseline[size] = mb / statistics.median(r["seconds"] for r in base_runs)
                figures[f"etl.baseline_peak_rss_mb_{size:g}"] = statistics.median(
                    r["peak_rss_mb"] for r in base_runs
                )
            else:
                log(
                    f"  baseline skipped at {size:g} MB (> --baseline-max-mb "
                    f"{args.baseline_max_mb:g}: whole files in memory, per-value Python floats)"
                )
            shutil.rmtree(csv_dir, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    if args.train_steps:
        import torch

        threads = torch.get_num_threads()
        for family, rate in training_throughput(
            "cpu", args.train_batch, args.train_steps, args.repeats
        ).items():
            figures[f"train.{family}.cpu_samples_per_s"] = rate
        log(f"(CPU training figures with {threads} threads)")
        if torch.cuda.is_available():
            for family, rate in training_throughput(
                "cuda", args.train_batch * 16, args.train_steps * 4, args.repeats
            ).items():
                figures[f"train.{family}.gpu_samples_per_s"] = rate

    largest, smallest = sizes[-1], sizes[0]
    base_size = min(baseline) if baseline else None
    for key, value in figures.items():
        print(f"{key}: {value:.1f}")
    if base_size is not None:
        log(f"speedup computed at {base_size:g} MB (baseline sizes: {sorted(baseline)})")
        print(f"etl.baseline_mb_per_s: {baseline[base_size]:.1f}")
    else:
        log("no baseline run (every size is above --baseline-max-mb): speedup unknown")
    print(f"etl.mb_per_s: {speeds[largest]:.1f}")
    speedup = speeds[base_size] / baseline[base_size] if base_size is not None else float("nan")
    print(f"etl.speedup: {speedup:.1f}")
    print(f"etl.rss_ratio: {rss[largest] / rss[smallest]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
