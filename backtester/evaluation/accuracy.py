"""Tests of predictive accuracy: Diebold–Mariano with the small-sample correction, and the Model Confidence Set.

Diebold–Mariano (1995) on the loss differential ``d_t = L_model,t - L_benchmark,t``
over common target times: ``DM = mean(d) / sqrt(V / T)`` with ``V`` the long-run
variance of ``d`` from autocovariances up to lag ``h - 1`` (an h-step forecast's
errors overlap h - 1 bars; where that sum is not positive the Bartlett-weighted one
is used). The Harvey–Leybourne–Newbold (1997) correction multiplies DM by
``sqrt((T + 1 - 2h + h(h - 1) / T) / T)`` and takes p-values from Student's t with
``T - 1`` degrees of freedom. A negative statistic means the model's loss is lower.

The Model Confidence Set (Hansen, Lunde & Nason 2011) comes from
``arch.bootstrap.MCS`` on the time x strategy loss matrix with a stationary block
bootstrap, seeded.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> good, bad = rng.normal(1.0, 0.3, 500), rng.normal(1.3, 0.3, 500)
>>> r = diebold_mariano(good, bad, horizon=1)
>>> r.statistic < -10, r.pvalue < 1e-10
(True, True)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

MIN_ROWS = 10  # fewer common rows than this: "not computed"


@dataclass(frozen=True)
class DMResult:
    statistic: float
    pvalue: float
    mean_diff: float
    n: int
    note: str = ""  # why it was not computed, or which variance was used


def t_sf(x: float, df: float) -> float:
    """Student's t survival function, ``scipy.stats.t.sf(x, df)`` (the same function: scipy.special's
    ``stdtr``, imported on first use; scipy.stats takes over a second to import)."""
    from scipy.special import stdtr

    return float(stdtr(df, -x))


def norm_sf(x: float) -> float:
    """The standard normal survival function, ``scipy.stats.norm.sf(x)`` (scipy.special's ``ndtr``)."""
    from scipy.special import ndtr

    return float(ndtr(-x))


def long_run_variance(d: np.ndarray, lags: int) -> tuple[float, str]:
    """gamma_0 + 2 * sum_{k=1..lags} gamma_k (rectangular); Bartlett weights if that is not positive."""
    d = d - d.mean()
    n = len(d)
    gammas = [float(d @ d) / n] + [float(d[k:] @ d[:-k]) / n for k in range(1, min(lags, n - 1) + 1)]
    v = gammas[0] + 2 * sum(gammas[1:])
    if v > 0:
        return v, "rectangular"
    q = len(gammas) - 1
    v = gammas[0] + 2 * sum((1 - k / (q + 1)) * g for k, g in enumerate(gammas[1:], start=1))
    return v, "bartlett"


def diebold_mariano(loss_model: np.ndarray, loss_bench: np.ndarray, horizon: int) -> DMResult:
    """DM test with HAC variance (lag h - 1) and the HLN correction; two-sided p-value."""
    a, b = np.asarray(loss_model, dtype="float64"), np.asarray(loss_bench, dtype="float64")
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    n, h = len(d), int(horizon)
    if n < max(MIN_ROWS, 2 * h + 1):
        return DMResult(np.nan, np.nan, float(d.mean()) if n else np.nan, n, f"not computed: {n} common rows")
    v, kind = long_run_variance(d, h - 1)
    if not v > 0:
        return DMResult(np.nan, np.nan, float(d.mean()), n, "not computed: the loss differential has no variance")
    dm = d.mean() / np.sqrt(v / n)
    hln = dm * np.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    p = 2 * t_sf(abs(hln), n - 1)
    return DMResult(float(hln), float(p), float(d.mean()), n, kind)


def dm_table(table: pd.DataFrame, loss: str, benchmark: str | None, pairwise: bool = True) -> pd.DataFrame:
    """DM tests per horizon and on the horizon-averaged loss: every strategy against ``benchmark``
    and, if ``pairwise``, every pair. Columns: ``loss, horizon, model, against, statistic, pvalue,
    mean_diff, n, note`` (``horizon`` 0 = averaged over horizons, by issue time, lag H - 1)."""
    t = table[table["loss"] == loss]
    strategies = sorted(t["strategy"].unique())
    pairs = [(s, benchmark) for s in strategies if benchmark is not None and s != benchmark]
    if pairwise:
        pairs += [
            (x, y)
            for i, x in enumerate(strategies)
            for y in strategies[i + 1 :]
            if (x, y) not in pairs and (y, x) not in pairs
        ]
    rows = []
    wide = t.pivot_table(index=["horizon", "target_time"], columns="strategy", values="value", observed=True)
    horizons = sorted(t["horizon"].unique())
    avg = horizon_averaged(t)
    for model, against in pairs:
        for h in horizons:
            part = wide.loc[h]
            r = diebold_mariano(part[model].to_numpy(), part[against].to_numpy(), h)
            rows.append((loss, int(h), model, against, r.statistic, r.pvalue, r.mean_diff, r.n, r.note))
        r = diebold_mariano(avg[model].to_numpy(), avg[against].to_numpy(), max(horizons))
        rows.append((loss, 0, model, against, r.statistic, r.pvalue, r.mean_diff, r.n, r.note))
    return pd.DataFrame(
        rows, columns=["loss", "horizon", "model", "against", "statistic", "pvalue", "mean_diff", "n", "note"]
    )


def horizon_averaged(t: pd.DataFrame) -> pd.DataFrame:
    """Issue time x strategy: each strategy's loss averaged over horizons, on the issue times at which every
    strategy has every horizon scored (the rows the horizon-averaged DM tests and the MCS share)."""
    horizons = t["horizon"].nunique()
    complete = t.groupby(["issued_at", "strategy"], observed=True)["horizon"].size().unstack("strategy")
    full = complete.eq(horizons).all(axis=1)
    avg = t.pivot_table(index="issued_at", columns="strategy", values="value", aggfunc="mean", observed=True)
    return avg.loc[full[full].index]


def model_confidence_set(
    losses: pd.DataFrame,
    sizes: tuple[float, ...] = (0.10, 0.25),
    reps: int = 1000,
    block_size: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """MCS over the columns of a time x strategy loss matrix (rows with any NaN dropped).

    Returns per strategy and size: ``mcs_pvalue`` and ``in_set`` (``size`` 0.10 gives the 90 % set).
    """
    from arch.bootstrap import MCS

    clean = losses.dropna()
    rows = []
    if len(clean) < MIN_ROWS or clean.shape[1] < 2:
        note = f"not computed: {len(clean)} common rows, {clean.shape[1]} strategies"
        return pd.DataFrame(
            [(s, size, np.nan, None, note, len(clean)) for size in sizes for s in losses.columns],
            columns=["strategy", "size", "mcs_pvalue", "in_set", "note", "n"],
        )
    twins = {}  # a strategy whose losses equal an earlier one's (e.g. the same baseline in two runs) shares its result
    unique = []
    for s in clean.columns:
        match = next((u for u in unique if np.array_equal(clean[s].to_numpy(), clean[u].to_numpy())), None)
        if match is None:
            unique.append(s)
        else:
            twins[s] = match
    if len(unique) < 2:
        return pd.DataFrame(
            [(str(s), size, 1.0, True, "identical losses", len(clean)) for size in sizes for s in clean.columns],
            columns=["strategy", "size", "mcs_pvalue", "in_set", "note", "n"],
        )
    for size in sizes:
        mcs = MCS(clean[unique], size=size, reps=reps, block_size=block_size, bootstrap="stationary", seed=seed)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                mcs.compute()
        except (IndexError, ValueError, np.linalg.LinAlgError) as exc:
            rows += [
                (str(s), size, np.nan, None, f"not computed: {type(exc).__name__}", len(clean)) for s in clean.columns
            ]
            continue
        pvalues = mcs.pvalues["Pvalue"]
        included = set(mcs.included)
        for s in clean.columns:
            u = twins.get(s, s)
            note = f"identical losses to {u}" if s in twins else ""
            rows.append((str(s), size, float(pvalues[u]), u in included, note, len(clean)))
    return pd.DataFrame(rows, columns=["strategy", "size", "mcs_pvalue", "in_set", "note", "n"])
