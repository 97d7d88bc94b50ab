"""The Python API behind ``backtest run``: config in, results directory out.

``results/<name>/`` is built in a hidden staging directory beside it and moved
into place only when complete, so a failed or interrupted run never leaves a
directory that looks finished, and ``--force`` replaces an old run only once the
new one is whole.

Examples
--------
>>> from backtester.config import load_config            # doctest: +SKIP
>>> result = run(load_config("configs/smoke.yaml"))       # doctest: +SKIP
>>> result.metrics.head()                                  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, fields
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Callable

import pandas as pd
import yaml

from . import __version__
from .engine import Settings, run_engine
from .executors import dask_client, make_executor
from .tuning import read_trials
from .errors import OutputError
from .evaluation import join_actuals, metrics, plot_error_by_horizon, plot_forecasts, summary
from .evaluation.accuracy import dm_table, model_confidence_set
from .evaluation.losses import breakdown_table, cost_table, coverage, loss_table, score_table
from .evaluation.report import headline, write_figures, write_html
from .plan import Plan, check_plan, make_plan
from .process import check
from .rv import PreparedBars, prepare_bars
from .segment import FitRecord, RunContext, Segment
from .series import BarSeries

PACKAGES = ("numpy", "pandas", "pyarrow", "scikit-learn", "tensorflow", "keras", "arch", "exchange-calendars", "pydantic")


@dataclass
class RunResult:
    out_dir: Path
    forecasts: pd.DataFrame
    retrains: pd.DataFrame
    metrics: pd.DataFrame
    manifest: dict


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "backtester": __version__}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def git_commit() -> str | None:
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return res.stdout.strip() or None if res.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def prepare(cfg) -> tuple[PreparedBars, Plan]:
    """Load the data, build RV bars and resolve the plan (no training)."""
    prepared = prepare_bars(cfg.data)
    plan = make_plan(cfg, prepared.bars.index)
    check_plan(cfg, plan)
    return prepared, plan


def target_dir(cfg) -> Path:
    return Path(cfg.output.dir) / cfg.name


def guard_output(out: Path, force: bool) -> None:
    if out.exists() and not force:
        finished = (out / "manifest.json").is_file()
        what = "a finished run" if finished else "a directory"
        raise OutputError(f"{out}: {what} is already there; pass --force to replace it, or change 'name' in the config")


def run(cfg, force: bool = False, progress: Callable[[Plan, Segment | None], None] | None = None,
        log: Callable[[str], None] = lambda msg: None) -> RunResult:
    """Run the walk-forward backtest of ``cfg`` and write ``results/<name>/``.

    ``progress(plan, None)`` is called once the plan is known, ``progress(plan, segment)`` as each
    segment finishes.

    Steps: prepare (data, plan, preflight) -> segments (each written to the
    staging directory when done) -> assemble and evaluate -> manifest -> swap in.
    """
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    check(cfg)
    prepared, plan = prepare(cfg)  # bad data or an impossible plan fail first, before the output is looked at
    for spec in cfg.strategies.values():  # members share their params: one preflight each
        spec.params.preflight(cfg.backtest.horizon)  # a bad builder fails before anything trains
    timings["prepare"] = time.perf_counter() - t_start
    out = target_dir(cfg)
    guard_output(out, force)
    log(f"data: {prepared.describe()}{' (cached)' if prepared.from_cache else ''}")
    for name, spec in cfg.strategies.items():
        for note in spec.params.notes(plan.issue_times[0]):
            log(f"note: {name} {note}")
    log(f"plan: {len(plan.issue_times):,} issue times, horizons 1..{plan.horizon}, "
        f"{plan.retrain_count} retrains in {len(plan.segments())} segments")
    ex = cfg.execution
    if ex.scheduler:
        dask_client(ex.scheduler).close()  # unreachable: say so before anything starts
        log(f"execution: segments on the Dask scheduler at {ex.scheduler}")
    elif ex.jobs > 1:
        used = min(ex.jobs, len(plan.segments()))
        log(f"execution: {used} worker processes" + (f" (jobs: {ex.jobs} asked, but there are only {used} segments)"
                                                      if used < ex.jobs else ""))

    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent.resolve() / f".{out.name}.partial-{os.getpid()}"  # absolute: workers may run elsewhere
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    try:
        (stage / "config.yaml").write_text(yaml.safe_dump(cfg.resolved(), sort_keys=False))
        t0 = time.perf_counter()
        if progress is not None:
            progress(plan, None)
        specs = cfg.run_strategies()
        settings = Settings(cfg.seed, cfg.backtest.max_failed_retrains, ex.batched, cfg.output.save_models)
        executor = make_executor(ex.jobs, ex.scheduler, cfg.backend, {id(s.params): s.params for s in specs.values()}.values())
        engine = run_engine(plan, specs, BarSeries.from_frame(prepared.bars), settings, stage=stage,
                            context=segment_context(cfg, prepared, plan), executor=executor,
                            on_segment=partial(progress, plan) if progress else None)
        timings["engine"] = time.perf_counter() - t0
        timings["train"] = engine.fit_seconds
        timings["predict"] = engine.predict_seconds
        if engine.tunings:
            timings["tuning"] = sum(t.seconds for t in engine.tunings.values())
        tuning_wall = timings.get("tuning", 0.0) / max(1, min(cfg.execution.jobs, len(engine.tunings) or 1))
        timings["engine_overhead"] = timings["engine"] - engine.compute_seconds - tuning_wall
        t0 = time.perf_counter()
        rows, retrains, scores = write_results(cfg, prepared, plan, engine, stage)
        timings["evaluate"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - t_start
        manifest = make_manifest(cfg, prepared, plan, rows, retrains, timings)
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=2))
        _swap_in(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return RunResult(out, rows, retrains, scores, manifest)


def data_record(cfg, prepared: PreparedBars) -> dict:
    """The data fingerprint recorded in the manifest and in every artifact."""
    return {
        "path": str(cfg.data.path),
        "sha256": prepared.fingerprint,
        "bars_key": prepared.cache_key,
        "bars": len(prepared.bars),
        "first_bar": str(prepared.bars.index[0]),
        "last_bar": str(prepared.bars.index[-1]),
    }


def segment_context(cfg, prepared: PreparedBars, plan: Plan) -> RunContext:
    """What every segment's artifact records about the run."""
    return RunContext(cfg.name, plan.bars, data_record(cfg, prepared), cfg.backend, versions())


