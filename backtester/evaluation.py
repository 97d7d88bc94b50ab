"""Scoring: actuals joined target-aligned, losses per strategy and horizon, plots.

Forecasts are stored origin-aligned (one row per issue time and horizon) and
scored target-aligned: ``actual`` is the RV of the bar that closes at
``target_time`` (NaN where that bar is missing; such rows are not scored).

Losses: squared and absolute error of volatility; QLIKE of variance,
``a/f - ln(a/f) - 1`` with ``a = actual**2`` and ``f = forecast**2`` over rows
with both positive.

Examples
--------
>>> import numpy as np
>>> qlike(np.array([2.0, 1.0]), np.array([2.0, 0.0])).tolist()
[0.0, nan]
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def qlike(actual_vol: np.ndarray, forecast_vol: np.ndarray) -> np.ndarray:
    """QLIKE loss of variance per row (NaN where actual or forecast is not positive)."""
    a = np.asarray(actual_vol, dtype="float64") ** 2
    f = np.asarray(forecast_vol, dtype="float64") ** 2
    ok = (a > 0) & (f > 0)
    ratio = np.divide(a, f, out=np.ones_like(a), where=ok)
    out = ratio - np.log(ratio) - 1
    return np.where(ok, out, np.nan)


def join_actuals(forecasts: pd.DataFrame, bars: pd.DataFrame) -> pd.DataFrame:
    """Add ``actual`` (RV at ``target_time``) to origin-aligned forecast rows."""
    actual = bars["rv"]
    out = forecasts.copy()
    out["actual"] = actual.reindex(pd.DatetimeIndex(out["target_time"])).to_numpy()
    return out


def loss_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """Per-row losses: se, ae (volatility) and qlike (variance)."""
    err = rows["forecast"] - rows["actual"]
    return rows.assign(se=err**2, ae=err.abs(), qlike=qlike(rows["actual"], rows["forecast"]))


def metrics(rows: pd.DataFrame) -> pd.DataFrame:
    """MSE, MAE (volatility) and QLIKE (variance) per strategy and horizon."""
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
    """Time x strategy loss matrix at one horizon (the shape MCS / DM tests take)."""
    scored = loss_frame(rows[(rows["horizon"] == horizon) & rows["actual"].notna()])
    return scored.pivot(index="target_time", columns="strategy", values=loss)


# --------------------------------------------------------------------------- plots


def plot_forecasts(rows: pd.DataFrame, retrains: pd.DataFrame, path, horizon: int = 1, zoom_bars: int = 168) -> None:
    """Forecast vs actual at one horizon, with retrain times marked.

    Top: the whole test period as daily means (readable over months). Bottom: the
    last ``zoom_bars`` bars as they are.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sel = rows[rows["horizon"] == horizon]
    wide = sel.pivot_table(index="target_time", columns="strategy", values="forecast", observed=True)
    actual = sel.drop_duplicates("target_time").set_index("target_time")["actual"].reindex(wide.index)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(13, 8))
    panels = (
        (top, wide.resample("1D").mean(), actual.resample("1D").mean(), "daily means"),
        (bottom, wide.iloc[-zoom_bars:], actual.iloc[-zoom_bars:], f"last {min(zoom_bars, len(wide))} bars"),
    )
    for ax, fc, act, label in panels:
        ax.plot(act.index, act, color="black", lw=1.6, alpha=0.6, label="realized volatility", zorder=1)
        for name in fc.columns:
            ax.plot(fc.index, fc[name], lw=1.0, alpha=0.9, label=str(name), zorder=2)
        for t in retrains["retrain_time"].drop_duplicates():
            if fc.index[0] <= t <= fc.index[-1]:
                ax.axvline(t, color="grey", lw=0.7, ls=":", alpha=0.8)
        ax.set_title(f"{horizon}-step-ahead forecasts vs realized volatility, {label} (dotted: retrains)")
        ax.set_ylabel("volatility per bar")
        ax.grid(alpha=0.25)
    top.legend(loc="upper right", fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_error_by_horizon(metric_rows: pd.DataFrame, path) -> None:
    """MSE and QLIKE against horizon, one line per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, part in metric_rows.groupby("strategy", observed=True):
        axes[0].plot(part["horizon"], part["mse"], marker=".", label=name)
        axes[1].plot(part["horizon"], part["qlike"], marker=".", label=name)
    axes[0].set_title("MSE of volatility by horizon")
    axes[1].set_title("QLIKE of variance by horizon")
    for ax in axes:
        ax.set_xlabel("horizon (bars)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
