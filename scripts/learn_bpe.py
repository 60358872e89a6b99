"""Rule learn_bpe: learn a BPE vocabulary on the experiment's sequences."""

from nucflow.data.sequence import learn_tokenizer
from nucflow.runner import run_logged

sm = snakemake  # noqa: F821 - injected by Snakemake
raise SystemExit(
    run_logged(
        sm.log[0],
        learn_tokenizer,
        classes=sm.params.data["classes"],
        encoding=sm.params.encoding,
        out_path=sm.output[0],
        invalid=sm.params.data["invalid_characters"],
    )
)
