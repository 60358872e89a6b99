"""Benchmark maxATAC-style training-window assembly: cached vectorised loader vs per-example I/O.

Run from the repository root::

    .venv/bin/python -P benchmarks/windows.py [--windows 20000] [--repeats 3] [--workdir DIR]

A genome (chr1 3 Mb, chr2 2 Mb, three cell lines) is simulated in a temporary directory with
:func:`nucflow.data.simulate_tracks.simulate_genome`. The process is pinned to ONE core
(``sched_setaffinity``; nothing here is multithreaded). Then:

* cache build (not timed with the throughput; reported as ``cache.build_s``): a
  :class:`~nucflow.data.track_cache.WindowLoader` converts the 2bit and every ATAC and binding
  bigWig to memory-mapped ``.npy`` arrays for both chromosomes.
* fast path: batches of 1000 random windows (chromosome by length, start uniform, cell line
  uniform, as maxATAC's random regions), gathered per (chromosome, cell line) group with
  ``WindowLoader.codes`` / ``.signal`` and assembled into X ``(1000, 1024, 5)`` (one-hot
  A, C, G, T + ATAC, via ``model_input`` into a reused buffer) and Y ``(1000, 1024)`` (binding
  signal). ``--windows`` windows per repeat, after one untimed warm-up batch.
* baseline (what maxATAC does per example, minus its three redundant sequence fetches): for
  EACH window open the 2bit (``py2bit.open``) and both bigWigs (``pyBigWig.open``), fetch the
  sequence and the two value ranges, one-hot the sequence per base in Python as maxATAC's
  ``get_one_hot_encoded`` does, NaN -> 0, fill the same X and Y rows, close the files. A
  second, generous baseline does the same file opening with a numpy one-hot
  (``windows.baseline_vectorised_per_s``, ``windows.speedup_vs_vectorised``).
  ``--baseline-windows`` windows per repeat; both baselines are checked to give the fast
  path's arrays exactly.

Medians over ``--repeats``. Progress goes to stderr; the figures are printed last on stdout as
``key: value`` lines, ending with ``windows.per_s`` (fast windows/s) and ``windows.speedup``
(fast / baseline windows/s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import py2bit
import pyBigWig

from nucflow.data.simulate_tracks import simulate_genome
from nucflow.data.track_cache import WindowLoader, model_input
from nucflow.io.track_meta import read_chrom_sizes, read_meta

WIDTH = 1024
BATCH = 1000
CHROMOSOME_LENGTHS = {"chr1": 3_000_000, "chr2": 2_000_000}


def log(message: str) -> None:
    """Progress line on stderr (the figures go to stdout)."""
    print(message, file=sys.stderr, flush=True)


def pin_one_core() -> str:
    """Restrict this process to a single CPU core; return a description of it."""
    if not hasattr(os, "sched_setaffinity"):
        return "unpinned"
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return f"core {core}"


class Tracks:
    """The simulated genome's file paths: 2bit, chrom sizes, per-cell ATAC / binding bigWigs."""

    def __init__(self, directory: Path) -> None:
        paths = simulate_genome(directory, chromosome_lengths=CHROMOSOME_LENGTHS, seed=0)
        self.genome = paths["genome"]
        self.sizes = read_chrom_sizes(paths["chrom_sizes"])
        samples = read_meta(paths["meta"])
        self.atac = [s.atac for s in samples]
        self.binding = [s.binding for s in samples]
        self.chroms = list(self.sizes)
        lengths = np.array([self.sizes[c] for c in self.chroms], dtype=np.float64)
        self.chrom_probs = lengths / lengths.sum()


