"""The keras-tuner machinery of a search: the tuner (random, Bayesian, Hyperband), a random search that
trains several trials at once (:func:`search_stacked`), and the trials table. keras-tuner is imported
inside the functions, never at import time."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .runtime import keras_tuner_module
from .tuning import HyperValue


def search_stacked(tuner, size: int) -> None:
    """``tuner.search`` with up to ``size`` trials trained at once (:meth:`strategies.keras.search.WindowedHyperModel.fit_together`).

    For a random search only: its oracle draws each trial's values without looking at earlier scores,
    so asking for ``size`` trials before any ends gives the trials, and the scores, of the one-by-one
    search (tested). Each trial is reported and ended as keras-tuner's own loop does."""
    kt = keras_tuner_module()
    from keras_tuner.src.engine import tuner_utils

    oracle, objective, hypermodel = tuner.oracle, tuner.oracle.objective, tuner.hypermodel
    tuner.on_search_begin()
    stopped = False
    while not stopped:
        trials, prepared = [], []
        for k in range(size):
            trial = oracle.create_trial(f"stack{k}")
            if trial.status != kt.engine.trial.TrialStatus.RUNNING:
                stopped = True  # the budget is spent (or the space is exhausted)
                break
            try:
                prepared.append(hypermodel.prepare(trial.hyperparameters))
            except Exception as exc:  # this trial fails alone, as in keras-tuner's loop
                prepared.append(exc)
            # what ending this trial records of its build (new entries of the space, its values), recorded now:
            # the next trial is drawn from the space the one-by-one search would draw it from
            oracle.update_space(trial.hyperparameters)
            oracle._record_values(trial)
            trials.append(trial)
        results = hypermodel.fit_together([t.hyperparameters for t in trials], prepared) if trials else []
        for trial, result in zip(trials, results):
            tuner.on_trial_begin(trial)
            if isinstance(result, Exception):
                if isinstance(result, kt.errors.FatalError):
                    raise result
                failed = isinstance(result, kt.errors.FailedTrialError)
                trial.status = kt.engine.trial.TrialStatus.FAILED if failed else kt.engine.trial.TrialStatus.INVALID
                trial.message = f"{type(result).__name__}: {result}"
            else:
                oracle.update_trial(
                    trial.trial_id,
                    tuner_utils.convert_to_metrics_dict(result, objective),
                    step=tuner_utils.get_best_step(result, objective),
                )
                trial.status = kt.engine.trial.TrialStatus.COMPLETED
            tuner.on_trial_end(trial)
    tuner.on_search_end()


def _quiet(tuner_class):
    """The tuner without its TensorBoard hook (it imports tensorboard on the TF backend; we pass no TensorBoard)."""
    return type(
        tuner_class.__name__,
        (tuner_class,),
        {"_configure_tensorboard_dir": lambda self, callbacks, trial, execution=0: None},
    )


def make_tuner(cfg, hypermodel: Any, hp, seed: int, directory: Path):
    """The configured tuner (random, bayesian or hyperband) over ``hp``, its state in ``directory``."""
    kt = keras_tuner_module()
    common = dict(
        hypermodel=hypermodel,
        objective=kt.Objective(cfg.objective, direction="min"),
        seed=seed,
        hyperparameters=hp,
        tune_new_entries=True,
        directory=str(directory),
        project_name="tuner",
        overwrite=True,
        max_consecutive_failed_trials=10**6,
    )  # a failed trial is recorded, not fatal
    if cfg.tuner == "random":
        return _quiet(kt.RandomSearch)(max_trials=cfg.max_trials, **common)
    if cfg.tuner == "bayesian":
        return _quiet(kt.BayesianOptimization)(max_trials=cfg.max_trials, **common)
    return _quiet(kt.Hyperband)(max_epochs=cfg.epochs, factor=3, hyperband_iterations=1, **common)


def best_and_trials(tuner) -> tuple[dict[str, HyperValue] | None, pd.DataFrame]:
    """The best values (None if no trial finished) and every trial, ``best`` marking the one chosen."""
    rows = []
    for trial in sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id):
        score = trial.score
        rows.append(
            {
                "trial": trial.trial_id,
                "status": str(trial.status),
                "score": float(score) if score is not None else float("nan"),
                "hyperparameters": json.dumps(trial.hyperparameters.values, sort_keys=True, default=str),
            }
        )
    trials = pd.DataFrame(rows, columns=["trial", "status", "score", "hyperparameters"])
    done = trials[np.isfinite(trials["score"])] if len(trials) else trials
    if not len(done):
        return None, trials
    best = {
        k: v for k, v in tuner.get_best_hyperparameters(1)[0].values.items() if not k.startswith("tuner/")
    }  # Hyperband's bookkeeping (tuner/epochs, tuner/round, ...)
    trials["best"] = trials["hyperparameters"].map(
        lambda h: {k: v for k, v in json.loads(h).items() if not k.startswith("tuner/")}
    ) == json.loads(json.dumps(best, default=str))
    if trials["best"].sum() > 1:  # the same values twice: the first with the best score is the one
        first = int(trials.index[trials["best"] & (trials["score"] == done["score"].min())][0])
        trials["best"] = trials.index == first
    best = {k: (v.item() if hasattr(v, "item") else v) for k, v in best.items()}
    if any(isinstance(v, float) and not math.isfinite(v) for v in best.values()):  # pragma: no cover - defensive
        raise ValueError("tuning returned a non-finite hyperparameter")
    return best, trials
