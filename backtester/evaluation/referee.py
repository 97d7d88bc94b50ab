"""The tests referees ask of a volatility forecast (issue 29, item 3).

- :func:`giacomini_white` — the conditional predictive ability test of Giacomini & White (2006): is the loss
  differential ``d`` predictable from instruments known when the forecasts were made (a constant, the last
  known differential, optionally a volatility regime)? ``n Z̄' Ω⁻¹ Z̄`` with ``Z = h d``, chi2(q); with the
  constant alone it is the unconditional test. The instruments of a ``tau``-bar forecast lag ``tau`` rows (the
  differential of the forecast issued ``tau`` bars earlier is the last one known), and ``Ω`` is Newey–West
  with ``tau - 1`` lags, as in the paper.
- :func:`mincer_zarnowitz` — actual on forecast by OLS, with a HAC (Newey–West) joint Wald test of intercept 0
  and slope 1, in levels or logs (equal to statsmodels' HAC Wald test, checked in the suite).
- :func:`patton_loss` — Patton's (2011) robust loss family of a variance forecast ``h`` against a variance
  proxy ``s``, indexed by ``b``: ``b = -2`` is QLIKE, ``b = 0`` half the MSE of the variance; every member
  ranks forecasts as the true variance would even though ``s`` is noisy.

Examples
--------
>>> import numpy as np
>>> s, h = np.array([1.0, 4.0]), np.array([2.0, 2.0])
>>> patton_loss(s, h, -2).round(4).tolist(), patton_loss(s, h, 0).tolist()
([0.1931, 0.3069], [0.5, 2.0])
>>> rng = np.random.default_rng(0)
>>> round(giacomini_white(rng.normal(0, 1, 500), 1).pvalue, 2)  # no differential: no rejection
0.55
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GWResult:
    """The GW statistic, its p-value (chi2 with ``df`` degrees of freedom), the rows used, and the share of
    rows where the fitted rule ``h'b`` predicts the model's loss lower (negative differential)."""

    statistic: float
    pvalue: float
    df: int
    n: int
    model_better_share: float


def _nw(z: np.ndarray, lags: int, demean: bool = False) -> np.ndarray:
    """Newey–West long-run covariance of the rows of ``z`` with Bartlett weights (``lags`` = 0: ``z'z / n``)."""
    z = z - z.mean(axis=0) if demean else z
    n = len(z)
    omega = z.T @ z / n
    for j in range(1, lags + 1):
        g = z[j:].T @ z[:-j] / n
        omega += (1 - j / (lags + 1)) * (g + g.T)
    return omega


def giacomini_white(d: np.ndarray, tau: int, conditional: bool = False, regime: np.ndarray | None = None) -> GWResult:
    """The GW test of the loss differential ``d`` (model minus benchmark, rows in issue order, ``tau``-bar
    forecasts): unconditional (a constant) or ``conditional`` (a constant and ``d`` lagged ``tau`` rows, and
    ``regime`` — a 0/1 known at issue time — where given)."""
    from scipy.stats import chi2

    d = np.asarray(d, dtype="float64")
    cols = [np.ones(len(d))]
    if conditional:
        cols.append(np.r_[np.full(tau, np.nan), d[:-tau]] if len(d) > tau else np.full(len(d), np.nan))
        if regime is not None:
            cols.append(np.asarray(regime, dtype="float64"))
    h = np.column_stack(cols)
    ok = np.isfinite(d) & np.isfinite(h).all(axis=1)
    h, d = h[ok], d[ok]
    q, n = h.shape[1], len(d)
    if n <= q + tau or np.linalg.matrix_rank(h) < q:
        return GWResult(float("nan"), float("nan"), q, n, float("nan"))
    z = h * d[:, None]
    zbar = z.mean(axis=0)
    omega = _nw(z, tau - 1)
    stat = float(n * zbar @ np.linalg.solve(omega, zbar))
    beta, *_ = np.linalg.lstsq(h, d, rcond=None)
    return GWResult(stat, float(chi2.sf(stat, q)), q, n, float(np.mean(h @ beta < 0)))


@dataclass(frozen=True)
class MZResult:
    intercept: float
    slope: float
    r2: float
    statistic: float  # the HAC Wald statistic of (intercept, slope) = (0, 1), chi2(2)
    pvalue: float
    n: int


def mincer_zarnowitz(actual: np.ndarray, forecast: np.ndarray, tau: int = 1, logs: bool = False) -> MZResult:
    """OLS of ``actual`` on ``forecast`` (both logged with ``logs``) and the Wald test of intercept 0, slope 1
    with a Newey–West covariance (lags: the larger of ``tau - 1`` and ``4 (n / 100)^(2/9)``; no small-sample
    correction, as statsmodels' ``cov_type="HAC"``, which the suite checks it against)."""
    from scipy.stats import chi2

    a, f = np.asarray(actual, dtype="float64"), np.asarray(forecast, dtype="float64")
    ok = np.isfinite(a) & np.isfinite(f) & ((a > 0) & (f > 0) if logs else True)
    a, f = a[ok], f[ok]
    if logs:
        a, f = np.log(a), np.log(f)
    n = len(a)
    if n < 10 or np.ptp(f) == 0:
        return MZResult(*(float("nan"),) * 5, n)
    x = np.column_stack([np.ones(n), f])
    xtx_inv = np.linalg.inv(x.T @ x)
    beta = xtx_inv @ x.T @ a
    resid = a - x @ beta
    lags = max(tau - 1, int(4 * (n / 100) ** (2 / 9)))
    cov = xtx_inv @ (n * _nw(x * resid[:, None], lags)) @ xtx_inv
    r = beta - np.array([0.0, 1.0])
    stat = float(r @ np.linalg.solve(cov, r))
    r2 = 1 - float(resid @ resid) / float(np.sum((a - a.mean()) ** 2))
    return MZResult(float(beta[0]), float(beta[1]), r2, stat, float(chi2.sf(stat, 2)), n)


def patton_loss(proxy: np.ndarray, forecast: np.ndarray, b: float) -> np.ndarray:
    """Patton's (2011, eq. 24) robust loss of the variance forecast ``forecast`` against the variance proxy
    ``proxy``, for shape ``b`` (−2: QLIKE; −1: the ``h − s + s log(s / h)`` member; 0: half the squared error)."""
    s, h = np.asarray(proxy, dtype="float64"), np.asarray(forecast, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        if b == -2:
            out = s / h - np.log(s / h) - 1
        elif b == -1:
            out = h - s + s * np.log(s / h)
        else:
            out = (s ** (b + 2) - h ** (b + 2)) / ((b + 1) * (b + 2)) - h ** (b + 1) * (s - h) / (b + 1)
    return np.where((h > 0) & (s > 0 if b in (-1, -2) else s >= 0), out, np.nan)
