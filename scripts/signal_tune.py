"""Rule signal_tune: Optuna search over the model family's hyperparameters."""

from pathlib import Path

from nucflow.runner import run_logged
from nucflow.train.tune import tune_signal_model

sm = snakemake  # noqa: F821 - injected by Snakemake
raise SystemExit(
    run_logged(
        sm.log[0],
        tune_signal_model,
        etl_dir=Path(sm.input[0]).parent,
        study_path=sm.params.study,
        best_params_path=sm.output.best,
        trials_path=sm.output.trials,
        plot_path=sm.output.plot,
        model=sm.params.model,
        tune=sm.params.tune,
        training=sm.params.training,
        seed=sm.params.seed,
        threads=sm.threads,
    )
)
