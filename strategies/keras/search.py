"""keras-tuner inside the walk-forward: a search at a retrain, on that retrain's training window only.

The search tunes the model the strategy trains: its samples come from the one window pipeline
(:class:`strategies.keras.windows.TrainingWindow`: the same scalers, channels, a hybrid's residual
targets, a variance loss's scale columns) and its models from the one seeded build
(:func:`strategies.keras.builder.build_model`: the config's loss, a hybrid's zero start,
``jit_compile``). Validation is the most recent ``validation_split`` of the window's samples (the
tuning block's, else the strategy's, else 0.2; at least one sample), in time order and never
shuffled; the training samples stop ``steps - 1`` samples earlier so that no training target falls in
the validation period (a purge gap). Every trial starts from the same seed, so trials differ by their
hyperparameters, not by luck. ``val_qlike`` scores the trial's volatility forecasts as the fitted model
would issue them (a hybrid's: its baseline plus the correction).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtester.core.errors import BacktestError, FailedRetrain
from backtester.core.scores import mean_qlike
from backtester.core.series import BarSeries

from .builder import build_model
from .runtime import keras_module, keras_tuner_module
from .training import train_epochs, train_fitting
from .tuner import best_and_trials, make_tuner, search_stacked
from .tuning import HyperValue, declare_space
from .windows import Samples, TrainingWindow


def tune(
    params, train: BarSeries, horizon: int, seed: int, directory: Path, stack: int = 1
) -> tuple[dict[str, HyperValue], pd.DataFrame]:
    """Search ``params.tuning.space`` on the training window ``train``; return the best values and every trial.

    The tuner's state lives in ``directory`` (a fresh search each time). Seeded: the same
    window, params and seed give the same trials and the same choice. With ``stack`` > 1 a random
    search trains up to ``stack`` trials at once, those whose models compile alike in one program
    (:func:`strategies.keras.tuner.search_stacked`): the same trials, the same scores to float32 rounding,
    so the same choice unless two trials' scores tie within that rounding.
    A Bayesian search (each trial chosen from the scores before it) and Hyperband (trials continue
    earlier ones) run trial by trial.
    """
    cfg = params.tuning
    window = TrainingWindow(params, train, seed, horizon if params.multistep == "direct" else 1)
    tuner = make_tuner(cfg, hypermodel(params, window, seed), search_space(params), seed, directory)
    try:
        if stack > 1 and cfg.tuner == "random":
            tuner.oracle.verbose = 0
            search_stacked(tuner, stack)
        else:
            tuner.search(epochs=cfg.epochs, verbose=0)
    except BacktestError:
        raise
    except Exception as exc:  # keras-tuner gives up (e.g. every trial failed): this tuning failed, the run goes on
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FailedRetrain(f"tuning: {text}") from None
    best, trials = best_and_trials(tuner)
    if best is None:
        raise FailedRetrain("tuning: no trial finished")
    return best, trials


def search_space(params):
    """The config's space (and the strategy's fixed values) on a ``keras_tuner.HyperParameters``."""
    hp = keras_tuner_module().HyperParameters()
    declare_space(hp, params)
    return hp


def validation_share(params) -> float:
    """The share of a window's samples a search validates on: the tuning block's, the strategy's, or 0.2."""
    return params.tuning.validation_split or params.validation_split or 0.2


def hypermodel(params, window: TrainingWindow, seed: int):
    """A keras-tuner hypermodel of ``params`` over ``window`` (a :class:`WindowedHyperModel`)."""
    return _hypermodel_class()(params, window, seed)


@cache
def _hypermodel_class() -> type:
    return type("WindowedHyperModel", (WindowedHyperModel, keras_tuner_module().HyperModel), {})


