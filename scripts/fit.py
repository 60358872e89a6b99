"""Rule fit: train one fold and keep its best epoch."""

from nucflow.runner import run_logged
from nucflow.train.fit import fit_fold, training_devices

sm = snakemake  # noqa: F821 - injected by Snakemake
raise SystemExit(
    run_logged(
        sm.log[0],
        fit_fold,
        encoded_path=sm.input.encoded,
        tokenizer_path=sm.input.tokenizer,
        split_path=sm.input.split,
        model_dir=sm.output.model,
        history_path=sm.output.history,
        plot_path=sm.output.plot,
        model_settings=sm.params.model,
        encoding=sm.params.encoding,
        training=sm.params.training,
        task=sm.params.task,
        seed=sm.params.seed,
        threads=sm.threads,
        pretrained=sm.input.get("pretrained"),
        replicate=int(sm.wildcards.replicate),
        devices=training_devices(sm.resources.gpu),  # > 1: DDP
    )
)
