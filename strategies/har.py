"""The HAR family (Corsi 2009 and its descendants): closed-form least squares on the training window.

One ``har`` type with options, and the family's published members as named presets of it (so a config
says ``type: harq`` and a combination is one more option, e.g. ``{type: har, target: variance,
quarticity: true, periodic: true}``). Every variant regresses the bar ``t + h`` on averages over the last
``lags`` bars (1 bar, a trading day and a trading week by default) known at ``t``:

- ``target``: ``vol`` (today's ``har``: RV as volatility), ``variance`` (Corsi's HAR-RV on realized
  variance; every variant below), or ``log`` (log-HAR on the logs of the variance averages, forecast back
  to levels with ``exp(fit + s^2 / 2)``, ``s^2`` the residual variance; Clements & Preve 2021);
- ``weights: wls``: weighted least squares with weights ``1 / fitted^2`` from a first OLS pass (WLS-HAR;
  Patton & Sheppard 2015, Clements & Preve 2021);
- ``quarticity``: HARQ (Bollerslev, Patton & Quaedvlieg 2016): the weight on the last bar's variance moves
  with its measurement error, ``(b1 + b1q sqrt(RQ_t)) RV_t``; forecasts outside the training window's
  range of variance are replaced by its mean (their "insanity filter");
- ``jumps: j``: HAR-J adds the last bar's jump variation ``max(RV - BPV, 0)``; ``jumps: cj``: HAR-CJ
  (Andersen, Bollerslev & Diebold 2007) regresses on the continuous part and the significant jumps
  (the bar's jump test, ``data.jump_level``) at every lag;
- ``semivariance``: SHAR (Patton & Sheppard 2015): the last bar's variance split into its positive and
  negative semivariances;
- ``periodic``: the hour-of-day pattern removed first (Andersen & Bollerslev 1997): each bar's variance
  divided by its bar-of-day factor (the mean variance of that bar of day over the window, normalised),
  the HAR fitted on what is left, and the forecasts multiplied back by the target bar's factor.

``mode: direct`` (the default) fits one regression per horizon: each horizon its own least squares, no
error compounding, and the realized measures need no forecasts of their own; ``mode: iterated`` fits
h = 1 and feeds its forecasts back in (plain HAR only). Every forecast is floored at the ``floor``
quantile (1 %) of the training window's positive variances, so no variant forecasts a near-zero or
negative variance.

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
from pydantic import Field, field_validator, model_validator

from backtester.core.errors import FailedRetrain
from backtester.core.series import BarSeries

from .base import FitInfo, JsonState, Params, session_zone, trailing_windows
from .garch import bar_of_day  # the periodic factor's bar of day is GARCH's seasonal profile's

DAY_NS = 86400 * 10**9


def har_features(rv: np.ndarray, lags: tuple[int, ...]) -> np.ndarray:
    """Row t holds [1, mean of the last l values ending at t for each lag]; rows before max(lags)-1 are NaN."""
    out = np.full((len(rv), len(lags) + 1), np.nan)
    out[:, 0] = 1.0
    for k, lag in enumerate(lags, start=1):
        out[:, k] = trailing_mean(rv, lag)
    out[: max(lags) - 1] = np.nan
    return out


def trailing_mean(x: np.ndarray, lag: int) -> np.ndarray:
    """The mean of the last ``lag`` values ending at each row (NaN before ``lag - 1``)."""
    csum = np.concatenate([[0.0], np.cumsum(x)])
    out = np.full(len(x), np.nan)
    idx = np.arange(lag - 1, len(x))
    out[idx] = (csum[idx + 1] - csum[idx + 1 - lag]) / lag
    return out


class Har(JsonState):
    """One fitted HAR-family model (see the module docstring); state: the coefficients per horizon, the
    floor, the residual variances (log target), the training range (HARQ) and the intraday profile."""

    STATE = ("coef", "floor", "resid_var", "low", "high", "mean", "profile", "bar_ns")

    def __init__(self, params: HarParams):
        self.p = params
        self.lags = tuple(params.lags)
        self.coef: np.ndarray | None = None
        self.floor = 1e-24
        self.resid_var: list[float] = []
        self.low = self.high = self.mean = 0.0
        self.profile: list[float] | None = None
        self.bar_ns = 0

    # ----------------------------------------------------------------------------- design

    def _factor(self, time_ns: np.ndarray) -> np.ndarray:
        """The bar-of-day variance factor of each time (1 without a profile)."""
        if self.profile is None:
            return np.ones(len(time_ns))
        return np.asarray(self.profile)[bar_of_day(time_ns, self.bar_ns, self.p.session_timezone)]

    def _fit_profile(self, s: BarSeries) -> None:
        self.bar_ns = int(np.median(np.diff(s.time))) if len(s) > 1 else DAY_NS
        self.profile = None
        per_day = DAY_NS // self.bar_ns if 0 < self.bar_ns and DAY_NS % self.bar_ns == 0 else 0
        if not self.p.periodic or not 1 < per_day <= 1440:
            return
        slot = bar_of_day(s.time[s.observed], self.bar_ns, self.p.session_timezone)
        power = np.bincount(slot, weights=s.rv[s.observed] ** 2, minlength=per_day)
        count = np.bincount(slot, minlength=per_day)
        if (count >= 2).all() and (power > 0).all():
            level = power / count
            self.profile = (level / level.mean()).tolist()

    def _series(self, s: BarSeries) -> dict[str, np.ndarray]:
        """The bars' variance and the measures the options use, divided by the bar-of-day factor."""
        f = self._factor(s.time)
        v = s.rv**2 / f
        out = {"v": v}
        if self.p.quarticity:
            out["rq"] = s.measure("rq") / f**2
        if self.p.jumps != "none":
            jump = np.maximum(v - s.measure("bpv") / f, 0.0)
            out["j"] = jump * (s.measure("jump") > 0) if self.p.jumps == "cj" else jump
        if self.p.semivariance:
            out["rs_plus"], out["rs_minus"] = s.measure("rs_plus") / f, s.measure("rs_minus") / f
        return out

    def _base(self, v: np.ndarray) -> np.ndarray:
        """The variance on the target's scale (the regressors' scale for a plain HAR)."""
        return np.sqrt(v) if self.p.target == "vol" else v

    def design(self, s: BarSeries) -> np.ndarray:
        """Row t: the regressors known at bar t's close (NaN before the longest lag)."""
        x = self._series(s)
        cols = [np.ones(len(s))]
        v = x["v"]
        if self.p.jumps == "cj":
            c = v - x["j"]
            cols += [trailing_mean(c, lag) for lag in self.lags] + [trailing_mean(x["j"], lag) for lag in self.lags]
        else:
            for lag in self.lags:
                if lag == 1 and self.p.semivariance:
                    cols += [x["rs_plus"], x["rs_minus"]]
                elif self.p.target == "log":
                    cols.append(np.log(np.maximum(trailing_mean(v, lag), self.floor)))
                else:
                    cols.append(trailing_mean(self._base(v), lag))
        if self.p.quarticity:
            cols.append(trailing_mean(v, self.lags[0]) * np.sqrt(np.maximum(x["rq"], 0.0)))
        if self.p.jumps == "j":
            cols.append(x["j"])
        out = np.column_stack(cols)
        out[: max(self.lags) - 1] = np.nan
        return out

    def _target(self, v: np.ndarray) -> np.ndarray:
        # a bar of zero variance (no price change) would be log 0: the logs are of variances at least the floor
        return np.log(np.maximum(v, self.floor)) if self.p.target == "log" else self._base(v)

    # ----------------------------------------------------------------------------- fit and forecast

    def fit(self, train: BarSeries, horizon: int) -> FitInfo:
        self._fit_profile(train)
        v = self._series(train)["v"]
        positive = v[np.isfinite(v) & (v > 0)]
        self.floor = float(np.quantile(positive, self.p.floor)) if len(positive) else 1e-24
        x = self.design(train)  # (a log-HAR's logs are of variances floored at the floor)
        y = self._target(v)
        self.low, self.high, self.mean = (
            (float(positive.min()), float(positive.max()), float(positive.mean())) if len(positive) else (0.0, 0.0, 0.0)
        )
        steps = horizon if self.p.mode == "direct" else 1
        coefs, losses, samples, self.resid_var = [], [], 0, []
        for h in range(1, steps + 1):
            rows = np.arange(max(self.lags) - 1, len(y) - h)
            rows = rows[np.isfinite(x[rows]).all(axis=1) & np.isfinite(y[rows + h])]
            if len(rows) < x.shape[1] + 1:
                raise FailedRetrain(f"HAR needs more than {max(self.lags) + h + x.shape[1]} training bars")
            xs, ys = x[rows], y[rows + h]
            beta = _lstsq(xs, ys)
            if self.p.weights == "wls":
                # weights 1 / fitted^2, the fit floored at the window's 5 % quantile of variance: a fitted
                # value near zero would give one row all the weight
                low = float(np.quantile(positive, 0.05)) if len(positive) else self.floor
                fitted = np.maximum(xs @ beta, self._base(np.array(low)))
                w = 1.0 / fitted**2 if self.p.target != "log" else np.ones(len(ys))
                beta = _lstsq(xs * np.sqrt(w)[:, None], ys * np.sqrt(w))
            if not np.all(np.isfinite(beta)):
                raise FailedRetrain("HAR coefficients are not finite")
            resid = xs @ beta - ys
            coefs.append(beta)
            self.resid_var.append(float(np.mean(resid**2)))
            losses.append(float(np.mean(resid**2)))
            samples = max(samples, len(rows))
        self.coef = np.column_stack(coefs)
        return FitInfo(samples=samples, train_loss=float(np.mean(losses)), extra={"coef_h1": self.coef[:, 0].tolist()})

    def forecast(self, history: BarSeries, horizon: int) -> np.ndarray:
        return self.forecast_batch(history, np.array([len(history)]), horizon)[0]

    def forecast_batch(self, history: BarSeries, ends: np.ndarray, horizon: int) -> np.ndarray:
        """The forecasts issued after bar ``end - 1`` for each of ``ends``: the regressors of that bar (one
        design over the history: a forecast issued alone and in a batch are the same numbers)."""
        ends = np.asarray(ends, dtype="int64")
        assert self.coef is not None
        if self.p.mode == "iterated":
            fit = self._iterated(history, ends, horizon)
        else:
            x = self.design(history)[ends - 1]
            # summed term by term (not a BLAS product, whose order depends on the batch): a forecast issued
            # alone and in a batch are the same bits
            fit = (x[:, :, None] * self.coef[None, :, :horizon]).sum(axis=1)
        variance = self._variance(fit, horizon)
        targets = history.time[ends - 1][:, None] + np.arange(1, horizon + 1)[None, :] * self.bar_ns
        variance = variance * self._factor(targets.ravel()).reshape(targets.shape)
        return np.sqrt(variance)

    def _variance(self, fit: np.ndarray, horizon: int) -> np.ndarray:
        """Forecasts on the target's scale as variances: floored, HARQ's insanity filter, log-HAR's bias
        correction."""
        if self.p.target == "log":
            variance = np.exp(fit + 0.5 * np.asarray(self.resid_var[:horizon])[None, :])
        elif self.p.target == "vol":
            variance = np.maximum(fit, np.sqrt(self.floor)) ** 2
        else:
            variance = fit
        if self.p.quarticity:  # BPQ 2016: a forecast outside the window's range is replaced by its mean
            variance = np.where((variance < self.low) | (variance > self.high), self.mean, variance)
        return np.maximum(variance, self.floor)

    def _iterated(self, history: BarSeries, ends: np.ndarray, horizon: int) -> np.ndarray:
        """h = 1 fed back in, on the target's scale (plain HAR: the regressors are its own averages)."""
        assert self.coef is not None
        base = self._base(history.rv**2 / self._factor(history.time))
        need = max(self.lags)
        buf = trailing_windows(base, ends, need)
        if buf is None:
            buf = np.stack([np.r_[np.full(max(0, need - e), np.nan), base[max(0, e - need) : e]] for e in ends])
        out = np.empty((len(ends), horizon))
        low = np.sqrt(self.floor) if self.p.target == "vol" else self.floor
        for h in range(horizon):
            x = np.column_stack([np.ones(len(buf))] + [buf[:, -lag:].mean(axis=1) for lag in self.lags])
            out[:, h] = np.maximum((x * self.coef[None, :, 0]).sum(axis=1), low)
            buf = np.column_stack([buf[:, 1:], out[:, h]])
        return out


