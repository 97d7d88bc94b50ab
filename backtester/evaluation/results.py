"""The evaluation entry point: forecast rows and fit records in, every evaluation file of a run out.

:func:`write_results` adds each seed ensemble (the mean forecast of its members) as a
strategy of its own, joins the actuals, scores every row (:mod:`.losses`), runs the
tests of predictive accuracy (:mod:`.accuracy`) and writes into a run's directory:

- ``forecasts``, ``retrains``, ``tuning`` (if any), ``metrics``, ``scores`` (the tidy loss table is not
  written: :func:`~.losses.loss_table` rebuilds it from ``forecasts``),
  ``breakdowns``, ``tests``, ``cost`` and ``seeds`` (if any seed ensemble) as Parquet;
- the figures (if ``output.plots``), ``report.md`` (:mod:`.markdown`) and ``report.html``.

It takes plain data (a reader of each asset's forecast rows, fit records), not the engine's result object.
Each asset is one :class:`AssetJob`, run on the run's executor (its workers, or this process): a universe
of hundreds of assets is evaluated in the memory of one asset per worker, and its results are taken back
in asset order, so that the numbers do not depend on where the jobs ran.

Examples
--------
>>> rows, retrains, scores = write_results(cfg, runs, engine.asset_rows, engine.records, run_dir)  # doctest: +SKIP
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ..executors import Executor, InProcess
from ..layout import FORECASTS, REPORT, RunDir, TableWriter
from ..recorder import combine_rows
from ..tuning import read_trials
from ..work import FitRecord
from .accuracy import dm_table, horizon_averaged, model_confidence_set
from .across import Across, Share
from .economic import bars_per_year
from .losses import breakdown_table, cost_table, coverage, join_actuals, loss_table, metrics, score_table
from .markdown import run_report
from .plots import plot_error_by_horizon, plot_forecasts, strategy_styles
from .report import write_figures, write_html
from .universe_report import universe_report
from .verdict import seeds_needed
from .worth import _tidy, has_returns, referee_tests, stack, worth_of
from .worth_plots import worth_figures
from .worth_report import focus_of, worth_sections

if TYPE_CHECKING:
    from ..assets import AssetRun
    from ..config import RunConfig


PARTS = ".parts"  # where asset jobs leave their large tables for the parent to append
STREAMED = ("forecasts", "positions", "var", "returns")  # written asset by asset, never held together
KEPT = ("retrains", "metrics", "scores", "breakdowns", "tests", "cost", "seeds", "economic")
OPTIONAL = ("seeds", "tuning", "wins", "positions", "var")  # written only where they have rows


@dataclass(frozen=True)
class AssetJob:
    """One asset's evaluation, run where the executor puts it (a worker process, a Dask worker, or here): its
    rows read back (``read``), evaluated, its report section and figure made, its share of the tests across
    assets computed (``several``), and its large tables (:data:`STREAMED`) written to ``parts/<index>/`` for
    the parent to append in asset order. Frozen and picklable, like the engine's jobs."""

    cfg: RunConfig
    asset: AssetRun
    read: Callable[[], pd.DataFrame]
    retrains: pd.DataFrame
    trials: pd.DataFrame | None
    stage: Path
    index: int
    several: bool
    styles: dict

    @property
    def parts(self) -> Path:
        return self.stage / PARTS / f"{self.index:06d}"

    def run(self) -> AssetDone:
        r, label = self.asset, self.asset.asset.label
        part = evaluate_asset(
            r, self.read().drop(columns="asset", errors="ignore"), self.retrains, self.stage, self.trials
        )
        section = asset_report(r, part, "" if self.several else label)
        plot_asset(self.cfg, r, part, self.stage, self.several, self.styles)
        share = Across(self.cfg).share(label, part["losses"], part.get("economic_losses"), part.get("positions"))
        self.parts.mkdir(parents=True, exist_ok=True)
        for name in STREAMED:
            if name in part:
                _with_asset({label: part.pop(name)}).to_parquet(self.parts / f"{name}.parquet", index=False)
        return AssetDone(section, {name: part.get(name, pd.DataFrame()) for name in KEPT}, share)


@dataclass
class AssetDone:
    """What an :class:`AssetJob` sends back: the report section, the small tables and the share across assets."""

    section: str
    kept: dict[str, pd.DataFrame]
    share: Share


def run_asset(job: AssetJob) -> AssetDone:
    """What an executor runs for an asset (a module-level function: it is pickled to the workers)."""
    return job.run()


