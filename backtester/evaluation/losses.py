"""The one loss pipeline: actuals joined to forecast rows, the volatility loss suite per row,
and every table built from it (means per strategy and horizon, the tidy loss table, breakdowns,
Mincer–Zarnowitz, out-of-sample R², cost).

Forecasts are stored origin-aligned (one row per issue time and horizon) and
scored target-aligned: :func:`join_actuals` adds ``actual``, the RV of the bar that
closes at ``target_time`` (NaN where that bar is missing; such rows are not scored).

Every loss is defined once, in :func:`row_losses`. With ``a`` the realized volatility
at the target bar and ``f`` the forecast volatility:

=========  =====================================  ==================================
loss       per row                                defined where
=========  =====================================  ==================================
mse        (f - a)**2                             a known
mae        |f - a|                                a known
mse_var    (f**2 - a**2)**2                       a known
qlike      a**2/f**2 - ln(a**2/f**2) - 1          a > 0 and f > 0
mse_log    (ln f - ln a)**2                       a > 0 and f > 0
=========  =====================================  ==================================

QLIKE is the variance loss of Patton (2011), robust to a noisy volatility proxy; it
is 0 for a perfect forecast. Rows where a loss is undefined are left out of that
loss and counted (:func:`coverage`), never turned into inf or NaN means. The per-row losses
themselves live in the kernel (:mod:`backtester.core.scores`), where strategies score tuning trials with
them too.

Examples
--------
>>> import numpy as np, pandas as pd
>>> rows = pd.DataFrame({"strategy": ["a", "a"], "horizon": [1, 1], "actual": [2.0, 1.0], "forecast": [1.0, 1.0]})
>>> round(float(metrics(rows)["qlike"].iloc[0]), 4)
0.8069
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.scores import LOSSES, mean_qlike, qlike, row_losses

__all__ = ["LOSSES", "mean_qlike", "qlike", "row_losses"]


def join_actuals(forecasts: pd.DataFrame, bars: pd.DataFrame, proxy: str = "rv") -> pd.DataFrame:
    """Add ``actual`` to origin-aligned forecast rows: RV at ``target_time``, or with ``proxy`` (``evaluation.proxy``)
    the square root of that realized variance measure (``bpv``, ``medrv``, ``trv``, ``rv_ss``)."""
    actual = bars["rv"] if proxy == "rv" else np.sqrt(bars[proxy])
    out = forecasts.copy()
    out["actual"] = actual.reindex(pd.DatetimeIndex(out["target_time"])).to_numpy()
    return out


def loss_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """Per-row losses: se, ae (volatility) and qlike (variance); ``mse``, ``mae``, ``qlike`` of :func:`row_losses`."""
    losses = row_losses(rows["actual"].to_numpy(), rows["forecast"].to_numpy())
    return rows.assign(se=losses["mse"], ae=losses["mae"], qlike=losses["qlike"])


def metrics(rows: pd.DataFrame) -> pd.DataFrame:
    """MSE, MAE (volatility) and QLIKE (variance) per strategy and horizon, over the rows with an actual."""
    scored = loss_frame(rows[rows["actual"].notna()])
    g = scored.groupby(["strategy", "horizon"], observed=True)
    out = g.agg(n=("se", "size"), mse=("se", "mean"), mae=("ae", "mean"), qlike=("qlike", "mean")).reset_index()
    out["strategy"] = out["strategy"].astype("string")
    return out


def summary(metric_rows: pd.DataFrame) -> pd.DataFrame:
    """Mean of each loss over horizons, per strategy, best QLIKE first."""
    s = metric_rows.groupby("strategy", observed=True)[["mse", "mae", "qlike"]].mean()
    return s.sort_values("qlike")


def loss_matrix(rows: pd.DataFrame, loss: str = "qlike", horizon: int = 1) -> pd.DataFrame:
    """Time x strategy loss matrix at one horizon (the shape MCS / DM tests take); ``loss``: se, ae or qlike."""
    scored = loss_frame(rows[(rows["horizon"] == horizon) & rows["actual"].notna()])
    return scored.pivot(index="target_time", columns="strategy", values=loss)


def loss_table(rows: pd.DataFrame, only: tuple[str, ...] = LOSSES) -> pd.DataFrame:
    """The tidy loss table: one row per (target_time, strategy, horizon, loss) where the loss is defined;
    ``only`` those losses. It is not written with a run (every loss is a function of a forecast row and its
    actual): ``loss_table(pd.read_parquet("results/weekly/forecasts.parquet"))`` rebuilds it.

    Columns: ``strategy, issued_at, target_time, horizon, model_version, loss, value`` (and ``asset``
    first, where ``rows`` has it).
    """
    losses = row_losses(rows["actual"].to_numpy(), rows["forecast"].to_numpy())
    keys = rows[["asset"] * ("asset" in rows) + ["strategy", "issued_at", "target_time", "horizon", "model_version"]]
    keys = keys.reset_index(drop=True)
    parts = []
    for name in only:
        values = losses[name]
        ok = np.isfinite(values)
        part = keys[ok].copy()
        part["loss"] = name
        part["value"] = values[ok]
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out["strategy"] = out["strategy"].astype("string")
    out["loss"] = pd.Categorical(out["loss"], categories=list(LOSSES))
    order = ["loss"] + ["asset"] * ("asset" in out) + ["strategy", "horizon", "target_time"]
    return out.sort_values(order, kind="stable").reset_index(drop=True)


def coverage(rows: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: rows, rows scored, and why the others are not (missing actual, zero actual,
    non-positive forecast)."""
    a, f = rows["actual"], rows["forecast"]
    frame = pd.DataFrame(
        {
            "strategy": rows["strategy"].astype("string"),
            "rows": 1,
            "missing_actual": a.isna().astype(int),
            "zero_actual": (a == 0).astype(int),
            "nonpositive_forecast": (f <= 0).astype(int),
            "scored_qlike": (a.notna() & (a > 0) & (f > 0)).astype(int),
        }
    )
    return frame.groupby("strategy", observed=True).sum().reset_index()


