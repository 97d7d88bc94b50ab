"""The run report's figures and one self-contained ``report.html`` (its Markdown: :mod:`.markdown`).

:func:`write_figures` draws the evaluation plots from a run's Parquet files and
:func:`write_html` turns ``report.md`` plus every PNG of the run into one HTML
page with the images embedded (base64), so it opens anywhere with no network.

Examples
--------
>>> md_to_html("# T\\n\\n| a | b |\\n|---|---|\\n| 1 | **2** |")
'<h1>T</h1>\\n<table><tr><th>a</th><th>b</th></tr>\\n<tr><td>1</td><td><b>2</b></td></tr></table>'
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..layout import COST, FORECASTS, RETRAINS, RunDir
from .losses import loss_table
from .plots import focus, plot_cost_vs_accuracy, plot_pooled_differentials, strategy_styles

FIGURES = {
    "forecast_vs_actual.png": "Forecasts against realized volatility (retrains dotted)",
    "error_by_horizon.png": "Loss by horizon",
    "rolling_loss.png": "Rolling loss over time",
    "cumulative_loss_difference.png": "Cumulative loss difference against the benchmark",
    "loss_by_segment.png": "Loss per retrain segment",
    "loss_by_hour.png": "Loss by hour of day",
    "cost_vs_accuracy.png": "Accuracy against training cost",
    "var_exceedances.png": "VaR from each forecast and its exceedances",
    "target_vol.png": "Realized volatility of the volatility-targeted positions against the target",
    "equity.png": "Equity of the volatility-targeted positions, net of costs",
    "when.png": "When the model beats the benchmark: by volatility regime and hour of day",
}
UNIVERSE_FIGURES = {
    "pooled_differentials.png": "Loss differentials against the benchmark: each asset and the pooled mean"
}


# --------------------------------------------------------------------------- figures


def _figure(w: float = 11, h: float = 4.5):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h))
    return fig, fig.subplots()


def _dates(ax) -> None:
    """Readable date ticks (no overlapping labels)."""
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _finish(fig, ax, title: str, ylabel: str, path: Path, made: list[str]) -> None:
    """Title, label, grid and legend, then save the figure and note its name."""
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    made.append(path.name)


class LossViews:
    """What the loss figures are drawn from, as sums over a run's rows read a part (an asset) at a time: per
    (target time, strategy), per (hour, strategy), per (asset, strategy, model version) with each asset's last
    target time, and per (asset, horizon, strategy); :meth:`mean` turns a view's sums into means.

    >>> t = pd.DataFrame({"asset": ["a", "a", "b"], "strategy": "x", "horizon": 1, "model_version": 1,
    ...                   "target_time": pd.to_datetime(["2024-01-01 01:00"] * 3, utc=True), "value": [1.0, 2.0, 6.0]})
    >>> v = LossViews(); v.add(t.iloc[:2]); v.add(t.iloc[2:])
    >>> v.mean("time")["x"].tolist(), v.mean("cells")["x"].tolist()
    ([3.0], [1.5, 6.0])
    """

    KEYS = {
        "time": ["target_time"],
        "hour": ["hour"],
        "segment": ["asset", "strategy", "model_version"],
        "cells": ["asset", "horizon"],
    }

    def __init__(self):
        self.sums: dict[str, pd.DataFrame] = {}
        self.ends: dict[str, pd.Timestamp] = {}  # asset -> its last target time

    def add(self, t: pd.DataFrame) -> None:
        """Loss rows (``strategy, target_time, horizon, model_version, value``, ``asset`` if any)."""
        if not len(t):
            return
        t = t.assign(hour=pd.DatetimeIndex(t["target_time"]).hour, asset=t["asset"].astype(str) if "asset" in t else "")
        t["strategy"] = t["strategy"].astype(str)
        for view, keys in self.KEYS.items():
            cols = keys if view == "segment" else [*keys, "strategy"]
            g = t.groupby(cols, observed=True)["value"].agg(["sum", "count"])
            if view != "segment":
                g = g.unstack("strategy")
            self.sums[view] = g if view not in self.sums else self.sums[view].add(g, fill_value=0)
        for asset, end in t.groupby("asset")["target_time"].max().items():
            self.ends[asset] = max(end, self.ends.get(asset, end))

    def mean(self, view: str) -> pd.DataFrame:
        """The view's mean loss (rows: its keys; columns: strategies, but for ``segment``: ``value``)."""
        g = self.sums[view].sort_index()
        if view == "segment":
            return (g["sum"] / g["count"]).rename("value").to_frame()
        return g["sum"] / g["count"].where(g["count"] > 0)

    @property
    def assets(self) -> list[str]:
        return sorted(self.ends)


