"""Rule predict: apply the ensemble of fold models to a FASTA file or table."""

from nucflow.predict import predict_file
from nucflow.runner import run_logged

sm = snakemake  # noqa: F821 - injected by Snakemake
raise SystemExit(
    run_logged(
        sm.log[0],
        predict_file,
        model_dirs=list(sm.input.models),
        input_path=sm.input.data,
        out_path=sm.output.ensemble,
        per_model_path=sm.output.per_fold,
        batch_size=sm.params.batch_size,
        invalid=sm.params.invalid,
        table_format=sm.params.table_format,
        metrics_path=sm.output.metrics,
    )
)
