"""Plots: forecast vs actual with retrain markers, loss by horizon, accuracy against training cost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..core.names import base_name
from .verdict import seed_rows

UNITS = {"bar": "volatility per bar", "percent": "volatility per bar, %", "annualized": "annualized volatility, %"}

# the standard baselines keep one colour everywhere; other strategies take the palette in name order
BASELINE_COLOURS = {
    "har": "#1f77b4",
    "garch": "#ff7f0e",
    "ewma": "#2ca02c",
    "naive": "#a0a0a0",  # light grey, dashed (:data:`DASHED`): never mistaken for realized volatility
    "rolling_mean": "#bcbd22",
}
DASHED = {"naive"}  # the naive forecast is realized volatility one bar late: dashed beside the actual line
PALETTE = [
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#393b79",
    "#637939",
    "#8c6d31",
    "#843c39",
    "#7b4173",
    "#3182bd",
    "#e6550d",
    "#31a354",
    "#756bb1",
    "#636363",
]


def strategy_styles(names) -> dict[str, dict]:
    """Line style per strategy, the same in every figure of a run and a comparison: one colour per
    strategy (a seed member takes its ensemble's colour), ensembles bold, seed members faint and out
    of the legend, the standard baselines in fixed colours.

    >>> st = strategy_styles(["lstm", "lstm#1", "lstm#2", "har"])
    >>> st["lstm"]["color"] == st["lstm#1"]["color"], st["har"]["color"], st["lstm#1"]["label"]
    (True, '#1f77b4', '_nolegend_')
    >>> st["lstm"]["lw"] > st["har"]["lw"] > st["lstm#2"]["lw"]
    True
    """
    names = [str(n) for n in dict.fromkeys(names)]
    base = {n: base_name(n) for n in names}
    members: dict[str, int] = {}
    for n, b in base.items():
        if b != n:
            members[b] = members.get(b, 0) + 1
    free = iter(c for c in PALETTE * 3 if c not in BASELINE_COLOURS.values())
    colours = {b: BASELINE_COLOURS.get(b) or next(free) for b in sorted(set(base.values()))}
    out = {}
    for n in names:
        b = base[n]
        if b != n:
            out[n] = {"color": colours[b], "lw": 0.7, "alpha": 0.35, "label": "_nolegend_", "zorder": 1}
        elif n in members:
            out[n] = {
                "color": colours[b],
                "lw": 2.4,
                "alpha": 1.0,
                "label": f"{n} (mean of {members[n]} seeds; faint: each)",
                "zorder": 3,
            }
        else:
            out[n] = {"color": colours[b], "lw": 1.3, "alpha": 0.95, "label": n, "zorder": 2}
        if b in DASHED:
            out[n]["ls"] = "--"
    return out


def styled(styles: dict[str, dict] | None, names) -> dict[str, dict]:
    """``styles`` where given (a whole run's, so colours agree across figures), else made for ``names``."""
    return styles if styles is not None else strategy_styles(names)


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


def plot_forecasts(
    rows: pd.DataFrame,
    retrains: pd.DataFrame,
    path,
    horizon: int = 1,
    zoom_bars: int = 168,
    unit: str = "bar",
    title: str | None = None,
    styles: dict[str, dict] | None = None,
) -> None:
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
        (
            bottom,
            with_gaps(wide.iloc[-zoom_bars:], step),
            with_gaps(actual.iloc[-zoom_bars:], step),
            f"last {min(zoom_bars, len(wide))} bars",
        ),
    )
    times = pd.DatetimeIndex(retrains["retrain_time"].drop_duplicates())
    styles = styled(styles, wide.columns)
    for ax, fc, act, label in panels:
        ax.plot(act.index, act, color="black", lw=1.4, alpha=0.8, label="realized volatility", zorder=1)
        for name in fc.columns:
            ax.plot(fc.index, fc[name], **styles[str(name)])
        clip_peaks(ax, fc, act)
        marks = mark_retrains(ax, times, fc.index)
        ax.set_title(f"{horizon}-step-ahead forecasts vs realized volatility, {label} ({marks})", pad=10)
        ax.set_ylabel(UNITS[unit])
        ax.grid(alpha=0.25)
    handles, labels = top.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False)  # beside the data, never on it
    if title:
        fig.suptitle(title, fontweight="bold")
    fig.savefig(path, dpi=110)