def loss_views(run_dir: Path, loss: str) -> LossViews:
    """The run's :class:`LossViews` of ``loss``, from ``forecasts.parquet`` one row group (at most an asset's
    rows) at a time (the loss table is not stored: it is rebuilt from the rows)."""
    views = LossViews()
    for part in RunDir(run_dir).table_parts(FORECASTS):
        views.add(loss_table(part, (loss,)))
    return views


def write_figures(run_dir: Path, loss: str, benchmark: str | None) -> list[str]:
    """Draw the evaluation figures of a finished run from its Parquet files; return their names. In a
    universe the losses over time are the cross-sectional average (each time's mean over the assets
    scored then), the cost is summed over assets, and the segments are the first asset's."""
    run_dir = Path(run_dir)
    views = loss_views(run_dir, loss)
    if not views.sums:
        return []
    made: list[str] = []
    per_time = views.mean("time")
    styles = strategy_styles(sorted(str(c) for c in per_time.columns))  # one colour per strategy in every figure
    _rolling_loss(per_time, loss, run_dir, made, styles)
    if benchmark is not None and benchmark in per_time:
        _cumulative_difference(per_time, loss, benchmark, run_dir, made, styles)
    retrains = RunDir(run_dir).read_table(RETRAINS)
    first = views.assets[0]
    seg = views.mean("segment").loc[first].reset_index()
    several = len(views.assets) > 1
    if several:
        retrains = retrains[retrains["asset"] == first]
    _loss_by_segment(seg, views.ends[first], retrains, loss, run_dir, made, styles, f" ({first})" if several else "")
    _loss_by_hour(views.mean("hour"), loss, run_dir, made, styles)
    cost_path = RunDir(run_dir).file(COST)
    if cost_path.is_file():
        cost = pd.read_parquet(cost_path)
        if "asset" in cost and cost["asset"].nunique() > 1:
            cost = (
                cost.assign(tuning_seconds=cost.get("tuning_seconds", 0.0), fits=cost.get("fits", cost["retrains"]))
                .groupby("strategy", sort=False)
                .agg(
                    retrains=("retrains", "sum"),
                    fits=("fits", "sum"),
                    train_seconds=("train_seconds", "sum"),
                    tuning_seconds=("tuning_seconds", "sum"),
                    **{f"mean_{loss}": (f"mean_{loss}", "mean")},
                )
                .reset_index()
            )
        plot_cost_vs_accuracy(cost, loss, run_dir / "cost_vs_accuracy.png", styles)
        made.append("cost_vs_accuracy.png")
    tests_path = run_dir / "tests.parquet"
    if several and tests_path.is_file():
        tests = pd.read_parquet(tests_path)
        if plot_pooled_differentials(views.mean("cells"), tests, loss, benchmark, run_dir / "pooled_differentials.png"):
            made.append("pooled_differentials.png")
    return made


def periods(index: pd.DatetimeIndex, gap: pd.Timedelta = pd.Timedelta("30D")) -> list[slice]:
    """The stretches of a sorted time index between gaps longer than ``gap`` (assets with their own test
    periods, years apart), as slices.

    >>> t = pd.DatetimeIndex(["2017-03-01", "2017-03-02", "2023-07-01", "2023-07-02"])
    >>> periods(t)
    [slice(0, 2, None), slice(2, 4, None)]
    """
    if len(index) < 2:
        return [slice(0, len(index))]
    cuts = [int(k) for k in np.flatnonzero(np.diff(index.asi8) > gap.value) + 1]
    return [slice(a, b) for a, b in zip([0] + cuts, cuts + [len(index)])]


