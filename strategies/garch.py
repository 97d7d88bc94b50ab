"""GARCH(1,1) on bar returns, fitted with the ``arch`` package at every retrain.

Returns are scaled to percent for the optimiser. Between retrains the fitted
parameters stay fixed and the variance recursion runs forward over the bars
that closed since, so the forecast at T uses returns up to T only. The h-step
variance forecast mean-reverts to omega / (1 - alpha - beta); the volatility
forecast is its square root, in the units of the bar's RV.

Examples
--------
>>> import numpy as np
>>> from backtester.series import BarSeries
>>> rng = np.random.default_rng(0); r = rng.standard_normal(600) * 0.01
>>> s = BarSeries(np.arange(600), np.abs(r), r, np.ones(600, bool))
>>> m = GarchParams().build(0); _ = m.fit(s, 4)
>>> bool(np.all(m.forecast(s, 4) > 0))
True
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field
from scipy.signal import lfilter

from backtester.errors import FailedRetrain
from backtester.series import BarSeries

from .base import FitInfo, Params

SCALE = 100.0


class Garch:
    def __init__(self, dist: str):
        self.dist = dist

    def fit(self, train: BarSeries, horizon: int) -> FitInfo:
        from arch import arch_model

        r = train.ret * SCALE
        if not np.all(np.isfinite(r)):
            raise FailedRetrain("GARCH needs bar returns; this data has none (data.kind: rv)")
        try:
            res = arch_model(r, mean="Zero", vol="GARCH", p=1, q=1, dist=self.dist, rescale=False).fit(disp="off")
        except (ValueError, np.linalg.LinAlgError) as exc:
            raise FailedRetrain(f"GARCH fit failed: {exc}") from None
        p = res.params
        self.omega, self.alpha, self.beta = float(p["omega"]), float(p["alpha[1]"]), float(p["beta[1]"])
        if not all(np.isfinite([self.omega, self.alpha, self.beta])):
            raise FailedRetrain("GARCH parameters are not finite")
        self.train_end = int(train.time[-1])
        sigma2 = np.asarray(res.conditional_volatility) ** 2
        self.next_var = self.omega + self.alpha * r[-1] ** 2 + self.beta * sigma2[-1]  # variance of bar train_end+1
        return FitInfo(
            samples=len(r),
            train_loss=float(-res.loglikelihood / len(r)),
            extra={"omega": self.omega, "alpha": self.alpha, "beta": self.beta, "converged": int(res.convergence_flag) == 0},
        )

    def forecast(self, history: BarSeries, horizon: int) -> np.ndarray:
        since = int(np.searchsorted(history.time, self.train_end, side="right"))
        eps2 = (history.ret[since:] * SCALE) ** 2
        var = self.next_var
        if len(eps2):
            drive = self.omega + self.alpha * eps2
            path, _ = lfilter([1.0], [1.0, -self.beta], drive, zi=[self.beta * self.next_var])
            var = path[-1]
        persistence = self.alpha + self.beta
        h = np.arange(horizon)
        if persistence < 1:
            uncond = self.omega / (1 - persistence)
            path = uncond + persistence**h * (var - uncond)
        else:
            path = var + self.omega * h
        return np.sqrt(np.maximum(path, 0.0)) / SCALE


class GarchParams(Params):
    type: Literal["garch"] = "garch"
    dist: Literal["normal", "t"] = "normal"

    def build(self, seed: int) -> Garch:
        return Garch(self.dist)

    def min_train_bars(self, horizon: int) -> int:
        return 100
