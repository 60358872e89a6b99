"""Rule interpret_shard: LOO scores of one shard of the chosen sequences, one mode."""

from nucflow.interpret.run import interpret_file
from nucflow.runner import run_logged

sm = snakemake  # noqa: F821 - injected by Snakemake
settings = sm.params.settings
raise SystemExit(
    run_logged(
        sm.log[0],
        interpret_file,
        model_dirs=list(sm.input.models),
        input_path=sm.input.data,
        out_path=sm.output[0],
        mode=sm.wildcards.mode,
        table_format=sm.params.table_format,
        sequences=settings["sequences"],
        shard=int(sm.wildcards.shard),
        n_shards=settings["shards"],
        replacementdict=settings["replacementdict"],
        replacespecifier=settings["replacespecifier"],
        target_class=settings["target_class"],
        batch_size=settings["batch_size"],
        method=settings["method"],
        invalid=sm.params.invalid,
        threads=sm.threads,
    )
)
