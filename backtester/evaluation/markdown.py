"""The run's ``report.md``, section by section.

:func:`run_report` puts the sections together: the run in three lines, the headline
answer (:func:`headline`: which strategy wins at which horizon, whether that is
significant — DM against the benchmark, the MCS — and what it costs), the schedules,
the losses, the seed spread, the tests of predictive accuracy, cost against accuracy
and the rows that could not be scored. Each section is a list of lines that starts
with a blank one.

Examples
--------
>>> _ranges([1, 2, 3, 7])
'1-3, 7'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..core.names import is_seed_member
from .answer import answer_lines, pairs_table
from .losses import summary
from .profiles import profiles_of
from .verdict import Answer, seed_rows

if TYPE_CHECKING:
    from ..config import RunConfig
    from ..plan import Plan
    from ..rv import PreparedBars

PLOTS = (
    "Plots: `forecast_vs_actual.png`, `error_by_horizon.png`, `rolling_loss.png`, "
    "`cumulative_loss_difference.png`, `loss_by_segment.png`, `loss_by_hour.png`, `cost_vs_accuracy.png`; "
    "all in `report.html`."
)


def run_report(
    cfg: RunConfig,
    prepared: PreparedBars,
    plan: Plan,
    retrains: pd.DataFrame,
    scores: pd.DataFrame,
    tests: pd.DataFrame | None = None,
    cover: pd.DataFrame | None = None,
    cost: pd.DataFrame | None = None,
    spread: pd.DataFrame | None = None,
    losses: pd.DataFrame | None = None,
    worth: list[str] | None = None,
) -> str:
    """A short Markdown report of the run; a section whose frame is None or empty is left out. ``worth``: the
    lines of "What it is worth" and "The tests referees ask for" (:mod:`.worth_report`). With
    ``losses`` (the tidy loss table), the answer opens with what each learned strategy is and adds
    (:func:`~.answer.answer_lines`) and the DM table of the pairs that matter."""
    ev = cfg.evaluation
    words: list[str] = []
    pairs: list[str] = []
    if losses is not None and tests is not None and cost is not None and len(losses):
        ans = Answer(losses, tests, cost, ev.loss, retrains)
        profiles = profiles_of(cfg)
        words, pairs = answer_lines(ans, ev.benchmark, profiles), pairs_table(ans, ev.benchmark, profiles)
    lines = [
        f"# Backtest `{cfg.name}`",
        "",
        f"- data: `{cfg.data.path}` — {prepared.describe()}",
        f"- test period: {plan.issue_times[0]} .. {plan.issue_times[-1]}, horizons 1..{plan.horizon}",
        f"- failed retrains: {int((retrains['status'] != 'ok').sum())}",
        "",
        "## The answer",
        "",
        *words,
        *(headline(scores, tests, ev.loss, ev.benchmark, bool(words)) if tests is not None else []),
    ]
    lines += seeds_lines(spread, ev.loss, ev.benchmark)
    if not words:
        lines += [
            f"- `{name}` ran with one seed: its loss is one draw of its initial weights and sample order; "
            "`repeats: 3` (or more) says whether its gaps are noise."
            for name, spec in cfg.strategies.items()
            if spec.repeats == 1 and spec.params.seeded()
        ]
    lines += pairs + list(worth or []) + schedule_lines(cfg, plan) + loss_lines(scores)
    if spread is not None and len(spread):
        lines += spread_lines(spread, ev.benchmark)
    if tests is not None:
        lines += accuracy_lines(cfg, tests)
    if cost is not None and len(cost):
        lines += cost_lines(cfg, cost)
    if cover is not None and (cover[["missing_actual", "zero_actual", "nonpositive_forecast"]].to_numpy().sum() > 0):
        lines += coverage_lines(cover)
    lines += ["", PLOTS, ""]
    return "\n".join(lines)


def headline(
    scores: pd.DataFrame, tests: pd.DataFrame, loss: str, benchmark: str | None, said: bool = False
) -> list[str]:
    """The sentences after the answer's words (``said``: they name the lowest loss already): who wins at
    which horizon, who beats the benchmark significantly, the model confidence set.

    Seed members (``lstm#2``) are left out: one seed is one draw, their mean forecast speaks for them.
    """
    if loss not in scores:
        loss_col = "qlike"
    else:
        loss_col = loss
    scores = scores[~seed_rows(scores["strategy"])]  # seed members are draws: judge their ensemble
    tests = tests[~seed_rows(tests["model"]) & ~seed_rows(tests["against"])]
    wide = scores.pivot(index="horizon", columns="strategy", values=loss_col)
    overall = wide.mean().sort_values()
    best = str(overall.index[0])
    out = (
        []
        if said
        else [
            f"- **Lowest {loss_col}: `{best}`** (mean over horizons {overall.iloc[0]:.4f}; "
            f"next `{overall.index[1]}` {overall.iloc[1]:.4f})."
            if len(overall) > 1
            else f"- Only strategy: `{best}`."
        ]
    )
    winners = wide.idxmin(axis=1)
    spans = []
    for name, group in winners.groupby(winners, sort=False):
        hs = list(group.index)
        spans.append(f"`{name}` at h={_ranges(hs)}")
    out.append(f"- Lowest {loss_col} by horizon: " + "; ".join(spans) + ".")
    dm = (
        tests[(tests["test"] == "dm") & (tests["horizon"] == 0) & (tests["against"] == benchmark)]
        if benchmark
        else tests.iloc[:0]
    )
    if len(dm):
        better = dm[(dm["statistic"] < 0) & (dm["pvalue"] < 0.05)]["model"].tolist()
        worse = dm[(dm["statistic"] > 0) & (dm["pvalue"] < 0.05)]["model"].tolist()
        out.append(
            f"- Against `{benchmark}` (DM on the horizon-averaged {loss}, 5 %): significantly better: "
            f"{', '.join(f'`{m}`' for m in better) or 'none'}; significantly worse: "
            f"{', '.join(f'`{m}`' for m in worse) or 'none'}."
        )
    mcs = tests[(tests["test"] == "mcs") & (tests["size"] == 0.10)]
    if len(mcs) and mcs["in_set"].notna().any():
        inside = mcs[mcs["in_set"] == True]["model"].tolist()  # noqa: E712 - object column
        out.append(f"- 90 % model confidence set: {', '.join(f'`{m}`' for m in inside)}.")
    return out


def _ranges(hs: list[int]) -> str:
    """[1, 2, 3, 7] -> '1-3, 7'."""
    parts, start = [], hs[0]
    for a, b in zip(hs, hs[1:] + [None]):
        if b != a + 1:
            parts.append(f"{start}" if start == a else f"{start}-{a}")
            start = b
    return ", ".join(parts)


def schedule_lines(cfg: RunConfig, plan: Plan) -> list[str]:
    """Section: each strategy's retrain count and schedule."""
    return [
        "",
        "## Schedules",
        "",
        "| strategy | retrains | schedule |",
        "|---|---|---|",
        *[
            f"| {name} | {len(plan.schedules[name].retrains)} | {spec.schedule_label()} |"
            for name, spec in cfg.run_strategies().items()
        ],
    ]


def loss_lines(scores: pd.DataFrame) -> list[str]:
    """Section: QLIKE, MSE and MAE per strategy, averaged over horizons and at h=1 (best QLIKE first)."""
    s = summary(scores)
    h1 = scores[scores["horizon"] == 1].set_index("strategy")[["mse", "qlike"]]
    out = [
        "",
        "## Losses, mean over horizons (QLIKE of variance, MSE/MAE of volatility; a seed member is one draw, "
        "never a candidate: its ensemble speaks for it)",
        "",
        "| strategy | QLIKE | MSE | MAE | QLIKE h=1 | MSE h=1 |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in s.iterrows():
        out.append(
            f"| {seed_label(name)} | {row.qlike:.4f} | {row.mse:.3e} | {row.mae:.3e} | {h1.loc[name, 'qlike']:.4f} | "
            f"{h1.loc[name, 'mse']:.3e} |"
        )
    return out


def spread_lines(spread: pd.DataFrame, benchmark: str | None = None) -> list[str]:
    """Section: each seed ensemble's losses over its members (mean, std, min, max) and the ensemble's own;
    with a benchmark, the ensemble's gap to it and about how many seeds tell that gap from seed noise."""
    has_gap = benchmark is not None and "gap" in spread and spread["gap"].notna().any()
    extra = f" minus `{benchmark}` | seeds this gap needs |" if has_gap else ""

    def tail(r) -> str:
        if not has_gap:
            return ""
        return (
            f" {r.gap:+.4g} | {int(r.seeds_needed)} |"
            if np.isfinite(r.gap) and np.isfinite(r.seeds_needed)
            else " – | – |"
        )

    return [
        "",
        "## Seed spread (each loss averaged over horizons; one row per seed ensemble)",
        "",
        "| strategy | loss | seeds | mean over seeds | std | min | max | ensemble (mean forecast) |" + extra,
        "|---|---|---|---|---|---|---|---|" + ("---|---|" if has_gap else ""),
        *[
            f"| {r.strategy} | {r.loss} | {r.seeds} | {r.mean:.4g} | {r.std:.2g} | {r.min:.4g} | {r.max:.4g} | "
            f"{r.ensemble:.4g} |" + tail(r)
            for r in spread.itertuples()
        ],
    ]


def seeds_lines(spread: pd.DataFrame, loss: str, benchmark: str | None) -> list[str]:
    """For the answer: does each seed ensemble have enough seeds to tell its gap to the benchmark from
    the spread between seeds? (Seeds needed: the mean of that many single-seed losses has a standard error
    of half the gap.)

    >>> s = pd.DataFrame({"strategy": ["lstm", "gru"], "loss": "qlike", "seeds": [3, 2], "std": [0.01, 0.02],
    ...                   "gap": [-0.05, 0.01], "seeds_needed": [1, 16]})
    >>> print("\\n".join(seeds_lines(s, "qlike", "har")))
    - Seeds: `lstm`'s gap to `har` (-0.05) is 5.0 single-seed standard deviations (0.01); about 1 seed tells it from seed noise, and it ran with 3 (seed noise only; whether the gap is significant is the DM test's answer).
    - Seeds: `gru`'s gap to `har` (+0.01) is 0.5 single-seed standard deviations (0.02); about 16 seeds tell it from seed noise, and it ran with 2: **too few**, another draw of seeds could reverse it (`repeats: 16`).
    """
    if spread is None or "gap" not in spread:
        return []
    rows = spread[spread["loss"] == loss]
    out = []
    for r in rows.itertuples():
        if not (np.isfinite(r.gap) and np.isfinite(r.std) and r.std > 0 and r.gap != 0):
            continue
        need = int(r.seeds_needed)
        if need > 100:  # repeats allows 100
            out.append(
                f"- Seeds: `{r.strategy}`'s gap to `{benchmark}` ({r.gap:+.4g}) is {abs(r.gap) / r.std:.2f} "
                f"single-seed standard deviations ({r.std:.2g}): more than 100 seeds would be needed to tell "
                "it from seed noise; on these data the two are not told apart."
            )
            continue
        line = (
            f"- Seeds: `{r.strategy}`'s gap to `{benchmark}` ({r.gap:+.4g}) is {abs(r.gap) / r.std:.1f} single-seed "
            f"standard deviations ({r.std:.2g}); about {need} seed{'s' if need > 1 else ''} tell"
            f"{'' if need > 1 else 's'} it from seed noise, and it ran with {r.seeds}"
        )
        out.append(
            line
            + (
                f": **too few**, another draw of seeds could reverse it (`repeats: {need}`)."
                if need > r.seeds
                else " (seed noise only; whether the gap is significant is the DM test's answer)."
            )
        )
    return out


def cost_lines(cfg: RunConfig, cost: pd.DataFrame) -> list[str]:
    """Section: training cost against accuracy, per strategy."""
    ev = cfg.evaluation
    gain = [c for c in cost.columns if c.startswith("gain_vs_")][0]
    out = [
        "",
        f"## Cost and accuracy ({ev.loss} averaged over every scored row; gain = benchmark's loss minus the "
        "strategy's, on common rows; retrains per seed, a seed ensemble's seconds all its seeds'; gain per "
        "minute only for a gain)",
        "",
        f"| strategy | retrains | seeds | training s | s per fit | tuning s | artifacts kB | mean {ev.loss} | "
        f"{gain.replace('_', ' ')} | gain per minute of training and tuning |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in cost.itertuples(index=False):
        d = r._asdict()
        per_min = f"{d['gain_per_train_minute']:.4f}" if pd.notna(d["gain_per_train_minute"]) else "–"
        g = f"{d[gain]:+.4f}" if pd.notna(d[gain]) else "–"
        out.append(
            f"| {r.strategy} | {r.retrains} | {d.get('seeds', 1)} | {r.train_seconds:.1f} | {r.seconds_per_retrain:.2f} | "
            f"{d.get('tuning_seconds', 0.0):.1f} | {r.artifact_bytes / 1000:.0f} | {d[f'mean_{ev.loss}']:.4f} | {g} | {per_min} |"
        )
    return out


def accuracy_lines(cfg: RunConfig, tests: pd.DataFrame) -> list[str]:
    """Sections: DM against the benchmark (horizon-averaged and h=1) and MCS membership."""
    return dm_lines(cfg, tests) + mcs_lines(cfg, tests)


def dm_lines(cfg: RunConfig, tests: pd.DataFrame) -> list[str]:
    """Section: DM against the benchmark, horizon-averaged and at h=1 (none without a benchmark)."""
    ev = cfg.evaluation
    dm = tests[(tests["test"] == "dm") & (tests["against"] == ev.benchmark)]
    if ev.benchmark is None or not len(dm):
        return []
    out = [
        "",
        f"## Diebold–Mariano against `{ev.benchmark}` ({ev.loss}; HLN-corrected, two-sided; "
        "negative = lower loss than the benchmark)",
        "",
        "| strategy | all horizons: DM | p | h=1: DM | p |",
        "|---|---|---|---|---|",
    ]
    for model, part in dm.groupby("model", sort=True):
        avg, h1 = part[part["horizon"] == 0].iloc[0], part[part["horizon"] == 1]
        h1 = h1.iloc[0] if len(h1) else None
        cells = (
            [f"{avg.statistic:.2f}", f"{avg.pvalue:.3g}"] if avg.note in ("rectangular", "bartlett") else [avg.note, ""]
        )
        cells += (
            [f"{h1.statistic:.2f}", f"{h1.pvalue:.3g}"]
            if h1 is not None and h1.note in ("rectangular", "bartlett")
            else ["not computed", ""]
        )
        out.append(f"| {model} | " + " | ".join(cells) + " |")
    return out


def mcs_lines(cfg: RunConfig, tests: pd.DataFrame) -> list[str]:
    """Section: MCS p-value and membership of each set size, per strategy."""
    ev = cfg.evaluation
    mcs = tests[tests["test"] == "mcs"]
    if not len(mcs):
        return []
    sizes = sorted(mcs["size"].unique())
    rows = (
        f"{int(mcs['n'].max()):,} issue times with every horizon scored by every strategy, the rows of the "
        "horizon-averaged DM tests; "
        if "n" in mcs and mcs["n"].notna().any()
        else ""
    )
    out = [
        "",
        f"## Model Confidence Set ({ev.loss} averaged over horizons per issue time; {rows}stationary bootstrap, "
        f"{ev.mcs_reps} reps, seed {cfg.seed})",
        "",
        "| strategy | MCS p-value | " + " | ".join(f"in {100 - round(100 * s)} % set" for s in sizes) + " |",
        "|---|---|" + "---|" * len(sizes),
    ]
    for model, part in mcs.groupby("model", sort=True):
        part = part.set_index("size")
        if str(part["note"].iloc[0]).startswith("not computed"):
            out.append(f"| {model} | {part['note'].iloc[0]} |" + " |" * len(sizes))
            continue
        marks = ["**yes**" if part.loc[s, "in_set"] else "no" for s in sizes]
        out.append(f"| {model} | {part['mcs_pvalue'].iloc[0]:.3f} | " + " | ".join(marks) + " |")
    return out


def coverage_lines(cover: pd.DataFrame) -> list[str]:
    """Section: per strategy, the rows not scored and why (see :func:`~.losses.coverage`)."""
    return [
        "",
        "## Rows not scored",
        "",
        "| strategy | rows | missing actual | zero actual | forecast <= 0 |",
        "|---|---|---|---|---|",
        *[
            f"| {r.strategy} | {r.rows} | {r.missing_actual} | {r.zero_actual} | {r.nonpositive_forecast} |"
            for r in cover.itertuples()
        ],
    ]


# --------------------------------------------------------------------------- universes


def fmt_p(value) -> str:
    return f"{value:.3g}" if value is not None and pd.notna(value) else "–"


def seed_label(name) -> str:
    """A strategy's name in a loss table: a seed member says it is one (``lstm#1 (one seed)``).

    >>> seed_label("lstm#1"), seed_label("lstm")
    ('lstm#1 (one seed)', 'lstm')
    """
    return f"{name} (one seed)" if is_seed_member(name) else str(name)
