# Synthetic demo data with planted ground truth (no download needed): one rule per dataset.


for dataset in SIMULATED_DATASETS:

    rule:
        name:
            f"simulate_{dataset}"
        output:
            simulated_files(dataset),
        params:
            dataset=dataset,
            settings=config["simulate"][dataset],
            seed=config["seed"],
        log:
            f"logs/simulate/{dataset}.log",
        conda:
            "../../envs/data.yaml"
        script:
            "../../scripts/simulate.py"
