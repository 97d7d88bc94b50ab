"""Panel tests of equal predictive accuracy: one model against another, pooled over assets.

After Qu, Timmermann & Zhu (2024), "Comparing forecasting performance with panel data",
International Journal of Forecasting 40, 918–941 (the R package pEPA). The input is a
time x asset frame of loss differentials ``d_it = L_model,it - L_benchmark,it``, NaN where an
asset has no observation (assets trade on different calendars, so panels are unbalanced).

Both tests work on the cross-sectional average over the assets observed at ``t``::

    dbar_t = mean_{i observed at t} d_it        (times with no asset observed are dropped)

which keeps any cross-sectional dependence (a common shock hitting every asset) inside one
series, so nothing has to be assumed about the correlation between assets.

Pooled test (:func:`pooled_dm`, QTZ's test for the pooled average)::

    S = mean(dbar) / sqrt(V / T),   p = 2 * (1 - Phi(|S|))
    V = gamma_0 + 2 * sum_{k=1..L} (1 - k / (L + 1)) * gamma_k          (Newey–West / Bartlett)
    gamma_k = (1/T) * sum_{t=k+1..T} (dbar_t - mean(dbar)) * (dbar_{t-k} - mean(dbar))
    L = max(lags, floor(4 * (T / 100) ** (2 / 9)))

``lags`` is ``h - 1`` for h-step forecasts (their errors overlap ``h - 1`` bars); the
Newey–West rule widens the window with ``T`` because the average of volatility losses stays
autocorrelated beyond the overlap (volatility clusters), and Bartlett weights keep ``V >= 0``
without the rectangular kernel's fallback. There is no Harvey–Leybourne–Newbold correction:
``S`` is compared with the standard normal, as in QTZ. (pEPA's ``pool_av.test`` weights lag ``k``
by ``(1 + k/J) + (1 - k/J) = 2``, a truncated kernel with ``J = round(T^(1/3))`` that can give
``V < 0``; Bartlett weights cannot.)

Time-cluster test (:func:`cluster_dm`, QTZ's test for time clusters; Ibragimov & Müller 2010):
split ``dbar`` into ``K`` contiguous blocks of (nearly) equal length, ``R_k`` = block mean::

    S = sqrt(K) * mean(R) / sd(R, ddof=1),   p from Student's t with K - 1 degrees of freedom

valid for two-sided tests at levels up to 8.3 % for any ``K >= 2`` (up to 10 % for ``K <= 14``).
A negative statistic means the model's loss is lower.

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> common = rng.normal(size=(300, 1))  # a shock every asset shares
>>> diff = pd.DataFrame(-0.3 + common + rng.normal(size=(300, 4)), columns=["A", "B", "C", "D"])
>>> diff.iloc[::7, 1] = np.nan  # B misses some bars
>>> r = pooled_dm(diff, lags=0)
>>> bool(r.statistic < -3), bool(r.pvalue < 0.01), r.n, r.note
(True, True, 300, 'pooled over 4 assets, Bartlett lag 5')
>>> c = cluster_dm(diff, clusters=8)
>>> bool(c.statistic < 0), c.note
(True, 'pooled over 4 assets, 8 time clusters of 37-38 rows, t(7)')
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .accuracy import MIN_ROWS, DMResult, norm_sf, t_sf

PANEL_COLUMNS = [
    "test",
    "loss",
    "horizon",
    "model",
    "against",
    "statistic",
    "pvalue",
    "mean_diff",
    "n",
    "assets",
    "note",
]
WIN_KEYS = ["loss", "horizon", "model", "against"]


def cross_section_mean(diff: pd.DataFrame) -> tuple[np.ndarray, int]:
    """The cross-sectional average ``dbar_t`` in time order (times with no asset dropped), and how
    many assets have at least one observation.

    >>> cross_section_mean(pd.DataFrame({"A": [1.0, np.nan, np.nan], "B": [3.0, 2.0, np.nan]}))
    (array([2., 2.]), 2)
    """
    values = diff.sort_index().to_numpy(dtype="float64")
    seen = np.isfinite(values)
    rows = seen.any(axis=1)
    counts = seen[rows].sum(axis=1)
    dbar = np.where(seen[rows], values[rows], 0.0).sum(axis=1) / counts
    return dbar, int(seen.any(axis=0).sum())


def newey_west_bandwidth(n: int, lags: int) -> int:
    """``max(lags, floor(4 * (n / 100) ** (2 / 9)))``, at most ``n - 1``.

    >>> newey_west_bandwidth(300, 0), newey_west_bandwidth(300, 11), newey_west_bandwidth(10, 0)
    (5, 11, 2)
    """
    return int(min(max(int(lags), math.floor(4 * (n / 100) ** (2 / 9))), n - 1))


def bartlett_variance(x: np.ndarray, bandwidth: int) -> float:
    """Newey–West long-run variance: ``gamma_0 + 2 * sum_{k<=L} (1 - k/(L+1)) * gamma_k`` (1/T scaling).

    >>> round(bartlett_variance(np.array([1.0, -1.0, 1.0, -1.0]), 1), 6)
    0.25
    """
    d = np.asarray(x, dtype="float64")
    d = d - d.mean()
    n = len(d)
    v = float(d @ d) / n
    for k in range(1, min(bandwidth, n - 1) + 1):
        v += 2 * (1 - k / (bandwidth + 1)) * float(d[k:] @ d[:-k]) / n
    return v


def pooled_dm(diff: pd.DataFrame, lags: int) -> DMResult:
    """QTZ's pooled test: DM on the cross-sectional average, Newey–West variance (see the module).

    ``diff``: time x asset loss differentials (model minus benchmark), NaN where unobserved;
    ``lags``: ``h - 1`` for h-step forecasts, a floor under the Newey–West bandwidth.

    >>> rng = np.random.default_rng(1)
    >>> r = pooled_dm(pd.DataFrame(rng.normal(0.5, 1, (100, 3))), lags=2)
    >>> bool(r.statistic > 3), r.n, r.note
    (True, 100, 'pooled over 3 assets, Bartlett lag 4')
    >>> pooled_dm(pd.DataFrame({"A": np.ones(5)}), lags=0).note
    'not computed: 5 rows with an asset observed'
    """
    return pooled_of(*cross_section_mean(diff), lags)


def pooled_of(dbar: np.ndarray, assets: int, lags: int) -> DMResult:
    """:func:`pooled_dm` on the cross-sectional mean ``dbar`` (time order) of ``assets`` assets."""
    n, lags = len(dbar), int(lags)
    mean = float(dbar.mean()) if n else np.nan
    if n < max(MIN_ROWS, 2 * lags + 3):
        return DMResult(np.nan, np.nan, mean, n, f"not computed: {n} rows with an asset observed")
    bandwidth = newey_west_bandwidth(n, lags)
    v = bartlett_variance(dbar, bandwidth)
    if not v > 0:
        return DMResult(np.nan, np.nan, mean, n, "not computed: the averaged loss differential has no variance")
    s = mean / math.sqrt(v / n)
    p = 2 * norm_sf(abs(s))
    return DMResult(float(s), float(p), mean, n, f"pooled over {assets} assets, Bartlett lag {bandwidth}")


def cluster_dm(diff: pd.DataFrame, clusters: int = 8) -> DMResult:
    """QTZ's time-cluster test: t-test on the ``clusters`` contiguous block means of the cross-sectional
    average, Student's t with ``clusters - 1`` degrees of freedom (fixed-b / Ibragimov–Müller).

    Blocks have ``T // K`` or ``T // K + 1`` rows, the longer ones first; ``mean_diff`` is ``mean(dbar)``
    as in :func:`pooled_dm` (the statistic uses the mean of the block means).

    >>> r = cluster_dm(pd.DataFrame({"A": np.arange(20.0) % 3 - 0.5}), clusters=4)
    >>> round(r.statistic, 4), r.note
    (4.7001, 'pooled over 1 assets, 4 time clusters of 5 rows, t(3)')
    >>> cluster_dm(pd.DataFrame({"A": np.ones(7)}), clusters=4).note
    'not computed: 7 rows for 4 time clusters'
    """
    return cluster_of(*cross_section_mean(diff), clusters)


def cluster_of(dbar: np.ndarray, assets: int, clusters: int = 8) -> DMResult:
    """:func:`cluster_dm` on the cross-sectional mean ``dbar`` (time order) of ``assets`` assets."""
    n, k = len(dbar), int(clusters)
    mean = float(dbar.mean()) if n else np.nan
    if k < 2 or n < 2 * k:
        return DMResult(np.nan, np.nan, mean, n, f"not computed: {n} rows for {k} time clusters")
    blocks = np.array_split(dbar, k)
    means = np.array([b.mean() for b in blocks])
    sd = float(means.std(ddof=1))
    if not sd > 0:
        return DMResult(np.nan, np.nan, mean, n, "not computed: the cluster means have no variance")
    s = math.sqrt(k) * float(means.mean()) / sd  # the mean of block means; mean_diff stays mean(dbar)
    p = 2 * t_sf(abs(s), k - 1)
    sizes = sorted({len(b) for b in blocks})
    rows = "-".join(str(size) for size in sizes)
    note = f"pooled over {assets} assets, {k} time clusters of {rows} rows, t({k - 1})"
    return DMResult(float(s), float(p), mean, n, note)


def _pairs(strategies: list[str], benchmark: str | None, pairwise: bool) -> list[tuple[str, str]]:
    """Every strategy against the benchmark, then every other pair (the order of ``accuracy.dm_table``)."""
    pairs = [(s, benchmark) for s in strategies if benchmark is not None and s != benchmark]
    if pairwise:
        pairs += [
            (x, y)
            for i, x in enumerate(strategies)
            for y in strategies[i + 1 :]
            if (x, y) not in pairs and (y, x) not in pairs
        ]
    return pairs


def _tests(dbar: np.ndarray, assets: int, lags: int, clusters: int, key: tuple) -> list[tuple]:
    """The pooled and the time-cluster row of one (loss, horizon, model, against)."""
    out = []
    for test, r in (("pooled_dm", pooled_of(dbar, assets, lags)), ("cluster_dm", cluster_of(dbar, assets, clusters))):
        out.append((test, *key, r.statistic, r.pvalue, r.mean_diff, r.n, assets, r.note))
    return out


class CrossSection:
    """The pooled tests' inputs, gathered asset by asset: per (loss, horizon) and pair, the sum and count of
    the loss differentials over the assets at each time, and how many assets had any. Nothing grows with the
    assets but the union of their times. :meth:`add` takes one asset's tidy loss rows; :meth:`table` gives
    :func:`panel_dm_table`'s rows.

    >>> t = pd.date_range("2024-01-01", periods=40, freq="h")
    >>> rng = np.random.default_rng(0)
    >>> def rows(asset): return pd.DataFrame({"strategy": np.repeat(["a", "b"], 40), "issued_at": np.tile(t, 2),
    ...     "target_time": np.tile(t, 2) + pd.Timedelta(hours=1), "horizon": 1, "loss": "mse",
    ...     "value": rng.uniform(size=80)})
    >>> cs = CrossSection("mse", "b")
    >>> cs.add(rows("X")); cs.add(rows("Y"))
    >>> cs.table()[["test", "horizon", "model", "against", "n", "assets"]].iloc[:2]
             test  horizon model against   n  assets
    0   pooled_dm        1     a       b  40       2
    1  cluster_dm        1     a       b  40       2
    """

    def __init__(self, loss: str, benchmark: str | None, pairwise: bool = True, clusters: int = 8):
        self.loss, self.benchmark, self.pairwise, self.clusters = loss, benchmark, pairwise, clusters
        self.sums: dict[int, pd.DataFrame] = {}  # horizon (0: averaged) -> time x pair
        self.counts: dict[int, pd.DataFrame] = {}
        self.assets: dict[int, pd.Series] = {}  # horizon -> pair -> assets with a differential
        self.strategies: set[str] = set()
        self.last = 0  # the largest horizon

    def add(self, rows: pd.DataFrame) -> None:
        """One asset's tidy loss rows (``strategy, issued_at, target_time, horizon, loss, value``)."""
        self.add_parts(self.parts(rows))

    def parts(self, rows: pd.DataFrame) -> dict[int, pd.DataFrame]:
        """What one asset adds (:meth:`add_parts`), computed anywhere: its time x pair differentials per
        horizon (0: the horizon-averaged loss, on the issue times where every horizon was scored)."""
        t = rows[rows["loss"] == self.loss]
        names = sorted(str(s) for s in t["strategy"].unique())
        # an asset's pairs are oriented as the universe's are (the benchmark second, else by name)
        pairs = [(x, y) for x, y in _pairs(names, self.benchmark, self.pairwise) if x in names and y in names]
        if not pairs:
            return {}
        horizons = sorted(int(h) for h in t["horizon"].unique())
        wide = t.pivot_table(index=["horizon", "target_time"], columns="strategy", values="value", observed=True)
        out = {h: _differentials(wide.loc[h], pairs) for h in horizons}
        avg = t.pivot_table(index="issued_at", columns="strategy", values="value", aggfunc="mean", observed=True)
        counts = t.groupby(["issued_at", "strategy"], observed=True)["horizon"].size().unstack("strategy")
        complete = counts.reindex(index=avg.index, columns=avg.columns).eq(len(horizons))  # every horizon scored
        out[0] = _differentials(avg.where(complete), pairs)
        return out

    def add_parts(self, parts: dict[int, pd.DataFrame]) -> None:
        """Add one asset's :meth:`parts` (assets in the same order give the same sums, to the bit)."""
        for h, d in parts.items():
            self.strategies.update(str(n) for pair in d.columns for n in pair)
            self._add(h, d)
            self.last = max(self.last, h)

    def _add(self, h: int, d: pd.DataFrame) -> None:
        seen = d.notna()
        n = seen.astype("int64")
        total = d.fillna(0.0)
        if h in self.sums:
            self.sums[h] = self.sums[h].add(total, fill_value=0.0)
            self.counts[h] = self.counts[h].add(n, fill_value=0)
            self.assets[h] = self.assets[h].add(seen.any(axis=0).astype("int64"), fill_value=0)
        else:
            self.sums[h], self.counts[h], self.assets[h] = total, n, seen.any(axis=0).astype("int64")

    def mean(self, h: int, pair: tuple[str, str]) -> tuple[np.ndarray, int]:
        """The cross-sectional mean ``dbar_t`` of ``pair`` at horizon ``h`` in time order (times with no asset
        dropped), and how many assets it averages."""
        if h not in self.sums or pair not in self.sums[h]:
            return np.zeros(0), 0
        n = self.counts[h][pair].sort_index()
        s = self.sums[h][pair].sort_index()
        seen = n.to_numpy() > 0
        return s.to_numpy()[seen] / n.to_numpy()[seen], int(self.assets[h][pair])

    def table(self) -> pd.DataFrame:
        """The pooled and time-cluster rows of every pair, per horizon and on the horizon-averaged loss (the
        columns of :data:`PANEL_COLUMNS`)."""
        rows: list[tuple] = []
        if not self.sums:
            return pd.DataFrame(rows, columns=PANEL_COLUMNS)
        horizons = sorted(h for h in self.sums if h > 0)
        for model, against in _pairs(sorted(self.strategies), self.benchmark, self.pairwise):
            pair = (model, against)
            if pair not in self.sums[horizons[0]] and pair not in self.sums[0]:
                continue
            for h in [*horizons, 0]:
                dbar, assets = self.mean(h, pair)
                rows += _tests(dbar, assets, h - 1 if h else self.last - 1, self.clusters, (self.loss, h, *pair))
        return pd.DataFrame(rows, columns=PANEL_COLUMNS)


