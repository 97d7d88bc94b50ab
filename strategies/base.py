"""The strategy Protocol: fit on a training window, forecast H steps from what is known.

A strategy is built fresh for every retrain by its params' ``build(seed)``
(a pure factory), fitted once, then asked for forecasts at each bar of its
segment (until the next retrain). ``history`` always ends at the issue time: a
segment never hands a strategy a bar that closed later.

Optionally a strategy saves its fitted state into an artifact folder
(``save(folder)``) and restores it into a freshly built instance
(``load(folder)``); :class:`JsonState` does this for strategies whose state is a
few numbers or arrays (written as ``params.json``, never pickled).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict

from backtester.core.series import BarSeries

from .capabilities import Costs, Describing, Links, Scheduling, Stacking, Tuning


@dataclass(frozen=True)
class FitInfo:
    """What one fit reports: training samples, final losses and anything else worth keeping."""

    samples: int
    train_loss: float = float("nan")
    val_loss: float = float("nan")
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Strategy(Protocol):
    def fit(self, train: BarSeries, horizon: int) -> FitInfo:
        """Fit on the training window (bars closed at or before the retrain time)."""

    def forecast(self, history: BarSeries, horizon: int) -> np.ndarray:
        """Volatility forecasts for the next ``horizon`` bars after ``history[-1]``."""


# Optional abilities of a fitted strategy, each a Protocol the engine checks with isinstance.


@runtime_checkable
class BatchForecaster(Protocol):
    """For speed: row j of ``forecast_batch(history, ends, horizon)`` (shape ``(len(ends), horizon)``) is
    what ``forecast(history.upto(ends[j]), horizon)`` returns, to float tolerance. A segment calls it
    once for all its issue times; :func:`forecast_each` is the per-bar reference it must equal."""

    def forecast_batch(self, history: BarSeries, ends: np.ndarray, horizon: int) -> np.ndarray: ...


@runtime_checkable
class Restorable(Protocol):
    """Saves its fitted state into an artifact folder and restores it into a freshly built instance."""

    def save(self, folder: Path) -> None: ...

    def load(self, folder: Path) -> None: ...


@runtime_checkable
class WarmStartable(Protocol):
    """Can continue another fitted instance's model (``start_from`` before ``fit``): warm starts."""

    def start_from(self, previous: Any, version: Any) -> None: ...


@runtime_checkable
class PooledFit(Protocol):
    """Optional: one model fitted on the training windows of several assets at once (``scope: global``)."""

    def fit_assets(self, trains: dict[str, BarSeries], horizon: int) -> FitInfo: ...

    def for_asset(self, asset: str) -> Strategy:
        """The fitted model as it forecasts ``asset`` (its own scaling); saved and loaded like any strategy."""
        ...


def forecast_each(strategy, history: BarSeries, ends: np.ndarray, horizon: int) -> np.ndarray:
    """The per-bar reference for ``forecast_batch``: one ``forecast`` call per issue time.

    >>> from strategies.naive import Naive
    >>> s = BarSeries(np.arange(4), np.array([1.0, 2.0, 3.0, 4.0]), np.zeros(4), np.ones(4, bool))
    >>> forecast_each(Naive(1), s, np.array([2, 4]), 2).tolist()
    [[2.0, 2.0], [4.0, 4.0]]
    """
    return np.array([np.asarray(strategy.forecast(history.upto(int(e)), horizon), dtype="float64") for e in ends])


def trailing_windows(values: np.ndarray, ends: np.ndarray, width: int) -> np.ndarray | None:
    """Row j = ``values[ends[j] - width : ends[j]]`` (a read-only view), or None if some window
    would start before the first value.

    >>> trailing_windows(np.arange(5.0), np.array([2, 5]), 2).tolist()
    [[0.0, 1.0], [3.0, 4.0]]
    """
    ends = np.asarray(ends)
    if len(ends) == 0 or ends.min() < width:
        return None
    if values.ndim == 2:  # bars x channels: windows x width x channels
        return np.lib.stride_tricks.sliding_window_view(values[: ends.max()], width, axis=0)[ends - width].swapaxes(
            1, 2
        )
    return np.lib.stride_tricks.sliding_window_view(values[: ends.max()], width)[ends - width]


class JsonState:
    """Save / load the attributes named in ``STATE`` as ``params.json`` (arrays as lists).

    JSON keeps every float exactly (shortest round-trip repr), so a reloaded
    strategy reproduces its forecasts bit for bit.
    """

    STATE: ClassVar[tuple[str, ...]] = ()

    def save(self, folder: Path) -> None:
        state = {}
        for name in self.STATE:
            value = getattr(self, name)
            state[name] = {"array": value.tolist()} if isinstance(value, np.ndarray) else value
        (Path(folder) / "params.json").write_text(json.dumps(state, indent=2))

    def load(self, folder: Path) -> None:
        state = json.loads((Path(folder) / "params.json").read_text())
        for name in self.STATE:
            value = state[name]
            setattr(
                self,
                name,
                np.array(value["array"], dtype="float64") if isinstance(value, dict) and "array" in value else value,
            )


