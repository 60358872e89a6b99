"""Rule aggregate: one metrics table over all folds (with mean and sd)."""

from nucflow.predict import aggregate_metrics
from nucflow.runner import run_logged

sm = snakemake  # noqa: F821 - injected by Snakemake
raise SystemExit(
    run_logged(sm.log[0], aggregate_metrics, metrics_paths=list(sm.input), out_path=sm.output[0])
)
