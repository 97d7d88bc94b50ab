"""What a volatility forecast is worth (issue 29): VaR and ES from it and their backtests, a position sized to a
volatility target from it, and the realized utility of Bollerslev, Hood, Huss & Pedersen (2018).

Everything is computed from a strategy's forecast rows (with their ``actual``) and the bars' returns, so a
run and ``backtest compare`` share it. Per strategy:

- **VaR and ES** at each ``levels`` from the one-bar forecast ``f`` of the bar's return: ``VaR = f q``,
  ``ES = f e`` with ``q``, ``e`` the quantile and tail mean of the standardized return ``z = r / f``: normal,
  Student-t of unit variance with ``nu`` fitted by maximum likelihood, or filtered historical simulation (the
  empirical ``z``). ``nu`` and the ``fhs`` sample are refitted every ``refit`` bars on the ``z`` of the bars
  that closed by then (the strategy's own earlier forecasts): nothing after the issue time enters; with fewer
  than ``min_history`` of them the normal is used. The same on non-overlapping ``H``-bar blocks (``H`` the
  run's last horizon: a block's volatility is the root of the sum of the ``H`` forecast variances, its return
  the sum of the ``H`` bars' returns). Hourly hits and block hits never overlap, so no test needs an overlap
  correction.
- **Volatility targeting**: the position ``min(target / f, max_leverage)`` (per bar: ``target`` is the
  annual target over the root of the bars in a year) held from the issue time for ``rebalance`` bars, on the
  asset's own simple returns, less ``cost_bp`` per unit of turnover.
- **Realized utility** (BHHP 2018, eq. 18): a mean-variance investor who believes the Sharpe ratio
  constant holds ``SR / (gamma f)``; per bar he earns ``SR² / gamma (a / f - a² / (2 f²))`` a year (``a`` the
  realized volatility), at most ``SR² / (2 gamma)`` for a perfect forecast. ``utility``, the shortfall from
  that maximum, ``SR² / (2 gamma) (1 - a / f)²``, is a per-row loss for DM and the MCS, as is ``fz0`` (the
  FZ0 loss of the first level's VaR and ES).

Examples
--------
>>> import numpy as np
>>> round(fit_tail(np.random.default_rng(0).standard_t(4, 4000) / np.sqrt(2), "t", 250).nu, 1)
3.8
>>> fit_tail(np.zeros(10), "fhs", 250).dist  # too little history: the normal
'normal'
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .risk import acerbi_szekely, christoffersen, duration, dynamic_quantile, fz0, kupiec, traffic_light, var_es

TEST_COLUMNS = ["test", "loss", "horizon", "model", "against", "statistic", "pvalue", "n", "note", "level", "dist"]
ECONOMIC_COLUMNS = ["section", "strategy", "against", "dist", "level", "horizon", "key", "metric", "value"]


@dataclass(frozen=True)
class Tail:
    """A standardized-return distribution: normal, unit-variance t with ``nu``, or the sample ``pool``."""

    dist: str
    nu: float = float("nan")
    pool: np.ndarray | None = None

    def var_es(self, sigma: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
        if self.dist == "fhs":
            assert self.pool is not None
            q = float(np.quantile(self.pool, level))
            return sigma * q, sigma * float(self.pool[self.pool <= q].mean())
        return var_es(sigma, level, self.dist, self.nu if self.dist == "t" else None)

    def draw(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        if self.dist == "t":
            return rng.standard_t(self.nu, shape) * math.sqrt((self.nu - 2) / self.nu)
        if self.dist == "fhs":
            assert self.pool is not None
            return self.pool[rng.integers(len(self.pool), size=shape)]
        return rng.standard_normal(shape)


def fit_nu(z: np.ndarray) -> float:
    """The degrees of freedom of a unit-variance Student-t fitted to ``z`` by maximum likelihood (2.1..200)."""
    from scipy import stats
    from scipy.optimize import minimize_scalar

    def nll(nu: float) -> float:
        scale = math.sqrt((nu - 2) / nu)
        return -float(np.sum(stats.t.logpdf(z / scale, nu))) + len(z) * math.log(scale)

    return float(minimize_scalar(nll, bounds=(2.1, 200.0), method="bounded").x)


def fit_tail(z: np.ndarray, dist: str, min_history: int) -> Tail:
    """``dist`` fitted to the standardized returns ``z`` (the normal where fewer than ``min_history``)."""
    z = z[np.isfinite(z)]
    if dist == "normal" or len(z) < min_history:
        return Tail("normal")
    if dist == "fhs":
        return Tail("fhs", pool=np.sort(z))
    return Tail("t", nu=fit_nu(z))


def one_step(rows: pd.DataFrame, ret: pd.Series) -> pd.DataFrame:
    """A strategy's one-bar rows in issue order with ``r``, the return of the bar forecast (rows without one, or
    without a positive forecast, left out)."""
    one = rows[rows["horizon"] == 1].sort_values("issued_at")
    one = one.assign(r=ret.reindex(pd.DatetimeIndex(one["target_time"])).to_numpy())
    return one[np.isfinite(one["r"]) & (one["forecast"] > 0)].reset_index(drop=True)


def tails(one: pd.DataFrame, dist: str, refit: int, min_history: int) -> tuple[np.ndarray, list[Tail]]:
    """Each row's refit group and each group's tail, fitted on the ``z`` of the rows whose bar closed by the
    group's first issue time."""
    issued = one["issued_at"].to_numpy("datetime64[ns]")
    target = one["target_time"].to_numpy("datetime64[ns]")
    z = (one["r"] / one["forecast"]).to_numpy()
    group = np.arange(len(one)) // refit
    fitted = []
    for g in range(int(group.max()) + 1 if len(group) else 0):
        known = int(np.searchsorted(target, issued[g * refit], side="right"))
        fitted.append(fit_tail(z[:known], dist, min_history))
    return group, fitted