def draw(tracks: Tracks, rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """Random windows: chromosome index, start and cell-line index per window."""
    chrom = rng.choice(len(tracks.chroms), size=n, p=tracks.chrom_probs)
    limits = np.array([tracks.sizes[c] - WIDTH + 1 for c in tracks.chroms])[chrom]
    start = (rng.random(n) * limits).astype(np.int64)
    cell = rng.integers(len(tracks.atac), size=n)
    return chrom, start, cell


def fast_batch(
    loader: WindowLoader,
    tracks: Tracks,
    windows: tuple[np.ndarray, ...],
    x: np.ndarray,
    y: np.ndarray,
) -> None:
    """Fill x (n, 1024, 5) and y (n, 1024) with the cached, vectorised loader.

    Windows are grouped by (chromosome, cell line) so that each group fills a contiguous slice
    of the batch (maxATAC does not shuffle within a batch either).
    """
    chrom, start, cell = windows
    order = np.lexsort((cell, chrom))
    chrom, start, cell = chrom[order], start[order], cell[order]
    bounds = np.flatnonzero(np.diff(chrom)) + 1
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, chrom.size], strict=True):
        name = tracks.chroms[int(chrom[lo])]
        codes = loader.codes(name, start[lo:hi], WIDTH)
        cells = cell[lo:hi]
        inner = np.flatnonzero(np.diff(cells)) + 1
        for a, b in zip(np.r_[0, inner], np.r_[inner, cells.size], strict=True):
            c = int(cells[a])
            starts = start[lo + a : lo + b]
            atac = loader.signal(tracks.atac[c], name, starts, WIDTH)
            model_input(codes[a:b], atac, out=x[lo + a : lo + b])
            y[lo + a : lo + b] = loader.signal(tracks.binding[c], name, starts, WIDTH)


def _one_hot_python(sequence: str, base: str) -> list[int]:
    """maxATAC's ``get_one_hot_encoded``: a Python loop over the bases for one target base."""
    encoded = []
    for s in sequence:
        if s.lower() == base.lower():
            encoded.append(1)
        else:
            encoded.append(0)
    return encoded


def baseline_batch(
    tracks: Tracks,
    windows: tuple[np.ndarray, ...],
    x: np.ndarray,
    y: np.ndarray,
    *,
    vectorised: bool = False,
) -> None:
    """Fill x and y one example at a time, opening the 2bit and both bigWigs per example.

    Default: maxATAC's ``get_input_matrix`` path (per-base Python one-hot for each of A, C,
    G, T; ``np.array(values(...))`` from a Python list), with the sequence fetched once
    instead of four times. ``vectorised``: a generous variant with a numpy one-hot and
    ``values(..., numpy=True)``, still opening the three files per example.
    """
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    for i, (chrom, start, cell) in enumerate(zip(*windows, strict=True)):
        name = tracks.chroms[int(chrom)]
        s, e = int(start), int(start) + WIDTH
        genome = py2bit.open(str(tracks.genome))
        atac = pyBigWig.open(str(tracks.atac[int(cell)]))
        binding = pyBigWig.open(str(tracks.binding[int(cell)]))
        try:
            sequence = genome.sequence(name, s, e)
            if vectorised:
                raw = np.frombuffer(sequence.upper().encode("ascii"), dtype=np.uint8)
                x[i, :, :4] = raw[:, None] == letters[None, :]
                x[i, :, 4] = np.nan_to_num(atac.values(name, s, e, numpy=True), nan=0.0)
                y[i] = np.nan_to_num(binding.values(name, s, e, numpy=True), nan=0.0)
            else:
                matrix = np.zeros((5, WIDTH))
                for n, base in enumerate("ACGT"):
                    matrix[n, :] = _one_hot_python(sequence, base)
                matrix[4, :] = np.nan_to_num(np.array(atac.values(name, s, e)), nan=0.0)
                x[i] = matrix.T
                y[i] = np.nan_to_num(np.array(binding.values(name, s, e)), nan=0.0)
        finally:
            genome.close()
            atac.close()
            binding.close()


