"""Rule signal_evaluate: test metrics, per-class report and confusion matrices."""

from pathlib import Path

from nucflow.runner import run_logged
from nucflow.signal_predict import evaluate_signal_model

sm = snakemake  # noqa: F821 - injected by Snakemake
out = sm.output
raise SystemExit(
    run_logged(
        sm.log[0],
        evaluate_signal_model,
        model_dir=sm.input.model,
        etl_dir=Path(sm.input.etl).parent,
        metrics_path=out.metrics,
        per_class_path=out.per_class,
        predictions_path=out.predictions,
        confusion={
            "test": {"csv": out.confusion_test, "png": out.confusion_test_plot},
            "train": {"csv": out.confusion_train, "png": out.confusion_train_plot},
        },
    )
)
