"""The figures of "What it is worth" (issue 29), drawn from a run's Parquet files (``var``, ``positions``,
``economic``): VaR exceedances over time, realized against target volatility, equity curves net of costs,
and when the model wins (by volatility regime and hour of day).

Examples
--------
>>> worth_figures(Path("results/weekly"), ["lstm"], "harq_periodic", 0.10, 0.01)  # doctest: +SKIP
['var_exceedances.png', 'target_vol.png', 'equity.png', 'when.png']
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..layout import RunDir
from .plots import strategy_styles
from .report import _dates, _figure, _finish


def _read(run_dir: Path, name: str) -> pd.DataFrame | None:
    path = run_dir / f"{name}.parquet"
    return pd.read_parquet(path) if path.is_file() else None


def worth_figures(run_dir: Path, focus: list[str], bench: str | None, target: float, level: float) -> list[str]:
    """Every figure the tables allow; returns their names. In a universe, the portfolio's (positions averaged)."""
    made: list[str] = []
    eco = _read(run_dir, "economic")
    net, several = portfolio_net(run_dir)
    shown = [*focus, *([bench] if bench and bench not in focus else [])]
    var = None if several else _read(run_dir, "var")
    if var is not None and len(var):
        _exceedances(var, shown, level, run_dir / "var_exceedances.png", made)
    if net is not None and len(net) and eco is not None:
        per_year = float(eco.loc[eco["metric"] == "bars_per_year", "value"].median())
        styles = strategy_styles(sorted(net.columns))
        _target(net, target, per_year, run_dir / "target_vol.png", made, styles, several)
        _equity(net, run_dir / "equity.png", made, styles, several)
    if eco is not None and (eco["section"] == "when").any() and not several:
        _when(eco, focus, run_dir / "when.png", made)
    return made


def portfolio_net(run_dir: Path) -> tuple[pd.DataFrame | None, bool]:
    """Time x strategy: the net return of each bar averaged over the assets holding a position (an asset's
    own, in a run on one), read from ``positions.parquet`` an asset at a time; and whether there were several
    assets. ``(None, False)`` without positions."""
    if not (run_dir / "positions.parquet").is_file():
        return None, False
    sums, counts, assets = None, None, set()
    for part in RunDir(run_dir).table_parts("positions.parquet", ["asset", "time", "strategy", "net"]):
        assets.update(part["asset"].astype(str).unique())
        part["strategy"] = part["strategy"].astype(str)
        s = part.pivot_table(index="time", columns="strategy", values="net", aggfunc="sum")
        n = part.pivot_table(index="time", columns="strategy", values="net", aggfunc="count")
        sums = s if sums is None else sums.add(s, fill_value=0.0)
        counts = n if counts is None else counts.add(n, fill_value=0)
    if sums is None or counts is None:
        return None, False
    return (sums / counts.where(counts > 0)).sort_index(), len(assets) > 1


def _exceedances(var: pd.DataFrame, shown: list[str], level: float, path: Path, made: list[str]) -> None:
    v = var[np.isclose(var["level"], level) & var["strategy"].isin(shown)]
    if not len(v):
        return
    fig, ax = _figure()
    first = v[v["strategy"] == shown[0]].sort_values("time")
    ax.plot(first["time"], first["r"], color="#999999", lw=0.5, label="the bar's return")
    styles = strategy_styles(sorted(v["strategy"].unique()))
    for name, part in v.groupby("strategy"):
        part = part.sort_values("time")
        hits = part["r"] < part["var"]
        st = {k: styles[name][k] for k in ("color",)}
        ax.plot(part["time"], part["var"], lw=0.9, label=f"{name}: {level:.0%} VaR ({hits.mean():.2%} exceeded)", **st)
        ax.scatter(part["time"][hits], part["r"][hits], s=40, marker="v", zorder=5, edgecolors="black", lw=0.5, **st)
    _dates(ax)
    _finish(fig, ax, f"{level:.0%} VaR from each forecast and its exceedances (triangles)", "return", path, made)


def _target(net: pd.DataFrame, target: float, per_year: float, path: Path, made, styles, several: bool) -> None:
    week = max(int(per_year / 52), 2)
    fig, ax = _figure()
    for name in net.columns:
        rolled = net[name].rolling(week, min_periods=week // 2).std() * math.sqrt(per_year)
        ax.plot(rolled.index, rolled, **styles[name])
    ax.axhline(target, color="black", ls="--", lw=1, label=f"target {target:.0%}")
    _dates(ax)
    who = "the equal-risk portfolio" if several else "each position"
    _finish(fig, ax, f"Realized volatility of {who} over the last week, against the target", "annualized", path, made)


def _equity(net: pd.DataFrame, path: Path, made, styles, several: bool) -> None:
    fig, ax = _figure()
    for name in net.columns:
        ax.plot(net.index, np.cumprod(1 + net[name].fillna(0)), **styles[name])
    _dates(ax)
    who = "the equal-risk portfolio" if several else "the volatility-targeted position"
    _finish(fig, ax, f"Equity of {who}, net of costs", "growth of 1", path, made)


def _when(eco: pd.DataFrame, focus: list[str], path: Path, made: list[str]) -> None:
    from matplotlib.figure import Figure

    w = eco[(eco["section"] == "when") & (eco["metric"] == "diff") & eco["strategy"].isin(focus)]
    if not len(w):
        return
    name = focus[0] if focus[0] in set(w["strategy"]) else str(w["strategy"].iloc[0])
    w = w[w["strategy"] == name]
    bench = str(w["against"].iloc[0])
    fig = Figure(figsize=(11, 4))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 3]})
    regime = w[w["key"].isin(["calm", "normal", "turbulent"])]
    hours = w[w["key"].str.contains(":")].sort_values("key")
    for ax, part, label in (
        (left, regime, "volatility at the issue time"),
        (right, hours, "hour the bar closes (UTC)"),
    ):
        colours = ["#2ca02c" if x < 0 else "#d62728" for x in part["value"]]
        ax.bar(part["key"], part["value"], color=colours)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3, axis="y")
        ax.tick_params(axis="x", labelrotation=90 if ax is right else 0, labelsize=8)
    left.set_ylabel(f"{name} minus {bench} (below 0: {name} better)")
    fig.suptitle(f"When does `{name}` beat `{bench}`? Mean one-bar loss difference")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    made.append(path.name)
