"""The Python API behind ``backtest run``: config in, results directory out.

``results/<name>/`` is built in a hidden staging directory beside it and moved into place only
when complete (:mod:`backtester.rundir`). Call :func:`backtester.process.setup` once first (the
CLI does), so that Keras starts on the config's backend.

Examples
--------
>>> from backtester.config import load_config            # doctest: +SKIP
>>> from backtester.process import setup                  # doctest: +SKIP
>>> cfg = load_config("configs/smoke.yaml"); setup(cfg)   # doctest: +SKIP
>>> result = run(cfg)                                      # doctest: +SKIP
>>> result.metrics.head()                                  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd

from . import tracking
from .core.errors import ConfigError
from .core.interrupt import check as check_interrupt
from .engine import Leg, Settings, run_universe
from .evaluation.results import write_results
from .executors import Executor, dask_client, local_workers, make_executor, worker_threads
from .layout import FORECASTS, RunDir, write_config, write_manifest
from .plan import Plan
from .prepare import describe_run, make_manifest, plan_universe, prepare_universe, segment_context, target_dir
from .process import check
from .rundir import guard_output, run_lock, run_stage, swap_in
from .segment import Segment

__all__ = ["RunResult", "plan_universe", "prepare_universe", "run", "target_dir"]  # plan_universe: the audit's


@dataclass
class RunResult:
    """A finished run: its folder, and its forecast rows (with actuals), fit records, metrics and manifest.
    A universe's rows are read from ``forecasts.parquet`` when first asked for (never held by the run)."""

    out_dir: Path
    rows: pd.DataFrame | None
    retrains: pd.DataFrame
    metrics: pd.DataFrame
    manifest: dict

    @property
    def forecasts(self) -> pd.DataFrame:
        if self.rows is None:
            self.rows = RunDir(self.out_dir).read_table(FORECASTS)
        return self.rows


def run(
    cfg,
    force: bool = False,
    progress: Callable[[Plan, Segment | None, bool], None] | None = None,
    log: Callable[[str], None] = lambda msg: None,
    fresh: bool = False,
) -> RunResult:
    """Run the walk-forward backtest of ``cfg`` and write ``results/<name>/``.

    Steps: prepare (data, plan, preflight) -> segments (each written to the staging directory when
    done; :func:`backtester.engine.run_universe`) -> evaluate -> manifest -> swap in. Every segment
    finished earlier under the same key, by an interrupted run of this name or by the finished run
    being replaced, is reused (:mod:`backtester.store`), unless ``fresh``. ``progress(plan, None,
    False)`` is called once the plan is known, ``progress(plan, segment, reused)`` as each segment is done.
    """
    t_start = time.perf_counter()
    check(cfg)
    store = tracking.preflight(cfg, log)  # MLflow missing, or an unreachable store with strict: refused here
    executor = executor_for(cfg)
    start = getattr(executor, "start", None)
    if start is not None:
        start()  # local workers start up (a process each, Keras imported) while the bars are prepared
    try:
        result = _run(cfg, executor, t_start, force, progress, log, fresh)
    except BaseException:
        if start is not None:
            executor.close(abort=True)
        raise
    finally:
        if start is not None:
            executor.close()
    if store is not None:
        track_finished(cfg, result.out_dir, store, log)
    return result


def track_finished(cfg, out: Path, store: str, log: Callable[[str], None]) -> None:
    """Log the finished run to MLflow; a failure is said in one line (the run's results stand), or raised with
    ``tracking.strict``."""
    try:
        tracking.track(cfg, out, store, log)
    except Exception as exc:
        if cfg.tracking.strict:
            raise ConfigError(f"tracking: the run is in {out}/, but logging it to {store} failed: {exc}") from None
        log(f"tracking skipped: logging to {store} failed ({type(exc).__name__}: {exc}); the run is in {out}/")


ROW_BYTES = 900  # peak memory per forecast row of the asset being evaluated (W3: about 110 MiB per 132,000 rows)
ASSET_BYTES = 2 * 2**20  # kept per asset evaluated (its small tables, the sums across assets; W3: 1.2 MiB)
BASE_BYTES = 800 * 2**20  # the parent's own: Python, pandas, the bars


