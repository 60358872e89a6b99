"""Rule signal_tune_study: create (or resume) the Optuna study the tuning workers share."""

from pathlib import Path

from nucflow.runner import run_logged
from nucflow.train.tune import create_tuning_study

sm = snakemake  # noqa: F821 - injected by Snakemake
raise SystemExit(
    run_logged(
        sm.log[0],
        create_tuning_study,
        etl_dir=Path(sm.input[0]).parent,
        study_path=sm.params.study,
        study_info_path=sm.output[0],
        model=sm.params.model,
        tune=sm.params.tune,
        seed=sm.params.seed,
    )
)