def _over_time(frame: pd.DataFrame, draw, title: str, ylabel: str, path: Path, made: list[str]) -> None:
    """One panel per test period of ``frame`` (time x strategy), side by side, widths by length: a universe
    whose assets forecast years apart is not drawn as one long empty axis."""
    from matplotlib.figure import Figure

    parts = [frame.iloc[p] for p in periods(frame.index)]
    widths = [max((f.index[-1] - f.index[0]).total_seconds(), 1.0) if len(f) else 1.0 for f in parts]
    fig = Figure(figsize=(11, 4.5))
    axes = np.atleast_1d(fig.subplots(1, len(parts), sharey=True, gridspec_kw={"width_ratios": widths}))
    for ax, part in zip(axes, parts):
        draw(ax, part)
        _dates(ax)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel)
    fig.suptitle(title)
    handles, labels = axes[0].get_legend_handles_labels()
    axes[0].legend(handles, labels, fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    made.append(path.name)


def _rolling_loss(per_time: pd.DataFrame, loss: str, run_dir: Path, made: list[str], styles: dict) -> None:
    rolled = per_time.rolling("7D", min_periods=24).mean()

    def draw(ax, part):
        for name in part:
            ax.plot(part.index, rolled.loc[part.index, name], **styles[str(name)])
        focus(ax, {str(n): rolled[n].to_numpy() for n in rolled}, styles)  # one scale for every panel

    _over_time(
        per_time,
        draw,
        f"Rolling 7-day mean {loss} (all horizons); lower is better",
        loss,
        run_dir / "rolling_loss.png",
        made,
    )


def _cumulative_difference(
    per_time: pd.DataFrame, loss: str, benchmark: str, run_dir: Path, made: list[str], styles: dict
) -> None:
    diff = per_time.drop(columns=benchmark).sub(per_time[benchmark], axis=0)
    total = diff.fillna(0.0).cumsum().where(diff.notna())  # a strategy that did not run then adds nothing

    def draw(ax, part):
        for name in part:
            ax.plot(part.index, part[name], **styles[str(name)])
        ax.axhline(0, color="black", lw=0.8)

    _over_time(
        total.dropna(how="all"),
        draw,
        f"Cumulative {loss} difference against {benchmark}: falling = beating it, rising = losing to it",
        f"cumulative {loss} - {benchmark}",
        run_dir / "cumulative_loss_difference.png",
        made,
    )


def _loss_by_segment(
    seg: pd.DataFrame,
    end: pd.Timestamp,
    retrains: pd.DataFrame,
    loss: str,
    run_dir: Path,
    made: list[str],
    styles: dict,
    which: str = "",
) -> None:
    """``seg``: each (strategy, model_version)'s mean loss (``value``); ``end``: the last target time."""
    ok = retrains[retrains["status"] == "ok"]
    when = dict(zip(zip(ok["strategy"].astype(str), ok["model_version"]), ok["retrain_time"]))
    # a seed ensemble's segments are those of its first member
    seg["retrain_time"] = [
        when.get((s, v), when.get((f"{s}#1", v))) for s, v in zip(seg["strategy"].astype(str), seg["model_version"])
    ]
    seg = seg.dropna(subset=["retrain_time"])
    end = pd.Timestamp(end)
    fig, ax = _figure()
    for name, part in seg.groupby("strategy", observed=True):
        x = list(part["retrain_time"]) + [end]  # the last segment runs to the end of the test period
        y = list(part["value"]) + [part["value"].iloc[-1]]
        st = styles[str(name)]
        ax.step(x, y, where="post", **st)
        ax.plot(part["retrain_time"], part["value"], "o", ms=3, color=st["color"], alpha=st["alpha"])
    focus(ax, {str(n): g["value"].to_numpy() for n, g in seg.groupby("strategy", observed=True)}, styles)
    _dates(ax)
    _finish(
        fig,
        ax,
        f"Mean {loss} of each retrain segment (from its retrain to the next){which}",
        f"mean {loss}",
        run_dir / "loss_by_segment.png",
        made,
    )


def _loss_by_hour(by_hour: pd.DataFrame, loss: str, run_dir: Path, made: list[str], styles: dict) -> None:
    """``by_hour``: hour x strategy mean loss."""
    hours = (
        by_hour.stack(future_stack=True).dropna().swaplevel().sort_index()
    )  # (strategy, hour), as the groupby had it
    hours.index.names = ["strategy", "hour"]
    fig, ax = _figure()
    for name, part in hours.groupby(level="strategy"):
        ax.plot(part.index.get_level_values("hour"), part.to_numpy(), marker=".", **styles[str(name)])
    focus(ax, {str(n): g.to_numpy() for n, g in hours.groupby(level="strategy")}, styles)
    ax.set_xlabel("hour of day (UTC)")
    ax.set_xticks(range(0, 24, 2))
    _finish(
        fig,
        ax,
        f"Mean {loss} by hour of day of the target bar (UTC)",
        f"mean {loss}",
        run_dir / "loss_by_hour.png",
        made,
    )


# --------------------------------------------------------------------------- HTML


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def _item(text: str, subs: list[str]) -> str:
    inner = "<ul>" + "".join(f"<li>{_inline(t)}</li>" for t in subs) + "</ul>" if subs else ""
    return f"<li>{_inline(text)}{inner}</li>"


def md_to_html(md: str) -> str:
    """The Markdown subset our reports use: headings, bullet lists (one level nested), pipe tables,
    paragraphs.

    >>> md_to_html("- a\\n  - b")
    '<ul><li>a<ul><li>b</li></ul></li></ul>'
    """
    out: list[str] = []
    table: list[str] = []
    items: list[tuple[str, list[str]]] = []

    def flush():
        if table:
            rows = [r for r in table if not re.fullmatch(r"\|?[-|: ]+\|?", r)]
            cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
            head = "<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in cells[0]) + "</tr>"
            body = ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in cells[1:]]
            out.append("<table>" + "\n".join([head] + body) + "</table>")
            table.clear()
        if items:
            out.append("<ul>" + "".join(_item(text, subs) for text, subs in items) + "</ul>")
            items.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        if line.startswith("- "):
            items.append((line[2:], []))
            continue
        if line.startswith("  - ") and items:  # one level of nesting
            items[-1][1].append(line[4:])
            continue
        flush()
        m = re.match(r"(#{1,4}) (.*)", line)
        if m:
            out.append(f"<h{len(m.group(1))}>{_inline(m.group(2))}</h{len(m.group(1))}>")
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    flush()
    return "\n".join(out)


