"""Rule tracks_benchmark: precision–recall of a prediction against the gold standard."""

from nucflow.runner import run_logged
from nucflow.tracks_steps import benchmark_prediction

sm = snakemake  # noqa: F821 - injected by Snakemake
raise SystemExit(
    run_logged(
        sm.log[0],
        benchmark_prediction,
        prediction=sm.input.prediction,
        gold=sm.input.gold,
        summary_path=sm.output.summary,
        plot_path=sm.output.plot,
        chroms=sm.params.chroms,
        bin_size=sm.params.bin_size,
        blacklist=sm.input.get("blacklist"),
    )
)
