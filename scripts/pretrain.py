"""Rule pretrain: masked-language-model pretraining of the experiment's BERT encoder."""

from nucflow.runner import run_logged
from nucflow.train.fit import training_devices
from nucflow.train.pretrain import pretrain_model

sm = snakemake  # noqa: F821 - injected by Snakemake
raise SystemExit(
    run_logged(
        sm.log[0],
        pretrain_model,
        encoded_path=sm.input.encoded,
        tokenizer_path=sm.input.tokenizer,
        split_path=sm.input.split,
        model_dir=sm.output.model,
        history_path=sm.output.history,
        plot_path=sm.output.plot,
        model_settings=sm.params.model,
        encoding=sm.params.encoding,
        pretrain=sm.params.pretrain,
        seed=sm.params.seed,
        threads=sm.threads,
        devices=training_devices(sm.resources.gpu),  # > 1: DDP
    )
)
