"""The keras-tuner pieces of a search: the hypermodel over a training window, the ``val_qlike``
callback, the tuner and the trials table. Imported by :func:`strategies.keras_tuning.tune` when a
search runs (this module imports Keras and keras-tuner)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtester.core.scores import mean_qlike

from .keras_core import HyperValue, _private_python_random, call_with_features, check_model, keras_module, windows

keras = keras_module()
import keras_tuner as kt  # noqa: E402  (after keras_module: Keras on the run's backend, imported quietly)


class QlikeOnValidation(keras.callbacks.Callback):
    """Adds ``val_qlike`` (QLIKE of the volatility forecasts on the validation samples) to each epoch's logs."""

    def __init__(self, x_val: np.ndarray, rv_val: np.ndarray, to_vol: Callable[[np.ndarray], np.ndarray]):
        super().__init__()
        self.x_val, self.rv_val, self.to_vol = x_val, rv_val, to_vol

    def on_epoch_end(self, epoch, logs=None):
        pred = np.asarray(self.model.predict(self.x_val, verbose=0, batch_size=256))
        if logs is not None:
            logs["val_qlike"] = mean_qlike(self.rv_val, self.to_vol(pred))


@dataclass
class Window:
    """The training window a search runs on: scaled targets, raw RV, and how to read predictions back."""

    scaled: np.ndarray
    rv: np.ndarray
    steps: int
    val_share: float
    to_vol: Callable[[np.ndarray], np.ndarray]
    inputs: np.ndarray | None = None  # bars x channels where features list more than rv (else: scaled)