def write_results(
    cfg: RunConfig,
    runs: list[AssetRun],
    rows_of: Callable[[str], pd.DataFrame],
    records: list[FitRecord],
    stage: Path,
    executor: Executor | None = None,
    reader: Callable[[str], Callable[[], pd.DataFrame]] | None = None,
) -> tuple[pd.DataFrame | None, pd.DataFrame, pd.DataFrame]:
    """Every evaluation file of the run into ``stage``; returns (rows with actuals, retrains, metrics), the rows
    None in a universe (read them from ``forecasts.parquet``). ``runs``: the assets (one for a run on one
    ``data.path``); ``rows_of(asset)``: an asset's forecast rows (:data:`backtester.recorder.COLUMNS`), asked
    for once; ``records``: one :class:`~backtester.work.FitRecord` per retrain; ``stage``: the run's directory.
    Every table gets an ``asset`` column. A universe's assets are evaluated one at a time, each an
    :class:`AssetJob` on ``executor`` (``reader(asset)``: a picklable reader of its rows): its large tables
    appended to their files in asset order, and only the small tables and the shares of the tests across
    assets (:class:`~.across.Across`) kept."""
    retrains = retrain_frame(records)
    trials = read_trials(stage)
    styles = strategy_styles(sorted({*cfg.run_strategies(), *cfg.ensembles()}))
    jobs = [
        AssetJob(
            cfg,
            r,
            (reader or (lambda name: partial(rows_of, name)))(r.asset.name),
            _of(retrains, r.asset.name),
            _of(trials, r.asset.name) if len(trials) else None,
            stage,
            k,
            len(runs) > 1,
            styles,
        )
        for k, r in enumerate(runs)
    ]
    tables, sections, across = evaluate_assets(cfg, jobs, stage, executor or InProcess())
    if len(trials):
        labels = {r.asset.name: r.asset.label for r in runs}
        tables["tuning"] = trials.assign(asset=trials["asset"].map(labels).astype("string"))
    for name in ("retrains", "tuning", "metrics", "scores", "breakdowns", "tests", "cost", "seeds", "wins", "economic"):
        if name in tables and (len(tables[name]) or name not in OPTIONAL):
            tables[name].to_parquet(stage / f"{name}.parquet", index=False)
    text = sections[0] if len(runs) == 1 else universe_report(cfg, runs, tables, across.summary(), sections)
    write_report(cfg, stage, text, tables["metrics"], styles)
    return (RunDir(stage).read_table(FORECASTS) if len(runs) == 1 else None), tables["retrains"], tables["metrics"]


def evaluate_assets(
    cfg: RunConfig, jobs: list[AssetJob], stage: Path, executor: Executor
) -> tuple[dict[str, pd.DataFrame], list[str], Across]:
    """Run the assets' jobs on ``executor`` and take their results in asset order as they come: the large
    tables appended to their files, the shares added across assets, the small tables and sections kept."""
    across, sections = Across(cfg), []
    kept: dict[str, dict[str, pd.DataFrame]] = {}
    waiting: dict[int, AssetDone] = {}
    with closing(TableWriter(stage, optional=[f"{n}.parquet" for n in OPTIONAL])) as writer:

        def take(job: AssetJob, done: AssetDone) -> None:
            waiting[job.index] = done
            while len(sections) in waiting:  # the next asset in order
                k = len(sections)
                got, first = waiting.pop(k), jobs[k]
                sections.append(got.section)
                across.absorb(got.share)
                for name in STREAMED:
                    path = first.parts / f"{name}.parquet"
                    if path.is_file():
                        writer.append(f"{name}.parquet", pq.read_table(path))
                shutil.rmtree(first.parts)
                for name, frame in got.kept.items():
                    kept.setdefault(name, {})[first.asset.asset.label] = frame

        executor.run(run_asset, jobs, take)
    shutil.rmtree(stage / PARTS, ignore_errors=True)
    tables = {name: _with_asset(parts) for name, parts in kept.items()}
    if len(jobs) > 1:
        across.finish(tables)
    return tables, sections, across


def asset_report(r: AssetRun, part: dict[str, pd.DataFrame], label: str = "") -> str:
    """The asset's own ``report.md`` (:func:`~.markdown.run_report`): a run's whole report, a universe's section
    (``label``: the asset named in the answer's words, as a run on one file names its file)."""
    return run_report(
        r.cfg,
        r.prepared,
        r.plan,
        part["retrains"].assign(asset=label) if label else part["retrains"],
        part["metrics"],
        part["tests"],
        part["coverage"],
        part["cost"],
        part["seeds"],
        part["losses"].assign(asset=label) if label else part["losses"],
        worth_sections(r.cfg, part.get("economic"), part["tests"]),
    )


def plot_asset(cfg: RunConfig, r: AssetRun, part: dict[str, pd.DataFrame], stage: Path, several: bool, styles) -> None:
    """The asset's forecasts against realized volatility (``forecast_vs_actual[_<asset>].png``)."""
    if not cfg.output.plots or not len(part["forecasts"]):
        return
    name = f"forecast_vs_actual_{r.asset.label}.png" if several else "forecast_vs_actual.png"
    plot_forecasts(
        part["forecasts"],
        part["retrains"],
        stage / name,
        horizon=1,
        unit=cfg.output.plot_unit,
        title=r.asset.label if several else None,
        styles=styles,
    )


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
        if (economic["section"] == "target").any():  # compare's economics: the bars' returns
            out["returns"] = bars[["rv", "ret"]].rename_axis("time").reset_index()
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


def write_report(cfg: RunConfig, stage: Path, text: str, scores: pd.DataFrame, styles: dict) -> None:
    """The run's figures (if ``output.plots``; each asset's forecast figure is drawn as it is evaluated),
    ``report.md`` and ``report.html``."""
    ev = cfg.evaluation
    plots = cfg.output.plots and len(scores)
    if plots:
        plot_error_by_horizon(
            scores.groupby(["strategy", "horizon"], observed=True)[["mse", "mae", "qlike"]].mean().reset_index(),
            stage / "error_by_horizon.png",
            styles,
        )
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