CLIP = 1.5  # peaks more than this many times the robust top of a panel are clipped, and marked


def clip_peaks(ax, forecasts: pd.DataFrame, actual: pd.Series) -> str | None:
    """Keep a few spikes from flattening a forecast panel: the y-range tops out at the 99.5th percentile
    of the forecasts or the 99th of realized volatility (whichever is higher, plus a margin); where the
    data reach more than :data:`CLIP` times that, they run off the top, each clipped point of realized
    volatility is marked with a triangle at the top edge, and a note in the panel's corner says how many
    and how high. Returns the note where it clipped, else None.

    >>> from matplotlib.figure import Figure
    >>> ax = Figure().subplots()
    >>> t = pd.date_range("2024-01-01", periods=200, freq="h")
    >>> act = pd.Series(np.r_[np.ones(199), 50.0], index=t)
    >>> clip_peaks(ax, pd.DataFrame({"har": np.ones(200)}, index=t), act), round(float(ax.get_ylim()[1]), 2)
    ('▲ 1 value above the top, up to 50', 1.08)
    """
    f = forecasts.to_numpy(dtype="float64").ravel()
    a = actual.to_numpy(dtype="float64")
    f, a = f[np.isfinite(f)], a[np.isfinite(a)]
    if not len(f) or not len(a):
        return None
    top = 1.08 * max(float(np.quantile(f, 0.995)), float(np.quantile(a, 0.99)))
    peak = max(float(f.max()), float(a.max()))
    if not top > 0 or peak <= CLIP * top:
        return None
    ax.set_ylim(top=top)
    high = actual[actual > top]
    ax.plot(high.index, np.full(len(high), 0.985 * top), ls="none", marker="^", ms=5, color="black", zorder=4)
    n = int((f > top).sum() + len(high))
    note = f"▲ {n} value{'s' if n > 1 else ''} above the top, up to {peak:.3g}"
    ax.text(0.005, 0.97, note, transform=ax.transAxes, va="top", fontsize=8, color="#333")
    return note


def mark_retrains(ax, times: pd.DatetimeIndex, shown_index: pd.Index) -> str:
    """Mark the retrain ``times`` that fall in the panel (dotted lines, or ticks along the top edge when
    there are many); return the words the title uses for them."""
    shown = times[(times >= shown_index[0]) & (times <= shown_index[-1])] if len(shown_index) else times[:0]
    if len(shown) > 12:  # many retrains: ticks along the top edge instead of lines across the data
        ax.plot(
            shown,
            np.ones(len(shown)),
            ls="none",
            marker="|",
            ms=9,
            color="grey",
            transform=ax.get_xaxis_transform(),
            clip_on=False,
        )
        return "ticks on top: retrains"
    for t in shown:
        ax.axvline(t, color="grey", lw=0.7, ls=":", alpha=0.8)
    return "dotted: retrains"


OFF_SCALE = 2.0  # a curve whose typical level is this many times the curves' typical level is drawn off scale


def focus(ax, curves: dict[str, np.ndarray], styles: dict[str, dict], also: tuple[np.ndarray, ...] = ()) -> list[str]:
    """Fit ``ax``'s y-range to the strategies that matter. A curve whose median is more than
    :data:`OFF_SCALE` times the median of all curves' medians (a baseline far worse than the rest, such as
    naive's QLIKE) would flatten every other line: the range then covers only the rest (and ``also``, e.g.
    the realized volatility), the outlier runs off the top, and its legend entry says so. Returns the names
    drawn off scale.

    >>> from matplotlib.figure import Figure
    >>> ax = Figure().subplots()
    >>> curves = {"a": np.array([1.0, 1.2]), "b": np.array([1.1, 0.9]), "naive": np.array([9.0, 30.0])}
    >>> st = {n: {"label": n} for n in curves}
    >>> for n, v in curves.items(): _ = ax.plot(v, label=n)
    >>> focus(ax, curves, st), [round(float(y), 3) for y in ax.get_ylim()], ax.get_lines()[2].get_label()
    (['naive'], [0.885, 1.215], 'naive (off scale: 9 to 30)')
    """
    finite = {n: np.asarray(v, "float64") for n, v in curves.items()}
    finite = {n: v[np.isfinite(v)] for n, v in finite.items()}
    finite = {n: v for n, v in finite.items() if len(v)}
    if len(finite) < 3:
        return []
    levels = {n: float(np.median(np.abs(v))) for n, v in finite.items()}
    typical = float(np.median(list(levels.values())))
    off = [n for n, level in levels.items() if typical > 0 and level > OFF_SCALE * typical]
    if not off:
        return []
    kept = [v for n, v in finite.items() if n not in off] + [np.asarray(a)[np.isfinite(a)] for a in also]
    values = np.concatenate(kept)
    lo, hi = float(values.min()), float(values.max())
    pad = 0.05 * (hi - lo or abs(hi) or 1.0)
    ax.set_ylim(lo - pad, hi + pad)
    labels = {styles[n]["label"]: n for n in off if n in styles}
    for line in ax.get_lines():
        name = labels.get(line.get_label())
        if name is not None:
            v = finite[name]
            line.set_label(f"{line.get_label()} (off scale: {v.min():.3g} to {v.max():.3g})")
    return off


