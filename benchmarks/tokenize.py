"""Benchmark the vectorised nuc / k-mer tokenizers against a per-character pure-Python one.

Run from the repository root::

    .venv/bin/python benchmarks/tokenize.py [--size-mb 100] [--repeats 3] [--baseline-mb 4]

A seeded FASTA of ~``--size-mb`` MB (sequences of 1–20 kb, 0.1 % N, 60-column lines) is
written to a temporary directory. Every figure is the median of ``--repeats`` runs:

* ``tokenize.{nuc,kmer3,kmer6}.mb_per_s``: FASTA → token ids, i.e. ``read_fasta`` on the
  whole file plus encoding every sequence, in MB of FASTA file per second. The sequences are
  encoded in batches of ``BATCH`` sequences (so the output array stays small) with
  ``context_length = longest // k + 2``, which holds every sequence whole (no truncation).
* ``…encode_mb_per_s``: the same encoding with the sequences already in memory, in MB of
  sequence (nt) per second.
* ``…baseline_mb_per_s``: a straightforward per-character pure-Python tokenizer (builds
  each k-mer character by character, one dict lookup per k-mer, list appends, then
  ``np.array``) on the first ``--baseline-mb`` MB of sequences, encode only, in MB of
  sequence per second; ``…baseline_with_fasta_mb_per_s`` adds reading that subsample's
  FASTA file. ``…slice_baseline_mb_per_s`` is a faster pure-Python variant that slices each
  k-mer (``s[i:i+k]``) instead of walking characters.
* ``…speedup`` = ``encode_mb_per_s / baseline_mb_per_s``: both EXCLUDE FASTA reading (the
  tokenizers compared on their own); ``…speedup_vs_slice`` likewise against the slicing
  variant. ``…speedup_with_fasta`` = ``mb_per_s / baseline_with_fasta_mb_per_s``: both
  INCLUDE FASTA reading (end to end, where the shared FASTA parser caps the ratio).

The figures are printed last, as ``key: value`` lines; progress goes to stderr.
"""

import sys
from pathlib import Path

# This file's name shadows the standard library's ``tokenize`` module (imported lazily by
# inspect, linecache, …): take the script's own directory off the import path first.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse  # noqa: E402
import itertools  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402

import numpy as np  # noqa: E402

from nucflow.io.fasta import read_fasta  # noqa: E402
from nucflow.tokenize import CLS_ID, PAD_ID, SEP_ID, UNK_ID, KmerTokenizer  # noqa: E402

BATCH = 256
"""Sequences per encode call in the throughput runs."""
METHODS = (("nuc", 1), ("kmer3", 3), ("kmer6", 6))
MIN_LENGTH, MAX_LENGTH, LINE_WIDTH, N_RATE = 1_000, 20_000, 60, 0.001


def log(message: str) -> None:
    """Progress line on stderr (the figures go to stdout)."""
    print(message, file=sys.stderr, flush=True)


def write_fasta(path: Path, size_mb: float, seed: int) -> tuple[int, int]:
    """Write a seeded random FASTA of about ``size_mb`` MB of sequence; return (records, nt)."""
    rng = np.random.default_rng(seed)
    target = int(size_mb * 1e6)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    records = total = 0
    with open(path, "w") as handle:
        while total < target:
            lengths = rng.integers(MIN_LENGTH, MAX_LENGTH + 1, size=500)
            lengths = lengths[: int(np.searchsorted(np.cumsum(lengths), target - total)) + 1]
            codes = letters[rng.integers(0, 4, size=int(lengths.sum()))]
            codes[rng.random(codes.size) < N_RATE] = ord("N")
            text = codes.tobytes().decode("ascii")
            start = 0
            for length in lengths.tolist():
                sequence = text[start : start + length]
                start += length
                lines = "\n".join(
                    sequence[i : i + LINE_WIDTH] for i in range(0, length, LINE_WIDTH)
                )
                handle.write(f">seq{records} random length {length}\n{lines}\n")
                records += 1
            total += int(lengths.sum())
    return records, total


def _vocabulary(k: int) -> dict[str, int]:
    """k-mer → id dict (ids from 5, lexicographic order)."""
    kmers = itertools.product("ACGT", repeat=k)
    return {"".join(kmer): 5 + index for index, kmer in enumerate(kmers)}


def _pad(row: list[int], context_length: int) -> list[int]:
    """Append SEP if there is room, then PAD up to ``context_length``."""
    if len(row) < context_length:
        row.append(SEP_ID)
    row.extend([PAD_ID] * (context_length - len(row)))
    return row


def baseline_encode(sequences: Sequence[str], k: int, context_length: int) -> np.ndarray:
    """Per-character pure-Python tokenizer: build each k-mer character by character, one dict
    lookup per k-mer, list appends, then ``np.array``."""
    vocabulary = _vocabulary(k)
    cap = (context_length - 1) * k
    rows = []
    for sequence in sequences:
        row = [CLS_ID]
        kmer = ""
        for char in sequence[:cap]:
            kmer += char
            if len(kmer) == k:
                row.append(vocabulary.get(kmer, UNK_ID))
                kmer = ""
        rows.append(_pad(row, context_length))
    return np.array(rows, dtype=np.int32)