class WindowedHyperModel(kt.HyperModel):
    """Builds the strategy's model from ``hp`` (seeded the same for every trial) and fits it on the window:
    the last ``val_share`` of samples validate, in time order, after a purge gap of ``steps - 1``."""

    def __init__(self, params: Any, window: Window, seed: int):
        super().__init__()
        self.params, self.window, self.seed = params, window, seed
        self.builder = params.builder_function()

    def memory(self, hp) -> int:
        return int(hp.get("memory")) if "memory" in hp.values else self.params.memory

    def build(self, hp):
        keras.utils.set_random_seed(self.seed)
        _private_python_random(self.seed)
        memory, steps = self.memory(hp), self.window.steps
        n = 1 if self.window.inputs is None else self.window.inputs.shape[1]
        model = (
            self.builder(hp, memory, steps)
            if n == 1
            else call_with_features(self.builder, self.params.builder_path(), hp, memory, steps, n)
        )
        check_model(model, self.params.builder_path(), memory, steps, n)
        return model

    def samples(self, hp) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
        """``(x_train, y_train, x_val, y_val)`` for the trial's lookback, and the validation targets' RV."""
        w = self.window
        memory = self.memory(hp)
        _, y = windows(w.scaled, memory, w.steps)
        x, _ = windows(w.inputs if w.inputs is not None else w.scaled, memory, w.steps)
        x = x[..., None] if x.ndim == 2 else x
        _, rv_y = windows(w.rv, memory, w.steps)
        n_val = max(1, int(len(x) * w.val_share))
        n_tr = len(x) - n_val - (w.steps - 1)
        if n_tr < 1:
            raise kt.errors.FailedTrialError(f"memory {memory}: too few samples to train and validate")
        return (x[:n_tr], y[:n_tr], x[-n_val:], y[-n_val:]), rv_y[-n_val:]

    def fit(self, hp, model, *args, **kwargs):
        """One trial alone: :func:`~strategies.keras_stack.train_epochs` (the shuffle seeded by the run,
        whole padded batches), the tuner's callbacks at every epoch's end."""
        from .keras_stack import train_epochs

        (x_tr, y_tr, x_val, y_val), rv_val = self.samples(hp)
        callbacks = list(kwargs.get("callbacks") or [])
        if self.params.tuning.objective == "val_qlike":
            callbacks.insert(0, QlikeOnValidation(x_val, rv_val, self.window.to_vol))
        epochs = kwargs.get("epochs", self.params.tuning.epochs) - kwargs.get("initial_epoch", 0)
        return _history(
            train_epochs(model, x_tr, y_tr, x_val, y_val, self.params.batch_size, epochs, self.seed, callbacks)
        )

    def program_key(self, hp, model, k: int) -> str:
        """What makes two trials' models one compiled program: the builder, the trial's values, the model's
        architecture, shapes, loss and optimizer, with a plain learning rate aside (named ``learning_rate``,
        and a float in the optimizer: a variable of its state, so trials differing only in it stack). A
        model whose config cannot be read (a subclassed model) gets a key of its own: it trains alone."""
        try:
            opt = model.optimizer.get_config()
            plain = isinstance(opt.get("learning_rate"), float)
            if plain:
                opt.pop("learning_rate")
            opt.pop("name", None)
            values = {n: v for n, v in hp.values.items() if not (plain and n == "learning_rate")}
            return json.dumps(
                [
                    self.params.builder_path(),
                    values,
                    model.get_config(),
                    repr(model.loss),
                    type(model.optimizer).__name__,
                    opt,
                    model.jit_compile,
                ],
                sort_keys=True,
                default=repr,
            )
        except Exception:
            return f"alone:{k}"

    def prepare(self, hp) -> tuple:
        """A trial's model, built as keras-tuner builds it (the session cleared first), its samples and the
        validation targets' RV."""
        keras.backend.clear_session()
        model = self.build(hp)
        samples, rv_val = self.samples(hp)
        return model, samples, rv_val

    def fit_together(self, hps: list, prepared: list) -> list[Any]:
        """Trials ``hps`` (each :meth:`prepare`-d, or the error that met) trained as :meth:`fit` trains each
        alone, those whose models compile alike (the same layers, shapes, loss and optimizer, the learning
        rate aside: it is optimizer state) in one program (:func:`strategies.keras_stack.train_stacked`).
        Returns per trial its ``History`` or its error; a program that fails falls back to lone fits."""
        from .keras_stack import train_fitting

        out: list[Any] = list(prepared)
        groups: dict[str, list] = {}
        for k, got in enumerate(prepared):
            if not isinstance(got, Exception):
                groups.setdefault(self.program_key(hps[k], got[0], k), []).append((k, *got))
        qlike = self.params.tuning.objective == "val_qlike"
        for key, group in groups.items():

            def add_qlike(histories, positions, group=group):
                for k, h in zip(positions, histories):
                    _, model, samples, rv_val = group[k]
                    pred = np.asarray(model.predict(samples[2], verbose=0, batch_size=256))
                    h.setdefault("val_qlike", []).append(mean_qlike(rv_val, self.window.to_vol(pred)))

            try:
                got, _ = train_fitting(
                    [g[1] for g in group],
                    [g[2] for g in group],
                    self.params.batch_size,
                    self.params.tuning.epochs,
                    [self.seed] * len(group),
                    program_key=None if key.startswith("alone:") else key,  # kept only if named
                    epoch_end=add_qlike if qlike else None,
                )
            except Exception:  # the group's program failed (not for memory: halved then): each trial trains alone
                for k, *_ in group:
                    try:
                        out[k] = self.fit(hps[k], self.prepare(hps[k])[0])
                    except Exception as exc:
                        out[k] = exc
                continue
            for (k, *_), h in zip(group, got):
                out[k] = _history(h)
        return out


def _history(values: dict[str, list[float]]):
    history = keras.callbacks.History()
    history.history = values
    return history


def search_stacked(tuner, size: int) -> None:
    """``tuner.search`` with up to ``size`` trials trained at once (:meth:`WindowedHyperModel.fit_together`).

    For a random search only: its oracle draws each trial's values without looking at earlier scores,
    so asking for ``size`` trials before any ends gives the trials, and the scores, of the one-by-one
    search (tested). Each trial is reported and ended as keras-tuner's own loop does."""
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


def make_tuner(cfg, hypermodel: WindowedHyperModel, hp, seed: int, directory: Path):
    """The configured tuner (random, bayesian or hyperband) over ``hp``, its state in ``directory``."""
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
