"""A universe's ``report.md``: the answer across assets (wins, the pooled DM test, the seeds), the pooled
tests, then each asset's own report (:func:`backtester.evaluation.markdown.run_report`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from ..core.names import is_seed_member
from .answer import answer_lines, pairs_table
from .markdown import PLOTS, fmt_p
from .profiles import profiles_of
from .verdict import Answer, LossSummary, seed_rows
from .worth_report import focus_of, p_of, pct, target_sentence, value

if TYPE_CHECKING:
    from ..assets import AssetRun
    from ..config import RunConfig


def universe_report(
    cfg: RunConfig, runs: list[AssetRun], tables: dict[str, pd.DataFrame], summary: LossSummary, sections: list[str]
) -> str:
    """``report.md`` of a universe: the answer across assets first (wins, pooled DM, the MCS on the
    cross-sectional average loss, cost), the pooled tests, then each asset's own report (``sections``: each
    asset's :func:`~.markdown.run_report`, in the order of ``runs``). ``summary``: the answer's sums over
    the assets (:class:`~.verdict.LossSummary`)."""
    ev = cfg.evaluation
    retrains, tests = tables["retrains"], tables["tests"]
    ans = Answer(summary, tests, tables["cost"], ev.loss, retrains)  # pooled tests across assets
    profiles = profiles_of(cfg)
    words, pairs = answer_lines(ans, ev.benchmark, profiles), pairs_table(ans, ev.benchmark, profiles)
    lines = [
        f"# Backtest `{cfg.name}`",
        "",
        f"- universe: {len(runs)} assets, horizons 1..{runs[0].plan.horizon}",
        *[
            f"- `{r.asset.label}`: `{r.cfg.data.path}` — {r.prepared.describe()}; test period "
            f"{r.plan.issue_times[0]} .. {r.plan.issue_times[-1]}"
            for r in runs
        ],
        f"- failed retrains: {int((retrains['status'] != 'ok').sum())}",
        "",
        "## The answer, across assets",
        "",
        *words,
        *across_assets_lines(tables, ev.loss, ev.benchmark, len(runs), said=bool(words)),
    ]
    lines += pairs + pooled_lines(cfg, tests) + universe_worth_lines(cfg, tables)
    for r, section in zip(runs, sections):
        part = section.splitlines()
        part = [line for line in part if not line.startswith("Plots: ")]
        part[0] = f"## Asset `{r.asset.label}`"
        lines += [""] + [("#" + line) if line.startswith("## ") else line for line in part]
    lines += [
        "",
        PLOTS.replace("`forecast_vs_actual.png`", "`forecast_vs_actual_<asset>.png`").replace(
            "all in", "`pooled_differentials.png`; all in"
        ),
        "",
    ]
    return "\n".join(lines)


def across_assets_lines(
    tables: dict[str, pd.DataFrame], loss: str, benchmark: str | None, assets: int, said: bool = False
) -> list[str]:
    """The headline of a universe: per strategy against the benchmark, on how many assets it has the lower
    loss (and significantly, by DM), and the pooled DM test, at h=1 and over all horizons (``said``: the
    answer's words above name the lowest loss already)."""
    tests, wins = tables["tests"], tables.get("wins")
    out = []
    per = tables["metrics"][~seed_rows(tables["metrics"]["strategy"])]
    avg = per.groupby(["asset", "strategy"], observed=True)[loss].mean().groupby(level="strategy").mean().sort_values()
    if len(avg) and not said:
        out.append(
            f"- **Lowest {loss} averaged over assets and horizons: `{avg.index[0]}`** ({avg.iloc[0]:.4f}"
            + (f"; next `{avg.index[1]}` {avg.iloc[1]:.4f})." if len(avg) > 1 else ").")
        )
    if benchmark is None or wins is None or not len(wins):
        return out + ["- No benchmark: pairwise pooled tests only (below)."]
    pooled = tests[(tests["test"] == "pooled_dm") & (tests["against"] == benchmark)]
    cluster = tests[(tests["test"] == "cluster_dm") & (tests["against"] == benchmark)]
    w = wins[(wins["against"] == benchmark) & (wins["loss"] == loss) & ~seed_rows(wins["model"])]
    for model in sorted(w["model"].unique()):
        said = []
        for h, what in ((1, "at h = 1"), (0, "over all horizons")):
            row = w[(w["model"] == model) & (w["horizon"] == h)]
            if not len(row):
                continue
            row = row.iloc[0]
            p = pooled[(pooled["model"] == model) & (pooled["horizon"] == h)]
            c = cluster[(cluster["model"] == model) & (cluster["horizon"] == h)]
            stat = p["statistic"].iloc[0] if len(p) else float("nan")
            verdict = (
                f"pooled DM {stat:+.2f} ({'lower' if stat < 0 else 'higher'} loss), p = {p['pvalue'].iloc[0]:.3g}"
                if pd.notna(stat)
                else "pooled DM not computed"
            )
            if len(c) and pd.notna(c["pvalue"].iloc[0]):
                verdict += f"; time-clustered p = {c['pvalue'].iloc[0]:.3g}"
            said.append(
                f"{what} it beats `{benchmark}` on {int(row['wins'])} of {int(row['assets'])} assets "
                f"({int(row['significant_wins'])} significantly; {verdict})"
            )
        if said:
            out.append(f"- `{model}`: " + "; ".join(said) + ".")
    mcs = tests[(tests["test"] == "mcs") & (tests["asset"] == "all") & (tests["size"] == 0.10)]
    if len(mcs) and mcs["in_set"].notna().any():
        inside = mcs[mcs["in_set"] == True]["model"].tolist()  # noqa: E712 - object column
        out.append(
            f"- 90 % model confidence set on the cross-sectional average loss: {', '.join(f'`{m}`' for m in inside)}."
        )
    out += across_assets_seeds(tables.get("seeds"), loss, benchmark)
    cost = tables["cost"].groupby("strategy", sort=False)["train_seconds"].sum()
    if len(cost):
        out.append(
            "- Training cost over all assets: "
            + ", ".join(f"`{k}` {v:.1f} s" for k, v in cost.items() if not is_seed_member(k))
            + "."
        )
    return out


def across_assets_seeds(seeds: pd.DataFrame | None, loss: str, benchmark: str | None) -> list[str]:
    """Per seed ensemble of a universe: the most seeds any asset's gap to the benchmark needs, and where.

    >>> s = pd.DataFrame({"asset": ["btc", "eth"], "strategy": "lstm", "loss": "qlike", "seeds": 3,
    ...                   "gap": [-0.1, -0.01], "seeds_needed": [1, 12]})
    >>> across_assets_seeds(s, "qlike", "har")
    ['- Seeds: `lstm` ran with 3; its gap to `har` needs about 12 on `eth` (the most of any asset): **too few** there.']
    """
    if seeds is None or not len(seeds) or "seeds_needed" not in seeds:
        return []
    out = []
    rows = seeds[(seeds["loss"] == loss) & seeds["seeds_needed"].notna()]
    for name, part in rows.groupby("strategy", sort=True):
        worst = part.loc[part["seeds_needed"].idxmax()]
        need, ran = int(worst["seeds_needed"]), int(worst["seeds"])
        verdict = "enough everywhere" if need <= ran else "**too few** there"
        shown = f"about {need}" if need <= 100 else "more than 100"
        out.append(
            f"- Seeds: `{name}` ran with {ran}; its gap to `{benchmark}` needs {shown} on `{worst['asset']}` "
            f"(the most of any asset): {verdict}."
        )
    return out


def pooled_lines(cfg: RunConfig, tests: pd.DataFrame) -> list[str]:
    """Section: the pooled (Qu–Timmermann–Zhu) and time-clustered DM tests, every pair, all horizons and h=1."""
    ev = cfg.evaluation
    pooled = tests[tests["test"].isin(["pooled_dm", "cluster_dm"])]
    if not len(pooled):
        return []
    out = [
        "",
        f"## Pooled tests across assets ({ev.loss}; the loss differential averaged over assets at each "
        "time, HAC variance, robust to any dependence across assets; time-clustered: block means, "
        "Student t; negative = the model's loss is lower)",
        "",
        "| model | against | horizon | pooled DM | p | clustered p | assets | mean difference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    wide = pooled.pivot_table(
        index=["model", "against", "horizon"],
        columns="test",
        values=["statistic", "pvalue", "mean_diff", "assets"],
        aggfunc="first",
    )
    for (model, against, h), r in wide.iterrows():
        if h not in (0, 1) or is_seed_member(model) or is_seed_member(against):
            continue
        stat = r.get(("statistic", "pooled_dm"))
        cells = [
            f"{stat:+.2f}" if pd.notna(stat) else "–",
            fmt_p(r.get(("pvalue", "pooled_dm"))),
            fmt_p(r.get(("pvalue", "cluster_dm"))),
            f"{r.get(('assets', 'pooled_dm'), float('nan')):.0f}",
            f"{r.get(('mean_diff', 'pooled_dm'), float('nan')):+.4g}",
        ]
        out.append(f"| {model} | {against} | {'all' if h == 0 else h} | " + " | ".join(cells) + " |")
    return out


def universe_worth_lines(cfg: RunConfig, tables: dict[str, pd.DataFrame]) -> list[str]:
    """ "What it is worth, across assets": the equal-risk portfolio, the pooled DM tests of the economic losses,
    and each asset's figures for the strategies the words are about and the benchmark."""
    eco, tests = tables.get("economic"), tables["tests"]
    if eco is None or not (eco["section"] == "portfolio").any():
        return []
    e, bench = cfg.evaluation.economic, cfg.evaluation.benchmark
    focus = focus_of(cfg)
    assets = eco.loc[eco["section"] == "portfolio", "key"].iloc[0]
    lines = [
        "",
        "## What it is worth, across assets",
        "",
        f"The equal-risk portfolio ({assets}, each asset's position sized to a {pct(e.target_vol, 0)} volatility "
        f"target from its own forecast, capped at {e.max_leverage:g}x, {e.cost_bp:g} bp per unit traded, averaged; "
        "the average is less volatile than the target where the assets do not move together):",
        "",
    ]
    pooled = tests[(tests["asset"] == "all") & (tests["test"] == "pooled_dm_economic") & (tests["horizon"] == 1)]
    for name in focus:
        if value(eco, "portfolio", name, "realized_vol") == value(eco, "portfolio", name, "realized_vol"):
            lines.append(f"- {target_sentence(eco, tests, name, bench, section='portfolio')}.")
        else:
            lines.append(f"- `{name}` does not run on every asset: it has no portfolio of them all (per asset below).")
        for loss, what in (
            ("utility", "realized utility's shortfall"),
            ("fz0", f"FZ0 of the {pct(e.levels[0], 0)} VaR and ES"),
        ):
            r = pooled[(pooled["model"] == name) & (pooled["loss"] == loss)]
            if len(r):
                side = "lower (better)" if r["mean_diff"].iloc[0] < 0 else "higher (worse)"
                lines.append(
                    f"  - pooled over assets, its {what} is {side} than `{bench}`'s (pooled DM p = {fmt_p(r['pvalue'].iloc[0])})."
                )
    lines += ["", *asset_worth_table(eco, tests, [*focus, *([bench] if bench and bench not in focus else [])], e)]
    return lines


def asset_worth_table(eco: pd.DataFrame, tests: pd.DataFrame, names: list[str], e) -> list[str]:
    level, dist = e.levels[0], e.dist[0]
    out = [
        f"| asset | strategy | realized vol | Sharpe | utility | {pct(level, 0)} VaR hits | Kupiec p | CC p | zone | ES Z2 p |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for asset in sorted(a for a in eco["asset"].unique() if a != "all"):
        ea, ta = eco[eco["asset"] == asset], tests[tests["asset"] == asset]
        for s in names:
            if not ((ea["strategy"] == s) & (ea["section"] == "target")).any():
                continue  # not run on this asset
            k = ta[(ta["test"] == "var_kupiec") & (ta["model"] == s) & (ta["horizon"] == 1) & (ta["dist"] == dist)]
            k = k[k["level"].astype(float).sub(level).abs() < 1e-12]
            out.append(
                f"| {asset} | {s} | {pct(value(ea, 'target', s, 'realized_vol'))} | {value(ea, 'target', s, 'sharpe'):.2f} | "
                f"{value(ea, 'utility', s, 'utility'):.2f} % | "
                f"{pct(value(ea, 'risk', s, 'exceeded', level=level, dist=dist, horizon=1), 2)} | "
                f"{fmt_p(k['pvalue'].iloc[0]) if len(k) else 'n/a'} | "
                f"{fmt_p(p_of(ta, 'var_cc', s, level=level, dist=dist, horizon=1))} | {k['note'].iloc[0] if len(k) else ''} | "
                f"{fmt_p(p_of(ta, 'es_z2', s, level=level, dist=dist, horizon=1))} |"
            )
    return out
