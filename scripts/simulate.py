"""Rules simulate_*: write one synthetic demo dataset."""

from pathlib import Path

from nucflow.data.simulate import simulate_dataset
from nucflow.runner import run_logged

sm = snakemake  # noqa: F821 - injected by Snakemake
raise SystemExit(
    run_logged(
        sm.log[0],
        simulate_dataset,
        name=sm.params.dataset,
        out_dir=Path(sm.output[0]).parent,
        seed=sm.params.seed,
        settings=sm.params.settings,
    )
)
