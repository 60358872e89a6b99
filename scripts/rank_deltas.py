"""Rule rank_deltas: per-sample ranks of label and prediction, and a scatter plot."""

from nucflow.predict import write_rank_deltas
from nucflow.runner import run_logged

sm = snakemake  # noqa: F821 - injected by Snakemake
raise SystemExit(
    run_logged(
        sm.log[0],
        write_rank_deltas,
        predictions_path=sm.input[0],
        rank_deltas_path=sm.output.deltas,
        plot_path=sm.output.plot,
    )
)
