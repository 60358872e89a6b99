"""Rule signal_tune: the best trial of the shared study (after every tuning worker)."""

from pathlib import Path

from nucflow.runner import run_logged
from nucflow.train.tune import gather_tuning

sm = snakemake  # noqa: F821 - injected by Snakemake
raise SystemExit(
    run_logged(
        sm.log[0],
        gather_tuning,
        etl_dir=Path(sm.input.etl).parent,
        study_info_path=sm.input.study,
        best_params_path=sm.output.best,
        trials_path=sm.output.trials,
        plot_path=sm.output.plot,
        model=sm.params.model,
        tune=sm.params.tune,
        worker_paths=sm.input.workers,
    )
)
