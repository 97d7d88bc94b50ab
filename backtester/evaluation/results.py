"""The evaluation entry point: forecast rows and fit records in, every evaluation file of a run out.

:func:`write_results` adds each seed ensemble (the mean forecast of its members) as a
strategy of its own, joins the actuals, scores every row (:mod:`.losses`), runs the
tests of predictive accuracy (:mod:`.accuracy`) and writes into a run's directory:

- ``forecasts``, ``retrains``, ``tuning`` (if any), ``metrics``, ``scores`` (the tidy loss table is not
  written: :func:`~.losses.loss_table` rebuilds it from ``forecasts``),
  ``breakdowns``, ``tests``, ``cost`` and ``seeds`` (if any seed ensemble) as Parquet;
- the figures (if ``output.plots``), ``report.md`` (:mod:`.markdown`) and ``report.html``.

It takes plain data (forecast rows, fit records), not the engine's result object.

Examples
--------
>>> rows, retrains, scores = write_results(cfg, prepared, plan, forecasts, records, run_dir)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..layout import REPORT, RunDir
from ..recorder import combine_rows
from ..tuning import read_trials
from ..work import FitRecord
from .accuracy import dm_table, horizon_averaged, model_confidence_set
from .economic import bars_per_year
from .losses import breakdown_table, cost_table, coverage, join_actuals, loss_table, metrics, score_table
from .markdown import run_report
from .panel import panel_dm_table, win_table
from .plots import plot_error_by_horizon, plot_forecasts, strategy_styles
from .report import write_figures, write_html
from .universe_report import universe_report
from .verdict import seeds_needed
from .worth import ECONOMIC_LOSSES, _tidy, has_returns, portfolio, referee_tests, stack, worth_of
from .worth_plots import worth_figures
from .worth_report import focus_of, worth_sections

if TYPE_CHECKING:
    from ..assets import AssetRun
    from ..config import RunConfig


def write_results(
    cfg: RunConfig, runs: list[AssetRun], forecasts: pd.DataFrame, records: list[FitRecord], stage: Path
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every evaluation file of the run into ``stage``; returns (rows with actuals, retrains, metrics).

    ``runs``: the run's assets (:class:`~backtester.assets.AssetRun`; one for a run on one
    ``data.path``); ``forecasts``: the origin-aligned forecast rows of every strategy that ran (columns
    of :data:`backtester.recorder.COLUMNS`, and ``asset`` in a universe); ``records``: one
    :class:`~backtester.work.FitRecord` per retrain; ``stage``: the run's directory (it already
    holds ``models/`` and ``tuning/``). Every table gets an ``asset`` column; each asset is evaluated
    on its own, and a universe of several also across assets (:func:`pooled_tests`).
    """
    retrains = retrain_frame(records)
    trials = read_trials(stage)
    parts = {
        r.asset.label: evaluate_asset(
            r,
            _of(forecasts, r.asset.name),
            _of(retrains, r.asset.name),
            stage,
            _of(trials, r.asset.name) if len(trials) else None,
        )
        for r in runs
    }
    # each table's per-asset parts are let go as soon as they are joined: one copy of the rows, not two
    names = list(dict.fromkeys(n for p in parts.values() for n in p))  # economic tables: where the bars give returns
    tables = {name: _with_asset({a: p.pop(name, pd.DataFrame()) for a, p in parts.items()}) for name in names}
    if len(runs) > 1:
        pooled, wins = pooled_tests(cfg, tables["losses"], tables["tests"])
        tables["tests"] = stack([tables["tests"], pooled, pooled_worth(cfg, tables)])
        tables["wins"] = wins
    if len(trials):
        labels = {r.asset.name: r.asset.label for r in runs}
        tables["tuning"] = trials.assign(asset=trials["asset"].map(labels).astype("string"))
    for name in (
        "forecasts",
        "retrains",
        "tuning",
        "metrics",
        "scores",
        "breakdowns",
        "tests",
        "cost",
        "seeds",
        "wins",
        "economic",
        "positions",
        "var",
    ):
        if name in tables and (len(tables[name]) or name not in ("seeds", "tuning", "wins", "positions", "var")):
            tables[name].to_parquet(stage / f"{name}.parquet", index=False)
    if "economic" in tables and (tables["economic"]["section"] == "target").any():  # compare's economics
        returns = [r.prepared.bars[["rv", "ret"]].assign(asset=r.asset.label) for r in runs if "ret" in r.prepared.bars]
        pd.concat(returns).rename_axis("time").reset_index().to_parquet(stage / "returns.parquet", index=False)
    write_report(cfg, runs, tables, stage)
    return tables["forecasts"], tables["retrains"], tables["metrics"]


