"""Rule signal_etl: signal CSVs → padded, balanced, split shards + manifest.json."""

from pathlib import Path

from nucflow.data.signal_etl import etl_settings, etl_signals
from nucflow.runner import run_logged

sm = snakemake  # noqa: F821 - injected by Snakemake
raise SystemExit(
    run_logged(
        sm.log[0],
        etl_signals,
        paths=list(sm.input),
        out_dir=Path(sm.output[0]).parent,
        **etl_settings(sm.params.experiment, sm.params.seed),
    )
)