def free_memory() -> int | None:
    """Bytes of memory available now (Linux ``MemAvailable``), or None where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def memory_guard(cfg, runs: list, free: int | None = None) -> None:
    """Refuse, before anything runs, a run whose evaluation would need more memory than is free. Assets are
    evaluated one at a time, so the estimate is the largest asset's forecast rows (issue times x strategies,
    seed ensembles included, x horizons) at :data:`ROW_BYTES` each, plus :data:`ASSET_BYTES` for each asset
    (measured on W3, bench/README.md). ``execution.memory_guard: false`` runs it anyway."""
    free = free_memory() if free is None else free
    if not cfg.execution.memory_guard or free is None:
        return
    per_asset = [
        len(r.plan.issue_times) * (len(r.cfg.run_strategies()) + len(r.cfg.ensembles())) * r.plan.horizon for r in runs
    ]
    need = BASE_BYTES + max(per_asset) * ROW_BYTES + len(runs) * ASSET_BYTES
    if need > 0.9 * free:
        fits = max(int((0.9 * free - BASE_BYTES - max(per_asset) * ROW_BYTES) / ASSET_BYTES), 0)
        split = (
            f"split the universe into runs of about {fits} asset{'s' * (fits != 1)}, " if 1 < fits < len(runs) else ""
        )
        raise ConfigError(
            f"{'data.assets' if len(runs) > 1 else 'backtest'}: this run's evaluation needs about "
            f"{need / 2**30:.1f} GiB ({len(runs)} asset{'s' * (len(runs) != 1)}, the largest with "
            f"{max(per_asset):,} forecast rows) and {free / 2**30:.1f} GiB is free: {split}shorten the test "
            "period or the horizon, or set execution.memory_guard: false to run it anyway"
        )


def _run(cfg, executor: Executor, t_start: float, force: bool, progress, log, fresh: bool) -> RunResult:
    runs = prepare_universe(cfg)  # bad data or an impossible plan fail first, before the output is looked at
    memory_guard(cfg, runs)
    plans = [r.plan for r in runs]
    timings = {"prepare": time.perf_counter() - t_start}
    out = target_dir(cfg)
    guard_output(out, force)
    for r in runs:
        describe_run(r.cfg, r.prepared, r.plan, log, r.asset.name)
    describe_execution(cfg, sum(len(p.segments()) for p in plans), log)
    shown = plans[0] if len(plans) == 1 else plans
    settings = engine_settings(cfg)
    describe_stacking(cfg, settings, log)
    with run_lock(out, log), run_stage(out, fresh) as stage:
        if progress is not None:
            progress(shown, None, False)
        t0 = time.perf_counter()
        legs = [Leg(r.plan, r.cfg.run_strategies(), r.series, segment_context(r.cfg, r.prepared, r.plan)) for r in runs]
        engine = run_universe(
            legs,
            settings,
            stage=stage,
            executor=executor,
            on_segment=partial(progress, shown) if progress else None,
            resume=not fresh,
            previous=None if fresh else out,
            keep_rows=len(runs) == 1,  # a universe's rows are read back asset by asset as it is evaluated
        )
        total = sum(len(p.segments()) for p in plans)
        if engine.reused:
            found = f", {engine.adopted} from the finished run in {out}/" if engine.adopted else ""
            log(f"reused {engine.reused} of {total} segments{found}, computed {total - engine.reused}")
        timings.update(engine_timings(cfg, engine, time.perf_counter() - t0))
        write_config(stage, cfg.resolved())
        t0 = time.perf_counter()
        several = len(runs) > 1  # a universe's assets are evaluated on the workers, one job each
        rows, retrains, scores = write_results(
            cfg,
            runs,
            engine.asset_rows,
            engine.records,
            stage,
            executor if several else None,
            engine.rows_of.__getitem__ if several else None,
        )
        timings["evaluate"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - t_start
        count = len(rows) if rows is not None else RunDir(stage).table_rows(FORECASTS)
        manifest = make_manifest(cfg, runs, count, retrains, timings)
        manifest["execution"] = execution_record(cfg, settings)
        manifest["segments"] = {"total": total, "reused": engine.reused, "computed": total - engine.reused}
        write_manifest(stage, manifest)
        if not cfg.output.save_models:  # only warm-start chains kept their models, to resume from
            shutil.rmtree(RunDir(stage).models, ignore_errors=True)
        check_interrupt()
        swap_in(stage, out)
    return RunResult(out, rows, retrains, scores, manifest)


def execution_record(cfg, settings: Settings) -> dict:
    """The manifest's ``execution``: how the segments were run."""
    return {
        "jobs": cfg.execution.jobs,
        "stack": settings.stack,
        "stack_equal_windows": settings.stack_equal,
        "trial_stack": settings.trial_stack,
    }


