"""Rule tracks_train: DCNN_V2 on the ROI pools; the best epoch is kept."""

from nucflow.runner import run_logged
from nucflow.tracks_steps import train_tracks_model
from nucflow.train.fit import training_devices

sm = snakemake  # noqa: F821 - injected by Snakemake
raise SystemExit(
    run_logged(
        sm.log[0],
        train_tracks_model,
        meta=sm.input.meta,
        genome=sm.input.genome,
        train_pool=sm.input.train,
        valid_pool=sm.input.valid,
        cache_dir=sm.params.cache,
        model_dir=sm.output.model,
        history_path=sm.output.history,
        plot_path=sm.output.plot,
        rois=sm.params.rois,
        training=sm.params.training,
        seed=sm.params.seed,
        blacklist=sm.input.get("blacklist"),
        chrom_sizes=sm.input.get("chrom_sizes"),
        missing=sm.params.data["missing_chromosomes"],
        threads=sm.threads,
        devices=training_devices(sm.resources.gpu),  # > 1: DDP
    )
)
