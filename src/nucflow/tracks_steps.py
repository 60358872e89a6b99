"""The steps of a `kind: tracks` experiment (maxATAC): ROI pools, training, prediction,
benchmark — each a function the workflow's scripts and the CLI call."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch

from nucflow.data.roi import pool_counts, random_windows, read_pool, roi_pool, write_pool
from nucflow.data.track_batches import TrackBatches, fixed_validation_set, reverse_complement
from nucflow.data.track_cache import N_CODE, WindowLoader, model_input
from nucflow.errors import InputError
from nucflow.io.atomic import atomic_path
from nucflow.io.track_meta import (
    TrackSample,
    check_chromosome_names,
    read_chrom_sizes,
    read_intervals,
    read_meta,
)
from nucflow.models import build_model
from nucflow.models.dcnn import raw_to_predictions
from nucflow.models.files import load_model, to_device
from nucflow.tracks_benchmark import POOLED, benchmark_tracks
from nucflow.tracks_predict import average_strands, predict_bigwig
from nucflow.train.checkpoints import checkpoint_directory, file_stamps, remove_checkpoints
from nucflow.train.fit import write_history
from nucflow.train.tracks_fit import LOSS_OUTPUTS, fit_tracks, save_track_model

log = logging.getLogger(__name__)

RELEASE_EVERY = 64  # prediction batches between releases of the window caches' pages


def genome_sizes(genome: str | os.PathLike[str], chrom_sizes: str | None) -> dict[str, int]:
    """Chromosome sizes from ``chrom_sizes`` when given, else from the 2bit's header."""
    if chrom_sizes:
        return read_chrom_sizes(chrom_sizes)
    import py2bit

    try:
        handle = py2bit.open(str(genome))
    except RuntimeError as err:
        raise InputError(f"{genome}: not a readable .2bit genome ({err})") from None
    try:
        return {name: int(size) for name, size in handle.chroms().items()}
    finally:
        handle.close()


def blacklist_table(path: str | os.PathLike[str] | None) -> pd.DataFrame:
    """The blacklist intervals (chrom, start, end); an empty table without a blacklist."""
    if not path:
        return pd.DataFrame({"chrom": [], "start": [], "end": []}).astype(
            {"start": np.int64, "end": np.int64}
        )
    return read_intervals(path)[["chrom", "start", "end"]]


def checked_chroms(chroms: Sequence[str], sizes: Mapping[str, int], what: str) -> list[str]:
    """``chroms`` that the genome has; InputError naming the missing ones (or a chr mismatch)."""
    check_chromosome_names(chroms, sizes, what=what, source="genome")
    return list(chroms)


def build_pools(
    meta: str | os.PathLike[str],
    genome: str | os.PathLike[str],
    train_path: str | os.PathLike[str],
    valid_path: str | os.PathLike[str],
    counts_path: str | os.PathLike[str],
    *,
    rois: Mapping[str, Any],
    blacklist: str | os.PathLike[str] | None = None,
    chrom_sizes: str | None = None,
) -> pd.DataFrame:
    """ROI pools of the Train cell lines on the training and validation chromosomes.

    Writes both pools (TSV with header, reusable) and their counts per chromosome × cell line
    × ROI type; returns the counts.
    """
    samples = [s for s in read_meta(meta) if s.split == "Train"]
    if not samples:
        raise InputError(f"{meta}: no Train cell line (expected at least one)")
    sizes = genome_sizes(genome, chrom_sizes)
    excluded = blacklist_table(blacklist)
    peaks = [
        (sample.cell_line, roi_type, read_intervals(path))
        for sample in samples
        for roi_type, path in (("ATAC", sample.atac_peaks), ("CHIP", sample.chip_peaks))
    ]
    tables = []
    for part, path, chroms in (
        ("train", train_path, rois["tchroms"]),
        ("valid", valid_path, rois["vchroms"]),
    ):
        pool = roi_pool(
            peaks, checked_chroms(chroms, sizes, part), sizes, excluded, centre=rois["centre"]
        )
        if pool.empty:
            raise InputError(
                f"{meta}: no {part} regions of interest on {', '.join(chroms)} (peaks outside "
                "these chromosomes, at their edges or in the blacklist)"
            )
        write_pool(pool, path)
        counts = pool_counts(pool)
        counts.insert(0, "pool", part)
        tables.append(counts)
        log.info("%s pool: %d windows on %d chromosomes", part, len(pool), pool.chrom.nunique())
    counts = pd.concat(tables, ignore_index=True)
    with atomic_path(counts_path) as tmp:
        counts.to_csv(tmp, sep="\t", index=False)
    return counts


def train_cells(samples: Sequence[TrackSample]) -> dict[str, tuple[Path, Path]]:
    """Train cell line → (ATAC bigWig, binding bigWig); Test cell lines are never included."""
    return {s.cell_line: (s.atac, s.binding) for s in samples if s.split == "Train"}


