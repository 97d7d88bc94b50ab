"""The report's "What it is worth" and "The tests referees ask for" sections (issue 29), in words, from the
``economic`` and ``tests`` tables (:mod:`.worth`); the same code for a run, a universe and ``compare``.

Examples
--------
>>> pct(0.1034), pct(0.0076, 2)
('10.3 %', '0.76 %')
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .markdown import fmt_p


def focus_of(cfg) -> list[str]:
    """The strategies the words are about: the learned ones (their seed members aside), else the first that is
    not the benchmark."""
    from .profiles import profiles_of
    from .verdict import is_member

    profiles = profiles_of(cfg)
    learned = [n for n, p in profiles.items() if p.learned and not is_member(n)]
    others = [n for n in profiles if n != cfg.evaluation.benchmark and not is_member(n)]
    return learned or others[:1]


def worth_sections(cfg, eco: pd.DataFrame | None, tests: pd.DataFrame) -> list[str]:
    """Both sections of a run on one asset (none where the run has no economic table)."""
    if eco is None or not len(eco):
        return []
    focus = focus_of(cfg)
    bench = cfg.evaluation.benchmark
    words = worth_lines(cfg.evaluation, cfg.backtest.horizon, eco, tests, focus, bench)
    return words + referee_lines(cfg.evaluation.loss, eco, tests, focus, bench)


def pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f} %" if np.isfinite(x) else "n/a"


def value(eco: pd.DataFrame, section: str, strategy: str, metric: str, **where) -> float:
    """One figure of the ``economic`` table (NaN where it is not there)."""
    m = (eco["section"] == section) & (eco["strategy"] == strategy) & (eco["metric"] == metric)
    for k, v in where.items():
        m &= eco[k] == v if not isinstance(v, float) else np.isclose(eco[k], v)
    got = eco.loc[m, "value"]
    return float(got.iloc[0]) if len(got) else float("nan")


def p_of(tests: pd.DataFrame, test: str, model: str, **where) -> float:
    """One test's p-value (NaN where the test is not there)."""
    row = _row(tests, test, model, **where)
    return float(row["pvalue"]) if row is not None else float("nan")


def _row(tests: pd.DataFrame, test: str, model: str, **where) -> pd.Series | None:
    """The first row of ``test`` for ``model`` where every ``where`` column matches (floats within rounding)."""
    m = (tests["test"] == test) & (tests["model"] == model)
    for k, v in where.items():
        m &= np.isclose(tests[k].astype(float), v) if isinstance(v, float) else tests[k] == v
    got = tests[m]
    return got.iloc[0] if len(got) else None


def target_sentence(
    eco: pd.DataFrame, tests: pd.DataFrame, name: str, bench: str | None, section: str = "target"
) -> str:
    """``name``'s volatility targeting and realized utility, against the benchmark's."""

    def both(metric: str, fmt) -> str:
        mine = fmt(value(eco, section, name, metric))
        if bench is None or bench == name:
            return mine
        return f"{mine} (`{bench}` {fmt(value(eco, section, bench, metric))})"

    text = (
        f"sizing by `{name}` gave {both('realized_vol', pct)} realized volatility, Sharpe "
        f"{both('sharpe', lambda x: f'{x:.2f}')} after costs, turnover {both('turnover', lambda x: f'{x:.0f}x')} "
        f"a year, maximum drawdown {both('max_drawdown', pct)}"
    )
    if section == "target":
        u_mine = value(eco, "utility", name, "utility")
        u_bench = value(eco, "utility", bench, "utility") if bench and bench != name else float("nan")
        u = f"{u_mine:.2f} %" + (f" (`{bench}` {u_bench:.2f} %)" if np.isfinite(u_bench) else "")
        p = p_of(tests, "dm_economic", name, loss="utility", horizon=1)
        text += f"; realized utility {u} a year" + (f" (DM p = {fmt_p(p)})" if np.isfinite(p) else "")
    return text


