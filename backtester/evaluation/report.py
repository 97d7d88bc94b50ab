"""The run report: the headline answer, the figures, and one self-contained ``report.html``.

:func:`headline` says which strategy wins at which horizon, whether that is
significant (DM against the benchmark, the MCS) and what it costs.
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

from .plots import plot_cost_vs_accuracy

FIGURES = {
    "forecast_vs_actual.png": "Forecasts against realized volatility (retrains dotted)",
    "error_by_horizon.png": "Loss by horizon",
    "rolling_loss.png": "Rolling loss over time",
    "cumulative_loss_difference.png": "Cumulative loss difference against the benchmark",
    "loss_by_segment.png": "Loss per retrain segment",
    "loss_by_hour.png": "Loss by hour of day",
    "cost_vs_accuracy.png": "Accuracy against training cost",
}


def headline(scores: pd.DataFrame, tests: pd.DataFrame, cost: pd.DataFrame, loss: str, benchmark: str | None) -> list[str]:
    """A few sentences that answer the run's question, for the top of the report.

    Seed members (``lstm#2``) are left out: one seed is one draw, their mean forecast speaks for them.
    """
    if loss not in scores:
        loss_col = "qlike"
    else:
        loss_col = loss
    scores = scores[~scores["strategy"].astype(str).str.contains("#")]  # seed members are draws: judge their ensemble
    tests = tests[~tests["model"].astype(str).str.contains("#") & ~tests["against"].astype(str).str.contains("#")]
    wide = scores.pivot(index="horizon", columns="strategy", values=loss_col)
    overall = wide.mean().sort_values()
    best = str(overall.index[0])
    out = [f"- **Best overall: `{best}`** (mean {loss_col} over horizons {overall.iloc[0]:.4f}; "
           f"next `{overall.index[1]}` {overall.iloc[1]:.4f})." if len(overall) > 1 else f"- Only strategy: `{best}`."]
    winners = wide.idxmin(axis=1)
    spans = []
    for name, group in winners.groupby(winners, sort=False):
        hs = list(group.index)
        spans.append(f"`{name}` at h={_ranges(hs)}")
    out.append(f"- Lowest {loss_col} by horizon: " + "; ".join(spans) + ".")
    dm = tests[(tests["test"] == "dm") & (tests["horizon"] == 0) & (tests["against"] == benchmark)] if benchmark else tests.iloc[:0]
    if len(dm):
        better = dm[(dm["statistic"] < 0) & (dm["pvalue"] < 0.05)]["model"].tolist()
        worse = dm[(dm["statistic"] > 0) & (dm["pvalue"] < 0.05)]["model"].tolist()
        out.append(f"- Against `{benchmark}` (DM on the horizon-averaged {loss}, 5 %): significantly better: "
                   f"{', '.join(f'`{m}`' for m in better) or 'none'}; significantly worse: "
                   f"{', '.join(f'`{m}`' for m in worse) or 'none'}.")
    mcs = tests[(tests["test"] == "mcs") & (tests["size"] == 0.10)]
    if len(mcs) and mcs["in_set"].notna().any():
        inside = mcs[mcs["in_set"] == True]["model"].tolist()  # noqa: E712 - object column
        out.append(f"- 90 % model confidence set: {', '.join(f'`{m}`' for m in inside)}.")
    if len(cost) and "train_seconds" in cost:
        c = cost.set_index("strategy")
        if best in c.index:
            out.append(f"- Cost of `{best}`: {c.loc[best, 'retrains']} retrains, {c.loc[best, 'train_seconds']:.1f} s of training.")
    return out


def _ranges(hs: list[int]) -> str:
    """[1, 2, 3, 7] -> '1-3, 7'."""
    parts, start = [], hs[0]
    for a, b in zip(hs, hs[1:] + [None]):
        if b != a + 1:
            parts.append(f"{start}" if start == a else f"{start}-{a}")
            start = b
    return ", ".join(parts)


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


def write_figures(run_dir: Path, loss: str, benchmark: str | None) -> list[str]:
    """Draw the evaluation figures of a finished run from its Parquet files; return their names."""
    run_dir = Path(run_dir)
    losses = pd.read_parquet(run_dir / "losses.parquet")
    t = losses[losses["loss"] == loss]
    if t.empty:
        return []
    made = []
    per_time = t.groupby(["target_time", "strategy"], observed=True)["value"].mean().unstack("strategy")

    fig, ax = _figure()
    for name in per_time:
        ax.plot(per_time.index, per_time[name].rolling("7D", min_periods=24).mean(), lw=1.2, label=name)
    _dates(ax)
    _finish(fig, ax, f"Rolling 7-day mean {loss} (all horizons); lower is better", loss, run_dir / "rolling_loss.png", made)

    if benchmark is not None and benchmark in per_time:
        fig, ax = _figure()
        both = per_time.dropna()
        for name in both:
            if name != benchmark:
                ax.plot(both.index, (both[name] - both[benchmark]).cumsum(), lw=1.2, label=name)
        ax.axhline(0, color="black", lw=0.8)
        _dates(ax)
        _finish(fig, ax, f"Cumulative {loss} difference against {benchmark}: falling = beating it, rising = losing to it",
                f"cumulative {loss} - {benchmark}", run_dir / "cumulative_loss_difference.png", made)

    retrains = pd.read_parquet(run_dir / "retrains.parquet")
    seg = t.groupby(["strategy", "model_version"], observed=True)["value"].mean().reset_index()
    ok = retrains[retrains["status"] == "ok"]
    when = dict(zip(zip(ok["strategy"].astype(str), ok["model_version"]), ok["retrain_time"]))
    # a seed ensemble's segments are those of its first member
    seg["retrain_time"] = [when.get((s, v), when.get((f"{s}#1", v))) for s, v in zip(seg["strategy"].astype(str),
                                                                                  seg["model_version"])]
    seg = seg.dropna(subset=["retrain_time"])
    end = pd.Timestamp(t["target_time"].max())
    fig, ax = _figure()
    for name, part in seg.groupby("strategy", observed=True):
        x = list(part["retrain_time"]) + [end]  # the last segment runs to the end of the test period
        y = list(part["value"]) + [part["value"].iloc[-1]]
        ax.step(x, y, where="post", label=str(name))
        ax.plot(part["retrain_time"], part["value"], "o", ms=3, color=ax.lines[-1].get_color())
    _dates(ax)
    _finish(fig, ax, f"Mean {loss} of each retrain segment (from its retrain to the next)", f"mean {loss}",
            run_dir / "loss_by_segment.png", made)

    hours = t.assign(hour=pd.DatetimeIndex(t["target_time"]).hour).groupby(["hour", "strategy"], observed=True)["value"].mean()
    fig, ax = _figure()
    for name, part in hours.groupby(level="strategy"):
        ax.plot(part.index.get_level_values("hour"), part.to_numpy(), marker=".", label=str(name))
    ax.set_xlabel("hour of day (UTC)")
    ax.set_xticks(range(0, 24, 2))
    _finish(fig, ax, f"Mean {loss} by hour of day of the target bar (UTC)", f"mean {loss}", run_dir / "loss_by_hour.png",
            made)

    cost_path = run_dir / "cost.parquet"
    if cost_path.is_file():
        plot_cost_vs_accuracy(pd.read_parquet(cost_path), loss, run_dir / "cost_vs_accuracy.png")
        made.append("cost_vs_accuracy.png")
    return made


# --------------------------------------------------------------------------- HTML


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def md_to_html(md: str) -> str:
    """The Markdown subset our reports use: headings, bullet lists, pipe tables, paragraphs."""
    out, table, items = [], [], []

    def flush():
        if table:
            rows = [r for r in table if not re.fullmatch(r"\|?[-|: ]+\|?", r)]
            cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
            head = "<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in cells[0]) + "</tr>"
            body = ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in cells[1:]]
            out.append("<table>" + "\n".join([head] + body) + "</table>")
            table.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        if line.startswith("- "):
            items.append(line[2:])
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
    for name, caption in (figures or FIGURES).items():
        path = run_dir / name
        if path.is_file():
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            body.append(f'<figure><figcaption>{html.escape(caption)}</figcaption>'
                        f'<img alt="{html.escape(caption)}" src="data:image/png;base64,{data}"></figure>')
    title = md.splitlines()[0].lstrip("# ").replace("`", "") if md else "report"
    page = (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    out = run_dir / "report.html"
    out.write_text(page)
    return out
