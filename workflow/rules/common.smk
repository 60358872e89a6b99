# Config validation (before the DAG is built), config lookups and input functions.
import functools
from pathlib import Path
from types import SimpleNamespace

from nucflow.config import load_schema, validate_config
from nucflow.data import SIMULATED_DATASETS
from nucflow.data.prepare import LEARNED_METHODS
from nucflow.data.simulate import simulated_file_names
from nucflow.data.sequence import class_files, pretraining_fastas
from nucflow.data.splits import fold_names
from nucflow.errors import InputError
from nucflow.data.table_data import interpretation_input, prediction_table_format
from nucflow.io.signal_csv import signal_csv_files
from nucflow.io.track_meta import read_meta


validate_config(
    config,
    load_schema(workflow.source_path("../schemas/config.schema.yaml")),
    source="config",
)

RESULTS = config["results_dir"]
EXPERIMENTS = config["experiments"]
SIMULATED = f"{RESULTS}/simulated"


def experiments_of(kind):
    """Regular expression matching the names of the experiments of one kind (none: nothing)."""
    names = [name for name, settings in EXPERIMENTS.items() if settings["kind"] == kind]
    return "|".join(names) if names else "(?!)"


wildcard_constraints:
    exp="|".join(EXPERIMENTS),
    fold=r"\d+",
    replicate=r"\d+",
    name=r"[A-Za-z0-9_.-]+",
    mode="remove|mask|replace",
    shard=r"\d+",


def experiment(wildcards):
    """The config section of the experiment named by the `exp` wildcard."""
    return EXPERIMENTS[wildcards.exp]


def folds(exp):
    """Fold names of an experiment."""
    return fold_names(EXPERIMENTS[exp]["splits"])


def class_fastas(wildcards):
    """Every FASTA file of an experiment's classes."""
    files = class_files(experiment(wildcards)["data"]["classes"])
    return [path for paths in files.values() for path in paths]


def data_files(wildcards):
    """The experiment's input files: its class FASTAs, or its table."""
    data = experiment(wildcards)["data"]
    return [data["path"]] if data["format"] == "table" else class_fastas(wildcards)


def encode_inputs(wildcards):
    """Input files, and the learned vocabulary for BPE and atomic encodings."""
    inputs = {"data": data_files(wildcards)}
    encoding = experiment(wildcards)["encoding"]
    if encoding["method"] in LEARNED_METHODS:
        learned = f"{RESULTS}/{wildcards.exp}/data/vocabulary.json"
        inputs["learned"] = encoding["bpe_file"] or learned
    return inputs


def pretrain_fastas(wildcards):
    """FASTA files to pretrain on: `pretrain.fasta`, or else the experiment's own sequences."""
    return pretraining_fastas(experiment(wildcards))


def fit_inputs(wildcards):
    """Encoded data, tokenizer and split of a fold, and the pretrained model when enabled."""
    inputs = {
        "encoded": f"{RESULTS}/{wildcards.exp}/data/encoded.npz",
        "tokenizer": f"{RESULTS}/{wildcards.exp}/data/tokenizer.json",
        "split": f"{RESULTS}/{wildcards.exp}/splits/{wildcards.fold}.json",
    }
    if experiment(wildcards)["pretrain"]["enabled"]:
        inputs["pretrained"] = f"{RESULTS}/{wildcards.exp}/pretrain/model"
    return inputs


def fold_metrics(wildcards):
    """metrics.json of every fold of an experiment."""
    return expand(
        f"{RESULTS}/{wildcards.exp}/folds/{{fold}}/metrics.json", fold=folds(wildcards.exp)
    )


def replicates(exp):
    """Replicate names of an experiment (`0` … `R-1`)."""
    return [str(r) for r in range(EXPERIMENTS[exp]["training"]["replicates"])]


def replicate_models(wildcards):
    """Model directories of one fold's replicates."""
    return expand(
        f"{RESULTS}/{wildcards.exp}/folds/{wildcards.fold}/r{{replicate}}/model",
        replicate=replicates(wildcards.exp),
    )


def fold_models(wildcards):
    """Model directories of every fold × replicate of an experiment."""
    return expand(
        f"{RESULTS}/{wildcards.exp}/folds/{{fold}}/r{{replicate}}/model",
        fold=folds(wildcards.exp),
        replicate=replicates(wildcards.exp),
    )


def predict_input(wildcards):
    """The file named `name` in an experiment's predict inputs."""
    return experiment(wildcards)["predict"]["inputs"][wildcards.name]


