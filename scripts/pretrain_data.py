"""Rule pretrain_data: encode the pretraining FASTAs and hold out a validation part."""

from nucflow.data.sequence import prepare_pretraining_data
from nucflow.runner import run_logged

sm = snakemake  # noqa: F821 - injected by Snakemake
raise SystemExit(
    run_logged(
        sm.log[0],
        prepare_pretraining_data,
        fasta_paths=list(sm.input.fastas),
        tokenizer_path=sm.input.tokenizer,
        encoded_path=sm.output.encoded,
        split_path=sm.output.split,
        valid_fraction=sm.params.valid_fraction,
        seed=sm.params.seed,
        invalid=sm.params.invalid,
    )
)
