"""``backtest compare``'s "What it is worth": every strategy's forecasts on the common rows turned into VaR/ES
backtests, volatility-targeted positions and realized utility (:mod:`backtester.evaluation.worth`), with the
first run's ``evaluation.economic`` settings and bars' returns (``returns.parquet``).

Examples
--------
>>> economic, tests, lines = compare_worth(Path("results/weekly"), rows, "har", profiles, 0)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .config.sections import EvaluationConfig
from .evaluation.economic import bars_per_year
from .evaluation.profiles import Profile
from .evaluation.universe_report import asset_worth_table
from .evaluation.verdict import is_member
from .evaluation.worth import portfolio, worth_of
from .evaluation.worth_report import worth_lines
from .layout import RunDir


def compare_worth(
    first: Path, rows: pd.DataFrame, benchmark: str | None, profiles: dict[str, Profile], seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """What each strategy's forecasts are worth on the common rows (:func:`~backtester.evaluation.worth.worth_of`,
    with the first run's (in ``first``) ``evaluation.economic`` and bars' returns): ``(economic, tests, report lines)``; nothing
    where the first run has no ``returns.parquet`` (economic evaluation off, or RV bars)."""

    path = RunDir(first).file("returns.parquet")
    if not path.is_file():
        return pd.DataFrame(), pd.DataFrame(), []
    returns = pd.read_parquet(path)
    ev = EvaluationConfig.model_validate(RunDir(first).config_block("evaluation"))
    ev = ev.model_copy(update={"benchmark": benchmark})
    horizon = int(rows["horizon"].max())
    economic, tests, positions = [], [], {}
    for asset, part in rows.groupby("asset", observed=True, sort=True):
        bars = returns[returns["asset"] == asset].set_index("time")[["rv", "ret"]]
        if len(bars):
            e, t, _, pos, _ = worth_of(part.drop(columns="asset"), bars, ev, horizon, seed)
            economic.append(e.assign(asset=asset))
            tests.append(t.assign(asset=asset))
            positions[str(asset)] = pos
    if not economic:
        return pd.DataFrame(), pd.DataFrame(), []
    eco, tested = pd.concat(economic, ignore_index=True), pd.concat(tests, ignore_index=True)
    focus = [n for n, p in profiles.items() if p.learned and not is_member(n) and n in set(rows["strategy"])]
    if len(positions) == 1:
        eco = eco.assign(strategy=eco["strategy"].astype(str))
        bpy = [("target", "", "", "", np.nan, 0, "", "bars_per_year", _bars_per_year(returns))]
        eco = pd.concat([eco, pd.DataFrame(bpy, columns=eco.columns[:-1]).assign(asset=eco["asset"].iloc[0])])
        lines = worth_lines(ev, horizon, eco, tested, focus, benchmark)
        return eco, tested, [line for line in lines if not line.startswith("Figures: ")]
    pooled = portfolio(positions, ev, _bars_per_year(returns)).assign(asset="all")
    eco = pd.concat([eco, pooled], ignore_index=True)
    names = [*focus, *([benchmark] if benchmark and benchmark not in focus else [])]
    return eco, tested, ["", "## What it is worth, per asset", "", *asset_worth_table(eco, tested, names, ev.economic)]


def _bars_per_year(returns: pd.DataFrame) -> float:
    first = returns[returns["asset"] == returns["asset"].iloc[0]].set_index("time")
    return bars_per_year(first)
