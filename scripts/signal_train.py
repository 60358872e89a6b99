"""Rule signal_train: final training with the tuned hyperparameters."""

from pathlib import Path

from nucflow.runner import run_logged
from nucflow.train.fit import training_devices
from nucflow.train.signal_fit import train_signal_model

sm = snakemake  # noqa: F821 - injected by Snakemake
raise SystemExit(
    run_logged(
        sm.log[0],
        train_signal_model,
        etl_dir=Path(sm.input.etl).parent,
        best_params_path=sm.input.best,
        model_dir=sm.output.model,
        history_path=sm.output.history,
        plot_path=sm.output.plot,
        training=sm.params.training,
        seed=sm.params.seed,
        threads=sm.threads,
        devices=training_devices(sm.resources.gpu),  # > 1: DDP
    )
)
