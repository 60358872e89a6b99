"""Hyperparameter search for signal classifiers with Optuna, resumable from a SQLite study."""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import pandas as pd
import torch
from matplotlib.figure import Figure

from nucflow.data.signal_etl import SignalPart, load_etl, load_manifest
from nucflow.errors import InputError
from nucflow.io.atomic import atomic_path, write_text_atomic
from nucflow.models.signal_search import default_hyperparameters, suggest_hyperparameters
from nucflow.train.interrupt import Interrupt
from nucflow.train.signal_fit import fit_signal_model, signal_model

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

STRATEGIES = ("hyperband", "random_search", "bayesian_optimization")
OBJECTIVE = "val_accuracy"


class PruneTrial(L.Callback):
    """Report each epoch's validation accuracy to an Optuna trial; stop when it is pruned."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial
        self.pruned = False

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Runs after the epoch's validation (and after the history callback)."""
        value = trainer.callback_metrics.get(OBJECTIVE)
        if value is None:
            return
        self.trial.report(float(value), step=trainer.current_epoch + 1)
        if self.trial.should_prune():
            self.pruned = True
            trainer.should_stop = True


def make_study(
    storage_path: str | os.PathLike[str],
    study_name: str,
    tune: Mapping[str, Any],
    seed: int,
    *,
    overwrite: bool = False,
) -> optuna.Study:
    """Create or load the study ``study_name`` in the SQLite file ``storage_path``.

    `random_search` samples at random, `bayesian_optimization` with TPE, `hyperband` samples at
    random and prunes with Hyperband over epochs (1 … max_epochs_hpt, reduction ``factor``);
    ``seed`` seeds the sampler of this process (each worker passes its own). Heartbeats let a
    resumed study fail and retry trials left running by a killed process; concurrent workers
    wait up to a minute for the database lock. ``overwrite`` deletes an existing study first.
    """
    import optuna

    strategy = tune["tuning_strategy"]
    if strategy not in STRATEGIES:
        raise InputError(f"tuning_strategy '{strategy}': expected one of {', '.join(STRATEGIES)}")
    if strategy == "bayesian_optimization":
        sampler: optuna.samplers.BaseSampler = optuna.samplers.TPESampler(seed=seed)
    else:
        sampler = optuna.samplers.RandomSampler(seed=seed)
    pruner: optuna.pruners.BasePruner = (
        optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=tune["max_epochs_hpt"], reduction_factor=tune["factor"]
        )
        if strategy == "hyperband"
        else optuna.pruners.NopPruner()
    )
    Path(storage_path).parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(
            f"sqlite:///{Path(storage_path).resolve()}",
            heartbeat_interval=60,
            grace_period=180,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=1
            ),
            engine_kwargs={"connect_args": {"timeout": 60}},
        )
    if overwrite and study_name in optuna.get_all_study_names(storage):
        log.info("overwrite: deleting the existing study %s", study_name)
        optuna.delete_study(study_name=study_name, storage=storage)
    return optuna.create_study(
        storage=storage,
        study_name=study_name,
        direction="maximize",
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )


def finished_trials(study: optuna.Study) -> int:
    """Trials that ran to their end or were pruned (what ``max_trials`` counts)."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _objective(
    trial: optuna.Trial,
    *,
    architecture: str,
    fixed: Mapping[str, Any],
    parts: Mapping[str, SignalPart],
    target_length: int,
    n_classes: int,
    tune: Mapping[str, Any],
    training: Mapping[str, Any],
    seed: int,
    interrupt: Interrupt,
) -> float:
    """Train one trial's model for up to max_epochs_hpt epochs; its best validation accuracy."""
    import optuna

    hyperparameters = suggest_hyperparameters(trial, architecture, target_length, fixed)
    L.seed_everything(seed + trial.number, verbose=False)  # the trial's initial weights
    _, learning_rate, model = signal_model(architecture, hyperparameters, target_length, n_classes)
    trial.set_user_attr("hyperparameters", hyperparameters)
    pruning = PruneTrial(trial)
    history = fit_signal_model(
        model,
        learning_rate,
        parts,
        batch_size=training["batch_size"],
        epochs=tune["max_epochs_hpt"],
        patience=tune["patience"],
        seed=seed + trial.number,
        monitor=OBJECTIVE,
        augment=training["use_augmentation"],
        max_warp=training["max_warp"],
        interrupt=interrupt,
        callbacks=[pruning],
    )
    best = history.sign * history.best_score
    log.info(
        "trial %d: best %s %.4f over %d epochs", trial.number, OBJECTIVE, best, len(history.rows)
    )
    if pruning.pruned or interrupt.requested:
        raise optuna.TrialPruned(f"stopped after epoch {len(history.rows)}")
    return best