def interpret_models(wildcards):
    """Models LOO uses: every fold × replicate, or one fold's replicates."""
    chosen = experiment(wildcards)["interpret"]["model"]
    if chosen == "ensemble":
        return fold_models(wildcards)
    names = folds(wildcards.exp)
    if str(chosen) not in names:
        raise InputError(
            f"config: experiments.{wildcards.exp}.interpret.model: fold {chosen} does not exist "
            f"(folds: {', '.join(names)})"
        )
    return expand(
        f"{RESULTS}/{wildcards.exp}/folds/{chosen}/r{{replicate}}/model",
        replicate=replicates(wildcards.exp),
    )


def interpret_data(wildcards):
    """The file LOO reads: `interpret.input`, or a table experiment's own table."""
    exp = wildcards.exp
    return interpretation_input(experiment(wildcards), source=f"config: experiments.{exp}")[0]


def interpret_shards(wildcards):
    """Shard tables of one LOO mode."""
    shards = range(experiment(wildcards)["interpret"]["shards"])
    return expand(f"{RESULTS}/{wildcards.exp}/interpret/shards/{wildcards.mode}/{{shard}}.csv", shard=shards)


def interpret_targets(exp):
    """LOO tables, arrays and plot folders of an experiment with `interpret.enabled`."""
    settings = EXPERIMENTS[exp]["interpret"]
    if not settings["enabled"]:
        return []
    wildcards = SimpleNamespace(exp=exp)
    interpret_data(wildcards)  # a bad input or fold errors now, not when the job runs
    interpret_models(wildcards)
    return expand(
        [
            f"{RESULTS}/{exp}/interpret/loo_{{mode}}.csv",
            f"{RESULTS}/{exp}/interpret/loo_{{mode}}.npz",
            f"{RESULTS}/{exp}/interpret/plots/{{mode}}",
        ],
        mode=settings["handletokens"],
    )


def job_resources(key):
    """A training-job resource of the experiment named by the `exp` wildcard."""
    return lambda wildcards: experiment(wildcards)["resources"][key]


def simulated_files(dataset):
    """Files the simulate rule of `dataset` writes."""
    names = simulated_file_names(dataset, config["simulate"][dataset])
    return [f"{SIMULATED}/{dataset}/{name}" for name in names]


def signal_csvs(paths):
    """Signal CSV files: the files listed, and every `*.csv` of the directories listed."""
    return signal_csv_files(paths, must_exist=False)


def tune_workers(wildcards):
    """The outputs of a signal experiment's tuning workers (one per `tune.workers`)."""
    workers = range(experiment(wildcards)["tune"]["workers"])
    return [f"{RESULTS}/{wildcards.exp}/tune/workers/{worker}.json" for worker in workers]


def predict_paths(wildcards):
    """The path (or paths) named `name` in a signal experiment's predict inputs, as a list."""
    paths = predict_input(wildcards)
    return [paths] if isinstance(paths, str) else paths


def signal_targets(exp):
    """Evaluation files and predictions of a `kind: signal` experiment."""
    final = f"{RESULTS}/{exp}/final"
    return [
        f"{final}/metrics.json",
        f"{final}/confusion_test.png",
        f"{final}/confusion_train.png",
        *expand(
            f"{RESULTS}/{exp}/predict/{{name}}/predictions.csv",
            name=EXPERIMENTS[exp]["predict"]["inputs"],
        ),
    ]


def tracks_data(wildcards):
    """The meta table and genome files of a `kind: tracks` experiment (and what the meta names,
    once it exists)."""
    data = experiment(wildcards)["data"]
    inputs = {"meta": data["meta"], "genome": data["genome"]}
    for key in ("blacklist", "chrom_sizes"):
        if data[key]:
            inputs[key] = data[key]
    if Path(data["meta"]).is_file():
        inputs["tracks"] = sorted(
            {
                str(path)
                for s in meta_samples(data["meta"])
                for path in (s.atac, s.binding, s.atac_peaks, s.chip_peaks)
            }
        )
    return inputs


@functools.cache
def meta_samples(path):
    """The rows of a meta table, read once per workflow run."""
    return read_meta(path)


def test_samples(exp):
    """The Test cell lines of a tracks experiment's meta table (after the pools checkpoint)."""
    checkpoints.tracks_pools.get(exp=exp)
    samples = meta_samples(EXPERIMENTS[exp]["data"]["meta"])
    return {s.cell_line: s for s in samples if s.split == "Test"}


