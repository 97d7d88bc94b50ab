"""Keras forecasters: a lookback window of scaled RV -> your ``build(hp, memory, steps)`` -> H forecasts.

Every Keras strategy, our ``lstm`` included, goes through the same path:

- ``memory`` bars of RV, scaled by a ``MinMaxScaler(0, 1)`` fitted on the training
  window only, are the input, shape ``(batch, memory, 1)``; the targets are the
  next ``steps`` bars' scaled RV (``steps = H`` for ``multistep: direct``, 1 for
  ``recursive``, where each forecast is fed back in).
- The model comes from a **builder** ``build(hp, memory, steps) -> compiled keras.Model``,
  the keras-tuner ``build(hp)`` seam: ``hp`` is a ``keras_tuner.HyperParameters`` whose
  values are fixed from the config's ``hyperparameters`` (any value the builder asks
  for that the config does not fix takes the builder's default).
- Before each build the Keras session is cleared and every random seed set from the
  retrain's seed; training is ``fit`` with ``batch_size``/``epochs``, the last
  ``validation_split`` of samples (in time order) giving the validation loss.
- Forecasts are floored at the smallest positive RV of the training window.

Keras is imported on first use, after the backend is chosen, so configs without a
Keras strategy never load TensorFlow.

A user's builder (``type: keras``)::

    def build(hp, memory, steps):
        import keras
        model = keras.Sequential([keras.Input((memory, 1)),
                                  keras.layers.GRU(hp.Int("units", 8, 64, default=16)),
                                  keras.layers.Dense(steps)])
        model.compile(optimizer=keras.optimizers.Adam(hp.Float("lr", 1e-4, 1e-2, default=1e-3)), loss="mse")
        return model
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from backtester.core.errors import FailedRetrain
from backtester.core.schedule import retrain_times
from backtester.core.series import BarSeries

from .base import FitInfo, Params, forecast_each, positive_floor, session_zone, trailing_windows
from .combination import baseline_min_bars, baseline_strategy
from .keras_core import (
    HyperValue,
    _private_python_random,
    call_with_features,
    check_model,
    describe_layers,
    from_target,
    keras_module,
    learning_rate,
    to_target,
    windows,
)
from .keras_features import (
    channels,
    check_features,
    garch_channels,
    needs_garch,
    raw_channels,
    rv_column,
    scaled_columns,
)
from .keras_import import features_from_json, features_to_json, scaler_from_json, scaler_to_json
from .keras_losses import VARIANCE_LOSSES, check_pair, training_loss, with_scale
from .keras_stack import train_epochs
from .keras_tuning import TuningConfig, tune, tuning_points
from .loading import import_object

PREDICT_CHUNK = 256  # rows per batched predict call: one input shape, compiled once


def garch_feature(params: WindowedKerasParams, seed: int):
    """The seasonal GARCH(1,1) behind the ``garch_variance`` / ``seasonal_profile`` channels (the data
    calendar's session time for its profile, as the ``garch`` baseline)."""
    from .garch import GarchParams

    return GarchParams(session_timezone=params.session_timezone).build(seed)


class WarmStart(BaseModel):
    """``warm_start: {epochs: N}``: each retrain continues the previous retrain's model for N epochs."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    epochs: int = Field(default=2, ge=1, le=100_000)


def fixed_hyperparameters(values: dict[str, HyperValue]):
    """A ``keras_tuner.HyperParameters`` with each value fixed (what a builder sees outside tuning)."""
    keras_module()
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    for name, value in values.items():
        hp.Fixed(name, value)
    return hp


class KerasForecaster:
    """A fitted Keras model with its scaler; built fresh for every retrain."""

    def __init__(self, params: WindowedKerasParams, seed: int):
        self.params, self.seed = params, seed
        self.model = None
        self.assets: list[str] | None = None  # a global model's assets (for the ``asset`` feature)
        self.asset: str | None = None  # the asset this (view of a global) model forecasts
        self.feature_scaler = None
        self.hp_values: dict[str, Any] = {}
        self.history: dict[str, list[float]] = {}

    def steps(self, horizon: int) -> int:
        return horizon if self.params.multistep == "direct" else 1

    def build_model(self, steps: int):
        """Clear the session, seed everything, call the builder and check what it returned."""
        keras = keras_module()
        keras.backend.clear_session()
        keras.utils.set_random_seed(self.seed)
        _private_python_random(self.seed)
        p = self.params
        hp = fixed_hyperparameters(p.fixed_values())
        builder = p.builder_function()
        n = len(channels(p.features, self.assets))
        model = (
            builder(hp, p.memory, steps)
            if n == 1
            else call_with_features(builder, p.builder_path(), hp, p.memory, steps, n)
        )
        check_model(model, p.builder_path(), p.memory, steps, n)
        if p.loss is not None:  # the config's loss replaces the builder's; same optimizer
            model.compile(optimizer=model.optimizer, loss=training_loss(p.loss, p.target))
        if p.residual_params is not None:  # a hybrid starts at no correction: exactly its baseline
            last = next(layer for layer in reversed(model.layers) if layer.weights)
            for w in last.weights:
                w.assign(np.zeros(tuple(w.shape), dtype="float32"))
        if p.jit_compile is not None:
            model.jit_compile = p.jit_compile
        self.hp_values = dict(hp.values)
        return model

    def fit(self, train: BarSeries, horizon: int) -> FitInfo:
        steps = self.steps(horizon)
        x_tr, y_tr, x_val, y_val, self.scaler, self.floor, self.feature_scaler = self._samples(train, steps)
        return self._train(x_tr, y_tr, x_val, y_val, steps)

    def fit_assets(self, trains: dict[str, BarSeries], horizon: int) -> FitInfo:
        """One model on every asset's training window (``scope: global``): each asset scaled by its own
        scaler fitted on its own window, its last ``validation_split`` of samples held out; the assets'
        samples together, in asset-name order (the shuffle is the training loop's, seeded)."""
        steps = self.steps(horizon)
        self.assets = sorted(trains)  # the asset code's channels, when features name it
        parts = {}
        for a in self.assets:
            self.asset = a
            parts[a] = self._samples(trains[a], steps)
        self.asset = None
        self.scalers = {a: (part[4], part[5], part[6]) for a, part in parts.items()}
        x_tr, y_tr, x_val, y_val = (np.concatenate([part[k] for part in parts.values()]) for k in range(4))
        info = self._train(x_tr, y_tr, x_val, y_val, steps)
        info.extra["assets"] = {a: len(part[0]) for a, part in parts.items()}
        return info

    def for_asset(self, asset: str) -> KerasForecaster:
        """This (pooled) model with ``asset``'s scaler: what forecasts that asset, and what its artifact holds."""
        view = copy.copy(self)
        view.scaler, view.floor, view.feature_scaler = self.scalers[asset]
        view.asset = asset
        return view

    def _samples(self, train: BarSeries, steps: int):
        """Supervised windows of one training window, scaled on it: (x, y train, x, y validation, scaler, floor)."""
        from sklearn.preprocessing import MinMaxScaler

        p = self.params
        floor = positive_floor(train.rv)
        values = to_target(train.rv, p.target, floor).reshape(-1, 1)
        scaler = MinMaxScaler(feature_range=(0, 1)).fit(values)
        scaled = scaler.transform(values)[:, 0].astype("float32")
        if needs_garch(p.features):  # the GARCH channels' model, fitted on this window
            self.garch = garch_feature(p, self.seed)
            self.garch.fit(train, 1)
        raw = self._raw_inputs(train, floor)
        cols = scaled_columns(p.features, self.assets)
        self.feature_scaler = MinMaxScaler(feature_range=(0, 1)).fit(raw[:, cols]) if len(cols) else None
        inputs = self._scaled_inputs(raw, scaler, self.feature_scaler)
        x, _ = windows(inputs, p.memory, steps)
        _, y = windows(scaled, p.memory, steps)
        if len(x) < 2:
            raise FailedRetrain(f"Keras model needs more than memory + steps = {p.memory + steps} training bars")
        residual = None
        if p.residual_params is not None:  # a hybrid learns the correction to its baseline's forecast
            x, y, residual = self._residual_samples(train, x, to_target(train.rv, p.target, floor), floor, steps)
        if p.loss in VARIANCE_LOSSES:  # the loss reads the scale back from more target columns
            y = with_scale(y, scaler, floor, residual)
        n_val = int(len(x) * p.validation_split)
        return (
            x[: len(x) - n_val],
            y[: len(x) - n_val],
            x[len(x) - n_val :],
            y[len(x) - n_val :],
            scaler,
            floor,
            self.feature_scaler,
        )

    def _residual_samples(self, train: BarSeries, x: np.ndarray, target: np.ndarray, floor: float, steps: int):
        """Fit the baseline on the training window; the samples it can forecast (its own history need met),
        their targets as the baseline's error in the target's unit over the largest such error (so 0 is no
        correction), and (that scale, the baseline's forecasts)."""
        p = self.params
        self.baseline = baseline_strategy(p.residual_params, self.seed, p.residual_names())
        self.baseline.fit(train, steps)
        ends = np.arange(p.memory, p.memory + len(x))
        keep = ends >= baseline_min_bars(p.residual_params, steps)
        if keep.sum() < 2:
            raise FailedRetrain(f"residual_of {p.residual_of}: too few training samples where the baseline forecasts")
        base = to_target(
            np.asarray(self.baseline.forecast_batch(train, ends[keep], steps), dtype="float64"), p.target, floor
        )
        _, actual = windows(target, p.memory, steps)
        error = actual[keep] - base
        self.residual_scale = float(np.max(np.abs(error))) or 1.0
        return x[keep], (error / self.residual_scale).astype("float32"), (self.residual_scale, base)

    def _hybrid(self, scaled: np.ndarray, history: BarSeries, ends: np.ndarray, horizon: int) -> np.ndarray:
        """A hybrid's forecasts: the baseline's, plus the net's correction, back in volatility."""
        base = np.asarray(self.baseline.forecast_batch(history, np.asarray(ends), horizon), dtype="float64")
        out = (
            to_target(base, self.params.target, self.floor)
            + np.asarray(scaled, "float64")[:, :horizon] * self.residual_scale
        )
        return np.maximum(self._from_target(out), self.floor)

    def _raw_inputs(self, series: BarSeries, floor: float) -> np.ndarray:
        """The unscaled input channels of ``series`` (bars x channels; see :mod:`strategies.keras_features`)."""
        p = self.params
        fitted = garch_channels(self.garch, series, floor) if needs_garch(p.features) else None
        return raw_channels(
            p.features, series.rv, series.time, p.target, floor, p.session_timezone, self.assets, self.asset, fitted
        )

    def _scaled_inputs(self, raw: np.ndarray, scaler, feature_scaler) -> np.ndarray:
        """The channels as the model sees them: ``rv`` by the target's scaler, ``log_rv`` / ``rv_mean`` by the
        feature scaler, time and asset codes as they are."""
        out = raw.astype("float64", copy=True)
        p = self.params
        k = rv_column(p.features, self.assets)
        if k is not None:
            out[:, k] = scaler.transform(raw[:, [k]])[:, 0]
        cols = scaled_columns(p.features, self.assets)
        if len(cols):
            out[:, cols] = feature_scaler.transform(raw[:, cols])
        return out.astype("float32")

    def _inputs(self, series: BarSeries) -> np.ndarray:
        """The scaled input channels of ``series`` with this model's scalers."""
        return self._scaled_inputs(
            self._raw_inputs(series, self.floor), self.scaler, getattr(self, "feature_scaler", None)
        )

    def _train(self, x_tr, y_tr, x_val, y_val, steps: int) -> FitInfo:
        p = self.params
        n_val = len(x_val)
        fresh = self.build_model(steps)
        self.model = self._twin_of(fresh, steps) if p.reuse_compiled else fresh
        epochs, self.started_from = self._warm(self.model)
        self.history = train_epochs(self.model, x_tr, y_tr, x_val, y_val, p.batch_size, epochs, self.seed)
        return self._trained(len(x_tr), n_val)

    def _warm(self, model) -> tuple[int, Any]:
        """A warm start (:meth:`start_from`): ``model`` takes the previous model's weights. Returns the
        epochs to train and what the fit started from (None: cold)."""
        p = self.params
        start = getattr(self, "_start", None)
        if start is None:
            return p.epochs, None
        self._start = None  # keep no reference to the previous model (a long warm chain would hold them all)
        saved = getattr(start[0], "_weights", None)
        weights = saved if saved is not None else start[0]._live_model().get_weights()
        if [w.shape for w in weights] != [tuple(v.shape) for v in model.weights]:
            return p.epochs, f"cold: model {start[1]} has another architecture"
        model.set_weights(weights)
        return (p.warm_start.epochs if p.warm_start else p.epochs), start[1]

    def _trained(self, n_train: int, n_val: int) -> FitInfo:
        """Keep the trained weights (``self.model`` holds them, ``self.history`` its losses) and report the fit."""
        self._weights = self.model.get_weights()
        object.__setattr__(self.model, "_backtester_owner", self)
        train_loss = float(self.history["loss"][-1])
        val_loss = float(self.history["val_loss"][-1]) if n_val else float("nan")
        if not math.isfinite(train_loss):
            raise FailedRetrain("training loss is not finite")
        self.samples = n_train
        return FitInfo(
            samples=n_train,
            train_loss=train_loss,
            val_loss=val_loss,
            extra={
                "loss_history": self.history["loss"],
                "hyperparameters": self.hp_values,
                "started_from": self.started_from,
            },
        )

    @staticmethod
    def fit_stacked(members: list[KerasForecaster], trains: list[BarSeries], horizon: int) -> list[Any]:
        """Fit every member on its own training window as :meth:`fit` would, all trained together in one
        compiled program (:func:`strategies.keras_stack.train_stacked`; same params, so one architecture).
        Returns per member its ``FitInfo``, or the ``FailedRetrain`` it met."""
        from backtester.core.errors import BacktestError

        from .keras_stack import train_fitting

        def alone(call) -> Any:  # what a lone fit() would give: its result, or the FailedRetrain it records
            try:
                return call()
            except FailedRetrain as exc:
                return exc
            except (BacktestError, KeyboardInterrupt):
                raise
            except Exception as exc:  # as backtester.segment.attempt words it
                text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
                return FailedRetrain(f"fit() raised {type(exc).__name__}" + (f": {text}" if text else ""))

        def prepare(f: KerasForecaster, train: BarSeries) -> tuple:
            steps = f.steps(horizon)
            x_tr, y_tr, x_val, y_val, f.scaler, f.floor, f.feature_scaler = f._samples(train, steps)
            fresh = f.build_model(steps)
            epochs, f.started_from = f._warm(fresh)  # a warm start: the previous model's weights
            return fresh, (x_tr, y_tr, x_val, y_val), steps, epochs

        out: list[Any] = [None] * len(members)
        starts = [getattr(f, "_start", None) for f in members]  # warm starts, kept for a fall-back lone fit
        ready = []
        for k, (f, train) in enumerate(zip(members, trains)):
            got = alone(lambda: prepare(f, train))  # a member whose preparation fails fails alone
            if isinstance(got, FailedRetrain):
                out[k] = got
            else:
                ready.append((k, *got))
        if not ready:
            return out
        p, first = members[0].params, members[ready[0][0]]
        by_epochs: dict[int, list] = {}  # warm and cold members train for different epochs: one program each
        for r in ready:
            by_epochs.setdefault(r[4], []).append(r)
        histories: dict[int, Any] = {}
        try:
            for epochs, part in by_epochs.items():
                got, sizes = train_fitting(
                    [r[1] for r in part],
                    [r[2] for r in part],
                    p.batch_size,
                    epochs,
                    [members[r[0]].seed for r in part],
                    program_key=first._twin_key(ready[0][1], ready[0][3]),
                )
                histories.update({r[0]: (h, size) for r, h, size in zip(part, got, sizes)})
        except (BacktestError, KeyboardInterrupt):
            raise
        except Exception:  # the group's program failed (not for memory: halved then): each member trains alone
            for k, _, _, _, _ in ready:
                members[k]._start = starts[k]
                out[k] = alone(lambda: members[k].fit(trains[k], horizon))
            return out
        for k, fresh, samples, steps, _ in ready:
            f = members[k]
            f.model = f._twin_of(fresh, steps) if p.reuse_compiled else fresh
            f.history, size = histories[k]
            try:
                out[k] = f._trained(len(samples[0]), len(samples[2]))
                out[k].extra["stacked"] = size  # trained in a program of this many (the audit reads it)
            except FailedRetrain as exc:
                out[k] = exc
        return out

    def start_from(self, previous: KerasForecaster, version: Any) -> None:
        """Warm start: the next ``fit`` continues ``previous``'s weights (model ``version``) for
        ``warm_start.epochs`` epochs, with a fresh optimizer and the scaler refitted on the new window."""
        self._start = (previous, version)

    def _to_target(self, rv: np.ndarray) -> np.ndarray:
        """RV in the unit the model learns (``target``): as is, its log, or variance (RV squared)."""
        return to_target(rv, self.params.target, self.floor)

    def _from_target(self, values: np.ndarray) -> np.ndarray:
        return from_target(values, self.params.target)

    def _twin_of(self, fresh, steps: int):
        """An already-compiled model of the same architecture, given ``fresh``'s initial state.

        Retrains of one strategy share an architecture, so instead of tracing a new
        model's train and predict functions every time, the first model built in this
        process is kept (per builder, hyperparameters and shapes) and every later cold
        start copies the freshly built model's variables (weights and dropout seed state)
        into it and resets its optimizer to its initial state. Forecasts are identical
        to training ``fresh`` itself (tested).
        """
        key = self._twin_key(fresh, steps)
        twin = _TWINS.get(key)
        new = [tuple(v.shape) for v in fresh.variables]
        if twin is None or [tuple(v.shape) for v in twin.model.variables] != new:
            fresh.optimizer.build(fresh.trainable_variables)
            _TWINS[key] = _Twin(fresh, [np.array(v.numpy()) for v in fresh.optimizer.variables])
            while len(_TWINS) > 8:
                _TWINS.pop(next(iter(_TWINS)))
            return fresh
        for dst, src in zip(twin.model.variables, fresh.variables):
            dst.assign(src)
        for var, value in zip(twin.model.optimizer.variables, twin.optimizer_state):
            var.assign(value)
        object.__setattr__(twin.model, "_backtester_owner", None)  # it holds no forecaster's weights now
        return twin.model

    def _twin_key(self, fresh, steps: int) -> str:
        """What makes two models the same compiled program: builder, hyperparameters, shapes, loss."""
        return json.dumps(
            [
                self.params.builder_path(),
                self.hp_values,
                self.params.memory,
                steps,
                fresh.jit_compile,
                learning_rate(fresh),
                self.params.loss,
                self.params.target,
                channels(self.params.features, self.assets),
            ],
            default=str,
        )

    def _live_model(self):
        """The model holding this forecaster's weights (a shared twin is reloaded if another retrain used it)."""
        owner = getattr(self.model, "_backtester_owner", None)
        if getattr(self, "_weights", None) is not None and owner is not self:
            self.model.set_weights(self._weights)
            object.__setattr__(self.model, "_backtester_owner", self)
        return self.model

    def _predict(self, x: np.ndarray) -> np.ndarray:
        x = x[:, None] if x.ndim == 1 else x
        return np.asarray(self._live_model().predict_on_batch(x[None].astype("float32")))[0]

    def forecast(self, history: BarSeries, horizon: int) -> np.ndarray:
        p = self.params
        if p.features != ["rv"]:  # the channels of the last `memory` bars (trailing means look further back)
            window = self._inputs(history)[-p.memory :]
        else:
            window = self.scaler.transform(self._to_target(history.rv[-p.memory :]).reshape(-1, 1))[:, 0]
        if p.residual_params is not None:
            return self._hybrid(self._predict(window)[None], history, np.array([len(history)]), horizon)[0]
        if p.multistep == "direct":
            scaled = self._predict(window)[:horizon]
        else:
            buf = list(window)
            scaled = np.empty(horizon)
            for h in range(horizon):
                scaled[h] = self._predict(np.asarray(buf[-p.memory :]))[0]
                buf.append(scaled[h])
        out = self.scaler.inverse_transform(np.asarray(scaled, dtype="float64").reshape(-1, 1))[:, 0]
        return np.maximum(self._from_target(out), self.floor)

    def forecast_batch(self, history: BarSeries, ends: np.ndarray, horizon: int) -> np.ndarray:
        """One batched model call for all issue times (per horizon step if ``recursive``)."""
        p = self.params
        if p.features != ["rv"]:
            inputs = self._inputs(history.upto(int(np.max(ends)))) if len(ends) else None
            window = trailing_windows(inputs, ends, p.memory) if inputs is not None else None
            if window is None:
                return forecast_each(self, history, ends, horizon)
            scaled = self._predict_many(window)[:, :horizon]
            if p.residual_params is not None:
                return self._hybrid(scaled, history, ends, horizon)
            out = self.scaler.inverse_transform(np.asarray(scaled, dtype="float64").reshape(-1, 1)).reshape(
                scaled.shape
            )
            return np.maximum(self._from_target(out), self.floor)
        rv = trailing_windows(history.rv, ends, p.memory)
        if rv is None:
            return forecast_each(self, history, ends, horizon)
        window = self.scaler.transform(self._to_target(rv).reshape(-1, 1)).reshape(rv.shape)
        if p.residual_params is not None:
            return self._hybrid(self._predict_many(window), history, ends, horizon)
        if p.multistep == "direct":
            scaled = self._predict_many(window)[:, :horizon]
        else:
            scaled = np.empty((len(ends), horizon))
            for h in range(horizon):
                scaled[:, h] = self._predict_many(window)[:, 0]
                window = np.column_stack([window[:, 1:], scaled[:, h]])
        out = self.scaler.inverse_transform(np.asarray(scaled, dtype="float64").reshape(-1, 1)).reshape(scaled.shape)
        return np.maximum(self._from_target(out), self.floor)

    def _predict_many(self, windows: np.ndarray) -> np.ndarray:
        """Predict in chunks of PREDICT_CHUNK rows, the last one padded, so one input shape serves every call."""
        x = windows.astype("float32")
        x = x[..., None] if x.ndim == 2 else x
        n = len(x)
        model = self._live_model()
        out = []
        for start in range(0, n, PREDICT_CHUNK):
            chunk = x[start : start + PREDICT_CHUNK]
            if len(chunk) < PREDICT_CHUNK:
                chunk = np.concatenate([chunk, np.zeros((PREDICT_CHUNK - len(chunk), *chunk.shape[1:]), "float32")])
            out.append(np.asarray(model.predict_on_batch(chunk)))
        return np.concatenate(out)[:n]

    # ------------------------------------------------------------------ artifacts

    def save(self, folder: Path) -> None:
        """``model.keras``, ``scaler.json``, ``config.json``, ``history.json``, ``summary.txt``."""
        folder = Path(folder)
        self._live_model().save(folder / "model.keras")

        scaler = {**scaler_to_json(self.scaler), "output_floor": self.floor, "target": self.params.target}
        if self.params.residual_params is not None:
            scaler["residual"] = {"of": self.params.residual_of, "scale": self.residual_scale}
            (folder / "baseline").mkdir(exist_ok=True)
            self.baseline.save(folder / "baseline")
        if needs_garch(self.params.features):
            (folder / "garch").mkdir(exist_ok=True)
            self.garch.save(folder / "garch")
        if self.params.features != ["rv"]:
            scaler["features"] = {
                "channels": channels(self.params.features, self.assets),
                "assets": self.assets,
                "asset": self.asset,
                "scaler": features_to_json(self.feature_scaler),
            }
        (folder / "scaler.json").write_text(json.dumps(scaler, indent=2))
        trainable = int(sum(int(np.prod(w.shape)) for w in self.model.trainable_weights))
        config = {
            "builder": self.params.builder_path(),
            "hyperparameters": self.hp_values,
            "layers": describe_layers(self.model),
            "learning_rate": learning_rate(self.model),
            "memory": self.params.memory,
            "batch_size": self.params.batch_size,
            "epochs": self.params.epochs,
            "multistep": self.params.multistep,
            "target": self.params.target,
            "features": self.params.features,
            "residual_of": self.params.residual_of,
            "loss": self.params.loss or "builder's",
            "validation_split": self.params.validation_split,
            "seed": self.seed,
            "started_from": getattr(self, "started_from", None),
            "samples": self.samples,
            "params_total": int(self.model.count_params()),
            "params_trainable": trainable,
        }
        (folder / "config.json").write_text(json.dumps(config, indent=2, default=str))
        (folder / "history.json").write_text(json.dumps(self.history, indent=2))
        lines: list[str] = []
        self.model.summary(print_fn=lambda line, **kw: lines.append(line))
        (folder / "summary.txt").write_text("".join(lines))

    def load(self, folder: Path) -> None:
        """Restore a saved model and scaler (on whichever Keras backend is active)."""

        folder = Path(folder)
        keras = keras_module()
        self.model = keras.saving.load_model(folder / "model.keras", compile=False)
        d = json.loads((folder / "scaler.json").read_text())
        s = scaler_from_json(d)
        self.scaler, self.floor = s, float(d["output_floor"])
        if "residual" in d:
            self.residual_scale = float(d["residual"]["scale"])
            self.baseline = baseline_strategy(self.params.residual_params, self.seed, self.params.residual_names())
            self.baseline.load(folder / "baseline")
        if needs_garch(self.params.features):
            self.garch = garch_feature(self.params, self.seed)
            self.garch.load(folder / "garch")
        if "features" in d:
            f = d["features"]
            self.assets, self.asset = f["assets"], f["asset"]
            self.feature_scaler = features_from_json(f["scaler"])


@dataclass
class _Twin:
    model: Any
    optimizer_state: list[np.ndarray]


_TWINS: dict[str, _Twin] = {}  # compiled models kept for reuse in this process, by architecture


class WindowedKerasParams(Params):
    """What every Keras strategy shares: lookback, training loop, multi-step scheme."""

    memory: int = Field(default=60, ge=1, le=100_000)  # lookback in bars (or a duration such as 60h, 5D in a config)
    batch_size: int = Field(default=16, ge=1, le=1_000_000)
    epochs: int = Field(default=5, ge=1, le=100_000)
    multistep: Literal["direct", "recursive"] = "direct"
    target: Literal["rv", "log", "variance"] = "rv"  # what the model learns; forecasts are always volatility
    loss: Literal["mse", "qlike", "mse_log"] | None = None  # None: the builder's (strategies.keras_losses)
    features: list[str | dict[str, list[int]]] = Field(default_factory=lambda: ["rv"])  # strategies.keras_features
    session_timezone: str = "UTC"  # hour_of_day / weekday in this zone (default: the data calendar's)
    residual_of: str | list[str] | None = None  # a baseline of the run (or several: their mean forecast); the net
    #                                           learns the correction to its forecast
    residual_params: dict[str, Any] | list[dict[str, Any]] | None = None  # its type and parameters (filled in)
    validation_split: float = Field(default=0.1, ge=0, lt=0.5)
    tuning: TuningConfig | None = None  # keras-tuner at the first retrain, then on its cadence
    warm_start: WarmStart | None = None  # continue the previous retrain's model instead of starting fresh
    reuse_compiled: bool = True  # keep one compiled model per architecture and reset it per retrain
    jit_compile: bool | None = None  # XLA-compile the train step (None: Keras' choice, on for jax, off for TF on CPU)
    scope: Literal["local", "global"] = "local"  # global: one model per retrain, trained on every asset of a universe
    schedule_of: str | None = None  # global: the asset whose retrain times every asset follows (if they differ)

    @model_validator(mode="after")
    def _loss_fits_target(self) -> WindowedKerasParams:
        check_pair(self.loss, self.target)
        return self

    @field_validator("features")
    @classmethod
    def _known_features(cls, v: list) -> list:
        return check_features(v)

    @field_validator("residual_of", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        if v is None or isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v)):
            return v
        raise ValueError(
            f"a baseline's name (residual_of: har) or a list of names (residual_of: [har, garch]), not {v!r}"
        )

    @field_validator("residual_of")
    @classmethod
    def _one_or_several(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and (not v or len(set(v)) < len(v)):
            raise ValueError(
                "name one baseline (residual_of: har) or several different ones, whose mean forecast "
                "the net corrects (residual_of: [har, garch])"
            )
        return v[0] if isinstance(v, list) and len(v) == 1 else v

    def residual_names(self) -> list[str]:
        """The baselines a hybrid corrects (``[]`` if it is not one)."""
        return (
            []
            if self.residual_of is None
            else [self.residual_of]
            if isinstance(self.residual_of, str)
            else list(self.residual_of)
        )

    @model_validator(mode="after")
    def _features_fit(self) -> WindowedKerasParams:
        if self.features != ["rv"] and self.multistep == "recursive":
            raise ValueError(
                "features: a recursive model feeds its forecasts back as the next input, which only "
                "works with features: [rv]; use multistep: direct"
            )
        if self.residual_params is not None and self.residual_of is None:
            raise ValueError(
                "residual_params: is filled in from residual_of (the baseline's own parameters); "
                "remove it and name the baseline: residual_of: har"
            )
        if self.residual_of is not None and (self.multistep == "recursive" or self.scope == "global"):
            raise ValueError(
                "residual_of: a hybrid forecasts every horizon at once on one asset's baseline; use "
                "multistep: direct and scope: local"
            )
        if needs_garch(self.features) and self.scope == "global":
            raise ValueError(
                "features: garch_variance / seasonal_profile fit a GARCH per training window of one "
                "asset; a global model (scope: global) cannot use them yet: drop them or use scope: local"
            )
        if "asset" in self.features and self.scope != "global":
            raise ValueError(
                "features: asset codes which asset a sample is from; only a global model (scope: "
                "global) trains on several"
            )
        return self

    @staticmethod
    def data_defaults(data) -> dict[str, Any]:
        """hour_of_day / weekday follow session time: New York for ``fx``, the exchange's zone on an exchange."""
        return session_zone(data)

    @classmethod
    def bar_values(cls, raw: dict[str, Any], to_bars: Callable[[Any, str], int], where: str) -> dict[str, Any]:
        """``features: [{rv_mean: [1D, 7D]}]``: the spans as bar counts."""
        items = raw.get("features")
        if not isinstance(items, list):
            return raw
        out = [
            {"rv_mean": [to_bars(k, f"{where}.features.rv_mean") for k in item["rv_mean"]]}
            if isinstance(item, dict) and isinstance(item.get("rv_mean"), list)
            else item
            for item in items
        ]
        return {**raw, "features": out}

    @model_validator(mode="after")
    def _global_alone(self) -> WindowedKerasParams:
        if self.scope == "global" and (self.tuning is not None or self.warm_start is not None):
            raise ValueError(
                "scope: global trains one model on every asset from scratch at each retrain; it "
                "cannot be combined with tuning or warm_start yet: remove one of them"
            )
        if self.scope == "local" and self.schedule_of is not None:
            raise ValueError("schedule_of: only a global model (scope: global) follows one asset's retrain times")
        return self

    DURATION_FIELDS: ClassVar[tuple[str, ...]] = ("memory",)

    def builder_path(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def builder_function(self) -> Callable:
        return import_object(self.builder_path(), "builder", "a function build(hp, memory, steps)")

    def fixed_values(self) -> dict[str, HyperValue]:
        """Hyperparameter values fixed for the builder."""
        return {}

    def build(self, seed: int) -> KerasForecaster:
        return KerasForecaster(self, seed)

    def space_names(self, key: str) -> list[str]:
        """The hyperparameter names a ``tuning.space`` key stands for (itself, by default)."""
        return [key]

    def tuning_fixed(self) -> dict[str, HyperValue]:
        """Values that stay fixed while tuning (unless the space searches them)."""
        return {}

    def with_hyperparameters(self, values: dict[str, HyperValue]) -> WindowedKerasParams:
        """These params with tuned (or imported) hyperparameter values fixed; ``memory`` among them sets the lookback."""
        update: dict[str, Any] = {}
        if "memory" in values:
            update["memory"] = int(values["memory"])
        return self.model_copy(update=update)

    def min_train_bars(self, horizon: int) -> int:
        steps = horizon if self.multistep == "direct" else 1
        own = self.memory + steps + 20
        if needs_garch(self.features):  # the GARCH channels' model needs its own history
            own = max(own, 100 + steps)
        if self.residual_params is not None:  # samples start where the baseline can forecast
            return max(own, baseline_min_bars(self.residual_params, steps) + steps + 20)
        return own

    def fit_cost(self, train_bars: int) -> float:
        return float(train_bars * self.epochs)

    def preflight(self, horizon: int) -> None:
        """Build the model once (no training) so a bad builder fails before any fit."""
        KerasForecaster(self, 0).build_model(horizon if self.multistep == "direct" else 1)

    def chains(self) -> bool:
        return self.warm_start is not None

    def stacks(self) -> bool:
        """Local fits of our own forecaster, compiled (a warm-start chain stacks with its seed members' and
        assets' chains, in lockstep): an imported model (or a params class whose ``build`` returns another
        forecaster), a global model or ``jit_compile: false`` train alone."""
        return self.scope == "local" and self.jit_compile is not False and type(self).build is WindowedKerasParams.build

    def pools_assets(self) -> bool:
        return self.scope == "global"

    def schedule_asset(self) -> str | None:
        return self.schedule_of

    def tuning_points(self, retrains: Any, bars: Any, start: Any, end: Any) -> list[bool]:
        """The first retrain tunes, then per ``tuning.every`` (none without a tuning block)."""
        if self.tuning is None:
            return [False] * len(retrains)
        rule = self.tuning.rule()
        times = retrain_times(rule, bars, start, end) if rule is not None else None
        return tuning_points(self.tuning.every, list(retrains), times)

    def tune(
        self, train: BarSeries, horizon: int, seed: int, folder: Path, stack: int = 1
    ) -> tuple[dict[str, HyperValue], Any]:
        return tune(self, train, horizon, seed, folder, stack if self.stacks() else 1)

    def tuning_budget(self) -> tuple[int, int]:
        t = self.tuning
        if t is None:
            return (0, 0)
        trials = t.max_trials if t.tuner != "hyperband" else 3 * max(1, int(math.log(t.epochs) / math.log(3)) + 1)
        return (trials, t.epochs)

    def train_samples(self, train_bars: int, horizon: int) -> int:
        steps = horizon if self.multistep == "direct" else 1
        n = max(0, train_bars - self.memory - steps + 1)
        return n - int(n * self.validation_split)

    def fit_epochs(self) -> int | None:
        return self.epochs

    def timing_copy(self) -> WindowedKerasParams:
        return self.model_copy(update={"epochs": 1, "tuning": None})

    def needs_backend(self) -> bool:
        return True

    @classmethod
    def seeded(cls) -> bool:
        return True

    def worker_setup(self) -> None:
        keras_module()  # imported now, so a segment's fit time is not the worker's start-up


def refuse_standard_library(path: str, where: str, what: str) -> None:
    """Refuse an import path into Python's standard library (``os:system``, ``builtins:print``) before importing
    it: neither a builder nor a Params class lives there, and its functions must never get our arguments.

    >>> refuse_standard_library("my_models:build", "builder", "a function")
    >>> refuse_standard_library("os:system", "strategies.x.builder", "a function build(hp, memory, steps)")
    Traceback (most recent call last):
    ...
    backtester.core.errors.ConfigError: strategies.x.builder: 'os:system' is in Python's standard library (module 'os'), not a function build(hp, memory, steps); point it at your own code, e.g. 'my_models:build'
    """
    from backtester.core.errors import ConfigError

    module = path.partition(":")[0] if ":" in path else path.rpartition(".")[0]
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        example = "my_models:MyParams" if "Params" in what else "my_models:build"
        raise ConfigError(
            f"{where}: {path!r} is in Python's standard library (module {top!r}), not {what}; point it "
            f"at your own code, e.g. {example!r}"
        )


def check_builder_signature(fn: Callable, path: str) -> None:
    """Refuse anything but a Python function that can take ``(hp, memory, steps)``, before it is ever
    called with them: a class, a built-in (``print``, ``exec``) or a function of the standard library
    (``subprocess.call``, ``os.path.join``) is refused even where its signature would accept three arguments.

    >>> check_builder_signature(lambda hp, memory, steps: None, "ok")
    >>> import os
    >>> check_builder_signature(os.system, "os:system")
    Traceback (most recent call last):
    ...
    ValueError: 'os:system' is a built-in function, not a Python function build(hp, memory, steps); point builder at your own function
    """
    target = fn.func if isinstance(fn, functools.partial) else fn
    if not inspect.isfunction(target):
        kind = (
            "a class"
            if isinstance(target, type)
            else "a built-in function"
            if inspect.isbuiltin(target)
            else f"a {type(target).__name__}"
        )
        raise ValueError(
            f"{path!r} is {kind}, not a Python function build(hp, memory, steps); point builder at your own function"
        )
    top = (getattr(target, "__module__", None) or "").split(".")[0]
    if top in sys.stdlib_module_names:
        raise ValueError(
            f"{path!r} is a function of Python's standard library (module {top!r}), not a builder; "
            "point builder at your own function build(hp, memory, steps)"
        )
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        raise ValueError(
            f"{path!r}: its signature cannot be read, so it is not called; point builder at a Python "
            "function build(hp, memory, steps)"
        ) from None
    try:
        sig.bind(None, None, None)
    except TypeError:
        params = ", ".join(str(p) for p in sig.parameters.values())
        raise ValueError(
            f"{path!r} takes ({params}), not (hp, memory, steps); point builder at a function build(hp, memory, steps)"
        ) from None


class KerasParams(WindowedKerasParams):
    """``type: keras``: your own builder, ``"package.module:function"``."""

    type: Literal["keras"] = "keras"
    builder: str
    hyperparameters: dict[str, HyperValue] = Field(default_factory=dict)

    @field_validator("builder")
    @classmethod
    def _importable(cls, v: str) -> str:
        from backtester.core.errors import ConfigError

        try:
            refuse_standard_library(v, "builder", "a function build(hp, memory, steps)")
            fn = import_object(v, "builder", "a function build(hp, memory, steps)")
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("builder: ")) from None
        if not callable(fn):
            raise ValueError(f"{v!r} is {type(fn).__name__}, not a function build(hp, memory, steps)")
        check_builder_signature(fn, v)
        return v

    def builder_path(self) -> str:
        return self.builder

    def fixed_values(self) -> dict[str, HyperValue]:
        return dict(self.hyperparameters)

    def tuning_fixed(self) -> dict[str, HyperValue]:
        return dict(self.hyperparameters)

    def with_hyperparameters(self, values: dict[str, HyperValue]) -> KerasParams:
        base = super().with_hyperparameters(values)
        hp = {**self.hyperparameters, **{k: v for k, v in values.items() if k != "memory"}}
        return base.model_copy(update={"hyperparameters": hp})