def create_tuning_study(
    etl_dir: str | os.PathLike[str],
    study_path: str | os.PathLike[str],
    study_info_path: str | os.PathLike[str],
    *,
    model: Mapping[str, Any],
    tune: Mapping[str, Any],
    seed: int,
) -> dict[str, Any]:
    """Create (``tune.overwrite``: recreate) the study the tuning workers share; write its JSON.

    The study (SQLite file ``study_path``) is named after the model family and the ETL
    fingerprint, so a rerun resumes it while other data or another family start a new one.
    ``max_trials`` 0 creates no study (``"study": null``).
    """
    manifest = load_manifest(etl_dir)
    architecture = model["name"]
    info: dict[str, Any] = {"architecture": architecture, "study": None, "storage": None}
    if tune["max_trials"]:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        name = f"{architecture}-{manifest['fingerprint'][:16]}"
        study = make_study(
            study_path, name, tune, _tune_seed(tune, seed), overwrite=tune["overwrite"]
        )
        info.update(study=name, storage=str(Path(study_path).resolve()))
        log.info("%s study %s: %d finished trials", architecture, name, finished_trials(study))
    write_text_atomic(study_info_path, json.dumps(info, indent=1) + "\n")
    return info


def _tune_seed(tune: Mapping[str, Any], seed: int) -> int:
    """The sampler seed: ``tune.seed``, or the global seed when it is null."""
    return seed if tune["seed"] is None else int(tune["seed"])


