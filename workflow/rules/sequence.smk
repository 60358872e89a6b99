# kind: sequence — encode → split → fit / evaluate per fold → metrics.csv → ensemble predict.


rule encode:
    input:
        class_fastas,
    output:
        encoded=f"{RESULTS}/{{exp}}/data/encoded.npz",
        tokenizer=f"{RESULTS}/{{exp}}/data/tokenizer.json",
    params:
        data=lambda wildcards: experiment(wildcards)["data"],
        encoding=lambda wildcards: experiment(wildcards)["encoding"],
    log:
        "logs/encode/{exp}.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/encode.py"


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
        encoded=rules.encode.output.encoded,
        tokenizer=rules.encode.output.tokenizer,
        split=rules.split.output[0],
    output:
        model=directory(f"{RESULTS}/{{exp}}/folds/{{fold}}/model"),
        history=f"{RESULTS}/{{exp}}/folds/{{fold}}/history.csv",
        plot=report(
            f"{RESULTS}/{{exp}}/folds/{{fold}}/history.png",
            caption="../report/history.rst",
            category="{exp}",
            subcategory="training history",
            labels={"fold": "{fold}"},
        ),
    params:
        model=lambda wildcards: experiment(wildcards)["model"],
        training=lambda wildcards: experiment(wildcards)["training"],
        task=lambda wildcards: experiment(wildcards)["task"],
        seed=config["seed"],
    threads: job_resources("threads")
    resources:
        gpu=job_resources("gpu"),
        mem_mb=job_resources("mem_mb"),
        runtime=job_resources("runtime"),
    log:
        "logs/fit/{exp}/{fold}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/fit.py"


rule evaluate:
    input:
        model=rules.fit.output.model,
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
        "../../envs/data.yaml"
    script:
        "../../scripts/aggregate.py"


rule predict:
    input:
        models=fold_models,
        fasta=predict_fasta,
    output:
        ensemble=f"{RESULTS}/{{exp}}/predict/{{name}}/predictions.csv",
        per_fold=f"{RESULTS}/{{exp}}/predict/{{name}}/predictions_per_fold.csv",
    params:
        batch_size=lambda wildcards: experiment(wildcards)["predict"]["batch_size"],
        invalid=lambda wildcards: experiment(wildcards)["data"]["invalid_characters"],
    resources:
        gpu=job_resources("gpu"),
    log:
        "logs/predict/{exp}/{name}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/predict.py"
