# kind: signal — signal_etl → signal_tune_study → signal_tune_worker × tune.workers →
# signal_tune (the best trial) → signal_train → signal_evaluate, and signal_predict per input.
# The Optuna study (tune/study.db) is not a rule output, so Snakemake never deletes it: a
# rerun resumes the search.


rule signal_etl:
    wildcard_constraints:
        exp=experiments_of("signal"),
    input:
        lambda wildcards: signal_csvs(experiment(wildcards)["data"]["paths"]),
    output:
        f"{RESULTS}/{{exp}}/data/signal/manifest.json",
    params:
        experiment=lambda wildcards: {
            key: experiment(wildcards)[key] for key in ("data", "etl")
        },
        seed=config["seed"],
    resources:
        mem_mb=job_resources("mem_mb"),
    log:
        "logs/signal_etl/{exp}.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/signal_etl.py"


rule signal_tune_study:
    wildcard_constraints:
        exp=experiments_of("signal"),
    input:
        rules.signal_etl.output[0],
    output:
        f"{RESULTS}/{{exp}}/tune/study.json",
    params:
        study=f"{RESULTS}/{{exp}}/tune/study.db",
        model=lambda wildcards: experiment(wildcards)["model"],
        tune=lambda wildcards: experiment(wildcards)["tune"],
        seed=config["seed"],
    log:
        "logs/signal_tune_study/{exp}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/signal_tune_study.py"


rule signal_tune_worker:
    wildcard_constraints:
        exp=experiments_of("signal"),
        worker=r"\d+",
    input:
        etl=rules.signal_etl.output[0],
        study=rules.signal_tune_study.output[0],
    output:
        f"{RESULTS}/{{exp}}/tune/workers/{{worker}}.json",
    params:
        model=lambda wildcards: experiment(wildcards)["model"],
        tune=lambda wildcards: experiment(wildcards)["tune"],
        training=lambda wildcards: experiment(wildcards)["training"],
        seed=config["seed"],
    threads: job_resources("threads")
    resources:
        gpu=job_resources("gpu"),
        mem_mb=job_resources("mem_mb"),
        runtime=job_resources("runtime"),
    log:
        "logs/signal_tune_worker/{exp}/{worker}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/signal_tune_worker.py"


rule signal_tune:
    wildcard_constraints:
        exp=experiments_of("signal"),
    input:
        etl=rules.signal_etl.output[0],
        study=rules.signal_tune_study.output[0],
        workers=tune_workers,
    output:
        best=f"{RESULTS}/{{exp}}/tune/best_params.json",
        trials=report(
            f"{RESULTS}/{{exp}}/tune/trials.csv",
            caption="../report/signal_trials.rst",
            category="{exp}",
            subcategory="tuning",
        ),
        plot=report(
            f"{RESULTS}/{{exp}}/tune/optimization_history.png",
            caption="../report/signal_tuning.rst",
            category="{exp}",
            subcategory="tuning",
        ),
    params:
        model=lambda wildcards: experiment(wildcards)["model"],
        tune=lambda wildcards: experiment(wildcards)["tune"],
    log:
        "logs/signal_tune/{exp}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/signal_tune.py"


rule signal_train:
    wildcard_constraints:
        exp=experiments_of("signal"),
    input:
        etl=rules.signal_etl.output[0],
        best=rules.signal_tune.output.best,
    output:
        model=directory(f"{RESULTS}/{{exp}}/final/model"),
        history=f"{RESULTS}/{{exp}}/final/history.csv",
        plot=report(
            f"{RESULTS}/{{exp}}/final/history.png",
            caption="../report/signal_history.rst",
            category="{exp}",
            subcategory="training history",
        ),
    params:
        training=lambda wildcards: experiment(wildcards)["training"],
        seed=config["seed"],
    threads: job_resources("threads")
    resources:
        gpu=job_resources("gpu"),
        mem_mb=job_resources("mem_mb"),
        runtime=job_resources("runtime"),
    log:
        "logs/signal_train/{exp}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/signal_train.py"


rule signal_evaluate:
    wildcard_constraints:
        exp=experiments_of("signal"),
    input:
        model=rules.signal_train.output.model,
        etl=rules.signal_etl.output[0],
    output:
        metrics=f"{RESULTS}/{{exp}}/final/metrics.json",
        per_class=report(
            f"{RESULTS}/{{exp}}/final/per_class.csv",
            caption="../report/signal_per_class.rst",
            category="{exp}",
            subcategory="metrics",
        ),
        predictions=f"{RESULTS}/{{exp}}/final/test_predictions.csv",
        confusion_test=f"{RESULTS}/{{exp}}/final/confusion_test.csv",
        confusion_test_plot=report(
            f"{RESULTS}/{{exp}}/final/confusion_test.png",
            caption="../report/signal_confusion.rst",
            category="{exp}",
            subcategory="metrics",
            labels={"part": "test"},
        ),
        confusion_train=f"{RESULTS}/{{exp}}/final/confusion_train.csv",
        confusion_train_plot=report(
            f"{RESULTS}/{{exp}}/final/confusion_train.png",
            caption="../report/signal_confusion.rst",
            category="{exp}",
            subcategory="metrics",
            labels={"part": "train"},
        ),
    resources:
        gpu=job_resources("gpu"),
    log:
        "logs/signal_evaluate/{exp}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/signal_evaluate.py"


rule signal_predict:
    wildcard_constraints:
        exp=experiments_of("signal"),
    input:
        model=rules.signal_train.output.model,
        data=lambda wildcards: signal_csvs(predict_paths(wildcards)),
    output:
        predictions=f"{RESULTS}/{{exp}}/predict/{{name}}/predictions.csv",
        metrics=f"{RESULTS}/{{exp}}/predict/{{name}}/metrics.json",
    params:
        unknown_label=lambda wildcards: experiment(wildcards)["data"]["unknown_label"],
        batch_size=lambda wildcards: experiment(wildcards)["predict"]["batch_size"],
    resources:
        gpu=job_resources("gpu"),
    log:
        "logs/signal_predict/{exp}/{name}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/signal_predict.py"