def describe_stacking(cfg, settings: Settings, log: Callable[[str], None]) -> None:
    """The run log's lines on stacked training and stacked random-search trials."""
    if settings.stack > 1:
        stacking = sorted(
            n
            for n, s in cfg.strategies.items()
            if s.params.stacks()  # a lone chain trains alone,
            and (
                s.repeats > 1
                or cfg.data.assets  # and so does a lone model on expanding windows
                or not (s.params.chains() or settings.stack_equal and s.window.kind != "rolling")
            )
        )
        if stacking:
            how = (
                f"fits on windows of one length (a retrain's seeds and assets; a rolling window's retrains) in "
                f"one compiled program, up to {settings.stack}"
                if settings.stack_equal
                else f"up to {settings.stack} fits per compiled program"
            )
            log(f"execution: stacked training of {', '.join(stacking)}: {how}")
    searching = sorted(n for n, s in cfg.strategies.items() if s.params.stacks_trials())
    if settings.trial_stack > 1 and searching:
        log(
            f"execution: the trials of {', '.join(searching)}'s random search trained together where their models "
            f"compile alike, up to {settings.trial_stack} per program"
        )


def describe_execution(cfg, segments: int, log: Callable[[str], None]) -> None:
    """Where segments run; an unreachable Dask scheduler is reported here, before anything starts."""
    ex = cfg.execution
    if ex.scheduler and local_workers(ex.scheduler) is not None:
        log(f"execution: segments on a local Dask cluster of {local_workers(ex.scheduler)} worker processes")
    elif ex.scheduler:
        dask_client(ex.scheduler).close()
        log(f"execution: segments on the Dask scheduler at {ex.scheduler}")
    elif ex.jobs > 1:
        used = min(ex.jobs, segments)
        log(
            f"execution: {used} worker processes"
            + (f" (jobs: {ex.jobs} asked, but there are only {used} segments)" if used < ex.jobs else "")
        )


def engine_settings(cfg) -> Settings:
    ex, accelerator = cfg.execution, on_accelerator(cfg)
    threads = 1 if ex.scheduler else worker_threads(ex.jobs)  # a Dask worker: one thread (README's --nthreads 1)
    size, equal = ex.stack_size(cfg.backend, accelerator, threads)
    return Settings(
        cfg.seed,
        cfg.backtest.max_failed_retrains,
        ex.batched,
        cfg.output.save_models,
        size,
        equal,
        ex.trial_stack(cfg.backend, accelerator),
    )


def on_accelerator(cfg) -> bool:
    """Whether ``stack: auto`` finds JAX on a GPU or TPU (asked only where a strategy could stack)."""
    ex = cfg.execution
    if ex.stack != "auto" or cfg.backend != "jax" or not any(s.params.stacks() for s in cfg.run_strategies().values()):
        return False
    if not accelerator_plugin():
        return False  # JAX's CPU wheel alone: no need to import JAX here (a second, on a parent that trains nothing)
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # asking must not take the GPU's memory
    import jax

    return jax.default_backend() != "cpu"


def accelerator_plugin() -> bool:
    """Whether JAX could find a GPU or TPU here: a PJRT plugin (``jax[cuda12]``'s, ROCm's) or libtpu is
    installed and ``JAX_PLATFORMS`` does not pin the CPU. Looked up without importing JAX."""
    from importlib import metadata, util

    if os.environ.get("JAX_PLATFORMS", "").strip().lower() == "cpu":
        return False
    if util.find_spec("jax_plugins") is not None or util.find_spec("libtpu") is not None:
        return True
    return any(True for _ in metadata.entry_points(group="jax_plugins"))


def executor_for(cfg) -> Executor:
    """Where the config's segments run; each strategy type's set-up goes to the workers."""
    params = {id(s.params): s.params for s in cfg.run_strategies().values()}
    return make_executor(cfg.execution.jobs, cfg.execution.scheduler, cfg.backend, params.values())


def engine_timings(cfg, engine, seconds: float) -> dict[str, float]:
    """Seconds of the engine phase: in all, fitting, forecasting, tuning, and the engine's own overhead."""
    out = {"engine": seconds, "train": engine.fit_seconds, "predict": engine.predict_seconds}
    if engine.tunings:
        out["tuning"] = sum(t.seconds for t in engine.tunings.values() if not t.reused)
    tuning_wall = out.get("tuning", 0.0) / max(1, min(cfg.execution.jobs, len(engine.tunings) or 1))
    out["engine_overhead"] = seconds - engine.compute_seconds - tuning_wall
    return out
