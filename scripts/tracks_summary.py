"""Rule tracks_summary: every Test cell line's benchmark in one table."""

from nucflow.runner import run_logged
from nucflow.tracks_steps import gather_benchmarks

sm = snakemake  # noqa: F821 - injected by Snakemake
raise SystemExit(
    run_logged(
        sm.log[0],
        gather_benchmarks,
        summaries=[path for path in sm.input if path.endswith("summary.tsv")],
        out_path=sm.output[0],
    )
)
