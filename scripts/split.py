"""Rule split: write one fold's train / valid / test ids."""

from nucflow.data.splits import write_fold_split
from nucflow.runner import run_logged

sm = snakemake  # noqa: F821 - injected by Snakemake
raise SystemExit(
    run_logged(
        sm.log[0],
        write_fold_split,
        encoded_path=sm.input.encoded,
        settings=sm.params.splits,
        seed=sm.params.seed,
        fold=sm.wildcards.fold,
        out_path=sm.output[0],
    )
)
