# kind: sequence — [learn_vocabulary] → encode → [pretrain] → split → fit / evaluate per fold →
# metrics.csv → ensemble predict.


rule learn_vocabulary:
    input:
        data_files,
    output:
        f"{RESULTS}/{{exp}}/data/vocabulary.json",
    params:
        data=lambda wildcards: experiment(wildcards)["data"],
        encoding=lambda wildcards: experiment(wildcards)["encoding"],
        task=lambda wildcards: experiment(wildcards)["task"],
        seed=config["seed"],
    log:
        "logs/learn_vocabulary/{exp}.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/learn_vocabulary.py"


rule encode:
    input:
        unpack(encode_inputs),
    output:
        encoded=f"{RESULTS}/{{exp}}/data/encoded.npz",
        tokenizer=f"{RESULTS}/{{exp}}/data/tokenizer.json",
    params:
        data=lambda wildcards: experiment(wildcards)["data"],
        encoding=lambda wildcards: experiment(wildcards)["encoding"],
        task=lambda wildcards: experiment(wildcards)["task"],
    log:
        "logs/encode/{exp}.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/encode.py"


rule pretrain_data:
    input:
        fastas=pretrain_fastas,
        tokenizer=rules.encode.output.tokenizer,
    output:
        encoded=f"{RESULTS}/{{exp}}/pretrain/data/encoded.npz",
        split=f"{RESULTS}/{{exp}}/pretrain/data/split.json",
    params:
        valid_fraction=lambda wildcards: experiment(wildcards)["pretrain"]["valid_fraction"],
        invalid=lambda wildcards: experiment(wildcards)["data"]["invalid_characters"],
        seed=config["seed"],
    log:
        "logs/pretrain_data/{exp}.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/pretrain_data.py"


rule pretrain:
    input:
        encoded=rules.pretrain_data.output.encoded,
        split=rules.pretrain_data.output.split,
        tokenizer=rules.encode.output.tokenizer,
    output:
        model=directory(f"{RESULTS}/{{exp}}/pretrain/model"),
        history=f"{RESULTS}/{{exp}}/pretrain/history.csv",
        plot=report(
            f"{RESULTS}/{{exp}}/pretrain/history.png",
            caption="../report/pretrain.rst",
            category="{exp}",
            subcategory="pretraining",
        ),
    params:
        model=lambda wildcards: experiment(wildcards)["model"],
        encoding=lambda wildcards: experiment(wildcards)["encoding"],
        pretrain=lambda wildcards: experiment(wildcards)["pretrain"],
        seed=config["seed"],
    threads: job_resources("threads")
    resources:
        gpu=job_resources("gpu"),
        mem_mb=job_resources("mem_mb"),
        runtime=job_resources("runtime"),
    log:
        "logs/pretrain/{exp}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/pretrain.py"


rule split:
    input:
        encoded=rules.encode.output.encoded,
    output:
        f"{RESULTS}/{{exp}}/splits/{{fold}}.json",
    params:
        splits=lambda wildcards: experiment(wildcards)["splits"],
        seed=config["seed"],
    log:
        "logs/split/{exp}/{fold}.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/split.py"


rule fit:
    input:
        unpack(fit_inputs),
    output:
        model=directory(f"{RESULTS}/{{exp}}/folds/{{fold}}/r{{replicate}}/model"),
        history=f"{RESULTS}/{{exp}}/folds/{{fold}}/r{{replicate}}/history.csv",
        plot=report(
            f"{RESULTS}/{{exp}}/folds/{{fold}}/r{{replicate}}/history.png",
            caption="../report/history.rst",
            category="{exp}",
            subcategory="training history",
            labels={"fold": "{fold}", "replicate": "{replicate}"},
        ),
    params:
        model=lambda wildcards: experiment(wildcards)["model"],
        encoding=lambda wildcards: experiment(wildcards)["encoding"],
        training=lambda wildcards: experiment(wildcards)["training"],
        task=lambda wildcards: experiment(wildcards)["task"],
        seed=config["seed"],
    threads: job_resources("threads")
    resources:
        gpu=job_resources("gpu"),
        mem_mb=job_resources("mem_mb"),
        runtime=job_resources("runtime"),
    log:
        "logs/fit/{exp}/{fold}_r{replicate}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/fit.py"


rule evaluate:
    input:
        models=replicate_models,
        encoded=rules.encode.output.encoded,
        split=rules.split.output[0],
    output:
        metrics=f"{RESULTS}/{{exp}}/folds/{{fold}}/metrics.json",
        predictions=f"{RESULTS}/{{exp}}/folds/{{fold}}/test_predictions.csv",
    resources:
        gpu=job_resources("gpu"),
    log:
        "logs/evaluate/{exp}/{fold}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/evaluate.py"


rule rank_deltas:
    input:
        rules.evaluate.output.predictions,
    output:
        deltas=f"{RESULTS}/{{exp}}/folds/{{fold}}/rank_deltas.csv",
        plot=report(
            f"{RESULTS}/{{exp}}/folds/{{fold}}/scatter.png",
            caption="../report/scatter.rst",
            category="{exp}",
            subcategory="test predictions",
            labels={"fold": "{fold}"},
        ),
    log:
        "logs/rank_deltas/{exp}/{fold}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/rank_deltas.py"


rule aggregate:
    input:
        fold_metrics,
    output:
        report(
            f"{RESULTS}/{{exp}}/metrics.csv",
            caption="../report/metrics.rst",
            category="{exp}",
            subcategory="metrics",
            labels={"table": "metrics over folds"},
        ),
    log:
        "logs/aggregate/{exp}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/aggregate.py"


rule predict:
    wildcard_constraints:
        exp=experiments_of("sequence"),
    input:
        models=fold_models,
        data=predict_input,
    output:
        ensemble=f"{RESULTS}/{{exp}}/predict/{{name}}/predictions.csv",
        per_fold=f"{RESULTS}/{{exp}}/predict/{{name}}/predictions_per_fold.csv",
        metrics=f"{RESULTS}/{{exp}}/predict/{{name}}/metrics.json",
    params:
        batch_size=lambda wildcards: experiment(wildcards)["predict"]["batch_size"],
        invalid=lambda wildcards: experiment(wildcards)["data"]["invalid_characters"],
        table_format=lambda wildcards: prediction_table_format(experiment(wildcards)),
    resources:
        gpu=job_resources("gpu"),
    log:
        "logs/predict/{exp}/{name}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/predict.py"