def run_tuning_worker(
    etl_dir: str | os.PathLike[str],
    study_info_path: str | os.PathLike[str],
    worker_path: str | os.PathLike[str],
    *,
    model: Mapping[str, Any],
    tune: Mapping[str, Any],
    training: Mapping[str, Any],
    seed: int,
    worker: int = 0,
    threads: int = 1,
) -> dict[str, Any]:
    """Run trials of the shared study until it holds ``max_trials`` finished trials.

    Any number of workers (processes, SLURM jobs) can run at once on one study: each samples
    with its own seed (the tuning seed + ``worker``), and each stops once the study holds
    ``max_trials`` finished (complete or pruned) trials, so up to ``workers - 1`` trials still
    running elsewhere may finish beyond it. Ctrl-C ends this worker after the current batch.
    Writes ``worker_path``: the trial numbers this worker ran and whether it was interrupted.
    """
    import optuna

    torch.set_num_threads(threads)
    info = json.loads(Path(study_info_path).read_text())
    summary: dict[str, Any] = {"worker": worker, "trials": [], "interrupted": False}
    if info["study"] is None:
        write_text_atomic(worker_path, json.dumps(summary, indent=1) + "\n")
        return summary
    manifest, parts = load_etl(etl_dir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = make_study(info["storage"], info["study"], tune, _tune_seed(tune, seed) + worker)
    done = finished_trials(study)
    remaining = max(tune["max_trials"] - done, 0)
    log.info(
        "worker %d on %s study %s: %d finished trials, up to %d more (%s, %d epochs per trial)",
        worker,
        info["architecture"],
        study.study_name,
        done,
        remaining,
        tune["tuning_strategy"],
        tune["max_epochs_hpt"],
    )
    with Interrupt() as interrupt:

        def record(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            summary["trials"].append(trial.number)
            if interrupt.requested:
                study.stop()

        if remaining:
            study.optimize(
                lambda trial: _objective(
                    trial,
                    architecture=info["architecture"],
                    fixed=dict(model["params"]),
                    parts=parts,
                    target_length=manifest["target_length"],
                    n_classes=len(manifest["class_names"]),
                    tune=tune,
                    training=training,
                    seed=_tune_seed(tune, seed),
                    interrupt=interrupt,
                ),
                n_trials=remaining,
                callbacks=[
                    optuna.study.MaxTrialsCallback(
                        tune["max_trials"],
                        states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED),
                    ),
                    record,
                ],
                catch=(),
            )
        summary["interrupted"] = interrupt.requested
    log.info("worker %d ran trials %s", worker, summary["trials"])
    write_text_atomic(worker_path, json.dumps(summary, indent=1) + "\n")
    return summary


def gather_tuning(
    etl_dir: str | os.PathLike[str],
    study_info_path: str | os.PathLike[str],
    best_params_path: str | os.PathLike[str],
    trials_path: str | os.PathLike[str],
    plot_path: str | os.PathLike[str],
    *,
    model: Mapping[str, Any],
    tune: Mapping[str, Any],
    worker_paths: Sequence[str | os.PathLike[str]] = (),
) -> dict[str, Any]:
    """The best finished trial of the study; write best_params.json, trials CSV, plot.

    Without a study (``max_trials`` 0): the family's defaults with ``model.params`` fixed.
    Whether a worker (its summary in ``worker_paths``) was stopped by Ctrl-C is recorded in
    best_params.json as ``interrupted``.
    """
    import optuna

    manifest = load_manifest(etl_dir)
    info = json.loads(Path(study_info_path).read_text())
    architecture = info["architecture"]
    if info["study"] is None:
        fixed = dict(model["params"])
        target_length = manifest["target_length"]
        hyperparameters = {**default_hyperparameters(architecture, target_length), **fixed}
        signal_model(architecture, hyperparameters, target_length, len(manifest["class_names"]))
        best = {"architecture": architecture, "hyperparameters": hyperparameters, "trials": 0}
        log.info("max_trials 0: %s defaults%s", architecture, " with model.params" * bool(fixed))
        _write_results(best, pd.DataFrame(), None, best_params_path, trials_path, plot_path)
        return best
    study = optuna.load_study(study_name=info["study"], storage=f"sqlite:///{info['storage']}")
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        raise InputError(
            f"{info['storage']}: no tuning trial completed (interrupted or all pruned); "
            "rerun to resume"
        )
    trial = study.best_trial
    best = {
        "architecture": architecture,
        "hyperparameters": trial.user_attrs["hyperparameters"],
        OBJECTIVE: trial.value,
        "trial": trial.number,
        "trials": finished_trials(study),
        "strategy": tune["tuning_strategy"],
        "study": study.study_name,
        "interrupted": any(json.loads(Path(p).read_text())["interrupted"] for p in worker_paths),
    }
    log.info("best trial %d: %s %.4f", trial.number, OBJECTIVE, trial.value)
    _write_results(best, study.trials_dataframe(), study, best_params_path, trials_path, plot_path)
    return best


def tune_signal_model(
    etl_dir: str | os.PathLike[str],
    study_path: str | os.PathLike[str],
    best_params_path: str | os.PathLike[str],
    trials_path: str | os.PathLike[str],
    plot_path: str | os.PathLike[str],
    *,
    model: Mapping[str, Any],
    tune: Mapping[str, Any],
    training: Mapping[str, Any],
    seed: int,
    threads: int = 1,
) -> dict[str, Any]:
    """The whole search in one process: create the study, run one worker, gather the best.

    ``study.json`` and ``workers/0.json`` are written beside ``study_path``. Ctrl-C ends the
    search after the current batch and keeps the best finished trial.
    """
    study_dir = Path(study_path).parent
    info_path = study_dir / "study.json"
    create_tuning_study(etl_dir, study_path, info_path, model=model, tune=tune, seed=seed)
    worker_path = study_dir / "workers" / "0.json"
    run_tuning_worker(
        etl_dir,
        info_path,
        worker_path,
        model=model,
        tune=tune,
        training=training,
        seed=seed,
        threads=threads,
    )
    return gather_tuning(
        etl_dir,
        info_path,
        best_params_path,
        trials_path,
        plot_path,
        model=model,
        tune=tune,
        worker_paths=[worker_path],
    )


def _write_results(
    best: Mapping[str, Any],
    trials: pd.DataFrame,
    study: optuna.Study | None,
    best_params_path: str | os.PathLike[str],
    trials_path: str | os.PathLike[str],
    plot_path: str | os.PathLike[str],
) -> None:
    """best_params.json, the trials table and the optimisation-history plot."""
    with atomic_path(trials_path) as tmp:
        trials.to_csv(tmp, index=False)
    plot_optimization_history(study, plot_path)
    write_text_atomic(best_params_path, json.dumps(best, indent=1) + "\n")


def plot_optimization_history(study: optuna.Study | None, path: str | os.PathLike[str]) -> None:
    """Each finished trial's objective and the best so far (Optuna's matplotlib plot)."""
    if study is None:
        figure = Figure(figsize=(6, 4))
        axis = figure.subplots()
        axis.text(0.5, 0.5, "no tuning (max_trials: 0)", ha="center", va="center")
        axis.set_axis_off()
    else:
        from optuna.visualization.matplotlib import plot_optimization_history as optuna_plot

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            axis = optuna_plot(study, target_name=OBJECTIVE)
        figure = axis.get_figure()
        figure.set_size_inches(7, 4.5)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    if study is not None:
        import matplotlib.pyplot as plt

        plt.close(figure)
