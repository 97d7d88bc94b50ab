"""The Keras forecaster: a lookback window of scaled inputs -> the strategy's model -> H forecasts.

Every Keras strategy, our ``lstm`` included, goes through the same path:

- the training window becomes samples through the one window pipeline
  (:class:`strategies.keras.windows.TrainingWindow`): ``memory`` bars of input channels scaled on the
  window, the next ``steps`` bars' scaled target (``steps = H`` for ``multistep: direct``, 1 for
  ``recursive``, where each forecast is fed back in), the last ``validation_split`` of samples (in
  time order) giving the validation loss;
- the model comes from the one seeded build (:func:`strategies.keras.builder.build_model`) of the
  strategy's builder ``build(hp, memory, steps)``, ``hp`` holding the config's fixed values;
- training is :func:`strategies.keras.training.train_epochs` (or, for several fits at once, one
  compiled program: :mod:`strategies.keras.stacked`);
- what the fit leaves is one :class:`~strategies.keras.fitted.Fitted` record; forecasts are floored at
  the smallest positive RV of the training window, and :meth:`KerasForecaster.forecast` is
  :meth:`KerasForecaster.forecast_batch` at one issue time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from backtester.core.errors import FailedRetrain
from backtester.core.series import BarSeries
from backtester.core.targets import to_target

from ..base import FitInfo, forecast_each
from . import archive
from .builder import build_model, fixed_hyperparameters
from .cache import MODELS, program_key
from .features import channels
from .fitted import Fitted, Start
from .training import train_epochs
from .windows import Samples, TrainingWindow, hybrid_volatility, inference_windows

PREDICT_CHUNK = 256  # rows per batched predict call: one input shape, compiled once


def build_fixed(spec: Any, seed: int, steps: int, assets: list[str] | None = None) -> tuple[Any, dict[str, Any]]:
    """The model of ``spec`` with its fixed hyperparameters, and the values its builder saw."""
    hp = fixed_hyperparameters(spec.fixed_values())
    model = build_model(spec, seed, hp, spec.memory, steps, len(channels(spec.features, assets)))
    return model, dict(hp.values)


@dataclass(frozen=True)
class Prepared:
    """One fit before training: its window, samples, freshly built model and how long it trains."""

    window: TrainingWindow
    train: Samples
    val: Samples
    model: Any
    hp_values: dict[str, Any]
    steps: int
    epochs: int
    started_from: Any


class KerasForecaster:
    """A Keras model fitted on one training window (or a global model's windows); built fresh every retrain."""

    def __init__(self, params: Any, seed: int):
        self.params, self.seed = params, seed
        self.fitted: Fitted | None = None
        self.start: Start | None = None  # a warm start, until the fit that continues it

    def steps(self, horizon: int) -> int:
        return horizon if self.params.multistep == "direct" else 1

    # ------------------------------------------------------------------ fitting

    def fit(self, train: BarSeries, horizon: int) -> FitInfo:
        prepared = self.prepare(train, horizon)
        model = self.compiled(prepared)
        p = self.params
        history = train_epochs(model, *_arrays(prepared.train, prepared.val), p.batch_size, prepared.epochs, self.seed)
        return self.finish(prepared, model, history)

    def prepare(self, train: BarSeries, horizon: int, assets: list[str] | None = None, asset=None) -> Prepared:
        """The window's samples and a fresh model (continuing the warm start's weights, if any)."""
        steps = self.steps(horizon)
        window = TrainingWindow(self.params, train, self.seed, steps, assets, asset)
        training, val = window.samples(self.params.memory).split(self.params.validation_split)
        model, hp_values = build_fixed(self.params, self.seed, steps, assets)
        epochs, started_from = self._warm(model)
        return Prepared(window, training, val, model, hp_values, steps, epochs, started_from)

    def compiled(self, prepared: Prepared):
        """The model to train: the process's compiled model of this architecture in the fresh model's state
        (:mod:`strategies.keras.cache`), or the fresh model itself (``reuse_compiled: false``)."""
        if not self.params.reuse_compiled:
            return prepared.model
        return MODELS.reuse(self.program_key(prepared), prepared.model)

    def program_key(self, prepared: Prepared) -> str:
        w = prepared.window
        return program_key(
            self.params, prepared.hp_values, self.params.memory, prepared.steps, prepared.model, w.channels.assets
        )

    def _warm(self, model) -> tuple[int, Any]:
        """A warm start (:meth:`start_from`): ``model`` takes the previous model's weights. Returns the epochs
        to train and what the fit started from (None: cold)."""
        p = self.params
        if self.start is None:
            return p.epochs, None
        weights = self.start.source.trained_weights()
        if [w.shape for w in weights] != [tuple(v.shape) for v in model.weights]:
            return p.epochs, f"cold: model {self.start.version} has another architecture"
        model.set_weights(weights)
        return (p.warm_start.epochs if p.warm_start else p.epochs), self.start.version

    def finish(self, prepared: Prepared, model, history: dict[str, list[float]], per_asset=None) -> FitInfo:
        """Keep the trained weights (``model`` holds them, ``history`` its losses) and report the fit."""
        self.start = None  # keep no reference to the previous model (a long warm chain would hold them all)
        weights = model.get_weights()
        MODELS.hold(model, weights)
        w = prepared.window
        self.fitted = Fitted(
            model,
            weights,
            w.scaling,
            w.channels,
            prepared.hp_values,
            history,
            len(prepared.train),
            prepared.started_from,
            w.baseline,
            prepared.train.scale,
            per_asset,
        )
        return _report(self.fitted, len(prepared.val))

    def fit_assets(self, trains: dict[str, BarSeries], horizon: int) -> FitInfo:
        """One model on every asset's training window (``scope: global``): each asset scaled by its own
        scaler fitted on its own window, its last ``validation_split`` of samples held out; the assets'
        samples together, in asset-name order (the shuffle is the training loop's, seeded)."""
        assets = sorted(trains)  # the asset code's channels, when features name it
        steps = self.steps(horizon)
        parts = {}
        for a in assets:
            window = TrainingWindow(self.params, trains[a], self.seed, steps, assets, a)
            parts[a] = (window, *window.samples(self.params.memory).split(self.params.validation_split))
        x_tr, y_tr, x_val, y_val = (
            np.concatenate([_arrays(part[1], part[2])[k] for part in parts.values()]) for k in range(4)
        )
        model, hp_values = build_fixed(self.params, self.seed, steps, assets)
        last = parts[assets[-1]]
        whole = Samples(x_tr, y_tr, np.empty((len(x_tr), 0)))
        val = Samples(x_val, y_val, np.empty((len(x_val), 0)))
        prepared = Prepared(last[0], whole, val, model, hp_values, steps, self.params.epochs, None)
        model = self.compiled(prepared)
        history = train_epochs(model, x_tr, y_tr, x_val, y_val, self.params.batch_size, self.params.epochs, self.seed)
        per_asset = {a: (part[0].scaling, part[0].channels) for a, part in parts.items()}
        info = self.finish(prepared, model, history, per_asset)
        info.extra["assets"] = {a: len(part[1]) for a, part in parts.items()}
        return info

    def for_asset(self, asset: str) -> KerasForecaster:
        """This (pooled) model with ``asset``'s scaling: what forecasts that asset, and what its artifact holds."""
        view = KerasForecaster(self.params, self.seed)
        scaling, ch = self._state().per_asset[asset]
        view.fitted = replace(self._state(), scaling=scaling, channels=ch)
        return view

    def start_from(self, previous: Any, version: Any) -> None:
        """Warm start: the next ``fit`` continues ``previous``'s weights (model ``version``) for
        ``warm_start.epochs`` epochs, with a fresh optimizer and the scaler refitted on the new window."""
        self.start = Start(previous, version)

    def trained_weights(self) -> list:
        """This fit's trained weights (what a warm start continues)."""
        state = self._state()
        return state.weights if state.weights is not None else state.model.get_weights()

    def adopt(self, fitted: Fitted) -> None:
        """Take ``fitted`` as this forecaster's state (a model fitted otherwise, e.g. an imported one used as is)."""
        if fitted.weights is not None:
            MODELS.hold(fitted.model, fitted.weights)
        self.fitted = fitted

    def _state(self) -> Fitted:
        if self.fitted is None:
            raise RuntimeError("this Keras forecaster is not fitted (or loaded) yet")
        return self.fitted

    def live_model(self):
        """The model holding this forecaster's weights (a shared compiled model is reloaded if another fit used it)."""
        state = self._state()
        return MODELS.holding(state.model, state.weights)

    # ------------------------------------------------------------------ forecasting

    def forecast(self, history: BarSeries, horizon: int) -> np.ndarray:
        return self.forecast_batch(history, np.array([len(history)]), horizon)[0]

    def forecast_batch(self, history: BarSeries, ends: np.ndarray, horizon: int) -> np.ndarray:
        """One batched model call for all issue times (per horizon step if ``recursive``)."""
        p, state = self.params, self._state()
        if not len(ends):
            return forecast_each(self, history, ends, horizon)
        window = inference_windows(state.channels, state.scaling, history, np.asarray(ends), p.memory)
        if window is None:
            raise ValueError(f"a Keras forecast needs {p.memory} bars of history (memory) before each issue time")
        if p.residual_params is not None:
            base = np.asarray(state.baseline.forecast_batch(history, np.asarray(ends), horizon), dtype="float64")
            base = to_target(base, p.target, state.scaling.floor)
            return hybrid_volatility(
                self._predict_many(window), base, state.residual_scale, p.target, state.scaling.floor
            )
        if p.multistep == "direct":
            scaled = self._predict_many(window)[:, :horizon]
        else:
            scaled = np.empty((len(window), horizon))
            for h in range(horizon):
                scaled[:, h] = self._predict_many(window)[:, 0]
                window = np.column_stack([window[:, 1:], scaled[:, h]])
        return state.scaling.to_volatility(scaled, p.target)

    def _predict_many(self, windows: np.ndarray) -> np.ndarray:
        """Predict in chunks of PREDICT_CHUNK rows, the last one padded, so one input shape serves every call."""
        x = windows.astype("float32")
        x = x[..., None] if x.ndim == 2 else x
        n = len(x)
        model = self.live_model()
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
        archive.save(folder, self.params, self.seed, self._state(), self.live_model())

    def load(self, folder: Path) -> None:
        """Restore a saved model and its scalers (on whichever Keras backend is active)."""
        self.fitted = archive.load(folder, self.params, self.seed)


def _arrays(train: Samples, val: Samples) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return train.x, train.y, val.x, val.y


def _report(fitted: Fitted, n_val: int) -> FitInfo:
    """What a fit reports (FailedRetrain if its training loss is not finite)."""
    train_loss = float(fitted.history["loss"][-1])
    val_loss = float(fitted.history["val_loss"][-1]) if n_val else float("nan")
    if not math.isfinite(train_loss):
        raise FailedRetrain("training loss is not finite")
    return FitInfo(
        samples=fitted.samples,
        train_loss=train_loss,
        val_loss=val_loss,
        extra={
            "loss_history": fitted.history["loss"],
            "hyperparameters": fitted.hp_values,
            "started_from": fitted.started_from,
        },
    )
