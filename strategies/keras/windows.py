"""The one window pipeline of a Keras strategy: a training window's scalers and input channels, its
supervised samples and their train/validation split, and the inference windows of a fitted model.

Fitting, tuning and the search all go through :class:`TrainingWindow`, so a searched model sees exactly
the samples the model it chooses trains on:

- the target (RV as the model learns it: ``target`` rv, log or variance, floored at the window's smallest
  positive RV) is min-max scaled on the training window; the feature channels that need it
  (:mod:`strategies.keras.features`) get a scaler of their own, fitted on the same window, and a GARCH
  channel its GARCH, fitted there too;
- a sample is ``memory`` bars of input channels and the next ``steps`` bars' scaled target; a hybrid
  (``residual_of``) keeps the samples its baseline can forecast, its targets the baseline's error over the
  largest such error (0: no correction); a variance loss reads the scale back from more target columns
  (:func:`strategies.keras.losses.with_scale`);
- the split (:meth:`Samples.split`) holds out the last share of samples, in time order, never shuffled,
  after a purge gap of ``purge`` samples: the one rule, with the share and the gap as arguments.

Examples
--------
>>> x, y = windows(np.arange(6.0), 3, 2)
>>> x.shape, y.shape
((2, 3), (2, 2))
>>> s = Samples(np.arange(10.0)[:, None], np.arange(10.0)[:, None], np.arange(10.0)[:, None])
>>> train, val = s.split(0.2, purge=1)
>>> train.x[:, 0].tolist(), val.x[:, 0].tolist()
([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [8.0, 9.0])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from backtester.core.errors import FailedRetrain
from backtester.core.series import BarSeries
from backtester.core.targets import from_target, to_target

from ..base import positive_floor, trailing_windows
from ..combination import baseline_min_bars, baseline_strategy
from .features import garch_channels, needs_garch, raw_channels, rv_column, scaled_columns
from .losses import VARIANCE_LOSSES, with_scale


def windows(values: np.ndarray, memory: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Supervised samples: X[i] = values[i:i+memory], y[i] = values[i+memory:i+memory+steps].

    >>> x, y = windows(np.arange(6.0), 3, 2)
    >>> x.tolist(), y.tolist()
    ([[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]], [[3.0, 4.0], [4.0, 5.0]])
    """
    n = len(values) - memory - steps + 1
    if n <= 0:
        return np.empty((0, memory)), np.empty((0, steps))
    idx = np.arange(n)[:, None]
    x = values[idx + np.arange(memory)]
    y = values[idx + memory + np.arange(steps)]
    return x, y


def garch_feature(spec: Any, seed: int):
    """The seasonal GARCH(1,1) behind the ``garch_variance`` / ``seasonal_profile`` channels (the data
    calendar's session time for its profile, as the ``garch`` baseline)."""
    from ..garch import GarchParams

    return GarchParams(session_timezone=spec.session_timezone).build(seed)


@dataclass(frozen=True)
class Scaling:
    """What a training window fitted to scale values in and read forecasts out: the target's scaler, the
    window's smallest positive RV (the floor of every forecast) and the feature channels' scaler."""

    target: Any
    floor: float
    features: Any | None = None

    def to_volatility(self, scaled: np.ndarray, unit: str) -> np.ndarray:
        """Scaled forecasts back to volatility, floored."""
        shape = np.shape(scaled)
        out = self.target.inverse_transform(np.asarray(scaled, dtype="float64").reshape(-1, 1)).reshape(shape)
        return np.maximum(from_target(out, unit), self.floor)


@dataclass(frozen=True)
class Channels:
    """How a model's input channels are made from bars: the ``features`` list, the target's unit, the
    session zone, a global model's assets (and the asset forecast), and the GARCH fitted for its channels."""

    features: list
    target: str
    timezone: str
    assets: list[str] | None = None
    asset: str | None = None
    garch: Any | None = None

    def raw(self, series: BarSeries, floor: float) -> np.ndarray:
        """The unscaled input channels of ``series`` (bars x channels)."""
        fitted = garch_channels(self.garch, series, floor) if needs_garch(self.features) else None
        return raw_channels(
            self.features,
            series.rv,
            series.time,
            self.target,
            floor,
            self.timezone,
            self.assets,
            self.asset,
            fitted,
            dict(series.measures),
        )

    def scaled(self, raw: np.ndarray, scaling: Scaling) -> np.ndarray:
        """The channels as the model sees them: ``rv`` by the target's scaler, ``log_rv`` / ``rv_mean`` / the
        GARCH ones by the feature scaler, time and asset codes as they are."""
        out = raw.astype("float64", copy=True)
        k = rv_column(self.features, self.assets)
        if k is not None:
            out[:, k] = scaling.target.transform(raw[:, [k]])[:, 0]
        cols = scaled_columns(self.features, self.assets)
        if len(cols):
            out[:, cols] = scaling.features.transform(raw[:, cols])
        return out.astype("float32")

    def inputs(self, series: BarSeries, scaling: Scaling) -> np.ndarray:
        return self.scaled(self.raw(series, scaling.floor), scaling)

    def for_asset(self, asset: str | None) -> Channels:
        return Channels(self.features, self.target, self.timezone, self.assets, asset, self.garch)


def inference_windows(
    channels: Channels, scaling: Scaling, history: BarSeries, ends: np.ndarray, memory: int
) -> np.ndarray | None:
    """The scaled input windows ending at each of ``ends`` (windows x memory [x channels]); None if one would
    start before ``history``'s first bar."""
    if channels.features != ["rv"]:  # the channels of the last `memory` bars (trailing means look further back)
        if not len(ends):
            return None
        return trailing_windows(channels.inputs(history.upto(int(np.max(ends))), scaling), ends, memory)
    rv = trailing_windows(history.rv, ends, memory)
    if rv is None:
        return None
    return scaling.target.transform(to_target(rv, channels.target, scaling.floor).reshape(-1, 1)).reshape(rv.shape)


