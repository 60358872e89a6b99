"""Rule tracks_pools: ROI pools of the Train cell lines (training and validation chromosomes)."""

from nucflow.runner import run_logged
from nucflow.tracks_steps import build_pools

sm = snakemake  # noqa: F821 - injected by Snakemake
raise SystemExit(
    run_logged(
        sm.log[0],
        build_pools,
        meta=sm.input.meta,
        genome=sm.input.genome,
        train_path=sm.output.train,
        valid_path=sm.output.valid,
        counts_path=sm.output.counts,
        rois=sm.params.rois,
        blacklist=sm.input.get("blacklist"),
        chrom_sizes=sm.input.get("chrom_sizes"),
    )
)