def write_results(cfg, prepared: PreparedBars, plan: Plan, engine, stage: Path):
    """Forecasts with actuals, retrains, metrics, plots and the report, into ``stage``."""
    rows = join_actuals(add_ensembles(engine.forecasts, cfg.ensembles()), prepared.bars)
    retrains = pd.DataFrame([asdict(r) for r in engine.records], columns=[f.name for f in fields(FitRecord)])
    retrains["strategy"] = retrains["strategy"].astype("string")
    scores = metrics(rows)
    losses = loss_table(rows)
    tests = accuracy_tests(cfg, losses)
    cost = cost_table(retrains, losses, cfg.evaluation.loss, cfg.evaluation.benchmark, artifact_sizes(stage),
                      cfg.ensembles())
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
    score_table(losses, rows, cfg.evaluation.benchmark).to_parquet(stage / "scores.parquet", index=False)
    breakdown_table(losses).to_parquet(stage / "breakdowns.parquet", index=False)
    tests.to_parquet(stage / "tests.parquet", index=False)
    cost.to_parquet(stage / "cost.parquet", index=False)
    if cfg.output.plots and len(rows):
        plot_forecasts(rows, retrains, stage / "forecast_vs_actual.png", horizon=1, unit=cfg.output.plot_unit)
        plot_error_by_horizon(scores, stage / "error_by_horizon.png")
    (stage / "report.md").write_text(report(cfg, prepared, plan, retrains, scores, tests, coverage(rows), cost, spread))
    if cfg.output.plots and len(rows):
        write_figures(stage, cfg.evaluation.loss, cfg.evaluation.benchmark)
    write_html(stage)
    return rows, retrains, scores