def _lstsq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    return beta


class HarParams(Params):
    """HAR-RV: least squares on the averages of the last bar's, day's and week's RV."""

    PROVEN_BATCH: ClassVar[bool] = True  # forecast_batch equals per-bar forecast: tests/test_strategies.py
    type: Literal["har"] = "har"
    lags: list[int] = Field(default_factory=lambda: [1, 24, 168], min_length=1)
    mode: Literal["direct", "iterated"] = "direct"
    target: Literal["vol", "variance", "log"] = "vol"
    weights: Literal["ols", "wls"] = "ols"
    quarticity: bool = False
    jumps: Literal["none", "j", "cj"] = "none"
    semivariance: bool = False
    periodic: bool = False
    session_timezone: str = "UTC"  # bar of day for the periodic factor in this zone (default: the data calendar's)
    floor: float = Field(default=0.01, ge=0, lt=0.5)  # forecasts floored at this quantile of the window's variance

    DURATION_FIELDS: ClassVar[tuple[str, ...]] = ("lags",)  # lags: [1h, 1D, 7D] as well as bar counts
    NAMES: ClassVar[dict[str, str]] = {}

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

    @staticmethod
    def data_defaults(data) -> dict[str, Any]:
        """The periodic factor follows session time: New York for ``fx``, the exchange's zone for an exchange."""
        return session_zone(data)

    @field_validator("lags")
    @classmethod
    def _increasing(cls, v: list[int]) -> list[int]:
        if any(lag < 1 for lag in v) or sorted(set(v)) != v:
            raise ValueError("lags must be distinct positive bar counts in increasing order, e.g. [1, 24, 168]")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> HarParams:
        extras = [
            name
            for name, on in (
                ("quarticity", self.quarticity),
                ("jumps", self.jumps != "none"),
                ("semivariance", self.semivariance),
            )
            if on
        ]
        if extras and self.target != "variance":
            raise ValueError(
                f"{extras[0]}: the HAR variants with realized measures regress realized variance; set target: variance"
            )
        if self.mode == "iterated" and (extras or self.target == "log"):
            raise ValueError(
                "mode: iterated feeds HAR's own forecasts back in; a variant with realized measures or a log "
                "target forecasts every horizon directly (mode: direct)"
            )
        if self.semivariance and self.jumps == "cj":
            raise ValueError("semivariance and jumps: cj both split the last bar's variance; choose one")
        if self.lags[0] != 1 and (self.semivariance or self.quarticity):
            raise ValueError("semivariance and quarticity act on the last bar: lags must start at 1")
        return self

    def measures(self) -> list[str]:
        out = ["rq"] * self.quarticity + ["bpv"] * (self.jumps != "none") + ["jump"] * (self.jumps == "cj")
        return out + ["rs_plus", "rs_minus"] * self.semivariance

    def describe(self) -> str:
        lags = ", ".join(str(k) for k in self.lags)
        way = "one regression per horizon" if self.mode == "direct" else "iterated one bar at a time"
        of = {"vol": "RV (volatility)", "variance": "realized variance", "log": "log realized variance"}[self.target]
        parts = [
            "with the last bar's weight moving with its realized quarticity (HARQ)" * self.quarticity,
            {
                "none": "",
                "j": "plus the last bar's jump variation (HAR-J)",
                "cj": "on its continuous part and significant jumps (HAR-CJ)",
            }[self.jumps],
            "with the last bar split into positive and negative semivariances (SHAR)" * self.semivariance,
            "after removing the hour-of-day pattern" * self.periodic,
            "weighted least squares" * (self.weights == "wls"),
        ]
        extra = "; ".join(p for p in parts if p)
        name = self.NAMES.get(self.type, "HAR")
        return (
            f"{name}: least squares of {of} on its means over the last {lags} bars"
            + (f", {extra}" if extra else "")
            + f", {way}"
        )

    def build(self, seed: int) -> Har:
        return Har(self)

    def min_train_bars(self, horizon: int) -> int:
        """The longest lag, the horizon and one more row than regressors (the constant included)."""
        columns = 1 + len(self.lags) * (2 if self.jumps == "cj" else 1) + self.semivariance
        columns += self.quarticity + (self.jumps == "j")
        return max(self.lags) + horizon + columns + 1