def tracks_prediction_signal(wildcards):
    """The ATAC bigWig predicted as `name`: a predict input, or a Test cell line's track."""
    inputs = experiment(wildcards)["predict"]["inputs"]
    if wildcards.name in inputs:
        return inputs[wildcards.name]
    samples = test_samples(wildcards.exp)
    if wildcards.name not in samples:
        raise InputError(
            f"config: experiments.{wildcards.exp}: '{wildcards.name}' is neither a predict input "
            f"nor a Test cell line of the meta table (Test: {', '.join(samples) or 'none'})"
        )
    return str(samples[wildcards.name].atac)


def tracks_gold_standard(wildcards):
    """The Binding_File of a Test cell line."""
    return str(test_samples(wildcards.exp)[wildcards.name].binding)


def tracks_benchmarks(wildcards):
    """Benchmark summaries of every Test cell line and the predictions of every input."""
    exp = wildcards.exp
    return expand(
        f"{RESULTS}/{exp}/benchmark/{{name}}/summary.tsv", name=test_samples(exp)
    ) + expand(
        f"{RESULTS}/{exp}/predict/{{name}}/prediction.bw",
        name=EXPERIMENTS[exp]["predict"]["inputs"],
    )


def all_targets():
    """Every experiment's metrics and predictions, and the simulated datasets asked for."""
    targets = [f for dataset in config["simulate"]["datasets"] for f in simulated_files(dataset)]
    for exp, settings in EXPERIMENTS.items():
        if settings["kind"] == "signal":
            targets += signal_targets(exp)
            continue
        if settings["kind"] == "tracks":
            targets.append(f"{RESULTS}/{exp}/benchmark.tsv")
            continue
        targets.append(f"{RESULTS}/{exp}/metrics.csv")
        if settings["task"] == "regression":
            targets += expand(f"{RESULTS}/{exp}/folds/{{fold}}/rank_deltas.csv", fold=folds(exp))
        targets += expand(
            f"{RESULTS}/{exp}/predict/{{name}}/predictions.csv",
            name=settings["predict"]["inputs"],
        )
        targets += interpret_targets(exp)
    return targets


# ---- GPU requests (issue 8 "HPC"; call check_gpu_requests(workflow) after the includes) ----
# GPU-capable rules declare the resource `gpu=job_resources("gpu")`. A profile's (or the command
# line's) set-resources or default-resources must not hand GPUs to any other rule.


def gpu_request(key, resource):
    """The GPU request in a `key=value` resource (as text), or None if it asks for no GPU."""
    value = getattr(resource, "raw", resource)
    if key == "gpu":
        try:
            asks = float(value) > 0
        except (TypeError, ValueError):  # an expression such as 2*attempt
            asks = value is not None
    elif key == "gpu_model":  # the SLURM plugin asks for one GPU of this model
        asks = bool(value)
    elif key == "gres":
        asks = "gpu" in str(value).lower()
    else:
        asks = False
    return f"{key}={value}" if asks else None


def gpu_requests(resources):
    """The GPU requests (as `key=value` texts) of a mapping of resources."""
    found = [gpu_request(key, value) for key, value in (resources or {}).items()]
    return [text for text in found if text]


def check_gpu_requests(workflow):
    """Raise InputError when set-resources or default-resources asks for GPUs for a rule that
    does not declare a `gpu` resource (or for a rule that does not exist)."""
    rules = {rule.name: rule for rule in workflow.rules}
    gpu_rules = sorted(
        name
        for name, rule in rules.items()
        if rule.ruleinfo is not None
        and rule.ruleinfo.resources
        and "gpu" in rule.ruleinfo.resources[1]
    )
    settings = workflow.resource_settings
    for name, resources in (settings.overwrite_resources or {}).items():
        asked = gpu_requests(resources)
        if asked and name not in gpu_rules:
            problem = "rule does not use GPUs" if name in rules else "no such rule"
            raise InputError(
                f"set-resources {name}:{asked[0]}: {problem} "
                f"(GPU rules: {', '.join(gpu_rules)})"
            )
    asked = gpu_requests(settings.default_resources)
    if asked:
        raise InputError(
            f"default-resources {asked[0]}: would give GPUs to every rule; set it per rule "
            f"with set-resources (GPU rules: {', '.join(gpu_rules)})"
        )


# ---- end of GPU requests ----