@dataclass(frozen=True)
class Samples:
    """Supervised samples in time order: inputs ``x``, scaled targets ``y`` (with scale columns for a variance
    loss), the targets as RV (``rv``) and, for a hybrid, its baseline's forecasts in the target's unit."""

    x: np.ndarray
    y: np.ndarray
    rv: np.ndarray
    base: np.ndarray | None = None
    scale: float | None = None  # a hybrid's: its targets are the baseline's error over this

    def __len__(self) -> int:
        return len(self.x)

    def rows(self, part: slice) -> Samples:
        base = None if self.base is None else self.base[part]
        return Samples(self.x[part], self.y[part], self.rv[part], base, self.scale)

    def split(self, share: float, purge: int = 0, at_least_one: bool = False) -> tuple[Samples, Samples]:
        """(training, validation): the last ``share`` of samples validate (at least one if ``at_least_one``),
        the training samples stop ``purge`` samples before them (no training target in the validation
        period for ``purge = steps - 1``)."""
        n = len(self)
        n_val = int(n * share)
        if at_least_one:
            n_val = max(1, n_val)
        return self.rows(slice(0, n - n_val - purge)), self.rows(slice(n - n_val, n))


class TrainingWindow:
    """One training window of a Keras strategy ``spec`` (its params), prepared once for ``steps`` output
    steps: the scalers fitted on it, its scaled input channels, and a hybrid's baseline fitted on it."""

    def __init__(self, spec: Any, train: BarSeries, seed: int, steps: int, assets: list[str] | None = None, asset=None):
        self.spec, self.train, self.steps = spec, train, steps
        floor = positive_floor(train.rv)
        self.target = to_target(train.rv, spec.target, floor)
        scaler = _min_max(self.target.reshape(-1, 1))
        self.scaled = scaler.transform(self.target.reshape(-1, 1))[:, 0].astype("float32")
        garch = None
        if needs_garch(spec.features):  # the GARCH channels' model, fitted on this window
            garch = garch_feature(spec, seed)
            garch.fit(train, 1)
        self.channels = Channels(spec.features, spec.target, spec.session_timezone, assets, asset, garch)
        raw = self.channels.raw(train, floor)
        cols = scaled_columns(spec.features, assets)
        self.scaling = Scaling(scaler, floor, _min_max(raw[:, cols]) if len(cols) else None)
        self.inputs = self.channels.scaled(raw, self.scaling)
        self.seed = seed
        self.baseline: Any | None = None  # a hybrid's, fitted on the window when samples first need it

    def samples(self, memory: int) -> Samples:
        """The window's samples for a lookback of ``memory`` bars (fewer than two: FailedRetrain)."""
        x, _ = windows(self.inputs, memory, self.steps)
        _, y = windows(self.scaled, memory, self.steps)
        _, rv = windows(self.train.rv, memory, self.steps)
        if len(x) < 2:
            raise FailedRetrain(f"Keras model needs more than memory + steps = {memory + self.steps} training bars")
        out = Samples(x, y, rv) if self.spec.residual_params is None else self._residual(x, rv, memory)
        if self.spec.loss in VARIANCE_LOSSES:  # the loss reads the scale back from more target columns
            residual = None if out.base is None else (out.scale, out.base)
            y = with_scale(out.y, self.scaling.target, self.scaling.floor, residual)
            out = Samples(out.x, y, out.rv, out.base, out.scale)
        return out

    def _residual(self, x: np.ndarray, rv: np.ndarray, memory: int) -> Samples:
        """The samples the baseline can forecast (its own history need met), their targets as the baseline's
        error in the target's unit over the largest such error (so 0 is no correction)."""
        spec, steps = self.spec, self.steps
        if self.baseline is None:  # a hybrid learns the correction to its baseline's forecast
            self.baseline = baseline_strategy(spec.residual_params, self.seed, spec.residual_names())
            self.baseline.fit(self.train, steps)
        ends = np.arange(memory, memory + len(x))
        keep = ends >= baseline_min_bars(spec.residual_params, steps)
        if keep.sum() < 2:
            raise FailedRetrain(
                f"residual_of {spec.residual_of}: too few training samples where the baseline forecasts"
            )
        forecasts = np.asarray(self.baseline.forecast_batch(self.train, ends[keep], steps), dtype="float64")
        base = to_target(forecasts, spec.target, self.scaling.floor)
        _, actual = windows(self.target, memory, steps)
        error = actual[keep] - base
        scale = float(np.max(np.abs(error))) or 1.0
        return Samples(x[keep], (error / scale).astype("float32"), rv[keep], base, scale)

    def to_volatility(self, scaled: np.ndarray, samples: Samples) -> np.ndarray:
        """A model's outputs for ``samples`` as volatility forecasts, as the fitted model forecasts them."""
        if samples.base is None:
            return self.scaling.to_volatility(scaled, self.spec.target)
        return hybrid_volatility(scaled, samples.base, samples.scale, self.spec.target, self.scaling.floor)


def hybrid_volatility(scaled: np.ndarray, base: np.ndarray, scale: float, unit: str, floor: float) -> np.ndarray:
    """A hybrid's forecasts: its baseline's (``base``, in the target's unit) plus the net's correction, in
    volatility, floored."""
    steps = base.shape[1]
    out = base + np.asarray(scaled, "float64")[:, :steps] * scale
    return np.maximum(from_target(out, unit), floor)


def _min_max(values: np.ndarray):
    from sklearn.preprocessing import MinMaxScaler

    return MinMaxScaler(feature_range=(0, 1)).fit(values)
