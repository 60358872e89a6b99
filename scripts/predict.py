"""Rule predict: apply the ensemble of fold models to a FASTA file."""

from nucflow.predict import predict_fasta
from nucflow.runner import run_logged

sm = snakemake  # noqa: F821 - injected by Snakemake
raise SystemExit(
    run_logged(
        sm.log[0],
        predict_fasta,
        model_dirs=list(sm.input.models),
        fasta_path=sm.input.fasta,
        out_path=sm.output.ensemble,
        per_model_path=sm.output.per_fold,
        batch_size=sm.params.batch_size,
        invalid=sm.params.invalid,
    )
)