def _differentials(wide: pd.DataFrame, pairs: list[tuple[str, str]]) -> pd.DataFrame:
    """Time x pair ``model - against`` of one asset (NaN where either is missing)."""
    cols = {(x, y): wide[x] - wide[y] for x, y in pairs}
    out = pd.DataFrame(cols, index=wide.index)
    out.columns = pd.MultiIndex.from_tuples(list(cols), names=["model", "against"])
    return out


def panel_dm_table(
    table: pd.DataFrame, loss: str, benchmark: str | None, pairwise: bool = True, clusters: int = 8
) -> pd.DataFrame:
    """Pooled and time-cluster tests across assets, per horizon and on the horizon-averaged loss.

    ``table``: the tidy loss table with an ``asset`` column (its assets go through a :class:`CrossSection`
    one by one). Pairs as in ``accuracy.dm_table``; per
    horizon ``h`` the differential is indexed by ``target_time`` (lags ``h - 1``); ``horizon`` 0 averages
    each asset's losses over horizons by ``issued_at``, on the issue times where both strategies scored
    every horizon for that asset (lags ``H - 1``, ``H`` the largest horizon). Only assets where both
    strategies have losses count (``assets``). Columns: ``test, loss, horizon, model, against,
    statistic, pvalue, mean_diff, n, assets, note``; ``test`` is ``pooled_dm`` or ``cluster_dm``.

    >>> t = pd.date_range("2024-01-01", periods=40, freq="h")
    >>> table = pd.DataFrame({"strategy": np.repeat(["a", "b"], 80), "asset": np.tile(np.repeat(["X", "Y"], 40), 2),
    ...                       "issued_at": np.tile(t, 4), "target_time": np.tile(t, 4) + pd.Timedelta(hours=1),
    ...                       "horizon": 1, "model_version": 1, "loss": "mse",
    ...                       "value": np.random.default_rng(0).uniform(size=160)})
    >>> panel_dm_table(table, "mse", "b")[["test", "horizon", "model", "against", "n", "assets"]]
             test  horizon model against   n  assets
    0   pooled_dm        1     a       b  40       2
    1  cluster_dm        1     a       b  40       2
    2   pooled_dm        0     a       b  40       2
    3  cluster_dm        0     a       b  40       2
    """
    cs = CrossSection(loss, benchmark, pairwise, clusters)
    t = table[table["loss"] == loss]
    for _, part in t.groupby("asset", observed=True, sort=True):
        cs.add(part)
    return cs.table()


