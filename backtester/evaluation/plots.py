"""Plots: forecast vs actual with retrain markers, loss by horizon, accuracy against training cost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


UNITS = {"bar": "volatility per bar", "percent": "volatility per bar, %", "annualized": "annualized volatility, %"}


def unit_scale(unit: str, times: pd.DatetimeIndex) -> float:
    """Factor from volatility per bar to ``unit``: 1, 100, or 100 x sqrt(bars per year).

    Bars per year are counted from ``times`` (so an FX or exchange calendar's closed hours
    do not count): 8,760 for hourly bars around the clock.

    >>> t = pd.date_range("2024-01-01", periods=8761, freq="h", tz="UTC")
    >>> round(unit_scale("annualized", t), 1), unit_scale("percent", t)
    (9359.5, 100.0)
    """
    if unit == "percent":
        return 100.0
    if unit == "annualized":
        years = (times[-1] - times[0]) / pd.Timedelta(days=365)
        per_year = (len(times) - 1) / years if years > 0 else 0.0
        return 100.0 * float(np.sqrt(per_year))
    return 1.0


def full_days(frame: pd.DataFrame | pd.Series, index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Days holding at least half as many bars as the fullest day (a partial first or last day would
    make a daily mean of a few bars: a false spike at an edge)."""
    counts = pd.Series(1, index=index).resample("1D").sum()
    return counts.index[counts >= 0.5 * counts.max()]


def with_gaps(frame, step: pd.Timedelta | None = None):
    """``frame`` with a NaN row in every gap longer than 1.5 bars, so a line breaks there (FX weekends)."""
    if len(frame) < 3:
        return frame
    idx = frame.index
    if step is None:
        step = pd.Series(idx[1:] - idx[:-1]).median()
    gaps = np.flatnonzero((idx[1:] - idx[:-1]) > 1.5 * step)
    if not len(gaps):
        return frame
    breaks = pd.DatetimeIndex(idx[gaps] + step)
    return pd.concat([frame, frame.iloc[:0].reindex(breaks)]).sort_index()


def plot_forecasts(rows: pd.DataFrame, retrains: pd.DataFrame, path, horizon: int = 1, zoom_bars: int = 168,
                   unit: str = "bar", title: str | None = None) -> None:
    """Forecast vs actual at one horizon, with retrain times marked.

    Top: the whole test period as daily means of full days (readable over months);
    retrains as lines, or as ticks along the top edge when there are many. Bottom: the
    last ``zoom_bars`` bars as they are, the line broken where the market was closed.
    ``unit``: ``bar`` (volatility per bar), ``percent`` or ``annualized`` (%); ``title``: the figure's
    title (the asset's name, in a universe).
    """
    from matplotlib.figure import Figure

    sel = rows[rows["horizon"] == horizon]
    wide = sel.pivot_table(index="target_time", columns="strategy", values="forecast", observed=True)
    actual = sel.drop_duplicates("target_time").set_index("target_time")["actual"].reindex(wide.index)
    scale = unit_scale(unit, wide.index)
    wide, actual = wide * scale, actual * scale
    days = full_days(wide, wide.index)
    daily_fc = wide.resample("1D").mean().reindex(days)
    daily_act = actual.resample("1D").mean().reindex(days)
    fig = Figure(figsize=(13, 8), layout="constrained")
    top, bottom = fig.subplots(2, 1)
    step = pd.Series(wide.index[1:] - wide.index[:-1]).median() if len(wide) > 2 else None
    panels = (
        (top, with_gaps(daily_fc, pd.Timedelta("1D")), with_gaps(daily_act, pd.Timedelta("1D")), "daily means"),
        (bottom, with_gaps(wide.iloc[-zoom_bars:], step), with_gaps(actual.iloc[-zoom_bars:], step),
         f"last {min(zoom_bars, len(wide))} bars"),
    )
    times = pd.DatetimeIndex(retrains["retrain_time"].drop_duplicates())
    for ax, fc, act, label in panels:
        ax.plot(act.index, act, color="black", lw=1.6, alpha=0.6, label="realized volatility", zorder=1)
        for name in fc.columns:
            ax.plot(fc.index, fc[name], lw=1.0, alpha=0.9, label=str(name), zorder=2)
        shown = times[(times >= fc.index[0]) & (times <= fc.index[-1])] if len(fc) else times[:0]
        if len(shown) > 12:  # many retrains: ticks along the top edge instead of lines across the data
            ax.plot(shown, np.ones(len(shown)), ls="none", marker="|", ms=9, color="grey",
                    transform=ax.get_xaxis_transform(), clip_on=False)
            marks = "ticks on top: retrains"
        else:
            for t in shown:
                ax.axvline(t, color="grey", lw=0.7, ls=":", alpha=0.8)
            marks = "dotted: retrains"
        ax.set_title(f"{horizon}-step-ahead forecasts vs realized volatility, {label} ({marks})", pad=10)
        ax.set_ylabel(UNITS[unit])
        ax.grid(alpha=0.25)
    handles, labels = top.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False)  # beside the data, never on it
    if title:
        fig.suptitle(title, fontweight="bold")
    fig.savefig(path, dpi=110)


