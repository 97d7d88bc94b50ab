"""Value-at-Risk and Expected Shortfall from volatility forecasts, and their backtests (issue 29, item 1).

A volatility forecast ``sigma`` of a bar's return is turned into the bar's VaR and ES at ``level`` (e.g.
0.01: the 1 % lower tail) with a standardized distribution of unit variance: normal or Student-t. Both are
**returned as the (negative) quantile and tail mean of the return**, as the FZ0 loss takes them.

Backtests of a hit sequence ``hits[t] = r[t] < VaR[t]``:

- :func:`kupiec` — unconditional coverage, the proportion-of-failures LR test (Kupiec 1995), chi2(1);
- :func:`christoffersen` — independence (a first-order Markov chain against independence) and conditional
  coverage, their sum (Christoffersen 1998), chi2(1) and chi2(2);
- :func:`dynamic_quantile` — the DQ test of Engle & Manganelli (2004): demeaned hits regressed on a
  constant, their last four values and the VaR, chi2(6);
- :func:`duration` — the Christoffersen–Pelletier duration test (are the bars between hits memoryless?);
- :func:`acerbi_szekely` — the Z2 test of the ES (Acerbi & Székely 2014), p-value by simulation;
- :func:`traffic_light` — the Basel zone of the exception count (green below the binomial 95 % point,
  red from the 99.99 % point);
- :func:`fz0` — the FZ0 joint loss of (VaR, ES) (Fissler & Ziegel 2016, Patton, Ziegel & Chen 2019),
  a per-row loss for DM and the MCS like QLIKE.

Examples
--------
>>> round(float(var_es(1.0, 0.05)[0]), 4), round(float(var_es(1.0, 0.05)[1]), 4)
(-1.6449, -2.0627)
>>> round(kupiec(np.r_[np.ones(5), np.zeros(245)].astype(bool), 0.01).pvalue, 4)
0.1619
>>> traffic_light(4, 250, 0.01), traffic_light(5, 250, 0.01), traffic_light(10, 250, 0.01)
('green', 'yellow', 'red')
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DISTRIBUTIONS = ("normal", "t")


@dataclass(frozen=True)
class Backtest:
    """A backtest's statistic, p-value and degrees of freedom (NaN where it cannot be computed)."""

    statistic: float
    pvalue: float
    df: int


def _chi2_sf(x: float, df: int) -> float:
    from scipy.stats import chi2

    return float(chi2.sf(x, df)) if np.isfinite(x) else float("nan")