def win_table(per_asset_dm: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """How many assets each model beats its comparator on, per ``loss, horizon, model, against``.

    ``per_asset_dm``: per-asset DM results (``accuracy.dm_table`` output plus ``asset``). An asset
    counts as tested where its statistic is finite; untested rows are left out of every count. A win
    is ``mean_diff < 0``, a significant one also has ``pvalue < alpha``; losses likewise with
    ``mean_diff > 0``. Columns: ``loss, horizon, model, against, assets, wins, significant_wins,
    losses, significant_losses``, in the input's order of groups.

    >>> dm = pd.DataFrame({"asset": ["X", "Y", "Z"], "loss": "qlike", "horizon": 1, "model": "a",
    ...                    "against": "b", "statistic": [-3.0, -1.0, 2.5], "pvalue": [0.003, 0.3, 0.01],
    ...                    "mean_diff": [-0.2, -0.1, 0.3]})
    >>> print(win_table(dm).to_string())
        loss  horizon model against  assets  wins  significant_wins  losses  significant_losses
    0  qlike        1     a       b       3     2                 1       1                   1
    """
    d = per_asset_dm
    tested = np.isfinite(d["statistic"].to_numpy(dtype="float64"))
    below = tested & (d["mean_diff"].to_numpy(dtype="float64") < 0)
    above = tested & (d["mean_diff"].to_numpy(dtype="float64") > 0)
    significant = d["pvalue"].to_numpy(dtype="float64") < alpha
    counts = pd.DataFrame(
        {
            "assets": tested,
            "wins": below,
            "significant_wins": below & significant,
            "losses": above,
            "significant_losses": above & significant,
        },
        index=d.index,
    )
    out = pd.concat([d[WIN_KEYS], counts.astype("int64")], axis=1)
    return out.groupby(WIN_KEYS, sort=False, observed=True).sum().reset_index()
