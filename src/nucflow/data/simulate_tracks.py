"""Synthetic genome + ATAC/ChIP tracks in maxATAC's training layout, with planted binding truth.

Each chromosome is cut into tiles of ``_TILE`` bp. Tiles holding an N block or a blacklist
interval are left alone; of the others, about half hold one accessible region (ATAC peak) and
the rest are background. Motif sites are planted in most accessible regions and, at a lower
density, in background tiles; chance occurrences of the motif (either strand) are mutated away
so that ``motif_sites.bed`` lists every occurrence. A site is bound (ChIP peak, value 1 in the
binding bigWig) in a cell line exactly when its region is accessible in that cell line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from nucflow.data.simulate_util import BASES, check_dna, occurrences, reverse_complement
from nucflow.errors import InputError
from nucflow.io.atomic import atomic_path
from nucflow.io.track_meta import META_COLUMNS
from nucflow.io.tracks import write_bed, write_bigwig, write_chrom_sizes, write_narrowpeak
from nucflow.io.twobit import write_2bit

logger = logging.getLogger(__name__)

DEFAULT_CHROMOSOME_LENGTHS: Mapping[str, int] = MappingProxyType(
    {"chr1": 300_000, "chr2": 200_000, "chr3": 150_000}
)
SIM_TF = "SIM_AP1"
MIN_CHROMOSOME_LENGTH = 20_000
_TILE = 1500
_ATAC_BIN = 10
_REGION_FRACTION = 0.55  # of the free tiles
_SITE_IN_REGION_FRACTION = 0.7  # of the accessible regions
_SITES_PER_KB = 1.0  # all planted sites, per kb of chromosome
_SHARED_FRACTION = 0.4  # regions accessible in every cell line
_BASE_PROBS = np.array([0.295, 0.205, 0.205, 0.295])
_ASCII = np.frombuffer(BASES.encode("ascii"), dtype=np.uint8)
_N = ord("N")


@dataclass
class _Chromosome:
    """Everything simulated for one chromosome."""

    name: str
    bases: np.ndarray  # ASCII codes, upper case, N in N blocks
    n_blocks: list[tuple[int, int]]
    blacklist: list[tuple[int, int]]
    regions: np.ndarray  # (n, 3) start, end, centre
    accessible: np.ndarray  # (n_regions, n_cells) bool
    heights: np.ndarray  # (n_regions, n_cells) peak height in (0, 1]
    sites: list[tuple[int, str, int]]  # (start, strand, region index or -1)


def _check_genome_args(
    chromosome_lengths: Mapping[str, int] | None, cell_lines: Sequence[str], motif: str
) -> tuple[dict[str, int], list[str], str]:
    """Validate the genome generator's arguments; return them normalised."""
    lengths = dict(DEFAULT_CHROMOSOME_LENGTHS if chromosome_lengths is None else chromosome_lengths)
    if not lengths:
        raise InputError("chromosome_lengths must name at least one chromosome")
    for name, length in lengths.items():
        if not re.fullmatch(r"[A-Za-z0-9_.]+", str(name)):
            raise InputError(f"chromosome name {name!r} must match [A-Za-z0-9_.]+")
        if isinstance(length, bool) or int(length) != length or length < MIN_CHROMOSOME_LENGTH:
            raise InputError(
                f"chromosome {name!r} length must be an integer >= {MIN_CHROMOSOME_LENGTH}, "
                f"got {length!r}"
            )
    cells = [str(cell) for cell in cell_lines]
    if isinstance(cell_lines, str) or len(cells) < 2:
        raise InputError(f"cell_lines must name at least 2 cell lines, got {cell_lines!r}")
    if len(set(cells)) != len(cells):
        raise InputError(f"cell_lines has duplicates: {cells}")
    for cell in cells:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", cell):
            raise InputError(f"cell line name {cell!r} must match [A-Za-z0-9_.-]+")
    return {k: int(v) for k, v in lengths.items()}, cells, check_dna("motif", motif, 4)


def _interval_in_tile(
    rng: np.random.Generator, tile: int, min_size: int, max_size: int
) -> tuple[int, int]:
    """A random interval of ``min_size..max_size`` bp inside tile ``tile``, 50 bp from its edges."""
    size = int(rng.integers(min_size, max_size + 1))
    start = tile * _TILE + int(rng.integers(50, _TILE - 50 - size + 1))
    return start, start + size