def evaluate_asset(
    run: AssetRun, forecasts: pd.DataFrame, retrains: pd.DataFrame, stage: Path, trials: pd.DataFrame | None = None
) -> dict[str, pd.DataFrame]:
    """One asset's evaluation tables (without an ``asset`` column): its seed ensembles, rows with actuals,
    losses, metrics, scores, breakdowns, tests (DM, MCS), cost (tuning from ``trials`` included), seed
    spread and coverage."""
    cfg, ev = run.cfg, run.cfg.evaluation
    rows = join_actuals(add_ensembles(forecasts, cfg.ensembles()), run.prepared.bars, ev.proxy)
    scores = metrics(rows)
    losses = loss_table(rows)
    sizes = artifact_sizes(RunDir(stage).models_of(run.asset.name))
    worth = economic_tables(cfg, run.prepared.bars, rows, losses)
    return worth | {
        "forecasts": rows,
        "retrains": retrains,
        "metrics": scores,
        # the tests' loss only, from here on (the answer, the pooled tests): the other four were used above
        "losses": losses[losses["loss"] == ev.loss].reset_index(drop=True),
        "scores": score_table(losses, rows, ev.benchmark),
        "breakdowns": breakdown_table(losses),
        "tests": stack([accuracy_tests(cfg, losses), worth.pop("tests")]),
        "seeds": seed_spread(cfg, scores, losses),
        "coverage": coverage(rows),
        "cost": cost_table(retrains, losses, ev.loss, ev.benchmark, sizes, cfg.ensembles(), trials),
    }


def economic_tables(cfg: RunConfig, bars: pd.DataFrame, rows: pd.DataFrame, losses: pd.DataFrame) -> dict:
    """What the forecasts are worth (:func:`~.worth.worth_of`, where economic evaluation is on and the bars
    give returns) and the tests referees ask for (:func:`~.worth.referee_tests`): ``economic``, ``positions``,
    ``var``, ``economic_losses`` and the test rows (``tests``)."""
    ev = cfg.evaluation
    figures, tests = referee_tests(rows, losses, bars, ev, cfg.backtest.window.kind == "expanding")
    out = {"economic": figures, "tests": tests}
    if ev.economic.enabled is not False and has_returns(bars):
        economic, more, eco_losses, positions, var = worth_of(rows, bars, ev, cfg.backtest.horizon, cfg.seed)
        out["economic"] = stack([economic, figures])
        out["tests"] = stack([more, tests])
        out["economic_losses"] = eco_losses
        out["positions"] = pd.concat([p.assign(strategy=s) for s, p in positions.items()], ignore_index=True)
        out["var"] = var
        out["economic"] = stack(
            [out["economic"], _tidy([("target", "", "", "", np.nan, 0, "", "bars_per_year", bars_per_year(bars))])]
        )
    return out


def _of(frame: pd.DataFrame, asset: str) -> pd.DataFrame:
    """The rows of one asset of a universe (all of them in a run on one file), without the column."""
    if "asset" not in frame or not (frame["asset"] != "").any():
        return frame.drop(columns="asset", errors="ignore")
    return frame[frame["asset"] == asset].drop(columns="asset").reset_index(drop=True)


