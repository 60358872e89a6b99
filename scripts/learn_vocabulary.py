"""Rule learn_vocabulary: learn a BPE or atomic vocabulary on the experiment's sequences."""

from nucflow.data.prepare import learn_vocabulary
from nucflow.runner import run_logged

sm = snakemake  # noqa: F821 - injected by Snakemake
raise SystemExit(
    run_logged(
        sm.log[0],
        learn_vocabulary,
        data=sm.params.data,
        encoding=sm.params.encoding,
        task=sm.params.task,
        out_path=sm.output[0],
        seed=sm.params.seed,
    )
)
