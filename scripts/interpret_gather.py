"""Rule interpret_gather: one LOO table per mode from its shards, the arrays file, plots."""

from nucflow.interpret.tables import gather_loo
from nucflow.runner import run_logged

sm = snakemake  # noqa: F821 - injected by Snakemake
settings = sm.params.settings
raise SystemExit(
    run_logged(
        sm.log[0],
        gather_loo,
        shard_paths=list(sm.input),
        out_csv=sm.output.table,
        out_npz=sm.output.arrays,
        mode=sm.wildcards.mode,
        plots_dir=sm.output.plots,
        n_plots=settings["plots"],
        window=settings["plot_window"],
    )
)
