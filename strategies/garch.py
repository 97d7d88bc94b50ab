"""GARCH(1,1) on bar returns, fitted with the ``arch`` package at every retrain.

Intraday bars have a strong time-of-day volatility pattern that a plain GARCH(1,1)
mistakes for volatility clustering (on BTC hourly returns it fits alpha near 0.4
and forecasts explode). With ``seasonal: true`` (the default) returns are divided
by the training window's volatility profile by bar of day (in session time: New York
for FX, the exchange's zone for an exchange calendar, else UTC) before the fit,
and the forecasts multiplied back by the profile of each target bar.
Returns are scaled to percent for the optimiser. Between retrains the fitted
parameters stay fixed and the variance recursion runs forward over the bars
that closed since, so the forecast at T uses returns up to T only. The h-step
variance forecast mean-reverts to omega / (1 - alpha - beta); the volatility
forecast is its square root, in the units of the bar's RV.

Examples
--------
>>> import numpy as np
>>> from backtester.core.series import BarSeries
>>> rng = np.random.default_rng(0); r = rng.standard_normal(600) * 0.01
>>> t = np.arange(1, 601) * 3_600_000_000_000  # hourly bar closes, ns
>>> s = BarSeries(t, np.abs(r), r, np.ones(600, bool))
>>> m = GarchParams().build(0); _ = m.fit(s, 4)
>>> bool(np.all(m.forecast(s, 4) > 0))
True
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np

from backtester.core.errors import FailedRetrain
from backtester.core.filters import lfilter
from backtester.core.series import BarSeries

from .base import FitInfo, JsonState, Params, session_zone

SCALE = 100.0


DAY_NS = 86400 * 10**9


def bar_of_day(time_ns: np.ndarray, bar_ns: int, tz: str = "UTC") -> np.ndarray:
    """Position of each bar within its day in timezone ``tz`` (0 .. bars_per_day - 1): session time, so
    an FX or exchange profile does not shift by an hour when daylight saving starts or ends.

    >>> import pandas as pd
    >>> t = pd.DatetimeIndex(["2017-01-09 15:00", "2017-07-10 14:00"], tz="UTC").asi8  # 10:00 New York, both
    >>> bar_of_day(t, 3600 * 10**9).tolist(), bar_of_day(t, 3600 * 10**9, "America/New_York").tolist()
    ([15, 14], [10, 10])
    """
    if tz != "UTC":
        import pandas as pd

        time_ns = pd.DatetimeIndex(time_ns, tz="UTC").tz_convert(tz).tz_localize(None).asi8
    return (time_ns % DAY_NS) // bar_ns


class Garch(JsonState):
    STATE = ("omega", "alpha", "beta", "bar_ns", "profile", "train_end", "next_var")

    def __init__(self, dist: str, seasonal: bool, tz: str = "UTC"):
        self.dist, self.seasonal, self.tz = dist, seasonal, tz

    def _season(self, time_ns: np.ndarray) -> np.ndarray:
        if self.profile is None:
            return np.ones(len(time_ns))
        return self.profile[bar_of_day(time_ns, self.bar_ns, self.tz)]

    def fit(self, train: BarSeries, horizon: int) -> FitInfo:
        from arch import arch_model

        if not np.all(np.isfinite(train.ret)):
            raise FailedRetrain("GARCH needs bar returns; this data has none (data.kind: rv)")
        self.bar_ns = int(np.median(np.diff(train.time))) if len(train) > 1 else DAY_NS
        self.profile = None
        per_day = DAY_NS // self.bar_ns if 0 < self.bar_ns and DAY_NS % self.bar_ns == 0 else 0
        per_day = per_day if per_day <= 1440 else 0  # a profile only for bars of a minute or longer
        if self.seasonal and per_day > 1:
            # intraday volatility profile of the training window (mean RV**2 by bar of day, normalised)
            slot = bar_of_day(train.time[train.observed], self.bar_ns, self.tz)
            power = np.bincount(slot, weights=train.rv[train.observed] ** 2, minlength=per_day)
            count = np.bincount(slot, minlength=per_day)
            if (count >= 2).all() and (power > 0).all():
                level = power / count
                self.profile = np.sqrt(level / level.mean())
        r = train.ret * SCALE / self._season(train.time)
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
            extra={
                "omega": self.omega,
                "alpha": self.alpha,
                "beta": self.beta,
                "seasonal": self.profile is not None,
                "converged": int(res.convergence_flag) == 0,
            },
        )

    def forecast(self, history: BarSeries, horizon: int) -> np.ndarray:
        return self.forecast_batch(history, np.array([len(history)]), horizon)[0]

    def forecast_batch(self, history: BarSeries, ends: np.ndarray, horizon: int) -> np.ndarray:
        """The variance recursion runs once from the training window's end to the last issue time;
        the forecast issued after bar ``end - 1`` starts from the variance it had reached there."""
        ends = np.asarray(ends, dtype="int64")
        last = int(ends.max())
        since = int(np.searchsorted(history.time, self.train_end, side="right"))  # bars up to the window's end
        eps2 = (history.ret[since:last] * SCALE / self._season(history.time[since:last])) ** 2
        var = np.full(len(ends), float(self.next_var))
        if len(eps2):
            drive = self.omega + self.alpha * eps2
            path, _ = lfilter([1.0], [1.0, -self.beta], drive, zi=[self.beta * self.next_var])
            seen = ends > since
            var[seen] = path[ends[seen] - since - 1]
        persistence = self.alpha + self.beta
        early = ends < since  # issued inside the training window (a hybrid's baseline): the fitted values
        if early.any():
            known = int(ends[early].max())
            eps_in = (history.ret[:known] * SCALE / self._season(history.time[:known])) ** 2
            start = self.omega + persistence * backcast(eps_in)  # arch's first conditional variance
            fitted, _ = lfilter([1.0], [1.0, -self.beta], self.omega + self.alpha * eps_in, zi=[self.beta * start])
            fitted = np.concatenate([[start], fitted])  # fitted[t]: the variance of bar t, known after bar t - 1
            var[early] = fitted[ends[early]]
        # h steps ahead: persistence^h var + omega (1 + persistence + ... + persistence^(h-1)); summed, not
        # through omega / (1 - persistence), which is huge (and loses the digits) when persistence is near 1
        powers = persistence ** np.arange(horizon)
        sums = np.cumsum(np.concatenate([[0.0], powers[:-1]]))
        paths = powers[None, :] * var[:, None] + self.omega * sums[None, :]
        targets = history.time[ends - 1][:, None] + np.arange(1, horizon + 1)[None, :] * self.bar_ns
        return np.sqrt(np.maximum(paths, 0.0)) * self._season(targets.ravel()).reshape(targets.shape) / SCALE


def backcast(eps2: np.ndarray) -> float:
    """The variance before the first bar, as ``arch`` starts its recursion: the mean of the first 75 squared
    returns, weighted 0.94^k.

    >>> backcast(np.array([4.0, 4.0, 4.0]))
    4.0
    """
    w = 0.94 ** np.arange(min(75, len(eps2)))
    return float(np.sum(w * eps2[: len(w)]) / np.sum(w)) if len(w) else 0.0


class GarchParams(Params):
    PROVEN_BATCH: ClassVar[bool] = True  # forecast_batch equals per-bar forecast: tests/test_strategies.py
    type: Literal["garch"] = "garch"
    dist: Literal["normal", "t"] = "normal"
    seasonal: bool = True
    session_timezone: str = "UTC"  # bar of day for the profile in this zone (default: the data calendar's)

    def describe(self) -> str:
        errors = "Student-t" if self.dist == "t" else "normal"
        shape = " times an intraday profile (the hour of day's mean RV)" if self.seasonal else ""
        return f"GARCH(1,1) of the bars' returns{shape}, {errors} errors, fitted by maximum likelihood"

    @staticmethod
    def data_defaults(data) -> dict[str, Any]:
        """The profile follows session time: New York for ``fx``, the exchange's zone for an exchange calendar."""
        return session_zone(data)

    def build(self, seed: int) -> Garch:
        return Garch(self.dist, self.seasonal, self.session_timezone)

    def min_train_bars(self, horizon: int) -> int:
        return 100