def mean_losses(table: pd.DataFrame, by: list[str] | tuple[str, ...] = ("strategy", "horizon")) -> pd.DataFrame:
    """Mean and count of each loss by ``by`` (wide: one column per loss, plus ``n_<loss>``)."""
    by = list(by)
    g = table.groupby(by + ["loss"], observed=True)["value"].agg(["mean", "size"]).reset_index()
    means = g.pivot_table(index=by, columns="loss", values="mean", observed=True)
    counts = g.pivot_table(index=by, columns="loss", values="size", observed=True).add_prefix("n_")
    return pd.concat([means, counts], axis=1).reset_index()


def breakdown_table(table: pd.DataFrame) -> pd.DataFrame:
    """Tidy breakdowns of every loss: mean and count per strategy by retrain segment (``model_version``),
    by hour of day and by weekday (0 = Monday) of the target bar. Columns: ``by, key, strategy, loss, mean, n``."""
    times = pd.DatetimeIndex(table["target_time"])
    keyed = {
        "segment": table["model_version"].to_numpy(),
        "hour": times.hour.to_numpy(),
        "weekday": times.dayofweek.to_numpy(),
    }
    parts = []
    for by, key in keyed.items():
        g = table.assign(key=key).groupby(["key", "strategy", "loss"], observed=True)["value"].agg(["mean", "size"])
        parts.append(g.reset_index().rename(columns={"size": "n"}).assign(by=by))
    out = pd.concat(parts, ignore_index=True)
    return out[["by", "key", "strategy", "loss", "mean", "n"]]


def score_table(table: pd.DataFrame, rows: pd.DataFrame, benchmark: str | None) -> pd.DataFrame:
    """Per strategy and horizon: every mean loss with its count, Mincer–Zarnowitz intercept/slope/R², and
    out-of-sample R² (MSE) against the benchmark."""
    out = mean_losses(table).merge(mincer_zarnowitz(rows).drop(columns="n"), on=["strategy", "horizon"], how="left")
    if benchmark is not None:
        out = out.merge(oos_r2(table, benchmark), on=["strategy", "horizon"], how="left")
    out.columns.name = None
    return out


def mincer_zarnowitz(rows: pd.DataFrame) -> pd.DataFrame:
    """Per strategy and horizon: OLS of actual on forecast volatility; intercept, slope, R², n.

    An unbiased forecast has intercept 0 and slope 1.
    """
    out = []
    known = rows[rows["actual"].notna()]
    for (strategy, h), part in known.groupby(["strategy", "horizon"], observed=True):
        f, a = part["forecast"].to_numpy(), part["actual"].to_numpy()
        if len(part) < 3 or np.ptp(f) == 0:
            out.append((strategy, h, np.nan, np.nan, np.nan, len(part)))
            continue
        x = np.column_stack([np.ones_like(f), f])
        beta, *_ = np.linalg.lstsq(x, a, rcond=None)
        resid = a - x @ beta
        r2 = 1 - resid @ resid / np.sum((a - a.mean()) ** 2)
        out.append((strategy, h, float(beta[0]), float(beta[1]), float(r2), len(part)))
    return pd.DataFrame(out, columns=["strategy", "horizon", "mz_intercept", "mz_slope", "mz_r2", "n"])