def add_ensembles(forecasts: pd.DataFrame, ensembles: dict[str, list[str]]) -> pd.DataFrame:
    """Append each seed ensemble (the mean forecast of its members) as a strategy of its own."""
    from .engine import combine_rows

    parts = [forecasts]
    for name, members in ensembles.items():
        m = forecasts[forecasts["strategy"].isin(members)]
        g = m.groupby(["issued_at", "target_time", "horizon"], observed=True)
        ens = g.agg(forecast=("forecast", "mean"), model_version=("model_version", "max"),
                    trained_through=("trained_through", "max"), members=("strategy", "nunique")).reset_index()
        ens = ens[ens["members"] == len(members)].drop(columns="members")  # only where every member forecast
        parts.append(ens.assign(strategy=name))
    return combine_rows(parts) if ensembles else forecasts


def seed_spread(cfg, scores: pd.DataFrame) -> pd.DataFrame:
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


def accuracy_tests(cfg, losses: pd.DataFrame) -> pd.DataFrame:
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


def make_manifest(cfg, prepared: PreparedBars, plan: Plan, rows: pd.DataFrame, retrains: pd.DataFrame,
                  timings: dict[str, float]) -> dict:
    return {
        "name": cfg.name,
        "config_id": cfg.config_id(),
        "seed": cfg.seed,
        "backend": cfg.backend,
        "created": pd.Timestamp.now(tz="UTC").isoformat(),
        "command": " ".join(sys.argv),
        "versions": versions(),
        "git_commit": git_commit(),
        "data": {**data_record(cfg, prepared), "missing_bars": [str(t) for t in prepared.missing]},
        "plan": {"retrains": plan.retrain_count, "segments": len(plan.segments()), "issue_times": len(plan.issue_times),
                 "horizon": plan.horizon},
        "rows": len(rows),
        "failed_retrains": int((retrains["status"] != "ok").sum()),
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "status": "complete",
    }


