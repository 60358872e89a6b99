"""Rule encode: read the class FASTAs and write token ids + tokenizer."""

from nucflow.data.sequence import prepare_sequences
from nucflow.runner import run_logged

sm = snakemake  # noqa: F821 - injected by Snakemake
raise SystemExit(
    run_logged(
        sm.log[0],
        prepare_sequences,
        classes=sm.params.data["classes"],
        encoding=sm.params.encoding,
        encoded_path=sm.output.encoded,
        tokenizer_path=sm.output.tokenizer,
        invalid=sm.params.data["invalid_characters"],
        learned=sm.input.get("learned"),
    )
)