def oos_r2(table: pd.DataFrame, benchmark: str, loss: str = "mse") -> pd.DataFrame:
    """Out-of-sample R² per strategy and horizon: 1 - mean loss / benchmark's mean loss, on common rows."""
    t = table[table["loss"] == loss]
    wide = t.pivot_table(index=["target_time", "horizon"], columns="strategy", values="value", observed=True).dropna()
    if benchmark not in wide:
        return pd.DataFrame(columns=["strategy", "horizon", "oos_r2"])
    means = wide.groupby(level="horizon").mean()
    r2 = 1 - means.div(means[benchmark], axis=0)
    return r2.stack().rename("oos_r2").reset_index().rename(columns={"level_1": "strategy"})


def cost_table(
    retrains: pd.DataFrame,
    table: pd.DataFrame,
    loss: str,
    benchmark: str | None,
    artifact_bytes: dict[str, int] | None = None,
    ensembles: dict[str, list[str]] | None = None,
    tuning: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """What each strategy cost and what it bought: retrains (per seed: a seed ensemble's are those of
    one member; ``seeds`` members, ``fits`` in all), training seconds and tuning seconds (its hyperparameter
    searches, from ``tuning``: the trials table; an ensemble's are all its members'), artifact size, mean
    loss, the gain over the benchmark (benchmark's mean loss minus the strategy's, on the rows both scored)
    and, for a positive gain, that gain per minute of training and tuning."""
    searches = tuning_seconds(tuning)
    t = table[table["loss"] == loss]
    index = ["asset"] * ("asset" in t) + ["target_time", "horizon"]  # several assets: compared asset by asset
    wide = t.pivot_table(index=index, columns="strategy", values="value", observed=True)
    rows = []
    artifact_bytes = dict(artifact_bytes or {})
    groups = list(retrains.groupby("strategy", observed=True, sort=False))
    for name, members in (ensembles or {}).items():  # a seed ensemble costs all its members
        groups.append((name, retrains[retrains["strategy"].isin(members)]))
        artifact_bytes[name] = sum(artifact_bytes.get(m, 0) for m in members)
    for strategy, part in groups:
        seconds = float(part["seconds"].sum())
        members = (ensembles or {}).get(strategy, [strategy])
        tuned = float(sum(searches.get(str(m), 0.0) for m in members))
        mean = float(wide[strategy].mean()) if strategy in wide else np.nan
        gain = np.nan
        if strategy == benchmark:
            gain = 0.0
        elif benchmark is not None and benchmark in wide and strategy in wide:
            both = wide[[strategy, benchmark]].dropna()
            gain = float(both[benchmark].mean() - both[strategy].mean())
        rows.append(
            {
                "strategy": str(strategy),
                "retrains": int(len(part)) // len(members),  # one convention everywhere: per seed
                "seeds": len(members),
                "fits": int(len(part)),
                "failed": int((part["status"] != "ok").sum()),
                "train_seconds": seconds,
                "seconds_per_retrain": seconds / len(part),
                "tuning_seconds": tuned,
                "artifact_bytes": int(artifact_bytes.get(str(strategy), 0)),
                f"mean_{loss}": mean,
                f"gain_vs_{benchmark}" if benchmark else "gain_vs_benchmark": gain,
                # per minute of training and tuning, for a gain by strategies that train for at least a second
                # (else it means nothing; a loss bought with training is no rate of return)
                "gain_per_train_minute": (
                    gain / ((seconds + tuned) / 60)
                    if seconds + tuned >= 1.0 and np.isfinite(gain) and gain > 0
                    else np.nan
                ),
            }
        )
    return pd.DataFrame(rows)


def tuning_seconds(trials: pd.DataFrame | None) -> dict[str, float]:
    """Seconds of hyperparameter search per strategy, from the trials table (``tuning_seconds`` is the
    whole search's, repeated on each of its trials).

    >>> trials = pd.DataFrame({"strategy": ["a", "a", "a"], "model_version": [1, 1, 4], "tuning_seconds": [5.0, 5.0, 2.0]})
    >>> tuning_seconds(trials)
    {'a': 7.0}
    """
    if trials is None or not len(trials):
        return {}
    keys = [c for c in ("asset", "strategy", "model_version") if c in trials]
    searches = trials.groupby(keys, observed=True)["tuning_seconds"].first()
    return {str(k): float(v) for k, v in searches.groupby(level="strategy").sum().items()}