def _loader(
    cache_dir: str | os.PathLike[str],
    genome: str | os.PathLike[str],
    chrom_sizes: str | None,
    missing: str,
) -> tuple[WindowLoader, dict[str, int]]:
    """A window loader over the experiment's cache, and the chromosome sizes."""
    sizes = genome_sizes(genome, chrom_sizes)
    return WindowLoader(cache_dir, genome, sizes, missing=missing), sizes


def train_tracks_model(
    meta: str | os.PathLike[str],
    genome: str | os.PathLike[str],
    train_pool: str | os.PathLike[str],
    valid_pool: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    history_path: str | os.PathLike[str],
    plot_path: str | os.PathLike[str],
    *,
    rois: Mapping[str, Any],
    training: Mapping[str, Any],
    seed: int,
    blacklist: str | os.PathLike[str] | None = None,
    chrom_sizes: str | None = None,
    missing: str = "error",
    threads: int = 1,
    devices: int = 1,
    resume: bool = True,
) -> dict[str, Any]:
    """Train DCNN_V2 on batches drawn from the pools; keep the best epoch (validation dice, or
    loss for the quantitative model). ``devices`` > 1: DDP over that many GPUs; ``resume``:
    keep a checkpoint beside ``model_dir`` and continue from it when rerun.

    Only Train cell lines' tracks are read: the pan-cell shuffle draws from them alone, and
    the run fails if a Test cell line's file was opened. The validation set is drawn once
    (seeded) from the validation pool and reused every epoch.
    """
    torch.set_num_threads(threads)
    samples = read_meta(meta)
    cells = train_cells(samples)
    test_files = {
        Path(path).resolve() for s in samples if s.split == "Test" for path in (s.atac, s.binding)
    }
    loader, sizes = _loader(cache_dir, genome, chrom_sizes, missing)
    excluded = blacklist_table(blacklist)
    quantitative = bool(training["quantitative"])
    loss = training["loss"] if quantitative else "bce"

    def batches(pool_path: str | os.PathLike[str], chroms: Sequence[str]) -> TrackBatches:
        def random_region(rng: np.random.Generator, n: int) -> pd.DataFrame:
            return random_windows(
                rng, n, sizes, chroms, excluded, n_fraction=lambda c, s: n_fraction(loader, c, s)
            )

        return TrackBatches(
            pool=read_pool(pool_path),
            cells=cells,
            source=loader,
            batch_size=training["batch_size"],
            rand_ratio=rois["rand_ratio"],
            shuffle_cell_type=training["shuffle_cell_type"],
            rev_comp=training["rev_comp"],
            quantitative=quantitative,
            target_scale=training["target_scale_factor"],
            random_region=random_region if rois["rand_ratio"] > 0 else None,
            test_cells=[s.cell_line for s in samples if s.split == "Test"],
        )

    train = batches(train_pool, rois["tchroms"])
    hyperparameters = {"dense": training["dense"], "output": LOSS_OUTPUTS[loss]}
    identity = {
        "step": "tracks_train",
        "rois": dict(rois),
        "training": dict(training),
        "seed": seed,
        "missing": missing,
        "inputs": file_stamps(meta, genome, train_pool, valid_pool, blacklist, chrom_sizes),
    }
    checkpoints = checkpoint_directory(model_dir, identity) if resume else None
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="validation-", dir=cache_dir) as scratch:
        valid_set = fixed_validation_set(
            batches(valid_pool, rois["vchroms"]), training["validation_batches"], seed, scratch
        )
        log.info(
            "training on %d Train cell lines (%s), %d × %d windows per epoch; validation: %d "
            "fixed windows (%.0f MB, memory-mapped)",
            len(cells),
            ", ".join(cells),
            training["batches"],
            training["batch_size"],
            len(valid_set[0]),
            valid_set[0].nbytes / 1e6,
        )
        L.seed_everything(seed, verbose=False)
        model = build_model("dcnn", **hyperparameters)
        history = fit_tracks(
            model,
            train.batch,
            valid_set,
            epochs=training["epochs"],
            batches=training["batches"],
            val_batch_size=training["val_batch_size"],
            seed=seed,
            quantitative=quantitative,
            loss=loss,
            checkpoint_dir=checkpoints,
            devices=devices,
        )
        del valid_set  # close the memory maps before the directory goes
    leaked = sorted(str(p) for p in loader.opened if p in test_files)  # resolved paths
    if leaked:  # a defect, not bad input: the pools and batches never name Test cell lines
        raise RuntimeError(f"a Test cell line's track was read during training: {leaked}")
    write_history(
        history, history_path, plot_path, plotted="val_pearson_r" if quantitative else "val_dice"
    )
    save_track_model(
        model_dir,
        model,
        hyperparameters,
        training={**training, **rois, "seed": seed, "best_epoch": history.best_epoch},
        target={
            "quantitative": quantitative,
            "target_scale_factor": training["target_scale_factor"],
        },
    )
    remove_checkpoints(checkpoints)
    best = history.sign * history.best_score
    log.info("best epoch %d: %s %.4f", history.best_epoch, history.monitor, best)
    return {"best_epoch": history.best_epoch, history.monitor: best}


