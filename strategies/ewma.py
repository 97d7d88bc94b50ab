"""RiskMetrics EWMA of squared volatility, held flat over the horizon.

sigma2_t = lam * sigma2_{t-1} + (1 - lam) * rv_t**2, forecast sqrt(sigma2_T) for every horizon.
The recursion runs over the last bars only (until lam**k < 1e-12), seeded with their mean.

Examples
--------
>>> import numpy as np
>>> from backtester.core.series import BarSeries
>>> s = BarSeries(np.arange(3), np.array([2.0, 2.0, 2.0]), np.zeros(3), np.ones(3, bool))
>>> EwmaParams().build(0).forecast(s, 2).tolist()
[2.0, 2.0]
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from backtester.core.filters import lfilter
from backtester.core.series import BarSeries

from .base import FitInfo, JsonState, Params, forecast_each, trailing_windows


class Ewma(JsonState):
    STATE = ("lam", "span")

    def __init__(self, lam: float):
        self.lam = lam
        self.span = max(2, math.ceil(math.log(1e-12) / math.log(lam)))

    def fit(self, train: BarSeries, horizon: int) -> FitInfo:
        return FitInfo(samples=len(train))

    def forecast(self, history: BarSeries, horizon: int) -> np.ndarray:
        x = history.rv[-self.span :] ** 2
        seed = x[: min(len(x), 24)].mean()
        y, _ = lfilter([1 - self.lam], [1, -self.lam], x, zi=[self.lam * seed])
        return np.full(horizon, math.sqrt(y[-1]))

    def forecast_batch(self, history: BarSeries, ends: np.ndarray, horizon: int) -> np.ndarray:
        x = trailing_windows(history.rv, ends, self.span)
        if x is None:
            return forecast_each(self, history, ends, horizon)
        x = x**2
        seed = x[:, :24].mean(axis=1)
        y, _ = lfilter([1 - self.lam], [1, -self.lam], x, axis=1, zi=(self.lam * seed)[:, None])
        return np.repeat(np.sqrt(y[:, -1])[:, None], horizon, axis=1)


class EwmaParams(Params):
    PROVEN_BATCH: ClassVar[bool] = True  # forecast_batch equals per-bar forecast: tests/test_strategies.py
    type: Literal["ewma"] = "ewma"
    lam: float = Field(default=0.94, gt=0, lt=1)

    def describe(self) -> str:
        return f"EWMA (RiskMetrics): an exponentially weighted mean of squared RV, decay {self.lam:g}; nothing fitted"

    def build(self, seed: int) -> Ewma:
        return Ewma(self.lam)
