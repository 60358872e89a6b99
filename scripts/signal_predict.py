"""Rule signal_predict: classify the reads of new signal CSVs with the final model."""

from nucflow.runner import run_logged
from nucflow.signal_predict import predict_signal_file

sm = snakemake  # noqa: F821 - injected by Snakemake
raise SystemExit(
    run_logged(
        sm.log[0],
        predict_signal_file,
        model_dir=sm.input.model,
        input_paths=list(sm.input.data),
        out_path=sm.output.predictions,
        metrics_path=sm.output.metrics,
        unknown_label=sm.params.unknown_label,
        batch_size=sm.params.batch_size,
    )
)