HarParams.NAMES.update({"har": "HAR-RV"})


def preset(class_name: str, type_name: str, label: str, doc: str, **defaults: Any) -> type[HarParams]:
    """A named member of the family, ``class_name`` in this module: ``type: <type_name>`` is ``type: har``
    with these ``defaults`` (picklable, so it runs on worker processes and Dask)."""
    from pydantic import create_model

    fields: dict[str, Any] = {"type": (Literal[type_name], type_name)}
    fields.update({k: (HarParams.model_fields[k].annotation, v) for k, v in defaults.items()})
    cls = create_model(class_name, __base__=HarParams, __doc__=doc, __module__=__name__, **fields)
    cls.PROVEN_BATCH = True  # the same forecast_batch as har's (tests/test_strategies.py runs every preset)
    HarParams.NAMES[type_name] = label
    return cls


HarVarianceParams = preset(
    "HarVarianceParams", "har_rv", "HAR-RV", "HAR-RV on realized variance (Corsi 2009).", target="variance"
)
LogHarParams = preset(
    "LogHarParams", "log_har", "log-HAR", "log-HAR with the bias correction back to levels.", target="log"
)
WlsHarParams = preset(
    "WlsHarParams", "wls_har", "WLS-HAR", "HAR-RV by weighted least squares.", target="variance", weights="wls"
)
HarqParams = preset(
    "HarqParams", "harq", "HARQ", "HARQ (Bollerslev, Patton & Quaedvlieg 2016).", target="variance", quarticity=True
)
HarJParams = preset(
    "HarJParams", "har_j", "HAR-J", "HAR-J (Andersen, Bollerslev & Diebold 2007).", target="variance", jumps="j"
)
HarCjParams = preset(
    "HarCjParams", "har_cj", "HAR-CJ", "HAR-CJ (Andersen, Bollerslev & Diebold 2007).", target="variance", jumps="cj"
)
SharParams = preset(
    "SharParams", "shar", "SHAR", "SHAR (Patton & Sheppard 2015).", target="variance", semivariance=True
)
PeriodicHarParams = preset(
    "PeriodicHarParams",
    "har_periodic",
    "periodic HAR",
    "HAR-RV after removing the intraday pattern.",
    target="variance",
    periodic=True,
)