def var_sentence(eco: pd.DataFrame, tests: pd.DataFrame, name: str, level: float, dist: str, horizon: int) -> str:
    """How often ``name``'s VaR at ``level`` was exceeded and what each backtest says, in one sentence."""
    ex = value(eco, "risk", name, "exceeded", level=level, dist=dist, horizon=1)
    if not np.isfinite(ex):
        return ""
    p = {
        t: p_of(tests, t, name, level=level, dist=dist, horizon=1)
        for t in ("var_kupiec", "var_cc", "var_duration", "var_dq", "es_z2")
    }
    k = _row(tests, "var_kupiec", name, level=level, dist=dist, horizon=1)
    z2 = _row(tests, "es_z2", name, level=level, dist=dist, horizon=1)
    zone = k["note"] if k is not None else "?"
    text = (
        f"its {pct(level, 0)} VaR was exceeded in {pct(ex, 2)} of bars (Kupiec p = {fmt_p(p['var_kupiec'])}, "
        f"conditional coverage p = {fmt_p(p['var_cc'])}, duration p = {fmt_p(p['var_duration'])}, "
        f"DQ p = {fmt_p(p['var_dq'])}; {zone} zone); its ES: Z2 = {z2['statistic'] if z2 is not None else np.nan:+.3f} "
        f"(p = {fmt_p(p['es_z2'])})"
    )
    block = value(eco, "risk", name, "exceeded", level=level, dist=dist, horizon=horizon)
    if horizon > 1 and np.isfinite(block):
        n = value(eco, "risk", name, "n", level=level, dist=dist, horizon=horizon)
        pb = p_of(tests, "var_kupiec", name, level=level, dist=dist, horizon=horizon)
        text += f"; over {horizon}-bar blocks {pct(block, 1)} of {n:.0f} (Kupiec p = {fmt_p(pb)})"
    return text


def worth_lines(
    ev, horizon: int, eco: pd.DataFrame, tests: pd.DataFrame, focus: list[str], bench: str | None
) -> list[str]:
    """The section "What it is worth" of a run on one asset (``ev``: its ``evaluation`` config)."""
    if not len(eco) or not (eco["section"] == "target").any():
        return []
    e = ev.economic
    dist = e.dist[0]
    per_year = value(eco, "target", "", "bars_per_year")
    lines = [
        "",
        "## What it is worth",
        "",
        f"At a {pct(e.target_vol, 0)} volatility target (annualized over {per_year:,.0f} bars a year; the position "
        f"is the target over the forecast, capped at {e.max_leverage:g}x, rebalanced "
        f"{'every bar' if e.rebalance == 1 else f'every {e.rebalance} bars'}, "
        f"{e.cost_bp:g} bp per unit traded), and with VaR and ES from a {describe_dist(eco, dist, focus, e.refit)}:",
        "",
    ]
    for name in focus:
        lines.append(f"- {target_sentence(eco, tests, name, bench)}.")
        for level in e.levels:
            s = var_sentence(eco, tests, name, level, dist, horizon)
            if s:
                lines.append(f"  - {s}.")
        fz = _row(tests, "dm_economic", name, loss="fz0", horizon=1)
        if fz is not None and bench is not None:
            better = "lower (better)" if fz["mean_diff"] < 0 else "higher (worse)"
            lines.append(
                f"  - FZ0 (its {pct(e.levels[0], 0)} VaR and ES scored jointly) is {better} than `{bench}`'s by "
                f"{abs(fz['mean_diff']):.4f} (DM p = {fmt_p(fz['pvalue'])})."
            )
    u_max = e.sharpe**2 / (2 * e.gamma) * 100
    lines += [
        f"- Realized utility (Bollerslev, Hood, Huss & Pedersen 2018): an investor with risk aversion {e.gamma:g} who "
        f"expects a Sharpe ratio of {e.sharpe:g} earns at most {u_max:.2f} % a year, with a perfect forecast.",
        "",
        *worth_table(eco, tests, e, dist),
        "",
        "Figures: `var_exceedances.png`, `target_vol.png`, `equity.png`.",
    ]
    return lines