class WindowedHyperModel:
    """Builds the strategy's model from ``hp`` (the one seeded build, the same seed every trial) and fits it
    on the window's samples; a keras-tuner ``HyperModel`` once mixed with it (:func:`hypermodel`)."""

    def __init__(self, params: Any, window: TrainingWindow, seed: int):
        super().__init__()
        self.params, self.window, self.seed = params, window, seed

    def memory(self, hp) -> int:
        return int(hp.get("memory")) if "memory" in hp.values else self.params.memory

    def build(self, hp):
        return build_model(self.params, self.seed, hp, self.memory(hp), self.window.steps, self.window.inputs.shape[1])

    def samples(self, hp) -> tuple[Samples, Samples]:
        """The trial's training and validation samples (for its lookback)."""
        kt = keras_tuner_module()
        memory = self.memory(hp)
        try:
            samples = self.window.samples(memory)
        except FailedRetrain as exc:
            raise kt.errors.FailedTrialError(f"memory {memory}: {exc}") from None
        train, val = samples.split(validation_share(self.params), purge=self.window.steps - 1, at_least_one=True)
        if len(train) < 1:
            raise kt.errors.FailedTrialError(f"memory {memory}: too few samples to train and validate")
        return train, val

    def val_qlike(self, model, val: Samples) -> float:
        """QLIKE of the model's volatility forecasts on the validation samples."""
        pred = np.asarray(model.predict(val.x, verbose=0, batch_size=256))
        return mean_qlike(val.rv, self.window.to_volatility(pred, val))

    def fit(self, hp, model, *args, **kwargs):
        """One trial alone: :func:`~strategies.keras.training.train_epochs` (the shuffle seeded by the run,
        whole padded batches), the tuner's callbacks at every epoch's end."""
        train, val = self.samples(hp)
        callbacks = list(kwargs.get("callbacks") or [])
        if self.params.tuning.objective == "val_qlike":
            callbacks.insert(0, _qlike_callback_class()(self, val))
        epochs = kwargs.get("epochs", self.params.tuning.epochs) - kwargs.get("initial_epoch", 0)
        history = train_epochs(
            model, train.x, train.y, val.x, val.y, self.params.batch_size, epochs, self.seed, callbacks
        )
        return _history(history)

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
        """A trial's model, built as keras-tuner builds it (the session cleared first), and its samples."""
        return (self.build(hp), *self.samples(hp))

    def fit_together(self, hps: list, prepared: list) -> list[Any]:
        """Trials ``hps`` (each :meth:`prepare`-d, or the error that met) trained as :meth:`fit` trains each
        alone, those whose models compile alike (the same layers, shapes, loss and optimizer, the learning
        rate aside: it is optimizer state) in one program (:func:`strategies.keras.training.train_stacked`).
        Returns per trial its ``History`` or its error; a program that fails falls back to lone fits."""
        out: list[Any] = list(prepared)
        groups: dict[str, list] = {}
        for k, got in enumerate(prepared):
            if not isinstance(got, Exception):
                groups.setdefault(self.program_key(hps[k], got[0], k), []).append((k, *got))
        for key, group in groups.items():
            try:
                got = self._train_group(key, group)
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

    def _train_group(self, key: str, group: list) -> list:
        """The histories of one group of trials ``(k, model, train, val)`` trained in one program."""

        def add_qlike(histories, positions):
            for k, h in zip(positions, histories):
                _, model, _, val = group[k]
                h.setdefault("val_qlike", []).append(self.val_qlike(model, val))

        got, _ = train_fitting(
            [g[1] for g in group],
            [(g[2].x, g[2].y, g[3].x, g[3].y) for g in group],
            self.params.batch_size,
            self.params.tuning.epochs,
            [self.seed] * len(group),
            program_key=None if key.startswith("alone:") else key,  # kept only if named
            epoch_end=add_qlike if self.params.tuning.objective == "val_qlike" else None,
        )
        return got


class QlikeOnValidation:
    """Adds ``val_qlike`` (:meth:`WindowedHyperModel.val_qlike` on the validation samples) to each epoch's
    logs; a Keras callback once mixed with one (:func:`_qlike_callback_class`)."""

    def __init__(self, hypermodel: WindowedHyperModel, val: Samples):
        super().__init__()
        self.hypermodel, self.val = hypermodel, val

    def on_epoch_end(self, epoch, logs=None):
        value = self.hypermodel.val_qlike(self.model, self.val)
        if logs is not None:
            logs["val_qlike"] = value


@cache
def _qlike_callback_class() -> type:
    return type("QlikeOnValidation", (QlikeOnValidation, keras_module().callbacks.Callback), {})


def _history(values: dict[str, list[float]]):
    history = keras_module().callbacks.History()
    history.history = values
    return history