def plot_error_by_horizon(metric_rows: pd.DataFrame, path, styles: dict[str, dict] | None = None) -> None:
    """MSE and QLIKE against horizon, one line per strategy."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.5))
    axes = fig.subplots(1, 2)
    styles = styled(styles, metric_rows["strategy"].unique())
    curves: dict[str, dict[str, np.ndarray]] = {"mse": {}, "qlike": {}}
    for name, part in metric_rows.groupby("strategy", observed=True):
        axes[0].plot(part["horizon"], part["mse"], marker=".", **styles[str(name)])
        axes[1].plot(part["horizon"], part["qlike"], marker=".", **styles[str(name)])
        for col in curves:
            curves[col][str(name)] = part[col].to_numpy()
    focus(axes[0], curves["mse"], styles)
    focus(axes[1], curves["qlike"], styles)
    axes[0].set_title("MSE of volatility by horizon")
    axes[1].set_title("QLIKE of variance by horizon")
    for ax in axes:
        ax.set_xlabel("horizon (bars)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_loss_by_horizon(
    comparison: pd.DataFrame, loss: str, path: Path, styles: dict[str, dict] | None = None
) -> None:
    """Mean ``loss`` against horizon, one line per strategy (``comparison``: one row per strategy and horizon,
    averaged over assets where there are several)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 5), layout="constrained")
    ax = fig.subplots()
    means = comparison.groupby(["strategy", "horizon"], observed=True)[loss].mean().reset_index()
    styles = styled(styles, means["strategy"].unique())
    for name, part in means.groupby("strategy", observed=True):
        ax.plot(part["horizon"], part[loss], marker=".", ms=4, **styles[str(name)])
    focus(ax, {str(n): g[loss].to_numpy() for n, g in means.groupby("strategy", observed=True)}, styles)
    ax.set_title(f"Mean {loss} by horizon, on the common rows")
    ax.set_xlabel("horizon (bars)")
    ax.set_ylabel(f"mean {loss}")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8, frameon=False)
    fig.savefig(path, dpi=110)


