# Leave-one-out scores: one job per shard of the chosen sequences and mode, then a gather per
# mode writing the table, its arrays file and the plots.


rule interpret_shard:
    input:
        models=interpret_models,
        data=interpret_data,
    output:
        f"{RESULTS}/{{exp}}/interpret/shards/{{mode}}/{{shard}}.csv",
    params:
        settings=lambda wildcards: experiment(wildcards)["interpret"],
        table_format=lambda wildcards: interpretation_input(experiment(wildcards))[1],
        invalid=lambda wildcards: experiment(wildcards)["data"]["invalid_characters"],
    resources:
        gpu=job_resources("gpu"),
        mem_mb=job_resources("mem_mb"),
        runtime=job_resources("runtime"),
    threads: lambda wildcards: experiment(wildcards)["resources"]["threads"]
    log:
        "logs/interpret/{exp}/{mode}/{shard}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/interpret_shard.py"


rule interpret_gather:
    input:
        interpret_shards,
    output:
        table=report(
            f"{RESULTS}/{{exp}}/interpret/loo_{{mode}}.csv",
            caption="../report/loo.rst",
            category="{exp}",
            subcategory="leave-one-out",
            labels={"mode": "{mode}", "file": "table"},
        ),
        arrays=f"{RESULTS}/{{exp}}/interpret/loo_{{mode}}.npz",
        plots=report(
            directory(f"{RESULTS}/{{exp}}/interpret/plots/{{mode}}"),
            patterns=["{name}.png"],
            caption="../report/loo_plot.rst",
            category="{exp}",
            subcategory="leave-one-out",
            labels={"mode": "{mode}", "sequence": "{name}"},
        ),
    params:
        settings=lambda wildcards: experiment(wildcards)["interpret"],
    log:
        "logs/interpret/{exp}/{mode}/gather.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../../scripts/interpret_gather.py"
