# kind: tracks — tracks_pools → tracks_train → tracks_predict (per Test cell line and per
# predict input) → tracks_benchmark (per Test cell line). Window caches (uint8 DNA, float32
# signals per chromosome) live in {results}/{exp}/data/cache/ and are reused across jobs.


checkpoint tracks_pools:
    wildcard_constraints:
        exp=experiments_of("tracks"),
    input:
        unpack(tracks_data),
    output:
        train=f"{RESULTS}/{{exp}}/data/pools/train.tsv",
        valid=f"{RESULTS}/{{exp}}/data/pools/valid.tsv",
        counts=report(
            f"{RESULTS}/{{exp}}/data/pools/counts.tsv",
            caption="../report/tracks_pools.rst",
            category="{exp}",
            subcategory="regions of interest",
        ),
    params:
        rois=lambda wildcards: experiment(wildcards)["rois"],
    log:
        "logs/tracks_pools/{exp}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/tracks_pools.py"


rule tracks_train:
    wildcard_constraints:
        exp=experiments_of("tracks"),
    input:
        unpack(tracks_data),
        train=rules.tracks_pools.output.train,
        valid=rules.tracks_pools.output.valid,
    output:
        model=directory(f"{RESULTS}/{{exp}}/model"),
        history=f"{RESULTS}/{{exp}}/history.csv",
        plot=report(
            f"{RESULTS}/{{exp}}/history.png",
            caption="../report/tracks_history.rst",
            category="{exp}",
            subcategory="training history",
        ),
    params:
        cache=f"{RESULTS}/{{exp}}/data/cache",
        data=lambda wildcards: experiment(wildcards)["data"],
        rois=lambda wildcards: experiment(wildcards)["rois"],
        training=lambda wildcards: experiment(wildcards)["training"],
        seed=config["seed"],
    threads: job_resources("threads")
    resources:
        gpu=job_resources("gpu"),
        mem_mb=job_resources("mem_mb"),
        runtime=job_resources("runtime"),
    log:
        "logs/tracks_train/{exp}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/tracks_train.py"


rule tracks_predict:
    wildcard_constraints:
        exp=experiments_of("tracks"),
    input:
        unpack(tracks_data),
        model=rules.tracks_train.output.model,
        signal=tracks_prediction_signal,
    output:
        bigwig=f"{RESULTS}/{{exp}}/predict/{{name}}/prediction.bw",
        peaks=f"{RESULTS}/{{exp}}/predict/{{name}}/peaks.bed",
    params:
        cache=f"{RESULTS}/{{exp}}/data/cache",
        data=lambda wildcards: experiment(wildcards)["data"],
        predict=lambda wildcards: experiment(wildcards)["predict"],
    threads: job_resources("threads")
    resources:
        gpu=job_resources("gpu"),
        mem_mb=job_resources("mem_mb"),
        runtime=job_resources("runtime"),
    log:
        "logs/tracks_predict/{exp}/{name}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/tracks_predict.py"


rule tracks_benchmark:
    wildcard_constraints:
        exp=experiments_of("tracks"),
    input:
        unpack(tracks_data),
        prediction=rules.tracks_predict.output.bigwig,
        gold=tracks_gold_standard,
    output:
        summary=report(
            f"{RESULTS}/{{exp}}/benchmark/{{name}}/summary.tsv",
            caption="../report/tracks_benchmark.rst",
            category="{exp}",
            subcategory="benchmark",
            labels={"cell line": "{name}"},
        ),
        plot=report(
            f"{RESULTS}/{{exp}}/benchmark/{{name}}/pr_curve.png",
            caption="../report/tracks_pr_curve.rst",
            category="{exp}",
            subcategory="benchmark",
            labels={"cell line": "{name}"},
        ),
    params:
        chroms=lambda wildcards: experiment(wildcards)["predict"]["chroms"],
        bin_size=lambda wildcards: experiment(wildcards)["benchmark"]["bin_size"],
    log:
        "logs/tracks_benchmark/{exp}/{name}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/tracks_benchmark.py"


rule tracks_summary:
    wildcard_constraints:
        exp=experiments_of("tracks"),
    input:
        tracks_benchmarks,
    output:
        report(
            f"{RESULTS}/{{exp}}/benchmark.tsv",
            caption="../report/tracks_summary.rst",
            category="{exp}",
            subcategory="benchmark",
        ),
    log:
        "logs/tracks_summary/{exp}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/tracks_summary.py"