def var_es(sigma, level: float, dist: str = "normal", nu: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """VaR and ES of a zero-mean return with volatility ``sigma`` at ``level`` (both negative): the
    ``level`` quantile and the mean below it, of a normal or a Student-t with ``nu`` degrees of freedom
    scaled to unit variance."""
    from scipy import stats

    sigma = np.asarray(sigma, dtype="float64")
    if dist == "normal":
        z = stats.norm.ppf(level)
        return sigma * z, -sigma * stats.norm.pdf(z) / level
    if dist == "t":
        if nu is None or nu <= 2:
            raise ValueError("a Student-t of unit variance needs nu > 2")
        scale = math.sqrt((nu - 2) / nu)
        q = stats.t.ppf(level, nu)
        tail = -stats.t.pdf(q, nu) * (nu + q * q) / ((nu - 1) * level)  # the t's tail mean below q
        return sigma * q * scale, sigma * tail * scale
    raise ValueError(f"unknown distribution {dist!r}; use one of {', '.join(DISTRIBUTIONS)}")


def kupiec(hits: np.ndarray, level: float) -> Backtest:
    """Kupiec's proportion-of-failures test: is the hit rate ``level``? LR against the observed rate."""
    hits = np.asarray(hits, dtype=bool)
    n, x = len(hits), int(hits.sum())
    if n == 0:
        return Backtest(float("nan"), float("nan"), 1)
    rate = x / n
    lr = -2 * (_loglik(n - x, x, level) - _loglik(n - x, x, rate))
    return Backtest(lr, _chi2_sf(lr, 1), 1)


def _loglik(zeros: int, ones: int, p: float) -> float:
    """``zeros ln(1 - p) + ones ln p`` with ``0 ln 0 = 0``."""
    out = 0.0
    if zeros:
        out += zeros * math.log(1 - p) if p < 1 else -math.inf
    if ones:
        out += ones * math.log(p) if p > 0 else -math.inf
    return out


def christoffersen(hits: np.ndarray, level: float) -> tuple[Backtest, Backtest]:
    """Christoffersen's independence test (a hit's probability the same after a hit as after none) and
    the conditional coverage test (independence and the right rate together)."""
    hits = np.asarray(hits, dtype=bool)
    prev, now = hits[:-1], hits[1:]
    n00 = int((~prev & ~now).sum())
    n01 = int((~prev & now).sum())
    n10 = int((prev & ~now).sum())
    n11 = int((prev & now).sum())
    p01 = n01 / (n00 + n01) if n00 + n01 else 0.0
    p11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    p = (n01 + n11) / max(n00 + n01 + n10 + n11, 1)
    lr_ind = -2 * (_loglik(n00 + n10, n01 + n11, p) - _loglik(n00, n01, p01) - _loglik(n10, n11, p11))
    independence = Backtest(lr_ind, _chi2_sf(lr_ind, 1), 1)
    lr_cc = kupiec(hits, level).statistic + lr_ind
    return independence, Backtest(lr_cc, _chi2_sf(lr_cc, 2), 2)


def dynamic_quantile(hits: np.ndarray, var: np.ndarray, level: float, lags: int = 4) -> Backtest:
    """Engle & Manganelli's DQ test: ``hit - level`` regressed on a constant, its ``lags`` last values and
    the VaR; under a correct VaR every coefficient is 0: ``DQ = b' X'X b / (level (1 - level))``, chi2."""
    h = np.asarray(hits, dtype="float64") - level
    v = np.asarray(var, dtype="float64")
    n = len(h)
    if n <= lags + 3:
        return Backtest(float("nan"), float("nan"), lags + 2)
    y = h[lags:]
    x = np.column_stack([np.ones(n - lags), *[h[lags - k : n - k] for k in range(1, lags + 1)], v[lags:]])
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    dq = float(beta @ x.T @ x @ beta / (level * (1 - level)))
    return Backtest(dq, _chi2_sf(dq, x.shape[1]), x.shape[1])


def traffic_light(exceptions: int, n: int, level: float) -> str:
    """The Basel zone of ``exceptions`` in ``n`` days at ``level``: green while the binomial probability of
    at most that many is below 95 %, red from 99.99 %, yellow between (250 days at 1 %: 0-4, 5-9, 10 or more)."""
    from scipy.stats import binom

    upto = float(binom.cdf(exceptions, n, level))  # the probability of at most this many exceptions
    return "green" if upto < 0.95 else "yellow" if upto < 0.9999 else "red"


def fz0(returns: np.ndarray, var: np.ndarray, es: np.ndarray, level: float) -> np.ndarray:
    """The FZ0 loss of a (VaR, ES) forecast pair (both negative), per row: ``-1{r <= v} (v - r) / (level e) +
    v / e + log(-e) - 1``; lower is better, and it ranks forecasts of the tail consistently."""
    r, v, e = (np.asarray(a, dtype="float64") for a in (returns, var, es))
    hit = (r <= v).astype("float64")
    return -hit * (v - r) / (level * e) + v / e + np.log(-e) - 1


def duration(hits: np.ndarray) -> Backtest:
    """Christoffersen & Pelletier's (2004) duration test: the bars between hits are memoryless (exponential)
    under a correct VaR; a Weibull with shape ``b`` ≠ 1 says hits cluster (b < 1) or repel. LR of the Weibull
    against the exponential, the first and the last duration censored, chi2(1).

    >>> round(duration(np.tile([True, False, False, False], 50)).pvalue, 6)  # evenly spaced: far from memoryless
    0.0
    """
    from scipy.optimize import minimize_scalar

    hits = np.asarray(hits, dtype=bool)
    at = np.flatnonzero(hits)
    if len(at) < 2:
        return Backtest(float("nan"), float("nan"), 1)
    # durations (as rugarch's VaRDurTest): to the first hit, censored unless the data open with one; between
    # hits; after the last, censored, unless the data close with one
    d = np.diff(at).astype("float64")
    censored = np.zeros(len(d), bool)
    if not hits[0]:
        d, censored = np.r_[at[0] + 1.0, d], np.r_[True, censored]
    if not hits[-1]:
        d, censored = np.r_[d, float(len(hits) - at[-1] - 1)], np.r_[censored, True]
    if (~censored).sum() < 1:
        return Backtest(float("nan"), float("nan"), 1)

    def loglik(b: float) -> float:
        # for a given shape b the scale's MLE is closed-form: a^b = (uncensored count) / sum(d^b)
        db = d**b
        k = int((~censored).sum())
        ab = k / db.sum()
        log_f = np.log(ab) + np.log(b) + (b - 1) * np.log(d) - ab * db
        log_s = -ab * db
        return float(np.where(censored, log_s, log_f).sum())

    fit = minimize_scalar(lambda b: -loglik(b), bounds=(0.05, 20.0), method="bounded")
    lr = max(2 * (max(loglik(float(fit.x)), loglik(1.0)) - loglik(1.0)), 0.0)
    return Backtest(lr, _chi2_sf(lr, 1), 1)


def acerbi_szekely(
    returns: np.ndarray, var: np.ndarray, es: np.ndarray, level: float, null_returns: np.ndarray
) -> Backtest:
    """Acerbi & Székely's (2014) Z2 test of an ES forecast: ``Z2 = sum(r 1{r < VaR} / (T level |ES|)) + 1``,
    zero under a correct ES and negative when the tail is worse; its one-sided p-value from ``null_returns``
    (sims x T draws of the returns from the forecast distribution itself, :func:`var_es`'s VaR and ES)."""
    r, v, e = (np.asarray(a, dtype="float64") for a in (returns, var, es))
    scale = len(r) * level * np.abs(e)

    def z2(x: np.ndarray) -> np.ndarray:
        return np.sum(x * (x < v) / scale, axis=-1) + 1

    observed = float(z2(r))
    null = z2(np.asarray(null_returns, dtype="float64"))
    return Backtest(observed, float((null <= observed).mean()), 0)
