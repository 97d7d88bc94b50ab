"""Naive baselines: the last value, or the mean of the last ``bars`` bars, held flat.

Examples
--------
>>> import numpy as np
>>> from backtester.core.series import BarSeries
>>> s = BarSeries(np.arange(4), np.array([1.0, 2.0, 3.0, 4.0]), np.zeros(4), np.ones(4, bool))
>>> NaiveParams().build(0).forecast(s, 2).tolist(), RollingMeanParams(bars=2).build(0).forecast(s, 2).tolist()
([4.0, 4.0], [3.5, 3.5])
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from backtester.core.series import BarSeries

from .base import FitInfo, JsonState, Params, forecast_each, trailing_windows


class Naive(JsonState):
    STATE = ("bars",)

    def __init__(self, bars: int):
        self.bars = bars

    def fit(self, train: BarSeries, horizon: int) -> FitInfo:
        return FitInfo(samples=len(train))

    def forecast(self, history: BarSeries, horizon: int) -> np.ndarray:
        return np.full(horizon, history.rv[-self.bars :].mean())

    def forecast_batch(self, history: BarSeries, ends: np.ndarray, horizon: int) -> np.ndarray:
        w = trailing_windows(history.rv, ends, self.bars)
        if w is None:
            return forecast_each(self, history, ends, horizon)
        return np.repeat(w.mean(axis=1)[:, None], horizon, axis=1)


class NaiveParams(Params):
    PROVEN_BATCH: ClassVar[bool] = True  # forecast_batch equals per-bar forecast: tests/test_strategies.py
    type: Literal["naive"] = "naive"
    bars: int = Field(default=1, ge=1)

    def describe(self) -> str:
        if self.bars == 1:
            return "the last bar's RV carried forward (the naive forecast)"
        return f"the mean RV of the last {self.bars} bars carried forward (a naive forecast)"

    def build(self, seed: int) -> Naive:
        return Naive(self.bars)

    def min_train_bars(self, horizon: int) -> int:
        return self.bars


class RollingMeanParams(NaiveParams):
    PROVEN_BATCH: ClassVar[bool] = True  # forecast_batch equals per-bar forecast: tests/test_strategies.py
    type: Literal["rolling_mean"] = "rolling_mean"  # type: ignore[assignment]
    bars: int = Field(default=24, ge=1)

    DURATION_FIELDS: ClassVar[tuple[str, ...]] = ("bars",)  # bars: 1D as well as 24

    def describe(self) -> str:
        return f"the mean RV of the last {self.bars} bars carried forward"

    @staticmethod
    def bar_defaults(bar, data=None) -> dict[str, Any]:
        """Default: the mean of the last trading day, on any bar size and calendar."""
        from .base import trading_day_and_week

        return {"bars": max(1, round(trading_day_and_week(data)[0] / bar))}