def _swap_in(stage: Path, out: Path) -> None:
    """Move the finished staging directory to ``out``; an old run is removed only after."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    os.replace(stage, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def report(cfg, prepared: PreparedBars, plan: Plan, retrains: pd.DataFrame, scores: pd.DataFrame,
           tests: pd.DataFrame | None = None, cover: pd.DataFrame | None = None,
           cost: pd.DataFrame | None = None, spread: pd.DataFrame | None = None) -> str:
    """A short Markdown report of the run."""
    s = summary(scores)
    h1 = scores[scores["horizon"] == 1].set_index("strategy")[["mse", "qlike"]]
    lines = [
        f"# Backtest `{cfg.name}`",
        "",
        f"- data: `{cfg.data.path}` — {prepared.describe()}",
        f"- test period: {plan.issue_times[0]} .. {plan.issue_times[-1]}, horizons 1..{plan.horizon}",
        f"- failed retrains: {int((retrains['status'] != 'ok').sum())}",
        "",
        "## The answer",
        "",
        *(headline(scores, tests, cost, cfg.evaluation.loss, cfg.evaluation.benchmark) if tests is not None and cost is not None else []),
        "",
        "## Schedules",
        "",
        "| strategy | retrains | schedule |",
        "|---|---|---|",
        *[f"| {name} | {len(plan.schedules[name].retrains)} | {spec.schedule_label()} |" for name, spec in cfg.run_strategies().items()],
        "",
        "## Losses, mean over horizons (QLIKE of variance, MSE/MAE of volatility)",
        "",
        "| strategy | QLIKE | MSE | MAE | QLIKE h=1 | MSE h=1 |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in s.iterrows():
        lines.append(
            f"| {name} | {row.qlike:.4f} | {row.mse:.3e} | {row.mae:.3e} | {h1.loc[name, 'qlike']:.4f} | {h1.loc[name, 'mse']:.3e} |"
        )
    if spread is not None and len(spread):
        lines += ["", "## Seed spread (each loss averaged over horizons; one row per seed ensemble)", "",
                  "| strategy | loss | seeds | mean over seeds | std | min | max | ensemble (mean forecast) |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r.strategy} | {r.loss} | {r.seeds} | {r.mean:.4g} | {r.std:.2g} | {r.min:.4g} | {r.max:.4g} | "
                  f"{r.ensemble:.4g} |" for r in spread.itertuples()]
    if tests is not None:
        lines += accuracy_lines(cfg, tests)
    if cost is not None and len(cost):
        lines += cost_lines(cfg, cost)
    if cover is not None and (cover[["missing_actual", "zero_actual", "nonpositive_forecast"]].to_numpy().sum() > 0):
        lines += ["", "## Rows not scored", "", "| strategy | rows | missing actual | zero actual | forecast <= 0 |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r.strategy} | {r.rows} | {r.missing_actual} | {r.zero_actual} | {r.nonpositive_forecast} |"
                  for r in cover.itertuples()]
    lines += ["", "Plots: `forecast_vs_actual.png`, `error_by_horizon.png`, `rolling_loss.png`, "
              "`cumulative_loss_difference.png`, `loss_by_segment.png`, `loss_by_hour.png`, `cost_vs_accuracy.png`; "
              "all in `report.html`.", ""]
    return "\n".join(lines)


def cost_lines(cfg, cost: pd.DataFrame) -> list[str]:
    """Report section: training cost against accuracy, per strategy."""
    ev = cfg.evaluation
    gain = [c for c in cost.columns if c.startswith("gain_vs_")][0]
    out = ["", f"## Cost and accuracy ({ev.loss} averaged over every scored row; gain = benchmark's loss minus the "
               "strategy's, on common rows)", "",
           f"| strategy | retrains | training s | s per retrain | artifacts kB | mean {ev.loss} | {gain.replace('_', ' ')} "
           "| gain per training minute |", "|---|---|---|---|---|---|---|---|"]
    for r in cost.itertuples(index=False):
        d = r._asdict()
        per_min = f"{d['gain_per_train_minute']:.4f}" if pd.notna(d["gain_per_train_minute"]) else "–"
        g = f"{d[gain]:+.4f}" if pd.notna(d[gain]) else "–"
        out.append(f"| {r.strategy} | {r.retrains} | {r.train_seconds:.1f} | {r.seconds_per_retrain:.2f} | "
                   f"{r.artifact_bytes / 1000:.0f} | {d[f'mean_{ev.loss}']:.4f} | {g} | {per_min} |")
    return out


def accuracy_lines(cfg, tests: pd.DataFrame) -> list[str]:
    """Report section: DM against the benchmark (horizon-averaged and h=1) and MCS membership."""
    ev = cfg.evaluation
    out = []
    dm = tests[(tests["test"] == "dm") & (tests["against"] == ev.benchmark)]
    if ev.benchmark is not None and len(dm):
        out += ["", f"## Diebold–Mariano against `{ev.benchmark}` ({ev.loss}; HLN-corrected, two-sided; "
                    "negative = lower loss than the benchmark)", "",
                "| strategy | all horizons: DM | p | h=1: DM | p |", "|---|---|---|---|---|"]
        for model, part in dm.groupby("model", sort=True):
            avg, h1 = part[part["horizon"] == 0].iloc[0], part[part["horizon"] == 1]
            h1 = h1.iloc[0] if len(h1) else None
            cells = [f"{avg.statistic:.2f}", f"{avg.pvalue:.3g}"] if avg.note in ("rectangular", "bartlett") else [avg.note, ""]
            cells += ([f"{h1.statistic:.2f}", f"{h1.pvalue:.3g}"] if h1 is not None and h1.note in ("rectangular", "bartlett")
                      else ["not computed", ""])
            out.append(f"| {model} | " + " | ".join(cells) + " |")
    mcs = tests[tests["test"] == "mcs"]
    if len(mcs):
        sizes = sorted(mcs["size"].unique())
        out += ["", f"## Model Confidence Set ({ev.loss} averaged over horizons per issue time; stationary bootstrap, "
                    f"{ev.mcs_reps} reps, seed {cfg.seed})", "",
                "| strategy | MCS p-value | " + " | ".join(f"in {100 - round(100 * s)} % set" for s in sizes) + " |",
                "|---|---|" + "---|" * len(sizes)]
        for model, part in mcs.groupby("model", sort=True):
            part = part.set_index("size")
            if str(part["note"].iloc[0]).startswith("not computed"):
                out.append(f"| {model} | {part['note'].iloc[0]} |" + " |" * len(sizes))
                continue
            marks = ["**yes**" if part.loc[s, "in_set"] else "no" for s in sizes]
            out.append(f"| {model} | {part['mcs_pvalue'].iloc[0]:.3f} | " + " | ".join(marks) + " |")
    return out