def describe_dist(eco: pd.DataFrame, dist: str, focus: list[str], refit: int) -> str:
    if dist == "t":
        nu = value(eco, "risk", focus[0], "nu_last", dist="t") if focus else float("nan")
        last = f"; `{focus[0]}`'s last ν = {nu:.1f}" if np.isfinite(nu) else ""
        return f"Student-t (degrees of freedom refitted every {refit} bars on past standardized returns{last})"
    if dist == "fhs":
        return f"filtered historical simulation (past standardized returns, refitted every {refit} bars)"
    return "normal distribution"


def worth_table(eco: pd.DataFrame, tests: pd.DataFrame, e, dist: str) -> list[str]:
    """Every strategy's figures, lowest utility shortfall first."""
    names = [s for s in eco.loc[eco["section"] == "target", "strategy"].unique() if s]
    names.sort(key=lambda s: -np.nan_to_num(value(eco, "utility", s, "utility"), nan=-np.inf))
    level = e.levels[0]
    head = (
        f"| strategy | realized vol | Sharpe | turnover | max drawdown | utility | {pct(level, 0)} VaR hits | "
        "Kupiec p | CC p | zone | ES Z2 p |"
    )
    out = [head, "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in names:
        k = _row(tests, "var_kupiec", s, level=level, dist=dist, horizon=1)
        out.append(
            f"| {s} | {pct(value(eco, 'target', s, 'realized_vol'))} | {value(eco, 'target', s, 'sharpe'):.2f} | "
            f"{value(eco, 'target', s, 'turnover'):.0f}x | {pct(value(eco, 'target', s, 'max_drawdown'))} | "
            f"{value(eco, 'utility', s, 'utility'):.2f} % | {pct(value(eco, 'risk', s, 'exceeded', level=level, dist=dist, horizon=1), 2)} | "
            f"{fmt_p(k['pvalue']) if k is not None else 'n/a'} | "
            f"{fmt_p(p_of(tests, 'var_cc', s, level=level, dist=dist, horizon=1))} | {k['note'] if k is not None else ''} | "
            f"{fmt_p(p_of(tests, 'es_z2', s, level=level, dist=dist, horizon=1))} |"
        )
    return out


def referee_lines(loss: str, eco: pd.DataFrame, tests: pd.DataFrame, focus: list[str], bench: str | None) -> list[str]:
    """The section "The tests referees ask for": GW, Patton's losses, MZ with HAC, and when each model wins."""
    lines = ["", "## The tests referees ask for", ""]
    for name in (f for f in focus if bench is not None and f != bench):
        lines += (
            gw_lines(tests, name, bench, loss)
            + patton_lines(eco, tests, name, bench)
            + when_lines(eco, name, bench, loss)
        )
    lines += ["", *mz_table(tests, [s for s in eco.loc[eco["section"] == "mz", "strategy"].unique()])]
    lines += ["", "Figure: `when.png`."] if (eco["section"] == "when").any() else []
    return lines


def gw_lines(tests: pd.DataFrame, name: str, bench: str, loss: str) -> list[str]:
    """GW at h = 1 (unconditional, conditional) and over every horizon, in one bullet."""
    u = _row(tests, "gw_unconditional", name, horizon=1, against=bench)
    c = _row(tests, "gw_conditional", name, horizon=1, against=bench)
    if u is None or c is None:
        return []
    cond = tests[(tests["test"] == "gw_conditional") & (tests["model"] == name) & (tests["against"] == bench)]
    rejected = int((cond["pvalue"] < 0.05).sum())
    share = c["note"].split("predict ")[-1] if "predict" in str(c["note"]) else ""
    text = (
        f"- **Giacomini–White** ({loss}, `{name}` against `{bench}`): at h = 1 unconditional p = {fmt_p(u['pvalue'])}, "
        f"conditional on the last known differential{' and the volatility regime' if 'regime' in str(c['note']) else ''} "
        f"p = {fmt_p(c['pvalue'])}"
        + (f" (the instruments predict {share.replace(name, f'`{name}`', 1)})" if share else "")
        + f"; equal conditional ability rejected at {rejected} of {len(cond)} horizons (5 %)."
    )
    if "expand" in str(u["note"]):
        text += " Windows expand: GW's theory assumes rolling ones, so read it as a DM test with instruments."
    return [text]


def patton_lines(eco: pd.DataFrame, tests: pd.DataFrame, name: str, bench: str) -> list[str]:
    p = eco[(eco["section"] == "patton") & eco["strategy"].isin([name, bench])]
    if not len(p):
        return []
    parts, sides, ps = [], set(), []
    for b, part in p.groupby("key", sort=False):
        mine = part.loc[part["strategy"] == name, "value"]
        theirs = part.loc[part["strategy"] == bench, "value"]
        if not len(mine) or not len(theirs):
            continue
        pv = p_of(tests, "dm_patton", name, loss=f"patton_b{b}", horizon=0)
        side = "lower" if mine.iloc[0] < theirs.iloc[0] else "higher"
        sides.add(side)
        ps.append(pv)
        parts.append(f"b = {b}: {side} (p = {fmt_p(pv)})")
    if len(sides) == 1:
        verdict = f"{'lower' if 'lower' in sides else 'higher'} for every b: the ranking does not hinge on the loss"
    elif all(not (x < 0.05) for x in ps):
        verdict = "the ranking changes with b, and no member tells them apart (every p above 0.05)"
    else:
        verdict = "the ranking changes with b: no one loss settles it"
    return [
        f"- **Patton's robust losses** (`{name}` against `{bench}`; −2 is QLIKE, 0 the MSE of the variance): "
        f"{'; '.join(parts)} — {verdict}."
    ]


def when_lines(eco: pd.DataFrame, name: str, bench: str, loss: str) -> list[str]:
    w = eco[(eco["section"] == "when") & (eco["strategy"] == name) & (eco["metric"] == "diff")]
    if not len(w):
        return []
    regime = w[w["key"].isin(["calm", "normal", "turbulent"])]
    hours = w[w["key"].str.contains(":")].sort_values("value")
    said = ", ".join(f"{r.key} {r.value:+.4f}" for r in regime.itertuples())
    return [
        f"- **When `{name}` wins** (its one-bar {loss} minus `{bench}`'s; negative: `{name}` better): by the volatility "
        f"at the issue time, {said}; by the hour the forecast bar closes (UTC), best at {hours['key'].iloc[0]} "
        f"({hours['value'].iloc[0]:+.4f}), worst at {hours['key'].iloc[-1]} ({hours['value'].iloc[-1]:+.4f}); "
        f"better in {int((hours['value'] < 0).sum())} of {len(hours)} hours."
    ]


def mz_table(tests: pd.DataFrame, names: list[str]) -> list[str]:
    """Mincer–Zarnowitz at h = 1: intercept, slope and R² in levels, and the HAC p-values of intercept 0 and
    slope 1 in levels and logs."""
    out = [
        "**Mincer–Zarnowitz** at h = 1 (realized on forecast volatility; HAC Wald test of intercept 0 and slope 1):",
        "",
        "| strategy | intercept, slope, R² (levels) | p (levels) | p (logs) |",
        "|---|---|---|---|",
    ]
    for s in names:
        lv = _row(tests, "mz_levels", s, horizon=1)
        lg = _row(tests, "mz_logs", s, horizon=1)
        if lv is None:
            continue
        out.append(
            f"| {s} | {lv['note']} | {fmt_p(lv['pvalue'])} | {fmt_p(lg['pvalue']) if lg is not None else 'n/a'} |"
        )
    return out