def _with_asset(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The assets' frames in one, with ``asset`` (their labels) as the first column (the rows are copied
    once, by the concatenation; the column is added in place).

    >>> _with_asset({"btc": pd.DataFrame({"x": [1, 2]}), "eth": pd.DataFrame({"x": [3]})})
      asset  x
    0   btc  1
    1   btc  2
    2   eth  3
    """
    kept = {label: f for label, f in frames.items() if len(f)}
    if not kept:
        kept = {"": next(iter(frames.values()))}
    out = (
        pd.concat(list(kept.values()), ignore_index=True)
        if len(kept) > 1
        else next(iter(kept.values())).reset_index(drop=True)
    )
    labels = np.repeat(np.array(list(kept), dtype=object), [len(f) for f in kept.values()])
    out.insert(0, "asset", pd.array(labels, dtype="string"))
    return out


def write_report(cfg: RunConfig, runs: list[AssetRun], tables: dict[str, pd.DataFrame], stage: Path) -> None:
    """The figures (if ``output.plots``), ``report.md`` and ``report.html``."""
    ev = cfg.evaluation
    rows, scores = tables["forecasts"], tables["metrics"]
    plots = cfg.output.plots and len(rows)
    if plots:
        styles = strategy_styles(sorted(rows["strategy"].astype(str).unique()))
        for r in runs:
            name = "forecast_vs_actual.png" if len(runs) == 1 else f"forecast_vs_actual_{r.asset.label}.png"
            mine = rows["asset"] == r.asset.label
            plot_forecasts(
                rows[mine].drop(columns="asset"),
                tables["retrains"][tables["retrains"]["asset"] == r.asset.label],
                stage / name,
                horizon=1,
                unit=cfg.output.plot_unit,
                title=r.asset.label if len(runs) > 1 else None,
                styles=styles,
            )
        plot_error_by_horizon(
            scores.groupby(["strategy", "horizon"], observed=True)[["mse", "mae", "qlike"]].mean().reset_index(),
            stage / "error_by_horizon.png",
            styles,
        )
    if len(runs) == 1:
        r = runs[0]
        text = run_report(
            cfg,
            r.prepared,
            r.plan,
            tables["retrains"],
            scores,
            tables["tests"],
            tables["coverage"],
            tables["cost"],
            tables["seeds"],
            tables["losses"],
            worth_sections(cfg, tables.get("economic"), tables["tests"]),
        )
    else:
        text = universe_report(cfg, runs, tables)
    RunDir(stage).file(REPORT).write_text(text)
    if plots:
        write_figures(stage, ev.loss, ev.benchmark)  # from the Parquet files above
        worth_figures(stage, focus_of(cfg), ev.benchmark, ev.economic.target_vol, ev.economic.levels[0])
    write_html(stage)


def retrain_frame(records: list[FitRecord]) -> pd.DataFrame:
    """One row per retrain, with the fields of :class:`~backtester.work.FitRecord` as columns."""
    retrains = pd.DataFrame([asdict(r) for r in records], columns=[f.name for f in fields(FitRecord)])
    retrains["strategy"] = retrains["strategy"].astype("string")
    return retrains


def add_ensembles(forecasts: pd.DataFrame, ensembles: dict[str, list[str]]) -> pd.DataFrame:
    """Append each seed ensemble (the mean forecast of its members) as a strategy of its own."""
    parts = [forecasts]
    for name, members in ensembles.items():
        m = forecasts[forecasts["strategy"].isin(members)]
        g = m.groupby(["issued_at", "target_time", "horizon"], observed=True)
        ens = g.agg(
            forecast=("forecast", "mean"),
            model_version=("model_version", "max"),
            trained_through=("trained_through", "max"),
            members=("strategy", "nunique"),
        ).reset_index()
        ens = ens[ens["members"] == len(members)].drop(columns="members")  # only where every member forecast
        parts.append(ens.assign(strategy=name))
    return combine_rows(parts) if ensembles else forecasts


def seed_spread(cfg: RunConfig, scores: pd.DataFrame, losses: pd.DataFrame) -> pd.DataFrame:
    """Per seed ensemble: each loss (mean over horizons) as mean, std, min and max over its members, and the
    ensemble's; with a benchmark, ``gap`` (the ensemble's loss minus the benchmark's, on the rows both
    forecast, from ``losses``) and ``seeds_needed``: about how many seeds tell that gap from seed noise
    (:func:`~.verdict.seeds_needed`: the mean of that many single-seed losses has a standard error of half
    the gap)."""
    out = []
    per = scores.groupby("strategy", observed=True)[["mse", "mae", "qlike"]].mean()
    bench = cfg.evaluation.benchmark
    for name, members in cfg.ensembles().items():
        m = per.loc[per.index.intersection(members)]
        for loss in ("qlike", "mse", "mae"):
            ens = per.loc[name, loss] if name in per.index else float("nan")
            gap = common_gap(losses, name, bench, loss) if bench in per.index and bench != name else float("nan")
            std = m[loss].std(ddof=1)
            out.append(
                {
                    "strategy": name,
                    "loss": loss,
                    "seeds": len(m),
                    "mean": m[loss].mean(),
                    "std": std,
                    "min": m[loss].min(),
                    "max": m[loss].max(),
                    "ensemble": ens,
                    "gap": gap,
                    "seeds_needed": seeds_needed(std, gap) if np.isfinite(gap) and np.isfinite(std) else np.nan,
                }
            )
    return pd.DataFrame(out)


def common_gap(losses: pd.DataFrame, a: str, b: str, loss: str) -> float:
    """``a``'s loss minus ``b``'s on the rows both forecast: per horizon, then averaged over horizons."""
    t = losses[(losses["loss"] == loss) & losses["strategy"].isin([a, b])]
    wide = t.pivot_table(
        index=["issued_at", "target_time", "horizon"], columns="strategy", values="value", observed=True
    ).dropna()
    if a not in wide or b not in wide or not len(wide):
        return float("nan")
    return float((wide[a] - wide[b]).groupby(level="horizon").mean().mean())


def artifact_sizes(models: Path) -> dict[str, int]:
    """Bytes of each strategy's artifact folders under ``models`` (a run's ``models/``, or ``models/<asset>``)."""
    if not models.is_dir():
        return {}
    return {d.name: sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) for d in models.iterdir() if d.is_dir()}


def accuracy_tests(cfg: RunConfig, losses: pd.DataFrame) -> pd.DataFrame:
    """DM tests (against the benchmark and pairwise) and the MCS, in one tidy frame (``test`` column)."""
    ev = cfg.evaluation
    dm = dm_table(losses, ev.loss, ev.benchmark).assign(test="dm")
    per_issue = horizon_averaged(losses[losses["loss"] == ev.loss])  # the horizon-averaged DM tests' rows
    mcs = model_confidence_set(per_issue, tuple(ev.mcs_sizes), ev.mcs_reps, ev.block_size, seed=cfg.seed)
    mcs = mcs.rename(columns={"strategy": "model"}).assign(test="mcs", loss=ev.loss, horizon=0)
    return pd.concat([dm, mcs], ignore_index=True)[
        [
            "test",
            "loss",
            "horizon",
            "model",
            "against",
            "statistic",
            "pvalue",
            "mean_diff",
            "n",
            "size",
            "mcs_pvalue",
            "in_set",
            "note",
        ]
    ]


def pooled_tests(cfg: RunConfig, losses: pd.DataFrame, tests: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Across the assets of a universe: the pooled and time-clustered DM tests (:mod:`.panel`) per horizon
    and on the horizon-averaged loss, the MCS on the cross-sectional average loss (``asset`` = ``all``),
    and the win table (on how many assets each strategy beats each other, and significantly)."""
    ev = cfg.evaluation
    panel = panel_dm_table(losses, ev.loss, ev.benchmark)
    mcs = mcs_across_assets(cfg, losses)
    pooled = pd.concat([panel, mcs], ignore_index=True).assign(asset="all")
    wins = win_table(tests[tests["test"] == "dm"])
    wins.insert(0, "asset", "all")
    return pooled, wins