STYLE = """body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1150px;margin:24px auto;padding:0 16px;color:#222}
table{border-collapse:collapse;margin:8px 0 18px;font-size:13px}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}code{background:#f4f4f4;padding:0 3px}
figure{margin:18px 0}figcaption{font-weight:600;margin-bottom:4px}img{max-width:100%;border:1px solid #eee}
h1{border-bottom:2px solid #333}h2{margin-top:28px;border-bottom:1px solid #ddd}"""


def write_html(run_dir: Path, markdown: str = "report.md", figures: dict[str, str] | None = None) -> Path:
    """``report.html``: ``markdown`` as HTML, then every figure of the run embedded."""
    run_dir = Path(run_dir)
    md = (run_dir / markdown).read_text()
    body = [md_to_html(md.replace("Plots: ", "Figures below: "))]
    if figures is None:  # every figure a run can have, a universe's per-asset ones included
        figures = {**FIGURES, **UNIVERSE_FIGURES}
        for path in sorted(run_dir.glob("forecast_vs_actual_*.png")):
            asset = path.stem.removeprefix("forecast_vs_actual_")
            figures[path.name] = f"Forecasts against realized volatility: {asset} (retrains dotted)"
    for name, caption in figures.items():
        path = run_dir / name
        if path.is_file():
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            body.append(
                f"<figure><figcaption>{html.escape(caption)}</figcaption>"
                f'<img alt="{html.escape(caption)}" src="data:image/png;base64,{data}"></figure>'
            )
    title = md.splitlines()[0].lstrip("# ").replace("`", "") if md else "report"
    page = (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    out = run_dir / "report.html"
    out.write_text(page)
    return out
