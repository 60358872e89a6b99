# nucflow: train, evaluate and apply deep-learning models of nucleic-acid data.
# Run from the repository root: `snakemake --cores 2` (see README.md).


# The demo config, unless --configfile names the user's own (which then replaces it, rather
# than being merged into the demo's experiments).
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/sequence.smk"
include: "workflow/rules/interpret.smk"
include: "workflow/rules/signal.smk"
include: "workflow/rules/tracks.smk"


check_gpu_requests(workflow)


rule all:
    input:
        all_targets(),
    default_target: True