def check_same(loader: WindowLoader, tracks: Tracks, rng: np.random.Generator) -> None:
    """Both loaders must produce identical arrays (up to the fast path's in-batch order)."""
    windows = draw(tracks, rng, 64)
    order = np.lexsort((windows[2], windows[0]))
    x_fast, y_fast = np.empty((64, WIDTH, 5), np.float32), np.empty((64, WIDTH), np.float32)
    fast_batch(loader, tracks, windows, x_fast, y_fast)
    for vectorised in (False, True):
        x_base, y_base = np.empty_like(x_fast), np.empty_like(y_fast)
        sorted_windows = tuple(w[order] for w in windows)
        baseline_batch(tracks, sorted_windows, x_base, y_base, vectorised=vectorised)
        if not (np.array_equal(x_fast, x_base) and np.array_equal(y_fast, y_base)):
            raise AssertionError(f"fast and baseline (vectorised={vectorised}) loaders disagree")


def write_long_chromosome(directory: Path, length: int, seed: int) -> tuple[Path, Path]:
    """A one-chromosome genome (``chrL``, random bases) and an ATAC-like bigWig over it
    (a value every 50 bp), written without holding a per-base signal array."""
    from nucflow.io.twobit import write_2bit

    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    genome, signal = directory / "long.2bit", directory / "long.bw"
    write_2bit(
        genome, {"chrL": rng.choice(np.frombuffer(b"ACGT", "S1"), length).tobytes().decode()}
    )
    with pyBigWig.open(str(signal), "w") as bigwig:
        bigwig.addHeader([("chrL", length)], maxZooms=4)
        values = rng.gamma(0.3, 0.2, size=length // 50).astype(np.float64)
        bigwig.addEntries("chrL", 0, values=values, span=50, step=50)
    return genome, signal


def predict_child(directory: Path, length: int) -> None:
    """Predict over the long chromosome with nucflow's streaming predictor and print the peak
    RSS. The network is replaced by a per-bin mean of the ATAC channel of the real model input
    (built by the window loader), so the run measures tiling, loading, averaging and writing,
    not the DCNN's arithmetic (its weights are 0.5 MB)."""
    from nucflow.tracks_predict import predict_bigwig

    genome, signal = directory / "long.2bit", directory / "long.bw"
    loader = WindowLoader(directory / "cache", genome, {"chrL": length})
    out = np.empty((1024, WIDTH, 5), np.float32)

    calls = iter(range(1, 2**62))

    def predict(chrom: str, starts: np.ndarray) -> np.ndarray:
        if next(calls) % 64 == 0:
            loader.release()  # as nucflow.tracks_steps.predict_tracks does
        inputs = model_input(
            loader.codes(chrom, starts), loader.signal(signal, chrom, starts), out[: len(starts)]
        )
        return np.clip(inputs[..., 4].reshape(len(starts), 32, 32).mean(axis=2), 0.0, 1.0)

    begin = time.perf_counter()
    predict_bigwig(predict, {"chrL": length}, ["chrL"], directory / "pred.bw", batch_size=1024)
    seconds = time.perf_counter() - begin
    with open("/proc/self/status") as status:
        hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    print(f"{hwm / 1024:.1f} {seconds:.1f}")


def measure_predict_peak_rss_mb(workdir: Path, length_mb: float, seed: int) -> float | None:
    """Peak RSS (MB) of a fresh process predicting a ``length_mb``-Mb chromosome (window
    caches built in that process too); None when ``length_mb`` is 0."""
    import subprocess

    if length_mb <= 0:
        return None
    length = int(length_mb * 1e6)
    directory = workdir / "long"
    begin = time.perf_counter()
    write_long_chromosome(directory, length, seed)
    log(f"predict: wrote a {length:,}-bp chromosome in {time.perf_counter() - begin:.1f} s")
    result = subprocess.run(
        [sys.executable, "-P", __file__, "--predict-child", str(directory), str(length)],
        capture_output=True,
        text=True,
        check=True,
    )
    rss, seconds = map(float, result.stdout.split())
    log(f"predict: {length:,} bp in {seconds:.1f} s (caches included), peak RSS {rss:.0f} MB")
    return rss


def timed(function, repeats: int) -> list[float]:
    """Wall seconds of ``function()`` for each repeat."""
    seconds = []
    for _ in range(repeats):
        begin = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - begin)
    return seconds