def pooled_worth(cfg: RunConfig, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Across a universe: the equal-risk portfolio's figures (into ``economic``, asset ``all``) and the pooled
    DM tests on the economic losses (returned, asset ``all``)."""
    if "positions" not in tables or not len(tables["positions"]):
        return pd.DataFrame()
    ev, pos = cfg.evaluation, tables["positions"]
    per = {a: {str(s): p for s, p in part.groupby("strategy", observed=True)} for a, part in pos.groupby("asset")}
    years = tables["economic"]
    per_year = float(years.loc[years["metric"] == "bars_per_year", "value"].median())
    pooled = portfolio(per, ev, per_year)
    pooled.insert(0, "asset", "all")
    tables["economic"] = stack([tables["economic"], pooled])
    eco = tables["economic_losses"]
    parts = [
        panel_dm_table(eco, loss, ev.benchmark, pairwise=False).assign(test=lambda t: t["test"] + "_economic")
        for loss in ECONOMIC_LOSSES
        if (eco["loss"] == loss).any()
    ]
    return pd.concat(parts, ignore_index=True).assign(asset="all") if parts else pd.DataFrame()


def mcs_across_assets(cfg: RunConfig, losses: pd.DataFrame) -> pd.DataFrame:
    """The MCS on the cross-sectional average loss: per issue time, each strategy's loss averaged over
    horizons, then over the assets with a forecast at that time; strategies that do not run on every
    asset are left out (their average would be over other assets)."""
    ev = cfg.evaluation
    t = losses[losses["loss"] == ev.loss]
    per = [horizon_averaged(part) for _, part in t.groupby("asset", observed=True)]  # each asset's DM/MCS rows
    everywhere = [s for s in per[0].columns if all(s in p.columns for p in per)]
    wide = pd.concat([p[everywhere] for p in per]).groupby(level="issued_at").mean()
    mcs = model_confidence_set(wide, tuple(ev.mcs_sizes), ev.mcs_reps, ev.block_size, seed=cfg.seed)
    return mcs.rename(columns={"strategy": "model"}).assign(test="mcs", loss=ev.loss, horizon=0)
