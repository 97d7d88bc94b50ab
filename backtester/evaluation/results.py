"""The evaluation entry point: forecast rows and fit records in, every evaluation file of a run out.

:func:`write_results` adds each seed ensemble (the mean forecast of its members) as a
strategy of its own, joins the actuals, scores every row (:mod:`.losses`), runs the
tests of predictive accuracy (:mod:`.accuracy`) and writes into a run's directory:

- ``forecasts``, ``retrains``, ``tuning`` (if any), ``metrics``, ``losses``, ``scores``,
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

import pandas as pd

from ..recorder import combine_rows
from ..segment import FitRecord
from ..tuning import read_trials
from .accuracy import dm_table, model_confidence_set
from .losses import breakdown_table, cost_table, coverage, join_actuals, loss_table, metrics, score_table
from .markdown import run_report
from .plots import plot_error_by_horizon, plot_forecasts
from .report import write_figures, write_html

if TYPE_CHECKING:
    from ..config import RunConfig
    from ..plan import Plan
    from ..rv import PreparedBars


def write_results(cfg: RunConfig, prepared: PreparedBars, plan: Plan, forecasts: pd.DataFrame,
                  records: list[FitRecord], stage: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every evaluation file of the run into ``stage``; returns (rows with actuals, retrains, metrics).

    ``forecasts``: the origin-aligned forecast rows of every strategy that ran (columns of
    :data:`backtester.recorder.COLUMNS`); ``records``: one :class:`~backtester.segment.FitRecord`
    per retrain; ``stage``: the run's directory (it already holds ``models/`` and ``tuning/``).
    """
    ev = cfg.evaluation
    rows = join_actuals(add_ensembles(forecasts, cfg.ensembles()), prepared.bars)
    retrains = retrain_frame(records)
    scores = metrics(rows)
    losses = loss_table(rows)
    tests = accuracy_tests(cfg, losses)
    cost = cost_table(retrains, losses, ev.loss, ev.benchmark, artifact_sizes(stage), cfg.ensembles())
    spread = seed_spread(cfg, scores)
    if len(spread):
        spread.to_parquet(stage / "seeds.parquet", index=False)
    rows.to_parquet(stage / "forecasts.parquet", index=False)
    retrains.to_parquet(stage / "retrains.parquet", index=False)
    trials = read_trials(stage)
    if len(trials):
        trials.to_parquet(stage / "tuning.parquet", index=False)
    scores.to_parquet(stage / "metrics.parquet", index=False)
    losses.to_parquet(stage / "losses.parquet", index=False)
    score_table(losses, rows, ev.benchmark).to_parquet(stage / "scores.parquet", index=False)
    breakdown_table(losses).to_parquet(stage / "breakdowns.parquet", index=False)
    tests.to_parquet(stage / "tests.parquet", index=False)
    cost.to_parquet(stage / "cost.parquet", index=False)
    plots = cfg.output.plots and len(rows)
    if plots:
        plot_forecasts(rows, retrains, stage / "forecast_vs_actual.png", horizon=1, unit=cfg.output.plot_unit)
        plot_error_by_horizon(scores, stage / "error_by_horizon.png")
    (stage / "report.md").write_text(run_report(cfg, prepared, plan, retrains, scores, tests, coverage(rows), cost, spread))
    if plots:
        write_figures(stage, ev.loss, ev.benchmark)  # from the Parquet files above
    write_html(stage)
    return rows, retrains, scores


def retrain_frame(records: list[FitRecord]) -> pd.DataFrame:
    """One row per retrain, with the fields of :class:`~backtester.segment.FitRecord` as columns."""
    retrains = pd.DataFrame([asdict(r) for r in records], columns=[f.name for f in fields(FitRecord)])
    retrains["strategy"] = retrains["strategy"].astype("string")
    return retrains


def add_ensembles(forecasts: pd.DataFrame, ensembles: dict[str, list[str]]) -> pd.DataFrame:
    """Append each seed ensemble (the mean forecast of its members) as a strategy of its own."""
    parts = [forecasts]
    for name, members in ensembles.items():
        m = forecasts[forecasts["strategy"].isin(members)]
        g = m.groupby(["issued_at", "target_time", "horizon"], observed=True)
        ens = g.agg(forecast=("forecast", "mean"), model_version=("model_version", "max"),
                    trained_through=("trained_through", "max"), members=("strategy", "nunique")).reset_index()
        ens = ens[ens["members"] == len(members)].drop(columns="members")  # only where every member forecast
        parts.append(ens.assign(strategy=name))
    return combine_rows(parts) if ensembles else forecasts


def seed_spread(cfg: RunConfig, scores: pd.DataFrame) -> pd.DataFrame:
    """Per seed ensemble: each loss (mean over horizons) as mean, std, min and max over its members, and the ensemble's."""
    out = []
    per = scores.groupby("strategy", observed=True)[["mse", "mae", "qlike"]].mean()
    for name, members in cfg.ensembles().items():
        m = per.loc[per.index.intersection(members)]
        for loss in ("qlike", "mse", "mae"):
            out.append({"strategy": name, "loss": loss, "seeds": len(m), "mean": m[loss].mean(), "std": m[loss].std(ddof=1),
                        "min": m[loss].min(), "max": m[loss].max(),
                        "ensemble": per.loc[name, loss] if name in per.index else float("nan")})
    return pd.DataFrame(out)


def artifact_sizes(run_dir: Path) -> dict[str, int]:
    """Bytes of each strategy's artifact folders under ``run_dir/models``."""
    models = run_dir / "models"
    if not models.is_dir():
        return {}
    return {d.name: sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) for d in models.iterdir() if d.is_dir()}


def accuracy_tests(cfg: RunConfig, losses: pd.DataFrame) -> pd.DataFrame:
    """DM tests (against the benchmark and pairwise) and the MCS, in one tidy frame (``test`` column)."""
    ev = cfg.evaluation
    dm = dm_table(losses, ev.loss, ev.benchmark).assign(test="dm")
    t = losses[losses["loss"] == ev.loss]
    per_issue = t.pivot_table(index="issued_at", columns="strategy", values="value", aggfunc="mean", observed=True)
    mcs = model_confidence_set(per_issue, tuple(ev.mcs_sizes), ev.mcs_reps, ev.block_size, seed=cfg.seed)
    mcs = mcs.rename(columns={"strategy": "model"}).assign(test="mcs", loss=ev.loss, horizon=0)
    return pd.concat([dm, mcs], ignore_index=True)[
        ["test", "loss", "horizon", "model", "against", "statistic", "pvalue", "mean_diff", "n", "size", "mcs_pvalue",
         "in_set", "note"]]