class Params(BaseModel, Scheduling, Tuning, Stacking, Links, Costs, Describing):
    """Base for strategy parameters: strict, frozen, a factory for fresh strategies, and the
    capabilities the engine asks about (:mod:`strategies.capabilities`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    DURATION_FIELDS: ClassVar[tuple[str, ...]] = ()  # fields a config may give as durations ('1D'): bar counts

    @staticmethod
    def bar_defaults(bar: Any, data: Any = None) -> dict[str, Any]:
        """Defaults that depend on the bar size (and calendar), e.g. HAR's lags of a day and a week."""
        return {}

    @staticmethod
    def data_defaults(data: Any) -> dict[str, Any]:
        """Defaults that depend on the data's settings, e.g. GARCH's session timezone on ``fx``."""
        return {}

    @classmethod
    def bar_values(cls, raw: dict[str, Any], to_bars: Callable[[Any, str], int], where: str) -> dict[str, Any]:
        """``raw`` with durations nested in its fields turned into bar counts (``to_bars(value, where)``);
        top-level fields are listed in ``DURATION_FIELDS`` instead."""
        return raw

    def build(self, seed: int) -> Strategy:  # pragma: no cover - overridden
        raise NotImplementedError

    def min_train_bars(self, horizon: int) -> int:
        """The fewest training bars this strategy can fit on."""
        return 2

    def preflight(self, horizon: int) -> None:
        """Cheap checks before the run starts (a Keras builder is built once); raise a BacktestError."""

    def check_training_data(self, train: BarSeries) -> None:
        """Checks against the bars of this strategy's first training window (only bars known at that retrain),
        before anything trains; raise a BacktestError (e.g. an imported scaler fitted on values unlike the data)."""

    def proven_batch(self) -> bool:
        """Whether its strategy's ``forecast_batch`` is proven equal to per-bar ``forecast`` by this package's
        own tests, so the engine need not spot-check it in every segment. A class says so in its own body
        (``PROVEN_BATCH = True``); a subclass of it, which may forecast otherwise, is checked again.

        >>> from strategies.har import HarParams
        >>> HarParams().proven_batch(), type("Mine", (HarParams,), {})().proven_batch()
        (True, False)
        """
        return bool(type(self).__dict__.get("PROVEN_BATCH", False))

    def needs_backend(self) -> bool:
        """Whether it runs on the config's ``backend`` (a Keras model does; a baseline does not)."""
        return False

    @classmethod
    def seeded(cls) -> bool:
        """Whether its forecasts depend on the seed (random initial weights, sample order): then one seed is
        one draw, and a comparison says so when it ran with one."""
        return False

    def worker_setup(self) -> None:
        """Process-wide set-up a worker process does once before it runs this strategy (e.g. import
        Keras quietly); called in the worker initializer, never during a fit."""

    def notes(self, first_issue: Any) -> list[str]:
        """Lines for the run log about this strategy (e.g. what a saved model means for look-ahead)."""
        return []

    def depends_on(self) -> list[str]:
        """Files whose content this strategy's results depend on, beyond its params and the data: the
        module defining its class, and every file or module a field names (a builder's module, a saved
        model, a scaler). A finished segment is reused only while these are unchanged
        (:mod:`backtester.store`).

        >>> from strategies.naive import NaiveParams
        >>> [Path(p).name for p in NaiveParams().depends_on()]
        ['naive.py']
        """
        import importlib.util
        import inspect
        import re

        out = [inspect.getfile(type(self))]
        for value in self.model_dump().values():
            if not isinstance(value, str) or not value:
                continue
            if re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*", value):  # module:attribute
                try:
                    spec = importlib.util.find_spec(value.split(":")[0])
                except (ImportError, ValueError):
                    spec = None
                if spec is not None and spec.origin and Path(spec.origin).is_file():
                    out.append(spec.origin)
            elif len(value) < 4096 and Path(value).is_file():
                out.append(str(Path(value)))
        return out


def trading_day_and_week(data=None) -> tuple[Any, Any]:
    """How long a trading day and a trading week are on ``data``'s calendar (clock time, as Timedeltas):
    1 and 7 days around the clock; 1 and 5 days on ``fx``; a regular session and five of them on an exchange.

    >>> trading_day_and_week(None)
    (Timedelta('1 days 00:00:00'), Timedelta('7 days 00:00:00'))
    """
    import pandas as pd

    calendar = getattr(data, "calendar", "24/7")
    if calendar == "fx":
        return pd.Timedelta("1D"), pd.Timedelta("5D")
    if calendar != "24/7":
        try:
            import exchange_calendars as xcals

            sched = xcals.get_calendar(calendar).schedule
            day = (sched["close"] - sched["open"]).median()
            return day, 5 * day
        except Exception:  # an unknown calendar is reported where the bars are built
            pass
    return pd.Timedelta("1D"), pd.Timedelta("7D")


def session_zone(data: Any) -> dict[str, Any]:
    """``{"session_timezone": zone}`` of a data block's calendar: New York for ``fx``, the exchange's zone
    for an exchange calendar, nothing (UTC) for ``24/7`` or a calendar that is unknown (reported where the
    bars are built)."""
    if data.calendar == "fx":
        return {"session_timezone": "America/New_York"}
    if data.calendar == "24/7":
        return {}
    try:
        import exchange_calendars as xcals

        return {"session_timezone": str(xcals.get_calendar(data.calendar).tz)}
    except Exception:
        return {}


def positive_floor(values: np.ndarray) -> float:
    """Smallest positive finite value (a floor for forecasts of a positive quantity)."""
    pos = values[np.isfinite(values) & (values > 0)]
    return float(pos.min()) if len(pos) else 1e-12