def _layout(
    rng: np.random.Generator, name: str, length: int, n_cells: int, motif: str
) -> _Chromosome:
    """Draw one chromosome: sequence, N blocks, blacklist, accessible regions, motif sites."""
    n_tiles = length // _TILE
    bases = _ASCII[rng.choice(4, size=length, p=_BASE_PROBS)]
    # N blocks: one at the start (tile 0), one inside another tile; two blacklist intervals.
    special = rng.choice(np.arange(1, n_tiles - 1), size=3, replace=False)
    n_blocks = [
        (0, int(rng.integers(500, 1401))),
        _interval_in_tile(rng, int(special[0]), 300, 1200),
    ]
    blacklist = sorted(_interval_in_tile(rng, int(t), 300, 1200) for t in special[1:])
    for start, end in n_blocks:
        bases[start:end] = _N
    free = np.setdiff1d(np.arange(n_tiles), np.concatenate(([0], special)))
    free = rng.permutation(free)
    n_regions = int(round(_REGION_FRACTION * free.size))
    region_tiles = np.sort(free[:n_regions])
    background_tiles = np.sort(free[n_regions:])

    widths = rng.integers(200, 601, size=n_regions)
    centres = region_tiles * _TILE + rng.integers(400, _TILE - 400 + 1, size=n_regions)
    starts = centres - widths // 2
    regions = np.stack([starts, starts + widths, centres], axis=1).astype(np.int64)
    shared = rng.random(n_regions) < _SHARED_FRACTION
    accessible = np.ones((n_regions, n_cells), dtype=bool)
    for r in np.flatnonzero(~shared):
        size = int(rng.integers(1, n_cells))
        accessible[r] = False
        accessible[r, rng.choice(n_cells, size=size, replace=False)] = True
    heights = rng.uniform(0.35, 1.0, size=(n_regions, n_cells))

    k = len(motif)
    sites: list[tuple[int, str, int]] = []
    with_site = np.flatnonzero(rng.random(n_regions) < _SITE_IN_REGION_FRACTION)
    for r in with_site:
        start, end, centre = regions[r]
        shift = int(rng.integers(-(end - start) // 6, (end - start) // 6 + 1))
        site = int(np.clip(centre - k // 2 + shift, start, end - k))
        sites.append((site, "+" if rng.random() < 0.5 else "-", int(r)))
    n_background = max(int(length / 1000 * _SITES_PER_KB) - len(sites), 0)
    taken: list[int] = []
    while len(taken) < n_background and background_tiles.size:
        tile = int(background_tiles[rng.integers(background_tiles.size)])
        site = tile * _TILE + int(rng.integers(100, _TILE - 100 - k + 1))
        if all(abs(site - other) > k + 10 for other in taken):
            taken.append(site)
    sites.extend((site, "+" if rng.random() < 0.5 else "-", -1) for site in taken)
    sites.sort()
    for site, strand, _ in sites:
        word = motif if strand == "+" else reverse_complement(motif)
        bases[site : site + k] = np.frombuffer(word.encode("ascii"), dtype=np.uint8)
    _remove_spurious_sites(rng, bases, motif, sites)
    return _Chromosome(name, bases, n_blocks, blacklist, regions, accessible, heights, sites)


def _remove_spurious_sites(
    rng: np.random.Generator, bases: np.ndarray, motif: str, sites: list[tuple[int, str, int]]
) -> None:
    """Mutate bases (in place) until the motif occurs, on either strand, only at ``sites``."""
    k = len(motif)
    protected = np.zeros(bases.size, dtype=bool)
    for site, _, _ in sites:
        protected[site : site + k] = True
    words = {motif, reverse_complement(motif)}
    planted = {site for site, _, _ in sites}
    for _ in range(1000):
        text = bases.tobytes().decode("ascii")
        extra = sorted({s for w in words for s in occurrences(text, w)} - planted)
        if not extra:
            return
        for start in extra:
            candidates = np.flatnonzero(~protected[start : start + k]) + start
            pos = int(candidates[rng.integers(candidates.size)])
            others = _ASCII[bases[pos] != _ASCII]
            bases[pos] = others[rng.integers(others.size)]
    raise RuntimeError("could not remove chance motif occurrences")  # pragma: no cover


def _soft_mask(rng: np.random.Generator, bases: np.ndarray) -> str:
    """Lower-case a few repeat-like blocks (N stays upper case) and return the sequence text."""
    masked = np.zeros(bases.size, dtype=bool)
    for _ in range(4):
        size = int(rng.integers(100, 801))
        start = int(rng.integers(0, bases.size - size))
        masked[start : start + size] = True
    text = bases.copy()
    text[masked & (text != _N)] += 32
    return text.tobytes().decode("ascii")


def _atac_track(rng: np.random.Generator, chrom: _Chromosome, cell: int) -> np.ndarray:
    """Per-base ATAC signal in [0, 1]: gamma background plus a Gaussian bump per accessible
    region, piecewise constant over ``_ATAC_BIN`` bp bins, 0 inside N blocks."""
    length = chrom.bases.size
    n_bins = -(-length // _ATAC_BIN)
    binned = rng.gamma(2.0, 0.01, size=n_bins)
    bin_centres = np.arange(n_bins) * _ATAC_BIN + _ATAC_BIN / 2
    for r in np.flatnonzero(chrom.accessible[:, cell]):
        start, end, centre = chrom.regions[r]
        sigma = (end - start) / 4
        lo, hi = (start - (end - start)) // _ATAC_BIN, -(-(end + (end - start)) // _ATAC_BIN)
        lo, hi = max(lo, 0), min(hi, n_bins)
        x = bin_centres[lo:hi]
        binned[lo:hi] += chrom.heights[r, cell] * np.exp(-0.5 * ((x - centre) / sigma) ** 2)
    binned = np.round(np.clip(binned, 0.0, 1.0), 4)
    track = np.repeat(binned, _ATAC_BIN)[:length]
    track[chrom.bases == _N] = 0.0
    return track


def _peaks_for_cell(
    rng: np.random.Generator, chrom: _Chromosome, cell: int, k: int
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """ATAC and ChIP narrowPeak rows of one chromosome for one cell line, plus the binary
    per-base binding track (1 inside ChIP peaks)."""
    atac_rows = [
        (chrom.name, int(s), int(e), int(c - s), float(chrom.heights[r, cell]))
        for r, (s, e, c) in enumerate(chrom.regions)
        if chrom.accessible[r, cell]
    ]
    chip_rows = []
    binding = np.zeros(chrom.bases.size, dtype=np.float32)
    for site, _, region in chrom.sites:
        if region < 0 or not chrom.accessible[region, cell]:
            continue
        width = int(rng.integers(200, 401))
        centre = site + k // 2
        start = centre - int(rng.integers(int(0.3 * width), int(0.7 * width) + 1))
        start = min(max(start, 0), chrom.bases.size - width)
        binding[start : start + width] = 1.0
        chip_rows.append(
            (chrom.name, start, start + width, centre - start, float(chrom.heights[region, cell]))
        )
    columns = ["chrom", "start", "end", "peak", "height"]
    atac = pd.DataFrame(atac_rows, columns=columns)
    chip = pd.DataFrame(chip_rows, columns=columns)
    for table in (atac, chip):
        table["score"] = np.round(table["height"] * 1000).astype(np.int64)
        table["signalValue"] = np.round(table["height"] * 50, 3)
    return atac, chip, binding


def _finish_peaks(tables: list[pd.DataFrame], cell_name: str, kind: str) -> pd.DataFrame:
    """Concatenate per-chromosome peak tables and name the peaks ``{cell}_{kind}_{n}``."""
    peaks = pd.concat(tables, ignore_index=True)
    peaks["name"] = [f"{cell_name}_{kind}_{i + 1:05d}" for i in range(len(peaks))]
    return peaks


def simulate_genome(
    out_dir: Path,
    *,
    chromosome_lengths: Mapping[str, int] | None = None,
    cell_lines: Sequence[str] = ("CL1", "CL2", "CL3"),
    motif: str = "TGACTCA",
    seed: int = 0,
) -> dict[str, Path]:
    """Simulate a small genome with ATAC and ChIP tracks for several cell lines (maxATAC layout).

    The genome (default chr1 300 kb, chr2 200 kb, chr3 150 kb) is random with two N blocks and
    four soft-masked blocks per chromosome. About 55 % of 1.5 kb tiles carry an accessible
    region (200-600 bp); 40 % of regions are open in every cell line, the rest in a random
    proper subset. ``motif`` (either strand) is planted in 70 % of the regions and in the
    background (about 1 site per kb overall) and occurs nowhere else. A site is bound in a cell
    line iff its region is accessible there; the ChIP peak is 200-400 bp around it.

    Returns paths keyed ``genome`` (``genome.2bit``), ``chrom_sizes`` (``chrom.sizes``),
    ``blacklist`` (``blacklist.bed``), ``motif_sites`` (``motif_sites.bed``, BED6, the truth),
    ``meta`` (``meta.tsv``, maxATAC columns, file names relative to it; last cell line
    ``Test``, others ``Train``) and per cell line ``{cell}_atac_bw`` (``{cell}_atac.bw``, float
    ATAC signal in [0, 1]), ``{cell}_chip_bw`` (``{cell}_chip.bw``, binary binding track),
    ``{cell}_atac_peaks`` and ``{cell}_chip_peaks`` (``{cell}_atac.narrowPeak``,
    ``{cell}_chip.narrowPeak``).
    """
    lengths, cells, motif = _check_genome_args(chromosome_lengths, cell_lines, motif)
    rng = np.random.default_rng(seed)
    chromosomes = [_layout(rng, name, n, len(cells), motif) for name, n in lengths.items()]
    sequences = {chrom.name: _soft_mask(rng, chrom.bases) for chrom in chromosomes}

    out_dir = Path(out_dir)
    paths = {
        "genome": out_dir / "genome.2bit",
        "chrom_sizes": out_dir / "chrom.sizes",
        "blacklist": out_dir / "blacklist.bed",
        "motif_sites": out_dir / "motif_sites.bed",
        "meta": out_dir / "meta.tsv",
    }
    write_2bit(paths["genome"], sequences)
    write_chrom_sizes(paths["chrom_sizes"], lengths)
    write_bed(
        paths["blacklist"],
        pd.DataFrame(
            [(c.name, s, e) for c in chromosomes for s, e in c.blacklist],
            columns=["chrom", "start", "end"],
        ),
    )
    site_rows = [
        (c.name, s, s + len(motif), strand) for c in chromosomes for s, strand, _ in c.sites
    ]
    sites = pd.DataFrame(site_rows, columns=["chrom", "start", "end", "strand"])
    sites.insert(3, "name", [f"site_{i + 1:05d}" for i in range(len(sites))])
    sites.insert(4, "score", 0)
    write_bed(paths["motif_sites"], sites)

    meta_rows = []
    for index, cell in enumerate(cells):
        atac_tracks, chip_tracks, atac_peaks, chip_peaks = {}, {}, [], []
        for chrom in chromosomes:
            atac_tracks[chrom.name] = _atac_track(rng, chrom, index)
            atac, chip, binding = _peaks_for_cell(rng, chrom, index, len(motif))
            chip_tracks[chrom.name] = binding
            atac_peaks.append(atac)
            chip_peaks.append(chip)
        files = {
            f"{cell}_atac_bw": f"{cell}_atac.bw",
            f"{cell}_chip_bw": f"{cell}_chip.bw",
            f"{cell}_atac_peaks": f"{cell}_atac.narrowPeak",
            f"{cell}_chip_peaks": f"{cell}_chip.narrowPeak",
        }
        for key, file_name in files.items():
            paths[key] = out_dir / file_name
        write_bigwig(paths[f"{cell}_atac_bw"], lengths, atac_tracks)
        write_bigwig(paths[f"{cell}_chip_bw"], lengths, chip_tracks)
        write_narrowpeak(paths[f"{cell}_atac_peaks"], _finish_peaks(atac_peaks, cell, "atac"))
        write_narrowpeak(paths[f"{cell}_chip_peaks"], _finish_peaks(chip_peaks, cell, "chip"))
        label = "Test" if index == len(cells) - 1 else "Train"
        meta_rows.append((cell, SIM_TF, *list(files.values()), label))
    meta = ["\t".join(META_COLUMNS) + "\n"] + ["\t".join(row) + "\n" for row in meta_rows]
    with atomic_path(paths["meta"]) as tmp:
        tmp.write_text("".join(meta))
    logger.info(
        "simulated %d chromosomes (%d bp), %d motif sites and tracks for %d cell lines in %s",
        len(chromosomes),
        sum(lengths.values()),
        len(sites),
        len(cells),
        out_dir,
    )
    return paths