def plot_cost_vs_accuracy(cost: pd.DataFrame, loss: str, path: Path, styles: dict[str, dict] | None = None) -> None:
    """Mean ``loss`` against training seconds (tuning included; log scale), one point per strategy of ``cost``.

    A strategy with no training to speak of (under 0.01 s in all) is a dashed level across the plot, marked
    "no training". Labels sit in a column beside the axes, in the order of their points, joined to them by
    a thin line, so they never overlap; seed members are faint unlabelled points.
    """
    from matplotlib.figure import Figure

    col = f"mean_{loss}"
    cost = cost.assign(total=cost["train_seconds"] + cost.get("tuning_seconds", 0.0)).dropna(subset=[col])
    styles = styled(styles, cost["strategy"])
    fig = Figure(figsize=(11, 5.5))
    ax = fig.subplots()
    fig.subplots_adjust(left=0.08, right=0.66, top=0.9, bottom=0.11)
    trained = cost[cost["total"] >= 0.01]
    flat = cost[cost["total"] < 0.01]
    labels = []  # (y, text, colour, anchor x or None for a level)
    for r in trained.itertuples():
        st = styles[str(r.strategy)]
        member = st["label"] == "_nolegend_"
        ax.scatter(
            [r.total],
            [getattr(r, col)],
            color=st["color"],
            alpha=0.35 if member else 1.0,
            s=14 if member else 40 + 20 * (st["lw"] > 2),
            zorder=st["zorder"],
        )
        if not member:
            fits = getattr(r, "fits", r.retrains)
            labels.append((getattr(r, col), f"{r.strategy} ({fits} fits, {r.total:.1f} s)", st["color"], r.total))
    for r in flat.itertuples():
        st = styles[str(r.strategy)]
        ax.axhline(getattr(r, col), color=st["color"], ls="--", lw=1.0, alpha=0.8)
        labels.append((getattr(r, col), f"{r.strategy} (no training)", st["color"], None))
    ax.set_xscale("log")
    if len(trained):
        lo, hi = trained["total"].min(), trained["total"].max()
        ax.set_xlim(lo / 2, hi * 2)
    else:
        ax.set_xlim(0.01, 1)
    ys = cost[col].to_numpy()
    pad = 0.08 * (ys.max() - ys.min()) if len(ys) and ys.max() > ys.min() else 0.05 * max(abs(ys.max()), 1e-9)
    ax.set_ylim(ys.min() - pad, ys.max() + pad)
    _label_column(ax, labels)
    ax.set_title(f"Accuracy against training cost (lower {loss} is better; dashed: no training)")
    ax.set_xlabel("seconds of training and tuning, all retrains (log scale)")
    ax.set_ylabel(f"mean {loss}")
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=110)


def spread_positions(ys: list[float], gap: float) -> list[float]:
    """Positions in [0, 1] for labels wanted at ``ys`` (axes fractions): in the same order, at least ``gap``
    apart (less if they cannot all fit), each as near its point as that allows.

    >>> [round(p, 2) for p in spread_positions([0.5, 0.5, 0.51], 0.05)]
    [0.5, 0.55, 0.6]
    >>> [round(p, 2) for p in spread_positions([0.99, 1.0], 0.05)]
    [0.95, 1.0]
    """
    if not ys:
        return []
    gap = min(gap, 1.0 / max(len(ys) - 1, 1))
    order = np.argsort(ys, kind="stable")
    pos = [float(min(max(ys[i], 0.0), 1.0)) for i in order]
    for k in range(1, len(pos)):
        pos[k] = max(pos[k], pos[k - 1] + gap)
    pos[-1] = min(pos[-1], 1.0)
    for k in range(len(pos) - 2, -1, -1):
        pos[k] = min(pos[k], pos[k + 1] - gap)
    out = [0.0] * len(ys)
    for k, i in enumerate(order):
        out[i] = pos[k]
    return out


def _label_column(ax, labels: list[tuple]) -> None:
    """Each label in a column right of the axes, joined to its point (or to the right end of its level)."""
    if not labels:
        return
    to_axes = ax.transAxes.inverted()
    right = ax.get_xlim()[1]
    fracs = [float(to_axes.transform(ax.transData.transform((right, y)))[1]) for y, *_ in labels]
    for (y, text, colour, x), p in zip(labels, spread_positions(fracs, 0.055)):
        ax.annotate(
            text,
            xy=(x if x is not None else right, y),
            xycoords="data",
            xytext=(1.03, p),
            textcoords="axes fraction",
            va="center",
            fontsize=8,
            color=colour,
            annotation_clip=False,
            arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.6, "alpha": 0.7, "shrinkA": 0, "shrinkB": 3},
        )


def plot_pooled_differentials(
    means: pd.DataFrame, tests: pd.DataFrame, loss: str, benchmark: str | None, path: Path
) -> bool:
    """Per horizon, each asset's mean loss differential against the benchmark (dots) and their pooled
    mean with the pooled DM test's verdict (line; filled where p < 0.05); one panel per strategy.
    ``means``: each strategy's (columns) mean loss per (asset, horizon). Seed members are left out. Returns
    False (and draws nothing) without a benchmark."""
    from matplotlib.figure import Figure

    means = means[[c for c in means.columns if not seed_rows(pd.Series([c])).iloc[0]]]
    if benchmark is None or benchmark not in means:
        return False
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