def spaced(times: pd.DatetimeIndex, gap: pd.Timedelta) -> pd.DatetimeIndex:
    """The times, greedily, each at least ``gap`` after the last one kept (non-overlapping blocks).

    >>> t = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 02:00", "2024-01-01 05:00"])
    >>> spaced(t, pd.Timedelta("2h")).strftime("%H").tolist()
    ['00', '02', '05']
    """
    keep, last = [], None
    for t in times:
        if last is None or t >= last + gap:
            keep.append(t)
            last = t
    return pd.DatetimeIndex(keep)


def by_issue(rows: pd.DataFrame, ret: pd.Series, k: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Forecasts, target times and returns of horizons 1..``k`` per issue time (columns: horizon), the issue
    times with all of them (and positive forecasts) only."""
    part = rows[rows["horizon"] <= k]
    part = part.assign(r=ret.reindex(pd.DatetimeIndex(part["target_time"])).to_numpy())
    f = part.pivot_table(index="issued_at", columns="horizon", values="forecast")
    target = part.pivot(index="issued_at", columns="horizon", values="target_time")
    r = part.pivot_table(index="issued_at", columns="horizon", values="r", dropna=False).reindex(f.index)
    if f.shape[1] < k:
        return f.iloc[:0], target.iloc[:0], r.iloc[:0]
    ok = (f > 0).all(axis=1) & r.notna().all(axis=1)
    return f[ok], target.loc[f.index[ok]], r[ok]


def blocks(rows: pd.DataFrame, ret: pd.Series, one: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Non-overlapping ``horizon``-bar blocks: issue times at least ``horizon`` bars apart with every horizon's
    forecast and return; ``sigma`` the root of the summed forecast variances, ``r`` the summed returns, ``row``
    the issue time's position in ``one`` (its tail)."""
    f, target, r = by_issue(rows, ret, horizon)
    bar = pd.Timedelta(one["target_time"].iloc[0] - one["issued_at"].iloc[0]) if len(one) else pd.Timedelta(0)
    picked = spaced(pd.DatetimeIndex(f.index), bar * horizon) if len(f) else pd.DatetimeIndex([])
    where = pd.DatetimeIndex(one["issued_at"]).get_indexer(picked)
    picked = picked[where >= 0]
    return pd.DataFrame(
        {
            "issued_at": picked,
            "sigma": np.sqrt((f.loc[picked] ** 2).sum(axis=1)).to_numpy(),
            "r": r.loc[picked].sum(axis=1).to_numpy(),
            "row": where[where >= 0],
        }
    )


def _backtests(r, v, e, level, null, n_label: int, strategy: str, dist: str) -> list[dict]:
    """The VaR and ES backtests of one hit sequence as test rows (``horizon``: 1 or the block length)."""
    hits = r < v
    ind, cc = christoffersen(hits, level)
    zone = traffic_light(int(hits.sum()), len(hits), level)
    out = []
    for name, res in (
        ("var_kupiec", kupiec(hits, level)),
        ("var_independence", ind),
        ("var_cc", cc),
        ("var_dq", dynamic_quantile(hits, v, level)),
        ("var_duration", duration(hits)),
        ("es_z2", acerbi_szekely(r, v, e, level, null)),
    ):
        note = zone if name == "var_kupiec" else ""
        out.append(
            dict(test=name, loss="", horizon=n_label, model=strategy, against=None, statistic=res.statistic,
                 pvalue=res.pvalue, n=len(hits), note=note, level=level, dist=dist)
        )  # fmt: skip
    return out


def risk_of(one: pd.DataFrame, block: pd.DataFrame, horizon: int, strategy: str, eco, seed: int):
    """One strategy's VaR/ES figures and backtests (per distribution, level, and one bar or a block), its
    per-row FZ0 loss (first distribution and level) and its one-bar VaR and ES rows (first distribution)."""
    figures, tests, fz, series = [], [], None, []
    rng = np.random.default_rng(seed)
    for dist in eco.dist:
        group, fitted = tails(one, dist, eco.refit, eco.min_history)
        for level in eco.levels:
            for label, sigma, r, g in (
                (1, one["forecast"].to_numpy(), one["r"].to_numpy(), group),
                (horizon, block["sigma"].to_numpy(), block["r"].to_numpy(), group[block["row"].to_numpy()]),
            ):
                if len(r) < 20 or (label > 1 and horizon == 1):
                    continue
                v, e, null = np.empty(len(r)), np.empty(len(r)), np.empty((eco.sims, len(r)))
                for k in np.unique(g):
                    m = g == k
                    v[m], e[m] = fitted[k].var_es(sigma[m], level)
                    null[:, m] = sigma[m] * fitted[k].draw(rng, (eco.sims, int(m.sum())))
                tests += _backtests(r, v, e, level, null, label, strategy, dist)
                hits = r < v
                figures += [
                    (strategy, dist, level, label, "", "exceeded", float(hits.mean())),
                    (strategy, dist, level, label, "", "n", float(len(r))),
                    (strategy, dist, level, label, "", "fz0", float(np.mean(fz0(r, v, e, level)))),
                ]
                if label == 1 and fz is None:
                    fz = fz0(r, v, e, level)
                if label == 1 and dist == eco.dist[0]:
                    series.append(
                        pd.DataFrame(
                            {
                                "strategy": strategy,
                                "time": one["target_time"],
                                "level": level,
                                "r": r,
                                "var": v,
                                "es": e,
                            }
                        )
                    )
        if dist == "t":
            figures.append((strategy, dist, np.nan, 1, "", "nu_last", fitted[-1].nu if fitted else np.nan))
    return figures, tests, fz, series


def bars_per_year(bars: pd.DataFrame) -> float:
    """Observed bars per year of the data (8,766 for hourly bars around the clock; fewer for FX)."""
    seen = bars.index[bars["rv"].notna()]
    years = (seen[-1] - seen[0]) / pd.Timedelta(days=365.25) if len(seen) > 1 else 0
    return float(len(seen) / years) if years > 0 else 8766.0


def targeted(rows: pd.DataFrame, ret: pd.Series, eco, per_year: float) -> pd.DataFrame:
    """The volatility-targeted position's bars: ``time`` (the bar's close), ``w``, ``gross`` and ``net`` returns,
    ``trade`` (turnover, spread over the bars held). Rebalanced every ``eco.rebalance`` bars, sized from the
    forecasts of the bars it will be held (the root of their mean variance)."""
    k = eco.rebalance
    f, target, r = by_issue(rows, ret, k)
    if len(f) and k > 1:
        bar = pd.Timedelta(target.iloc[0, 0] - pd.Timestamp(f.index[0]))
        issued = spaced(pd.DatetimeIndex(f.index), bar * k)
        f, target, r = f.loc[issued], target.loc[issued], r.loc[issued]
    sigma = np.sqrt((f**2).mean(axis=1)).to_numpy()
    w = np.minimum(eco.target_vol / math.sqrt(per_year) / sigma, eco.max_leverage)
    trade = np.abs(np.diff(np.r_[0.0, w]))
    weights = np.repeat(w, k)
    cost = np.zeros(len(weights))
    cost[::k] = trade * eco.cost_bp / 1e4
    gross = weights * np.expm1(r.to_numpy().ravel())
    return pd.DataFrame(
        {
            "time": pd.DatetimeIndex(target.to_numpy().ravel()),
            "w": weights,
            "gross": gross,
            "net": gross - cost,
            "trade": np.repeat(trade, k) / k,
        }
    )


def target_figures(pos: pd.DataFrame, eco, per_year: float) -> dict[str, float]:
    """Realized volatility (annual), its tracking error against the target over weeks, Sharpe (net and gross),
    annual return and turnover, mean leverage, share of bars at the cap, maximum drawdown net of costs."""
    if len(pos) < 2:
        return {}
    net, gross = pos["net"].to_numpy(), pos["gross"].to_numpy()
    equity = np.cumprod(1 + net)
    week = max(int(per_year / 52), 2)
    rolling = pd.Series(net).rolling(week).std().to_numpy()[week - 1 :: week] * math.sqrt(per_year)
    sd, sdg = float(np.std(net, ddof=1)), float(np.std(gross, ddof=1))
    return {
        "realized_vol": sd * math.sqrt(per_year),
        "vol_tracking": float(np.sqrt(np.nanmean((rolling - eco.target_vol) ** 2))) if len(rolling) else np.nan,
        "sharpe": float(np.mean(net) / sd * math.sqrt(per_year)) if sd > 0 else np.nan,
        "sharpe_gross": float(np.mean(gross) / sdg * math.sqrt(per_year)) if sdg > 0 else np.nan,
        "return": float(np.mean(net) * per_year),
        "turnover": float(pos["trade"].sum() * per_year / len(pos)),
        "leverage": float(pos["w"].mean()),
        "at_cap": float(np.mean(pos["w"] >= eco.max_leverage - 1e-12)),
        "max_drawdown": float(np.max(1 - equity / np.maximum.accumulate(equity))),
    }


def utility(actual: np.ndarray, forecast: np.ndarray, eco) -> tuple[np.ndarray, np.ndarray]:
    """Per row, in % a year: the realized utility ``SR²/gamma (a/f - a²/(2f²))`` and its shortfall from the
    perfect forecast's ``SR²/(2 gamma)``, ``SR²/(2 gamma) (1 - a/f)²`` (BHHP 2018)."""
    c = eco.sharpe**2 / eco.gamma * 100
    u = np.asarray(actual, dtype="float64") / np.asarray(forecast, dtype="float64")
    return c * (u - u * u / 2), c / 2 * (1 - u) ** 2