def plot_error_by_horizon(metric_rows: pd.DataFrame, path) -> None:
    """MSE and QLIKE against horizon, one line per strategy."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.5))
    axes = fig.subplots(1, 2)
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


def plot_loss_by_horizon(comparison: pd.DataFrame, loss: str, path: Path) -> None:
    """Mean ``loss`` against horizon, one line per strategy (``comparison``: one row per strategy and horizon)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5))
    ax = fig.subplots()
    for name, part in comparison.groupby("strategy"):
        ax.plot(part["horizon"], part[loss], marker=".", label=str(name))
    ax.set_title(f"Mean {loss} by horizon, on the common rows")
    ax.set_xlabel("horizon (bars)")
    ax.set_ylabel(f"mean {loss}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_cost_vs_accuracy(cost: pd.DataFrame, loss: str, path: Path) -> None:
    """Mean ``loss`` against training seconds (log scale), one labelled point per strategy of ``cost``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    col = f"mean_{loss}"
    x = cost["train_seconds"].clip(lower=0.01)
    ax.scatter(x, cost[col])
    for r, xv in zip(cost.itertuples(), x):
        ax.annotate(f"{r.strategy} ({r.retrains} fits)", (xv, getattr(r, col)), fontsize=8, xytext=(4, 4),
                    textcoords="offset points")
    ax.set_xscale("log")
    ax.set_title(f"Accuracy against training cost (lower {loss} is better)")
    ax.set_xlabel("training seconds, all retrains (log scale)")
    ax.set_ylabel(f"mean {loss}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_pooled_differentials(losses: pd.DataFrame, tests: pd.DataFrame, loss: str, benchmark: str | None,
                              path: Path) -> bool:
    """Per horizon, each asset's mean loss differential against the benchmark (dots) and their pooled
    mean with the pooled DM test's verdict (line; filled where p < 0.05); one panel per strategy.
    Seed members are left out. Returns False (and draws nothing) without a benchmark."""
    from matplotlib.figure import Figure

    t = losses[(losses["loss"] == loss) & ~losses["strategy"].astype(str).str.contains("#")]
    if benchmark is None or benchmark not in set(t["strategy"]):
        return False
    means = t.groupby(["strategy", "asset", "horizon"], observed=True)["value"].mean().unstack("strategy")
    models = [m for m in means.columns if m != benchmark]
    if not models:
        return False
    diff = means[models].sub(means[benchmark], axis=0)
    pooled = tests[(tests["test"] == "pooled_dm") & (tests["against"] == benchmark) & (tests["horizon"] > 0)]
    fig = Figure(figsize=(min(5 * len(models), 15), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(models), sharey=True))
    for ax, model in zip(axes, models):
        per = diff[model].unstack("asset")
        for asset in per.columns:
            ax.plot(per.index, per[asset], ".", ms=5, alpha=0.7, label=str(asset))
        p = pooled[pooled["model"] == model].sort_values("horizon")
        ax.plot(p["horizon"], p["mean_diff"], color="black", lw=1.5, label="pooled mean")
        sig = p[p["pvalue"] < 0.05]
        ax.plot(sig["horizon"], sig["mean_diff"], "o", color="black", ms=6, label="pooled DM p < 0.05")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(f"{model} - {benchmark}")
        ax.set_xlabel("horizon")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"mean {loss} differential (below 0: beats {benchmark})")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False)
    fig.savefig(path, dpi=110)
    return True