def slice_baseline_encode(sequences: Sequence[str], k: int, context_length: int) -> np.ndarray:
    """Per-k-mer pure-Python tokenizer (a faster baseline): slice each k-mer, dict lookup."""
    vocabulary = _vocabulary(k)
    cap = (context_length - 1) * k
    rows = []
    for sequence in sequences:
        sequence = sequence[:cap]
        row = [CLS_ID]
        for start in range(0, len(sequence) - k + 1, k):
            row.append(vocabulary.get(sequence[start : start + k], UNK_ID))
        rows.append(_pad(row, context_length))
    return np.array(rows, dtype=np.int32)


def vectorised_encode(sequences: Sequence[str], k: int, context_length: int) -> None:
    """Encode all sequences with :class:`KmerTokenizer` in batches of ``BATCH``."""
    tokenizer = KmerTokenizer(k, context_length)
    for start in range(0, len(sequences), BATCH):
        tokenizer.encode(sequences[start : start + BATCH])


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``run``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print ``key: value`` figures last."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=100.0, help="MB of sequence")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (median)")
    parser.add_argument(
        "--baseline-mb", type=float, default=4.0, help="MB of sequence for the baseline"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    figures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="nucflow-bench-") as tmp:
        fasta = Path(tmp) / "bench.fa"
        log(f"writing a {args.size_mb:g} MB FASTA to {fasta} …")
        records, total_nt = write_fasta(fasta, args.size_mb, args.seed)
        fasta_mb = fasta.stat().st_size / 1e6
        sequences = read_fasta(fasta).sequences
        longest = max(map(len, sequences))

        # Subsample: the first records holding --baseline-mb MB of sequence, as its own FASTA.
        ends = np.cumsum([len(s) for s in sequences])
        n_sub = min(len(sequences), int(np.searchsorted(ends, args.baseline_mb * 1e6)) + 1)
        subsample = sequences[:n_sub]
        sub_nt = int(ends[n_sub - 1])
        sub_fasta = Path(tmp) / "subsample.fa"
        sub_fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(subsample)))
        sub_fasta_mb = sub_fasta.stat().st_size / 1e6

        read_s = median_seconds(lambda: read_fasta(fasta), args.repeats)
        figures["tokenize.read_fasta.mb_per_s"] = f"{fasta_mb / read_s:.1f}"

        for name, k in METHODS:
            context_length = longest // k + 2
            # Sanity check: both tokenizers give the same ids on the subsample.
            got = KmerTokenizer(k, context_length).encode(subsample[:20])
            for baseline in (baseline_encode, slice_baseline_encode):
                if not np.array_equal(baseline(subsample[:20], k, context_length), got):
                    raise AssertionError(f"{name}: vectorised and {baseline.__name__} differ")

            log(f"{name}: FASTA → ids, encode only, baseline …")
            end_to_end = median_seconds(
                lambda k=k, c=context_length: vectorised_encode(read_fasta(fasta).sequences, k, c),
                args.repeats,
            )
            encode_only = median_seconds(
                lambda k=k, c=context_length: vectorised_encode(sequences, k, c), args.repeats
            )
            base = median_seconds(
                lambda k=k, c=context_length: baseline_encode(subsample, k, c), args.repeats
            )
            base_fasta = median_seconds(
                lambda k=k, c=context_length: baseline_encode(
                    read_fasta(sub_fasta).sequences, k, c
                ),
                args.repeats,
            )
            sliced = median_seconds(
                lambda k=k, c=context_length: slice_baseline_encode(subsample, k, c), args.repeats
            )
            mb_per_s = fasta_mb / end_to_end
            encode_mb_per_s = total_nt / 1e6 / encode_only
            base_mb_per_s = sub_nt / 1e6 / base
            base_fasta_mb_per_s = sub_fasta_mb / base_fasta
            figures[f"tokenize.{name}.mb_per_s"] = f"{mb_per_s:.1f}"
            figures[f"tokenize.{name}.encode_mb_per_s"] = f"{encode_mb_per_s:.1f}"
            figures[f"tokenize.{name}.baseline_mb_per_s"] = f"{base_mb_per_s:.2f}"
            figures[f"tokenize.{name}.baseline_with_fasta_mb_per_s"] = f"{base_fasta_mb_per_s:.2f}"
            figures[f"tokenize.{name}.slice_baseline_mb_per_s"] = f"{sub_nt / 1e6 / sliced:.2f}"
            # speedup: both exclude FASTA reading; speedup_with_fasta: both include it.
            figures[f"tokenize.{name}.speedup"] = f"{encode_mb_per_s / base_mb_per_s:.1f}"
            figures[f"tokenize.{name}.speedup_vs_slice"] = (
                f"{encode_mb_per_s * sliced / (sub_nt / 1e6):.1f}"
            )
            figures[f"tokenize.{name}.speedup_with_fasta"] = f"{mb_per_s / base_fasta_mb_per_s:.1f}"

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"# FASTA: {fasta_mb:.1f} MB, {records} records, {total_nt / 1e6:.1f} M nt")
    print(f"# baseline subsample: {n_sub} records, {sub_nt / 1e6:.2f} M nt")
    print(f"# encoded in batches of {BATCH} sequences, context_length = longest // k + 2")
    print(f"# median of {args.repeats} runs; speedup excludes FASTA reading on both sides")
    figures["tokenize.fasta_mb"] = f"{fasta_mb:.1f}"
    figures["tokenize.peak_rss_mb"] = f"{peak_mb:.0f}"
    for key, value in figures.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
