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
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Callable

import pandas as pd
import yaml

from . import __version__
from .engine import Settings, run_engine
from .executors import dask_client, make_executor
from .errors import OutputError
from .evaluation.results import write_results
from .plan import Plan, check_plan, make_plan
from .process import check
from .rv import PreparedBars, prepare_bars
from .segment import RunContext, Segment
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
        rows, retrains, scores = write_results(cfg, prepared, plan, engine.forecasts, engine.records, stage)
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
