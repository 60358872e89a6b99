"""Rule signal_tune_worker: run trials of the shared study until it holds max_trials."""

from pathlib import Path

from nucflow.runner import run_logged
from nucflow.train.tune import run_tuning_worker

sm = snakemake  # noqa: F821 - injected by Snakemake
raise SystemExit(
    run_logged(
        sm.log[0],
        run_tuning_worker,
        etl_dir=Path(sm.input.etl).parent,
        study_info_path=sm.input.study,
        worker_path=sm.output[0],
        model=sm.params.model,
        tune=sm.params.tune,
        training=sm.params.training,
        seed=sm.params.seed,
        worker=int(sm.wildcards.worker),
        threads=sm.threads,
    )
)
