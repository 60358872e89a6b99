"""Rule evaluate: score a fold's model on the fold's test part."""

from nucflow.predict import evaluate_fold
from nucflow.runner import run_logged

sm = snakemake  # noqa: F821 - injected by Snakemake
raise SystemExit(
    run_logged(
        sm.log[0],
        evaluate_fold,
        model_dirs=list(sm.input.models),
        encoded_path=sm.input.encoded,
        split_path=sm.input.split,
        metrics_path=sm.output.metrics,
        predictions_path=sm.output.predictions,
    )
)
