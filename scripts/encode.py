"""Rule encode: read the experiment's FASTA classes or table and write its encoded data."""

from nucflow.data.prepare import prepare_data
from nucflow.runner import run_logged

sm = snakemake  # noqa: F821 - injected by Snakemake
raise SystemExit(
    run_logged(
        sm.log[0],
        prepare_data,
        data=sm.params.data,
        encoding=sm.params.encoding,
        task=sm.params.task,
        encoded_path=sm.output.encoded,
        tokenizer_path=sm.output.tokenizer,
        learned=sm.input.get("learned"),
    )
)