def n_fraction(loader: WindowLoader, chrom: str, starts: np.ndarray) -> np.ndarray:
    """Share of N (or other non-ACGT) bases in each window."""
    return (loader.codes(chrom, np.asarray(starts, dtype=np.int64)) == N_CODE).mean(axis=1)


def predict_tracks(
    model_dir: str | os.PathLike[str],
    genome: str | os.PathLike[str],
    signal: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    peaks_path: str | os.PathLike[str],
    *,
    chroms: Sequence[str],
    step: int = 256,
    batch_size: int = 256,
    reverse_complement_average: bool = False,
    threshold: float = 0.5,
    chrom_sizes: str | None = None,
    missing: str = "error",
    threads: int = 1,
) -> dict[str, Any]:
    """Predict an ATAC bigWig's binding in 32-bp bins over ``chroms``: a bigWig and peaks.

    Windows of 1,024 bp every ``step`` bp (the last one ending at the chromosome end) are
    predicted in batches and their overlapping bins averaged; with
    ``reverse_complement_average`` each window's forward and reverse-complement predictions
    are averaged. Bins scoring at least ``threshold`` are merged into peaks.
    """
    torch.set_num_threads(threads)
    model, _ = load_model(model_dir, "tracks")
    model, device = to_device(model)
    loader, sizes = _loader(cache_dir, genome, chrom_sizes, missing)
    checked_chroms(chroms, sizes, "prediction")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    @torch.inference_mode()
    def scores(inputs: np.ndarray) -> np.ndarray:
        with autocast:
            raw = model(torch.from_numpy(inputs).to(device))
        return raw_to_predictions(raw.float(), model.output).cpu().numpy()

    calls = iter(range(1, 2**62))

    def predict(chrom: str, starts: np.ndarray) -> np.ndarray:
        if next(calls) % RELEASE_EVERY == 0:
            loader.release()  # keep resident memory bounded along long chromosomes
        inputs = model_input(loader.codes(chrom, starts), loader.signal(signal, chrom, starts))
        forward = scores(inputs)
        if not reverse_complement_average:
            return forward
        flipped, _ = reverse_complement(inputs, np.zeros_like(forward))
        return average_strands(forward, scores(np.ascontiguousarray(flipped)))

    return predict_bigwig(
        predict,
        sizes,
        chroms,
        out_path,
        step=step,
        batch_size=batch_size,
        peaks_path=peaks_path,
        threshold=threshold,
    )


def benchmark_prediction(
    prediction: str | os.PathLike[str],
    gold: str | os.PathLike[str],
    summary_path: str | os.PathLike[str],
    plot_path: str | os.PathLike[str],
    *,
    chroms: Sequence[str],
    bin_size: int = 200,
    blacklist: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Precision–recall of a prediction bigWig against a gold-standard binding bigWig.

    Writes the summary table (per chromosome and pooled: AUPR, average precision, random
    AUPR, log2 fold change), the PR-curve plot and, beside them, a PR-curve TSV per chromosome.
    """
    out_dir = Path(summary_path).parent
    prefix = Path(prediction).parent.name
    summary = benchmark_tracks(
        prediction,
        gold,
        chroms=chroms,
        blacklist=blacklist_table(blacklist) if blacklist else None,
        bin_size=bin_size,
        out_dir=out_dir,
        prefix=prefix,
    )
    os.replace(out_dir / f"{prefix}_summary.tsv", summary_path)
    os.replace(out_dir / f"{prefix}_{bin_size}bp_PRC.png", plot_path)
    pooled = summary[summary["chrom"] == POOLED].iloc[0]
    log.info(
        "%s: AUPR %.3f, average precision %.3f, random %.4f (log2 FC %.2f)",
        prefix,
        pooled["AUPRC"],
        pooled["average_precision"],
        pooled["random_AUPRC"],
        pooled["log2FC"],
    )
    return summary


def gather_benchmarks(
    summaries: Sequence[str | os.PathLike[str]], out_path: str | os.PathLike[str]
) -> pd.DataFrame:
    """One table of every Test cell line's benchmark summary (column ``cell_line`` first)."""
    tables = []
    for path in summaries:
        table = pd.read_csv(path, sep="\t")
        table.insert(0, "cell_line", Path(path).parent.name)
        tables.append(table)
    frame = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    with atomic_path(out_path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False)
    return frame
