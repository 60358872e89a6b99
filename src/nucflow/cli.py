"""``nucflow <step>``: every workflow step, usable without Snakemake."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from nucflow.data import SIMULATED_DATASETS
from nucflow.errors import InputError
from nucflow.runner import run_logged

SCHEMA = Path("workflow/schemas/config.schema.yaml")


def default_schema() -> Path:
    """The workflow's config schema: under the current directory, else beside the package."""
    if SCHEMA.is_file():
        return SCHEMA
    return Path(__file__).resolve().parents[2] / SCHEMA


def _parameters(pairs: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs with YAML-parsed values."""
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--param '{pair}': expected KEY=VALUE")
        parsed[key] = yaml.safe_load(value)
    return parsed


def _experiment(config_path: str, schema_path: str, name: str) -> tuple[dict, dict]:
    """Validated config and one of its experiments."""
    from nucflow.config import load_config

    config = load_config(config_path, schema_path)
    if name not in config["experiments"]:
        raise InputError(
            f"{config_path}: no experiment '{name}' (have: {', '.join(config['experiments'])})"
        )
    return config, config["experiments"][name]


def cmd_simulate(args: argparse.Namespace) -> None:
    """Write one synthetic demo dataset."""
    from nucflow.data.simulate import simulate_dataset

    simulate_dataset(args.dataset, Path(args.out), args.seed, _parameters(args.param))


def cmd_encode(args: argparse.Namespace) -> None:
    """Read and encode an experiment's FASTA classes or table."""
    from nucflow.data.prepare import prepare_data

    _, experiment = _experiment(args.config, args.schema, args.experiment)
    prepare_data(
        experiment["data"],
        experiment["encoding"],
        experiment["task"],
        args.encoded,
        args.tokenizer,
        args.learned or experiment["encoding"]["bpe_file"],
    )


def cmd_learn_vocabulary(args: argparse.Namespace) -> None:
    """Learn an experiment's BPE or atomic vocabulary."""
    from nucflow.data.prepare import learn_vocabulary

    config, experiment = _experiment(args.config, args.schema, args.experiment)
    learn_vocabulary(
        experiment["data"], experiment["encoding"], experiment["task"], args.out, config["seed"]
    )


def cmd_pretrain_data(args: argparse.Namespace) -> None:
    """Encode the pretraining FASTAs and hold out a validation part."""
    from nucflow.data.sequence import prepare_pretraining_data, pretraining_fastas

    config, experiment = _experiment(args.config, args.schema, args.experiment)
    prepare_pretraining_data(
        pretraining_fastas(experiment),
        args.tokenizer,
        args.encoded,
        args.split,
        experiment["pretrain"]["valid_fraction"],
        config["seed"],
        experiment["data"]["invalid_characters"],
    )


def cmd_pretrain(args: argparse.Namespace) -> None:
    """Masked-language-model pretraining."""
    from nucflow.train.pretrain import pretrain_model

    config, experiment = _experiment(args.config, args.schema, args.experiment)
    pretrain_model(
        args.encoded,
        args.tokenizer,
        args.split,
        args.model,
        args.history,
        args.plot,
        model_settings=experiment["model"],
        encoding=experiment["encoding"],
        pretrain=experiment["pretrain"],
        seed=config["seed"],
        threads=args.threads,
    )


def cmd_split(args: argparse.Namespace) -> None:
    """Write one fold's split."""
    from nucflow.data.splits import write_fold_split

    config, experiment = _experiment(args.config, args.schema, args.experiment)
    write_fold_split(args.encoded, experiment["splits"], config["seed"], args.fold, args.out)


def cmd_fit(args: argparse.Namespace) -> None:
    """Train one fold."""
    from nucflow.train.fit import fit_fold

    config, experiment = _experiment(args.config, args.schema, args.experiment)
    fit_fold(
        args.encoded,
        args.tokenizer,
        args.split,
        args.model,
        args.history,
        args.plot,
        model_settings=experiment["model"],
        encoding=experiment["encoding"],
        training=experiment["training"],
        task=experiment["task"],
        seed=config["seed"],
        threads=args.threads,
        pretrained=args.pretrained,
        replicate=args.replicate,
    )


def cmd_evaluate(args: argparse.Namespace) -> None:
    """Score one fold's model on its test part."""
    from nucflow.predict import evaluate_fold

    evaluate_fold(args.model, args.encoded, args.split, args.metrics, args.predictions)


def cmd_rank_deltas(args: argparse.Namespace) -> None:
    """Per-sample rank deltas and a scatter plot of a regression fold's test predictions."""
    from nucflow.predict import write_rank_deltas

    write_rank_deltas(args.predictions, args.out, args.plot)


def cmd_saluki_tracks(args: argparse.Namespace) -> None:
    """Build Saluki's six-track input table from an annotation and a genome."""
    from nucflow.data.saluki_tracks import build_saluki_table

    build_saluki_table(
        args.annotation,
        args.genome,
        args.out,
        transcripts=args.transcript,
        blocksize=args.blocksize,
    )


def cmd_aggregate(args: argparse.Namespace) -> None:
    """Collect per-fold metrics into one table."""
    from nucflow.predict import aggregate_metrics

    aggregate_metrics(args.metrics, args.out)


def cmd_predict(args: argparse.Namespace) -> None:
    """Predict a FASTA with one model or an ensemble."""
    from nucflow.data.table_data import prediction_table_format
    from nucflow.predict import predict_file

    table_format = None
    if args.config:
        _, experiment = _experiment(args.config, args.schema, args.experiment)
        table_format = prediction_table_format(experiment)
    predict_file(
        args.model,
        args.input,
        args.out,
        args.per_model,
        args.batch_size,
        args.invalid_characters,
        table_format,
        args.metrics,
    )


def cmd_interpret(args: argparse.Namespace) -> None:
    """Leave-one-out scores of a file's sequences (one shard of them)."""
    from nucflow.data.table_data import interpretation_input
    from nucflow.interpret.run import interpret_file

    table_format = None
    if args.config:
        _, experiment = _experiment(args.config, args.schema, args.experiment)
        with_input = {**experiment, "interpret": {**experiment["interpret"], "input": args.input}}
        table_format = interpretation_input(with_input)[1]
    replacement = None
    if args.replacementdict:
        try:
            replacement = json.loads(args.replacementdict)
        except json.JSONDecodeError as err:
            raise InputError(f"--replacementdict is not valid JSON ({err})") from None
    interpret_file(
        args.model,
        args.input,
        args.out,
        mode=args.mode,
        table_format=table_format,
        sequences=args.sequences.split(",") if args.sequences else "all",
        shard=args.shard,
        n_shards=args.shards,
        replacementdict=replacement,
        replacespecifier=args.replacespecifier,
        target_class=args.target_class,
        batch_size=args.batch_size,
        method=args.method,
        invalid=args.invalid_characters,
    )


def cmd_interpret_gather(args: argparse.Namespace) -> None:
    """One LOO table, its arrays file and plots from shard tables."""
    from nucflow.interpret.tables import gather_loo

    gather_loo(args.shards, args.out, args.npz, args.mode, args.plots, args.n_plots, args.window)


def _signal_experiment(args: argparse.Namespace) -> tuple[dict, dict]:
    """Validated config and one of its `kind: signal` experiments."""
    config, experiment = _experiment(args.config, args.schema, args.experiment)
    if experiment["kind"] != "signal":
        raise InputError(f"{args.config}: experiment '{args.experiment}' is not kind: signal")
    return config, experiment


def cmd_signal_etl(args: argparse.Namespace) -> None:
    """Signal CSVs → padded, balanced, split shards (an unchanged rerun is skipped)."""
    from nucflow.data.signal_etl import etl_settings, etl_signals

    config, experiment = _signal_experiment(args)
    etl_signals(
        args.input or experiment["data"]["paths"],
        args.out,
        **etl_settings(experiment, config["seed"]),
    )


def cmd_signal_tune(args: argparse.Namespace) -> None:
    """Optuna hyperparameter search of a signal experiment's model family."""
    from nucflow.train.tune import tune_signal_model

    config, experiment = _signal_experiment(args)
    out = Path(args.out)
    tune_signal_model(
        args.etl,
        out / "study.db",
        out / "best_params.json",
        out / "trials.csv",
        out / "optimization_history.png",
        model=experiment["model"],
        tune=experiment["tune"],
        training=experiment["training"],
        seed=config["seed"],
        threads=args.threads,
    )


def cmd_signal_train(args: argparse.Namespace) -> None:
    """Final training of a signal classifier with the tuned hyperparameters."""
    from nucflow.train.signal_fit import train_signal_model

    config, experiment = _signal_experiment(args)
    out = Path(args.out)
    train_signal_model(
        args.etl,
        args.best_params,
        out / "model",
        out / "history.csv",
        out / "history.png",
        training=experiment["training"],
        seed=config["seed"],
        threads=args.threads,
    )


def cmd_signal_evaluate(args: argparse.Namespace) -> None:
    """Test metrics and confusion matrices of a signal classifier."""
    from nucflow.signal_predict import evaluate_signal_model

    out = Path(args.out)
    evaluate_signal_model(
        args.model,
        args.etl,
        out / "metrics.json",
        out / "per_class.csv",
        out / "test_predictions.csv",
        {
            part: {"csv": out / f"confusion_{part}.csv", "png": out / f"confusion_{part}.png"}
            for part in ("test", "train")
        },
    )


def cmd_signal_predict(args: argparse.Namespace) -> None:
    """Classify the reads of signal CSVs."""
    from nucflow.signal_predict import predict_signal_file

    predict_signal_file(
        args.model,
        args.input,
        args.out,
        args.metrics,
        unknown_label=args.unknown_label,
        batch_size=args.batch_size,
    )


def _tracks_experiment(args: argparse.Namespace) -> tuple[dict, dict]:
    """Validated config and one of its `kind: tracks` experiments."""
    config, experiment = _experiment(args.config, args.schema, args.experiment)
    if experiment["kind"] != "tracks":
        raise InputError(f"{args.config}: experiment '{args.experiment}' is not kind: tracks")
    return config, experiment


def cmd_tracks_pools(args: argparse.Namespace) -> None:
    """ROI pools of a tracks experiment's Train cell lines."""
    from nucflow.tracks_steps import build_pools

    _, experiment = _tracks_experiment(args)
    data, out = experiment["data"], Path(args.out)
    build_pools(
        data["meta"],
        data["genome"],
        out / "train.tsv",
        out / "valid.tsv",
        out / "counts.tsv",
        rois=experiment["rois"],
        blacklist=data["blacklist"],
        chrom_sizes=data["chrom_sizes"],
    )


def cmd_tracks_train(args: argparse.Namespace) -> None:
    """Train DCNN_V2 on a tracks experiment's pools."""
    from nucflow.tracks_steps import train_tracks_model

    config, experiment = _tracks_experiment(args)
    data, pools, out = experiment["data"], Path(args.pools), Path(args.out)
    train_tracks_model(
        data["meta"],
        data["genome"],
        pools / "train.tsv",
        pools / "valid.tsv",
        args.cache,
        out / "model",
        out / "history.csv",
        out / "history.png",
        rois=experiment["rois"],
        training=experiment["training"],
        seed=config["seed"],
        blacklist=data["blacklist"],
        chrom_sizes=data["chrom_sizes"],
        missing=data["missing_chromosomes"],
        threads=args.threads,
    )


def cmd_tracks_predict(args: argparse.Namespace) -> None:
    """Predict binding from an ATAC bigWig: a bigWig of 32-bp bins and peaks."""
    from nucflow.tracks_steps import predict_tracks

    predict_tracks(
        args.model,
        args.genome,
        args.signal,
        args.cache,
        args.out,
        args.peaks,
        chroms=args.chroms,
        step=args.step,
        batch_size=args.batch_size,
        reverse_complement_average=args.reverse_complement,
        threshold=args.threshold,
        chrom_sizes=args.chrom_sizes,
        missing=args.missing_chromosomes,
        threads=args.threads,
    )


def cmd_tracks_benchmark(args: argparse.Namespace) -> None:
    """Precision–recall of a prediction bigWig against a gold-standard bigWig."""
    from nucflow.tracks_steps import benchmark_prediction

    benchmark_prediction(
        args.prediction,
        args.gold,
        args.summary,
        args.plot,
        chroms=args.chroms,
        bin_size=args.bin_size,
        blacklist=args.blacklist,
    )


def cmd_normalize(args: argparse.Namespace) -> None:
    """Normalise a signal bigWig (min-max with a percentile, z-score or arcsinh)."""
    from nucflow.data.normalize import normalize_signal
    from nucflow.tracks_steps import blacklist_table, genome_sizes

    if not (args.genome or args.chrom_sizes):
        raise InputError("normalize: give --genome or --chrom-sizes (chromosome lengths)")
    sizes = genome_sizes(args.genome, args.chrom_sizes)
    normalize_signal(
        args.signal,
        args.out,
        chrom_sizes=sizes,
        chroms=args.chroms,
        blacklist=blacklist_table(args.blacklist) if args.blacklist else None,
        method=args.method,
        max_percentile=args.max_percentile,
        clip=args.clip,
        stats_path=args.stats,
    )


def cmd_embed(args: argparse.Namespace) -> None:
    """Per-sequence embeddings of a FASTA file."""
    from nucflow.predict import embed_fasta

    embed_fasta(args.model, args.fasta, args.out, args.batch_size, args.invalid_characters)


def cmd_validate_config(args: argparse.Namespace) -> None:
    """Validate a config file."""
    from nucflow.config import load_config

    config = load_config(args.config, args.schema)
    print(f"{args.config}: valid ({len(config['experiments'])} experiments)")


def cmd_config_docs(args: argparse.Namespace) -> None:
    """Print the Markdown reference of every config key."""
    from nucflow.config import load_schema, render_config_docs

    print(render_config_docs(load_schema(args.schema)), end="")


def build_parser() -> argparse.ArgumentParser:
    """The ``nucflow`` argument parser."""
    parser = argparse.ArgumentParser(prog="nucflow", description=__doc__)
    parser.add_argument("--log", help="append the log here instead of printing it")
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")

    def step(name: str, handler, help_text: str, config: bool = False) -> argparse.ArgumentParser:
        sub = steps.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        if config:
            sub.add_argument("--config", required=True, help="workflow config YAML")
            sub.add_argument("--experiment", required=True, help="experiment name in the config")
        if config or name in ("validate-config", "config-docs"):
            sub.add_argument("--schema", default=str(default_schema()), help="config JSON schema")
        return sub

    sub = step("simulate", cmd_simulate, "write a synthetic demo dataset with planted truth")
    sub.add_argument("dataset", choices=SIMULATED_DATASETS)
    sub.add_argument("--out", required=True, help="output directory")
    sub.add_argument("--seed", type=int, default=42)
    sub.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="generator setting, e.g. n_per_class=50 (repeatable)",
    )

    sub = step("encode", cmd_encode, "read and tokenise an experiment's FASTA files", True)
    sub.add_argument("--encoded", required=True, help="output .npz")
    sub.add_argument("--tokenizer", required=True, help="output tokenizer.json")
    sub.add_argument("--learned", help="learned vocabulary JSON (encoding.method bpe or atomic)")

    sub = step("learn-vocabulary", cmd_learn_vocabulary, "learn a BPE or atomic vocabulary", True)
    sub.add_argument("--out", required=True, help="output tokenizer JSON")

    sub = step("pretrain-data", cmd_pretrain_data, "encode pretraining FASTAs + hold-out", True)
    for name in ("tokenizer", "encoded", "split"):
        sub.add_argument(f"--{name}", required=True)

    sub = step("pretrain", cmd_pretrain, "masked-language-model pretraining", True)
    for name in ("encoded", "tokenizer", "split", "model", "history", "plot"):
        sub.add_argument(f"--{name}", required=True)
    sub.add_argument("--threads", type=int, default=1)

    sub = step("split", cmd_split, "write one fold's train/valid/test ids", True)
    sub.add_argument("--encoded", required=True)
    sub.add_argument("--fold", required=True)
    sub.add_argument("--out", required=True, help="output split JSON")

    sub = step("fit", cmd_fit, "train one fold", True)
    for name in ("encoded", "tokenizer", "split", "model", "history", "plot"):
        sub.add_argument(f"--{name}", required=True)
    sub.add_argument("--threads", type=int, default=1)
    sub.add_argument("--pretrained", help="pretrained model directory to fine-tune from")
    sub.add_argument("--replicate", type=int, default=0, help="replicate number (seed offset)")

    sub = step("evaluate", cmd_evaluate, "score a fold's model(s) on its test part")
    sub.add_argument(
        "--model",
        action="append",
        required=True,
        help="model directory (repeat for a fold's replicates: their mean)",
    )
    for name in ("encoded", "split", "metrics", "predictions"):
        sub.add_argument(f"--{name}", required=True)

    sub = step("rank-deltas", cmd_rank_deltas, "per-sample rank deltas of regression predictions")
    for name in ("predictions", "out", "plot"):
        sub.add_argument(f"--{name}", required=True)

    sub = step(
        "saluki-tracks",
        cmd_saluki_tracks,
        "Saluki input table (nucleotides + frame + 5' splice tracks) from GTF/GFF3 + genome",
    )
    sub.add_argument("--annotation", required=True, help="GTF or GFF3 (plain or gzip)")
    sub.add_argument("--genome", required=True, help="genome FASTA or 2bit")
    sub.add_argument("--out", required=True, help="output table (id, sequence)")
    sub.add_argument("--transcript", action="append", help="only these transcript ids")
    sub.add_argument(
        "--blocksize",
        type=int,
        default=12288,
        help="report transcripts longer than this (encode them with lefttailing)",
    )

    sub = step("aggregate", cmd_aggregate, "metrics of all folds into one CSV (with mean, sd)")
    sub.add_argument("--metrics", nargs="+", required=True, help="per-fold metrics.json files")
    sub.add_argument("--out", required=True)

    for name, text in (
        ("predict", "predict a FASTA with a model directory or an ensemble (mean probability)"),
        ("classify", "same as predict: id, probability of each class, predicted class"),
    ):
        sub = step(name, cmd_predict, text)
        sub.add_argument(
            "--model",
            action="append",
            required=True,
            help="model directory (repeat for an ensemble: mean probability)",
        )
        sub.add_argument("--input", "--fasta", required=True, help="FASTA file (or table)")
        sub.add_argument("--out", required=True, help="output CSV")
        sub.add_argument("--per-model", help="also write each model's predictions here")
        sub.add_argument("--metrics", help="also write metrics.json (labelled tables)")
        sub.add_argument("--config", help="config whose experiment's table format to read")
        sub.add_argument("--experiment", help="experiment name (with --config)")
        sub.add_argument("--schema", default=str(default_schema()), help="config JSON schema")
        sub.add_argument("--batch-size", type=int, default=128)
        sub.add_argument("--invalid-characters", choices=("error", "replace"), default="error")

    sub = step("interpret", cmd_interpret, "leave-one-out scores of every unit of sequences")
    sub.add_argument(
        "--model", action="append", required=True, help="model directory (repeat: ensemble)"
    )
    sub.add_argument("--input", required=True, help="FASTA file (or table, with --config)")
    sub.add_argument("--out", required=True, help="output CSV")
    sub.add_argument("--mode", choices=("remove", "mask", "replace"), default="mask")
    sub.add_argument("--sequences", help="comma-separated ids to score (default: all)")
    sub.add_argument("--replacementdict", help='JSON mapping, e.g. \'{"A": ["C", "G"]}\'')
    sub.add_argument("--replacespecifier", action="store_true")
    sub.add_argument("--target-class", help="class whose probability is scored")
    sub.add_argument("--method", choices=("fast", "reference"), default="fast")
    sub.add_argument("--batch-size", type=int, default=256)
    sub.add_argument("--shard", type=int, default=0, help="this job's shard (0-based)")
    sub.add_argument("--shards", type=int, default=1, help="number of shards")
    sub.add_argument("--config", help="config whose experiment's table format to read")
    sub.add_argument("--experiment", help="experiment name (with --config)")
    sub.add_argument("--schema", default=str(default_schema()), help="config JSON schema")
    sub.add_argument("--invalid-characters", choices=("error", "replace"), default="error")

    sub = step(
        "interpret-gather", cmd_interpret_gather, "gather LOO shard tables (+ arrays, plots)"
    )
    sub.add_argument("--shards", nargs="+", required=True, help="shard CSVs, in order")
    sub.add_argument("--mode", choices=("remove", "mask", "replace"), required=True)
    sub.add_argument("--out", required=True, help="output CSV")
    sub.add_argument("--npz", required=True, help="output arrays file (.npz)")
    sub.add_argument("--plots", help="directory for per-sequence PNGs")
    sub.add_argument("--n-plots", type=int, default=10, help="sequences to plot")
    sub.add_argument("--window", type=int, default=40, help="zoomed window width")

    sub = step("signal-etl", cmd_signal_etl, "signal CSVs → balanced, split shards", True)
    sub.add_argument("--input", nargs="+", help="CSV files or directories (default: data.paths)")
    sub.add_argument("--out", required=True, help="output directory (manifest.json + shards)")

    sub = step("signal-tune", cmd_signal_tune, "Optuna search of a signal model family", True)
    sub.add_argument("--etl", required=True, help="directory written by signal-etl")
    sub.add_argument("--out", required=True, help="directory: study.db, best_params.json, …")
    sub.add_argument("--threads", type=int, default=1)

    sub = step("signal-train", cmd_signal_train, "final training of a signal classifier", True)
    sub.add_argument("--etl", required=True, help="directory written by signal-etl")
    sub.add_argument("--best-params", required=True, help="best_params.json of signal-tune")
    sub.add_argument("--out", required=True, help="directory: model/, history.csv, history.png")
    sub.add_argument("--threads", type=int, default=1)

    sub = step("signal-evaluate", cmd_signal_evaluate, "test metrics + confusion matrices")
    sub.add_argument("--model", required=True, help="model directory")
    sub.add_argument("--etl", required=True, help="directory written by signal-etl")
    sub.add_argument("--out", required=True, help="directory for metrics and matrices")

    sub = step("signal-predict", cmd_signal_predict, "classify the reads of signal CSVs")
    sub.add_argument("--model", required=True, help="model directory")
    sub.add_argument("--input", nargs="+", required=True, help="CSV files or directories")
    sub.add_argument("--out", required=True, help="output CSV")
    sub.add_argument("--metrics", help="also write metrics over the labelled reads here")
    sub.add_argument("--unknown-label", type=int, default=-99)
    sub.add_argument("--batch-size", type=int, default=128)

    sub = step("tracks-pools", cmd_tracks_pools, "ROI pools of a tracks experiment", True)
    sub.add_argument("--out", required=True, help="directory: train.tsv, valid.tsv, counts.tsv")

    sub = step("tracks-train", cmd_tracks_train, "train DCNN_V2 on the ROI pools", True)
    sub.add_argument("--pools", required=True, help="directory written by tracks-pools")
    sub.add_argument("--cache", required=True, help="window-cache directory (reused)")
    sub.add_argument("--out", required=True, help="directory: model/, history.csv/.png")
    sub.add_argument("--threads", type=int, default=1)

    sub = step("tracks-predict", cmd_tracks_predict, "binding bigWig + peaks from ATAC")
    sub.add_argument("--model", required=True, help="model directory")
    sub.add_argument("--genome", required=True, help=".2bit genome")
    sub.add_argument("--signal", required=True, help="ATAC bigWig")
    sub.add_argument("--cache", required=True, help="window-cache directory (reused)")
    sub.add_argument("--out", required=True, help="output bigWig")
    sub.add_argument("--peaks", required=True, help="output peaks BED")
    sub.add_argument("--chroms", nargs="+", default=["chr1", "chr8"])
    sub.add_argument("--chrom-sizes", help="chromosome sizes (default: from the 2bit)")
    sub.add_argument("--step", type=int, default=256)
    sub.add_argument("--batch-size", type=int, default=256)
    sub.add_argument("--reverse-complement", action="store_true", help="average both strands")
    sub.add_argument("--threshold", type=float, default=0.5, help="peak threshold")
    sub.add_argument("--missing-chromosomes", choices=("error", "zero"), default="error")
    sub.add_argument("--threads", type=int, default=1)

    sub = step("tracks-benchmark", cmd_tracks_benchmark, "AUPR against a gold standard")
    sub.add_argument("--prediction", required=True, help="prediction bigWig")
    sub.add_argument("--gold", required=True, help="binary gold-standard bigWig")
    sub.add_argument("--summary", required=True, help="output summary TSV")
    sub.add_argument("--plot", required=True, help="output PR-curve PNG")
    sub.add_argument("--chroms", nargs="+", default=["chr1"])
    sub.add_argument("--bin-size", type=int, default=200)
    sub.add_argument("--blacklist", help="blacklist BED")

    sub = step("normalize", cmd_normalize, "normalise a signal bigWig (maxATAC normalize)")
    sub.add_argument("--signal", required=True, help="input bigWig")
    sub.add_argument("--out", required=True, help="output bigWig")
    sub.add_argument("--genome", help=".2bit genome (chromosome sizes)")
    sub.add_argument("--chrom-sizes", help="chromosome sizes file")
    sub.add_argument("--chroms", nargs="+", required=True)
    sub.add_argument("--blacklist", help="blacklist BED (positions set to 0, not counted)")
    sub.add_argument("--method", choices=("min-max", "zscore", "arcsinh"), default="min-max")
    sub.add_argument("--max-percentile", type=float, default=99.0)
    sub.add_argument("--clip", action="store_true", help="clip min-max values to [0, 1]")
    sub.add_argument("--stats", help="also write the statistics JSON here")

    sub = step("embed", cmd_embed, "per-sequence mean embeddings of a FASTA (CSV: id, L0…)")
    sub.add_argument("--model", required=True, help="model directory")
    sub.add_argument("--fasta", required=True)
    sub.add_argument("--out", required=True, help="output CSV")
    sub.add_argument("--batch-size", type=int, default=64)
    sub.add_argument("--invalid-characters", choices=("error", "replace"), default="error")

    step("validate-config", cmd_validate_config, "validate a config file").add_argument("config")
    step("config-docs", cmd_config_docs, "print the Markdown reference of the config keys")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nucflow`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    return run_logged(args.log, args.handler, args=args)


if __name__ == "__main__":
    raise SystemExit(main())
