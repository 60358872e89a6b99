"""Synthetic RNA sequences: coding vs lncRNA-like transcripts and a motif regression table."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import numpy as np

from nucflow.data.simulate_util import (
    BASES,
    check_dna,
    check_int,
    check_length_range,
    codes_to_str,
    log_uniform_lengths,
    occurrences,
    random_bases,
    record_id,
    write_fasta,
)
from nucflow.errors import InputError
from nucflow.io.atomic import atomic_path

logger = logging.getLogger(__name__)

STOP_CODONS = ("TAA", "TAG", "TGA")
#: Longest stop-free stretch (in codons, any forward frame) allowed in a simulated lncRNA.
LNCRNA_MAX_ORF_CODONS = 75
#: Planted motifs of the regression table and their additive effect on the label.
REGRESSION_MOTIF_EFFECTS: Mapping[str, float] = MappingProxyType(
    {"TGTAAATA": -1.0, "AATAAA": 0.6, "GCCGCC": 0.8}
)
REGRESSION_NOISE_SD = 0.1

# Base probabilities (A, C, G, T): GC-rich 5'UTRs, AU-rich 3'UTRs, near-uniform lncRNAs.
_UTR5_PROBS = np.array([0.22, 0.28, 0.30, 0.20])
_UTR3_PROBS = np.array([0.30, 0.20, 0.20, 0.30])
_LNC_PROBS = np.array([0.26, 0.24, 0.24, 0.26])


def codon_usage() -> tuple[np.ndarray, np.ndarray]:
    """The biased codon-usage table of simulated ORFs: 61 sense codons and their probabilities.

    The bias is fixed (not seeded): G/C at the third position is favoured two-fold, purines at
    the first position 1.5-fold, with a small deterministic per-codon variation on top.
    """
    codons = [a + b + c for a in BASES for b in BASES for c in BASES]
    sense = np.array([codon for codon in codons if codon not in STOP_CODONS])
    weights = np.empty(sense.size)
    for i, codon in enumerate(sense):
        weight = 2.0 if codon[2] in "GC" else 1.0
        weight *= 1.5 if codon[0] in "AG" else 1.0
        weights[i] = weight * (1.0 + 0.25 * ((i * 7) % 5))
    return sense, weights / weights.sum()


def _stop_mask(sequence: np.ndarray, frame: int) -> np.ndarray:
    """Boolean per complete codon of ``frame``: True where the codon is a stop (codes 0..3=ACGT)."""
    n_codons = (sequence.size - frame) // 3
    codons = sequence[frame : frame + 3 * n_codons].reshape(n_codons, 3)
    index = codons[:, 0] * 16 + codons[:, 1] * 4 + codons[:, 2]
    # TAA = 3,0,0 -> 48; TAG = 3,0,2 -> 50; TGA = 3,2,0 -> 56
    return np.isin(index, (48, 50, 56))


def _sprinkle_stops(rng: np.random.Generator, sequence: np.ndarray, max_codons: int) -> None:
    """Write stop codons into ``sequence`` in place until no forward frame has a stop-free
    stretch longer than ``max_codons`` codons (stretches running off either end included)."""
    stop_codes = np.array([[3, 0, 0], [3, 0, 2], [3, 2, 0]])
    for _ in range(100_000):
        fixed = False
        for frame in range(3):
            stops = np.flatnonzero(_stop_mask(sequence, frame))
            n_codons = (sequence.size - frame) // 3
            bounds = np.concatenate(([-1], stops, [n_codons]))
            stretch = np.diff(bounds) - 1
            long = np.flatnonzero(stretch > max_codons)
            if long.size == 0:
                continue
            first_codon = bounds[long[0]] + 1
            codon = first_codon + int(rng.integers(max_codons // 2, max_codons))
            pos = frame + 3 * codon
            sequence[pos : pos + 3] = stop_codes[rng.integers(3)]
            fixed = True
        if not fixed:
            return
    raise RuntimeError("stop-codon sprinkling did not converge")  # pragma: no cover


def _coding_transcript(
    rng: np.random.Generator, length: int, codons: np.ndarray, codon_probs: np.ndarray
) -> str:
    """5'UTR + ATG + biased sense codons + stop + 3'UTR; the ORF covers 55-80 % of ``length``."""
    n_codons = max(3, int(length * rng.uniform(0.55, 0.80)) // 3)
    body = codons[rng.choice(codons.size, size=n_codons - 2, p=codon_probs)]
    orf = "ATG" + "".join(body) + STOP_CODONS[rng.integers(3)]
    utr_total = length - len(orf)
    utr5 = int(utr_total * rng.uniform(0.2, 0.45))
    return (
        random_bases(rng, utr5, _UTR5_PROBS)
        + orf
        + random_bases(rng, utr_total - utr5, _UTR3_PROBS)
    )


def _noncoding_transcript(rng: np.random.Generator, length: int) -> str:
    """Random, near-uniform sequence with stops sprinkled in so that no forward frame has a
    stop-free stretch above ``LNCRNA_MAX_ORF_CODONS`` codons."""
    sequence = rng.choice(4, size=length, p=_LNC_PROBS).astype(np.int64)
    _sprinkle_stops(rng, sequence, LNCRNA_MAX_ORF_CODONS)
    return codes_to_str(sequence)


def simulate_transcripts(
    out_dir: Path,
    *,
    n_per_class: int = 150,
    n_unlabelled: int = 40,
    min_length: int = 200,
    max_length: int = 4000,
    seed: int = 0,
) -> dict[str, Path]:
    """Simulate protein-coding-like and lncRNA-like transcripts as FASTA files.

    Coding records are 5'UTR + one long ORF (ATG, codons from :func:`codon_usage`, one stop;
    55-80 % of the transcript) + 3'UTR. Non-coding records have no stop-free stretch above
    ``LNCRNA_MAX_ORF_CODONS`` codons in any forward frame. Lengths are log-uniform in
    ``[min_length, max_length]``. Unlabelled records are half coding, half non-coding (shuffled).

    Returns paths keyed ``protein_coding`` (``protein_coding.fa``, ids ``sim_pc_0001``...),
    ``lncrna`` (``lncrna.fa``, ``sim_nc_...``), ``unlabelled`` (``unlabelled.fa``,
    ``sim_new_...``) and ``unlabelled_truth`` (``unlabelled_truth.tsv``: ``id``, ``class``).
    """
    n_per_class = check_int("n_per_class", n_per_class, 1)
    n_unlabelled = check_int("n_unlabelled", n_unlabelled, 0)
    min_length, max_length = check_length_range(min_length, max_length, 60)
    rng = np.random.default_rng(seed)
    codons, codon_probs = codon_usage()

    def draw(is_coding: bool, length: int) -> str:
        if is_coding:
            return _coding_transcript(rng, length, codons, codon_probs)
        return _noncoding_transcript(rng, length)

    pc_lengths = log_uniform_lengths(rng, n_per_class, min_length, max_length)
    nc_lengths = log_uniform_lengths(rng, n_per_class, min_length, max_length)
    coding = [
        (record_id("sim_pc", i, n_per_class), draw(True, int(n))) for i, n in enumerate(pc_lengths)
    ]
    noncoding = [
        (record_id("sim_nc", i, n_per_class), draw(False, int(n))) for i, n in enumerate(nc_lengths)
    ]
    new_classes = rng.permutation(
        np.array([True] * (n_unlabelled // 2) + [False] * (n_unlabelled - n_unlabelled // 2))
    )
    new_lengths = log_uniform_lengths(rng, n_unlabelled, min_length, max_length)
    unlabelled = [
        (record_id("sim_new", i, n_unlabelled), draw(bool(c), int(n)))
        for i, (c, n) in enumerate(zip(new_classes, new_lengths, strict=True))
    ]

    out_dir = Path(out_dir)
    paths = {
        "protein_coding": out_dir / "protein_coding.fa",
        "lncrna": out_dir / "lncrna.fa",
        "unlabelled": out_dir / "unlabelled.fa",
        "unlabelled_truth": out_dir / "unlabelled_truth.tsv",
    }
    write_fasta(paths["protein_coding"], coding)
    write_fasta(paths["lncrna"], noncoding)
    write_fasta(paths["unlabelled"], unlabelled)
    truth = ["id\tclass\n"] + [
        f"{name}\t{'protein_coding' if c else 'lncrna'}\n"
        for (name, _), c in zip(unlabelled, new_classes, strict=True)
    ]
    with atomic_path(paths["unlabelled_truth"]) as tmp:
        tmp.write_text("".join(truth))
    logger.info(
        "simulated %d coding, %d non-coding and %d unlabelled transcripts in %s",
        len(coding),
        len(noncoding),
        len(unlabelled),
        out_dir,
    )
    return paths


def _scrub(rng: np.random.Generator, sequence: np.ndarray, motifs: list[str]) -> None:
    """Mutate ``sequence`` (codes, in place) until it contains none of ``motifs``."""
    for _ in range(10_000):
        text = codes_to_str(sequence)
        hits = [(start, len(m)) for m in motifs for start in occurrences(text, m)]
        if not hits:
            return
        for start, size in hits:
            pos = start + size // 2
            sequence[pos] = (sequence[pos] + rng.integers(1, 4)) % 4
    raise RuntimeError("could not remove chance motif occurrences")  # pragma: no cover


def _plant(
    rng: np.random.Generator, length: int, motifs: list[str], counts: np.ndarray
) -> tuple[str, list[tuple[str, int]]]:
    """A random sequence with exactly ``counts[i]`` non-overlapping copies of ``motifs[i]`` and
    no other occurrence of any motif. Returns the sequence and the ``(motif, start)`` list."""
    for _ in range(1000):
        background = rng.choice(4, size=length).astype(np.int64)
        _scrub(rng, background, motifs)
        planted = [m for m, c in zip(motifs, counts, strict=True) for _ in range(int(c))]
        order = rng.permutation(len(planted))
        planted = [planted[i] for i in order]
        free = length - sum(len(m) for m in planted)
        gaps = np.sort(rng.integers(0, free + 1, size=len(planted)))
        sites: list[tuple[str, int]] = []
        offset = 0
        for motif, gap in zip(planted, gaps, strict=True):
            start = int(gap) + offset
            background[start : start + len(motif)] = [BASES.index(b) for b in motif]
            sites.append((motif, start))
            offset += len(motif)
        text = codes_to_str(background)
        expected = {(m, s) for m, s in sites}
        found = {(m, s) for m in motifs for s in occurrences(text, m)}
        if found == expected:
            return text, sorted(sites, key=lambda site: site[1])
    raise RuntimeError("could not plant motifs without spurious occurrences")  # pragma: no cover


def simulate_regression_table(
    out_dir: Path,
    *,
    n_sequences: int = 400,
    min_length: int = 150,
    max_length: int = 600,
    seed: int = 0,
    motif_effects: Mapping[str, float] | None = None,
    noise_sd: float = REGRESSION_NOISE_SD,
) -> dict[str, Path]:
    """Simulate a token table whose float label is a known function of planted motifs.

    Each sequence (uniform length in ``[min_length, max_length]``, uniform bases) gets 0-3
    non-overlapping copies of every motif in ``motif_effects`` (default
    ``REGRESSION_MOTIF_EFFECTS``) and no chance occurrence of any. The label is
    ``sum(effect * copies) + N(0, noise_sd)``. ``split`` is 0-9, groups of equal size +-1.

    Returns paths keyed ``table`` (``table.tsv``: ``id``, ``sequence`` as comma-separated
    A/C/G/T tokens, ``label``, ``split``) and ``motifs`` (``motifs.tsv``: ``id``, ``motif``,
    ``start``, ``end``; 0-based, end exclusive; one row per planted copy).
    """
    n_sequences = check_int("n_sequences", n_sequences, 1)
    effects = dict(REGRESSION_MOTIF_EFFECTS if motif_effects is None else motif_effects)
    if not effects:
        raise InputError("motif_effects must name at least one motif")
    motifs = [check_dna("motif", m, 3) for m in effects]
    if len(set(motifs)) != len(motifs):
        raise InputError(f"motif_effects has duplicate motifs: {motifs}")
    effect = np.array([float(effects[m]) for m in effects])
    if not noise_sd >= 0:
        raise InputError(f"noise_sd must be >= 0, got {noise_sd!r}")
    max_copies = 3
    floor = 2 * max_copies * sum(len(m) for m in motifs)
    min_length, max_length = check_length_range(min_length, max_length, floor)
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_length, max_length + 1, size=n_sequences)
    counts = rng.integers(0, max_copies + 1, size=(n_sequences, len(motifs)))
    noise = rng.normal(0.0, noise_sd, size=n_sequences)
    labels = counts @ effect + noise
    splits = rng.permutation(np.arange(n_sequences) % 10)

    rows = ["id\tsequence\tlabel\tsplit\n"]
    motif_rows = ["id\tmotif\tstart\tend\n"]
    for i in range(n_sequences):
        name = record_id("sim_seq", i, n_sequences)
        text, sites = _plant(rng, int(lengths[i]), motifs, counts[i])
        rows.append(f"{name}\t{','.join(text)}\t{labels[i]:.6f}\t{splits[i]}\n")
        motif_rows.extend(f"{name}\t{m}\t{s}\t{s + len(m)}\n" for m, s in sites)

    out_dir = Path(out_dir)
    paths = {"table": out_dir / "table.tsv", "motifs": out_dir / "motifs.tsv"}
    with atomic_path(paths["table"]) as tmp:
        tmp.write_text("".join(rows))
    with atomic_path(paths["motifs"]) as tmp:
        tmp.write_text("".join(motif_rows))
    logger.info(
        "simulated %d sequences with %d planted motif copies in %s",
        n_sequences,
        len(motif_rows) - 1,
        out_dir,
    )
    return paths
