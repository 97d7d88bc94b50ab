"""Plots of a run: forecast vs actual with retrain markers, loss by horizon."""

from __future__ import annotations

import pandas as pd


def plot_forecasts(rows: pd.DataFrame, retrains: pd.DataFrame, path, horizon: int = 1, zoom_bars: int = 168) -> None:
    """Forecast vs actual at one horizon, with retrain times marked.

    Top: the whole test period as daily means (readable over months). Bottom: the
    last ``zoom_bars`` bars as they are.
    """
    from matplotlib.figure import Figure

    sel = rows[rows["horizon"] == horizon]
    wide = sel.pivot_table(index="target_time", columns="strategy", values="forecast", observed=True)
    actual = sel.drop_duplicates("target_time").set_index("target_time")["actual"].reindex(wide.index)
    fig = Figure(figsize=(13, 8))
    top, bottom = fig.subplots(2, 1)
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
