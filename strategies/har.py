"""HAR-RV (Corsi 2009): RV regressed by OLS on its own averages over several lags.

rv_{t+h} = b0 + sum_k b_k * mean(rv_{t-l_k+1} .. rv_t), with lags (1, 24, 168) bars by
default (hour, day, week for hourly bars). ``mode: direct`` fits one regression per
horizon h = 1..H (targets never pass the training window's end); ``mode: iterated``
fits h = 1 and feeds its forecasts back in. Forecasts are floored at the smallest
positive RV of the training window.

Examples
--------
>>> import numpy as np
>>> from backtester.core.series import BarSeries
>>> rng = np.random.default_rng(0); rv = np.abs(rng.normal(1, 0.1, 400))
>>> s = BarSeries(np.arange(400), rv, np.zeros(400), np.ones(400, bool))
>>> m = HarParams(lags=[1, 5, 20]).build(0); _ = m.fit(s, 3)
>>> m.forecast(s, 3).shape
(3,)
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from backtester.core.errors import FailedRetrain
from backtester.core.series import BarSeries

from .base import FitInfo, JsonState, Params, forecast_each, positive_floor, trailing_windows


def har_features(rv: np.ndarray, lags: tuple[int, ...]) -> np.ndarray:
    """Row t holds [1, mean of the last l values ending at t for each lag]; rows before max(lags)-1 are NaN."""
    csum = np.concatenate([[0.0], np.cumsum(rv)])
    n = len(rv)
    out = np.full((n, len(lags) + 1), np.nan)
    out[:, 0] = 1.0
    for k, lag in enumerate(lags, start=1):
        idx = np.arange(lag - 1, n)
        out[idx, k] = (csum[idx + 1] - csum[idx + 1 - lag]) / lag
    out[: max(lags) - 1] = np.nan
    return out


class Har(JsonState):
    STATE = ("coef", "floor")

    def __init__(self, lags: tuple[int, ...], mode: str):
        self.lags, self.mode = lags, mode
        self.coef: np.ndarray | None = None
        self.floor = 1e-12

    def fit(self, train: BarSeries, horizon: int) -> FitInfo:
        rv = train.rv
        x = har_features(rv, self.lags)
        steps = horizon if self.mode == "direct" else 1
        coefs, losses, samples = [], [], 0
        for h in range(1, steps + 1):
            rows = np.arange(max(self.lags) - 1, len(rv) - h)
            if len(rows) < x.shape[1] + 1:
                raise FailedRetrain(f"HAR needs more than {max(self.lags) + h + x.shape[1]} training bars")
            xs, ys = x[rows], rv[rows + h]
            beta, *_ = np.linalg.lstsq(xs, ys, rcond=None)
            if not np.all(np.isfinite(beta)):
                raise FailedRetrain("HAR coefficients are not finite")
            coefs.append(beta)
            losses.append(float(np.mean((xs @ beta - ys) ** 2)))
            samples = max(samples, len(rows))
        self.coef = np.column_stack(coefs)
        self.floor = positive_floor(rv)
        return FitInfo(samples=samples, train_loss=float(np.mean(losses)), extra={"coef_h1": self.coef[:, 0].tolist()})

    def forecast(self, history: BarSeries, horizon: int) -> np.ndarray:
        need = max(self.lags)
        tail = history.rv[-need:]
        if self.mode == "direct":
            x = har_features(tail, self.lags)[-1]
            out = x @ self.coef[:, :horizon]
        else:
            buf = list(tail)
            out = np.empty(horizon)
            for h in range(horizon):
                x = har_features(np.asarray(buf[-need:]), self.lags)[-1]
                out[h] = max(float(x @ self.coef[:, 0]), self.floor)
                buf.append(out[h])
        return np.maximum(out, self.floor)

    def forecast_batch(self, history: BarSeries, ends: np.ndarray, horizon: int) -> np.ndarray:
        buf = trailing_windows(history.rv, ends, max(self.lags))
        if buf is None:
            return forecast_each(self, history, ends, horizon)
        if self.mode == "direct":
            return np.maximum(self._features(buf) @ self.coef[:, :horizon], self.floor)
        out = np.empty((len(ends), horizon))
        for h in range(horizon):
            out[:, h] = np.maximum(self._features(buf) @ self.coef[:, 0], self.floor)
            buf = np.column_stack([buf[:, 1:], out[:, h]])
        return out

    def _features(self, windows: np.ndarray) -> np.ndarray:
        """[1, mean of the last l values for each lag] for each row of trailing windows."""
        return np.column_stack([np.ones(len(windows))] + [windows[:, -lag:].mean(axis=1) for lag in self.lags])


class HarParams(Params):
    PROVEN_BATCH: ClassVar[bool] = True  # forecast_batch equals per-bar forecast: tests/test_strategies.py
    type: Literal["har"] = "har"
    lags: list[int] = Field(default_factory=lambda: [1, 24, 168], min_length=1)
    mode: Literal["direct", "iterated"] = "direct"

    DURATION_FIELDS: ClassVar[tuple[str, ...]] = ("lags",)  # lags: [1h, 1D, 7D] as well as bar counts

    def describe(self) -> str:
        lags = ", ".join(str(k) for k in self.lags)
        way = "one regression per horizon" if self.mode == "direct" else "iterated one bar at a time"
        return f"HAR-RV: least squares of RV on its means over the last {lags} bars, {way}"

    @staticmethod
    def bar_defaults(bar, data=None) -> dict[str, Any]:
        """Default lags: the last bar, the last trading day and the last trading week, on any bar size and
        calendar (:func:`~strategies.base.trading_day_and_week`).

        >>> import pandas as pd
        >>> HarParams.bar_defaults(pd.Timedelta("1h")), HarParams.bar_defaults(pd.Timedelta("1D"))
        ({'lags': [1, 24, 168]}, {'lags': [1, 7]})
        >>> class Fx: calendar = "fx"
        >>> HarParams.bar_defaults(pd.Timedelta("1h"), Fx()), HarParams.bar_defaults(pd.Timedelta("1D"), Fx())
        ({'lags': [1, 24, 120]}, {'lags': [1, 5]})
        """
        from .base import trading_day_and_week

        day, week = trading_day_and_week(data)
        return {"lags": sorted({1, max(1, round(day / bar)), max(1, round(week / bar))})}

    @field_validator("lags")
    @classmethod
    def _increasing(cls, v: list[int]) -> list[int]:
        if any(l < 1 for l in v) or sorted(set(v)) != v:
            raise ValueError("lags must be distinct positive bar counts in increasing order, e.g. [1, 24, 168]")
        return v

    def build(self, seed: int) -> Har:
        return Har(tuple(self.lags), self.mode)

    def min_train_bars(self, horizon: int) -> int:
        return max(self.lags) + horizon + len(self.lags) + 2