def run(args: argparse.Namespace, workdir: Path) -> dict[str, str]:
    """Simulate, build caches and measure; return the figures as printable strings."""
    figures: dict[str, str] = {"cpu": pin_one_core()}
    log(f"simulating {sum(CHROMOSOME_LENGTHS.values()):,} bp genome in {workdir}")
    tracks = Tracks(workdir / "data")

    loader = WindowLoader(workdir / "cache", tracks.genome, tracks.sizes)
    begin = time.perf_counter()
    for chrom in tracks.chroms:
        loader.genome_array(chrom)
        for path in (*tracks.atac, *tracks.binding):
            loader.signal_array(path, chrom)
    build_s = time.perf_counter() - begin
    cache_bytes = sum(p.stat().st_size for p in (workdir / "cache").rglob("*.npy"))
    log(f"caches built in {build_s:.2f} s ({cache_bytes / 1e6:.0f} MB, {len(loader.opened)} reads)")
    figures["cache.build_s"] = f"{build_s:.3f}"
    figures["cache.mb"] = f"{cache_bytes / 1e6:.1f}"

    rng = np.random.default_rng(args.seed)
    check_same(loader, tracks, rng)
    log("fast and baseline loaders produce identical arrays")

    x = np.empty((BATCH, WIDTH, 5), np.float32)
    y = np.empty((BATCH, WIDTH), np.float32)
    n_batches = max(1, args.windows // BATCH)
    batches = [draw(tracks, rng, BATCH) for _ in range(n_batches)]
    fast_batch(loader, tracks, batches[0], x, y)  # warm-up (page cache, allocations)

    def fast() -> None:
        for windows in batches:
            fast_batch(loader, tracks, windows, x, y)

    fast_s = statistics.median(timed(fast, args.repeats))
    fast_rate = n_batches * BATCH / fast_s
    log(f"fast: {n_batches * BATCH} windows in {fast_s:.3f} s = {fast_rate:,.0f} windows/s")

    n_base = args.baseline_windows
    base_windows = draw(tracks, rng, n_base)
    x_base = np.empty((n_base, WIDTH, 5), np.float32)
    y_base = np.empty((n_base, WIDTH), np.float32)
    rates = {}
    for label, vectorised in (("maxATAC-style", False), ("vectorised", True)):
        seconds = statistics.median(
            timed(
                lambda v=vectorised: baseline_batch(
                    tracks, base_windows, x_base, y_base, vectorised=v
                ),
                args.repeats,
            )
        )
        rates[label] = n_base / seconds
        log(f"baseline {label}: {n_base} windows in {seconds:.3f} s = {rates[label]:,.0f}/s")
    base_rate = rates["maxATAC-style"]

    rss = measure_predict_peak_rss_mb(workdir, args.predict_mb, args.seed)
    figures["windows.batch_ms"] = f"{fast_s / n_batches * 1000:.2f}"
    figures["windows.baseline_per_s"] = f"{base_rate:.1f}"
    figures["windows.baseline_vectorised_per_s"] = f"{rates['vectorised']:.1f}"
    figures["windows.speedup_vs_vectorised"] = f"{fast_rate / rates['vectorised']:.1f}"
    figures["predict.peak_rss_mb"] = "nan" if rss is None else f"{rss:.1f}"
    figures["windows.per_s"] = f"{fast_rate:.0f}"
    figures["windows.speedup"] = f"{fast_rate / base_rate:.1f}"
    return figures


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the benchmark in a temporary (or given) directory, print figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=20_000, help="fast-path windows per repeat")
    parser.add_argument("--baseline-windows", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="keep files here")
    parser.add_argument(
        "--predict-mb", type=float, default=250.0, help="chromosome for predict RSS (0: skip)"
    )
    parser.add_argument("--predict-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.predict_child:
        predict_child(Path(args.predict_child[0]), int(args.predict_child[1]))
        return 0
    if args.windows < 1 or args.baseline_windows < 1 or args.repeats < 1:
        parser.error("--windows, --baseline-windows and --repeats must be >= 1")
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        figures = run(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="nucflow-windows-") as tmp:
            figures = run(args, Path(tmp))
    for key, value in figures.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
