"""Runs a plan's segments, one path for every executor: plan -> chains -> executor -> assemble.

1. **Tunings.** Retrains that search hyperparameters first (``Params.tuning_points``) run as
   jobs of their own; each segment then gets the params of the latest tuning at or before it.
In a universe (:func:`run_universe`) every asset has its own plan and bars (a :class:`Leg`); all
the assets' jobs go to the executor together. A global model (``Params.pools_assets()``) runs each
retrain as one :class:`PooledJob` over its segment on every asset (:mod:`backtester.pooled`).

2. **Chains.** A strategy that continues its previous model (``Params.chains()``, a warm start)
   is one chain of all its segments, run in order in one worker; every other segment is a chain
   of one. A job (:mod:`backtester.jobs`: a :class:`ChainJob`, a :class:`PooledJob`, or a
   :class:`~backtester.stacking.StackJob` of chains trained together) is a frozen value: its segments,
   their params, the bars, the run's settings and where to write; it runs itself through the one chain
   loop (:func:`backtester.chain.run_chains`), which the audit runs too.
3. **Executor.** :mod:`backtester.executors` runs :func:`~backtester.jobs.run_job` for every job (longest
   first) in this process, on local worker processes or on a Dask cluster; each finished segment
   is written to the staging directory at once (its rows, fit record and artifact).
4. **Assemble.** :func:`assemble` reads every segment back from disk in time order, strategy by
   strategy; a failed fit that has no forecasts yet gets them from the strategy's previous good
   model, reloaded from that segment's artifact (or refitted, which is deterministic, where it
   saved none), and more than ``max_failed`` failed fits in a row stop the run.

With ``resume`` (what ``backtest run`` does), every segment and tuning is keyed by what made it
(:mod:`backtester.store`); one finished under the same key, in the staging directory of an
interrupted run or in the finished run being replaced, is reused instead of run again, and a
warm-start chain goes on from its last saved model.

The engine keeps no fitted model between segments that it could not reload from disk, so where
a segment ran (and whether it ran in this process at all, or in an earlier run) never changes a number. It owns no
calendar logic and knows nothing of Keras. The event semantics are those of the reference clock
(``tests/clock.py``): a retrain at T sees the bars closed at or before T and comes
before the forecast issued at T; a segment starts with its retrain event and holds every
forecast event until the next retrain of its strategy (``tests/test_segment.py``).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from .chain import previous_good
from .core.interrupt import check as check_interrupt
from .core.series import BarSeries
from .executors import Executor, InProcess, cost_order
from .jobs import ChainJob, PooledJob, run_job
from .plan import Plan
from .recorder import combine_rows
from .resume import reload_model
from .rundir import versions
from .segment import artifact_dir, check_failures, issue_forecasts, read_rows, read_segment, write_segment
from .stacking import StackJob, stack_jobs
from .store import (
    RunKeyBase,
    adopt,
    adopt_tuning,
    digest,
    is_stored,
    prune,
    segment_keys,
    stored_key,
    stored_tuning_key,
    tuning_key,
)
from .tuning import TuneJob, TuneResult, params_by_segment, run_tuning, tuning_dir
from .work import ChainDone, FitRecord, LiveModel, RunContext, Segment, SegmentResult, Settings, StoredSegment

__all__ = ["ChainJob", "EngineResult", "Leg", "PooledJob", "Settings", "StackJob", "Walk", "run_job", "run_universe"]


@dataclass(frozen=True)
class Walk:
    """What every step of one engine run shares: the plan and its strategies, the bars, the settings,
    the staging directory and what the artifacts record about the run."""

    plan: Plan
    specs: dict[str, Any]  # strategy name -> StrategySpec (params, type, window)
    series: BarSeries
    settings: Settings
    stage: Path
    context: RunContext | None = None


@dataclass
class EngineResult:
    forecasts: pd.DataFrame
    records: list[FitRecord]
    fit_seconds: float = 0.0
    predict_seconds: float = 0.0
    segments: int = 0
    workers: dict[str, float] = field(default_factory=dict)  # busy seconds per worker
    tunings: dict[str, TuneResult] = field(default_factory=dict)  # by segment key
    reused: int = 0  # segments found finished in the store (nothing ran)
    adopted: int = 0  # of those, taken from the finished run being replaced
    rows_of: dict[str, Callable[[], pd.DataFrame]] = field(default_factory=dict)  # ``keep_rows=False``: per asset

    def asset_rows(self, asset: str) -> pd.DataFrame:
        """One asset's forecast rows: read back from the stage (``keep_rows=False``) or from :attr:`forecasts`."""
        f = self.rows_of[asset]() if asset in self.rows_of else self.forecasts
        return f if "asset" not in f or asset in self.rows_of else f[f["asset"] == asset].reset_index(drop=True)

    @property
    def compute_seconds(self) -> float:
        """Seconds of fitting and forecasting on the critical path: the busiest worker's."""
        return max(self.workers.values()) if self.workers else self.fit_seconds + self.predict_seconds


@dataclass(frozen=True)
class Leg:
    """One asset's part of a run: its plan (``plan.asset`` names the asset), strategies, bars and context."""

    plan: Plan
    specs: dict[str, Any]
    series: BarSeries
    context: RunContext | None = None


def run_universe(
    legs: list[Leg],
    settings: Settings,
    stage: Path | None = None,
    executor: Executor | None = None,
    on_segment: Callable[[Segment, bool], None] | None = None,
    resume: bool = False,
    previous: Path | None = None,
    keep_rows: bool = True,
) -> EngineResult:
    """Run every segment of every leg's plan on ``executor`` (default: this process), writing each to
    ``stage`` (default: a temporary directory), and assemble the result. Every asset's jobs go to
    ``executor`` together (longest first), so assets spread over workers like any other segments; the
    forecasts get an ``asset`` column when the legs are assets of a universe (``plan.asset`` set).
    Artifacts are written only with ``settings.save_models`` and a leg's ``context``.

    ``resume``: ``stage`` may hold an interrupted run's segments; every segment and tuning finished
    there or in ``previous`` (the finished run this one replaces) under the same key
    (:mod:`backtester.store`) is reused, and everything else in ``stage`` is removed first.
    ``on_segment(segment, reused)`` is called as each segment is done. ``keep_rows=False`` (a universe
    evaluated asset by asset; needs ``stage``): the forecasts are not held, :meth:`EngineResult.asset_rows`
    reads each asset's back from ``stage`` when asked.

    >>> import numpy as np, pandas as pd
    >>> from backtester.config import parse_config
    >>> from backtester.plan import make_plan
    >>> cfg = parse_config({"name": "d", "data": {"path": "x.parquet"},
    ...                     "backtest": {"start": "2024-01-03", "horizon": 2}, "strategies": {"naive": {}}})
    >>> bars = pd.date_range("2024-01-01 01:00", periods=96, freq="h", tz="UTC")
    >>> series = BarSeries(bars.asi8, np.linspace(1.0, 2.0, 96), np.zeros(96), np.ones(96, bool))
    >>> res = run_universe([Leg(make_plan(cfg, bars), cfg.run_strategies(), series)], Settings(run_seed=0))
    >>> len(res.forecasts), [r.status for r in res.records]
    (95, ['ok'])
    """
    executor = executor or InProcess()
    with _staging(stage) as where:
        walks = [Walk(leg.plan, leg.specs, leg.series, settings, where, leg.context) for leg in legs]
        keyed = stage is not None  # a run's own directory: every segment is written with its key
        if keyed and not resume:
            prune(where, [], {}, False, {})  # nothing in it may be reused
        tunings, params, keys, tuning_keys = {}, {}, {}, {}
        for walk in walks:
            for part, got in zip(
                (tunings, params, keys, tuning_keys), _prepare(walk, executor, keyed, resume, previous)
            ):
                part.update(got)
        pooled = pooled_jobs(walks, params, keys)
        adopted = reuse(walks, keys, tuning_keys, previous) if resume else set()
        progress = Progress(walks, settings.max_failed, on_segment)
        jobs = all_jobs(walks, params, keys, pooled, settings, executor.parallel)
        done = [job for job in jobs if job.finished()]  # read back here: no worker needed for them
        InProcess().run(run_job, done, progress)
        executor.run(run_job, [job for job in jobs if not any(job is d for d in done)], progress)
        out = assemble_all(walks, params, progress.reused, keep_rows or stage is None)
    out.workers, out.tunings = progress.workers, tunings
    out.reused, out.adopted = len(progress.reused), len(adopted & progress.reused)
    return out


Job = ChainJob | PooledJob | StackJob


class Progress:
    """What the engine learns as jobs finish: each worker's busy seconds, each segment's status, the
    segments reused; it stops the run once a strategy failed too many fits in a row (:func:`stop_early`)."""

    def __init__(self, walks: list[Walk], max_failed: int, on_segment: Callable[[Segment, bool], None] | None):
        self.segments = {s.key: s for w in walks for s in w.plan.segments()}
        self.in_order = {
            (w.plan.asset, name): [s.key for s in w.plan.segments(name)] for w in walks for name in w.specs
        }
        self.max_failed, self.on_segment = max_failed, on_segment
        self.workers: dict[str, float] = {}
        self.statuses: dict[str, str] = {}
        self.reused: set[str] = set()

    def __call__(self, job: Job, done: ChainDone) -> None:
        for key, seconds, status, was_reused in done.segments:
            self.workers[done.worker] = self.workers.get(done.worker, 0.0) + seconds
            self.statuses[key] = status
            if was_reused:
                self.reused.add(key)
            if self.on_segment is not None:
                self.on_segment(self.segments[key], was_reused)
        for seg in {(s.asset, s.strategy): s for s in job.segments}.values():
            order = self.in_order[seg.asset, seg.strategy]
            stop_early(seg.owner, order, self.statuses, self.max_failed, self.segments)
        check_interrupt()


def all_jobs(
    walks: list[Walk],
    params: dict[str, Any],
    keys: dict[str, str],
    pooled: list[PooledJob],
    settings: Settings,
    parallel: bool,
) -> list[Job]:
    """Every job of the run: each walk's chains (fits that stack gathered into stacked jobs), then the global
    models' retrains; for executors that run jobs at once (``parallel``), costliest first."""
    skip = {job.segments[0].strategy for job in pooled}
    jobs = [job for w in walks for job in chains(w, params, longest_first=parallel, keys=keys, skip=skip)]
    jobs = stack_jobs(jobs, settings.stack, settings.stack_equal) + pooled
    if parallel and (len(walks) > 1 or settings.stack > 1):
        jobs = cost_order(
            (job, sum(params[s.key].fit_cost(s.window.stop - s.window.start) for s in job.segments)) for job in jobs
        )
    return jobs


def pooled_jobs(walks: list[Walk], params: dict[str, Any], keys: dict[str, str]) -> list[PooledJob]:
    """The retrains of the universe's global models (``Params.pools_assets``), one job each over every asset's
    segment of that retrain. Each member's store key becomes the hash of all members' keys (``keys`` is
    updated): a global model's forecasts depend on every asset's bars."""
    if not any(w.plan.asset for w in walks):
        return []  # a run on one file: a global model is that file's model
    groups: dict[tuple[str, int], list[tuple[Walk, Segment]]] = {}
    for w in walks:
        for seg in w.plan.segments():
            if params[seg.key].pools_assets():
                groups.setdefault((seg.strategy, seg.model_version), []).append((w, seg))
    jobs = []
    for (name, _), members in groups.items():
        key = digest({"global": [keys[s.key] for _, s in members]}) if keys else None
        for _, s in members:
            if key is not None:
                keys[s.key] = key
        w0, s0 = members[0]
        jobs.append(
            PooledJob(
                tuple(s for _, s in members),
                params[s0.key],
                w0.specs[name],
                tuple(w.series for w, _ in members),
                tuple(w.plan.bars for w, _ in members),
                w0.settings,
                w0.stage,
                tuple(w.context for w, _ in members),
                key,
            )
        )
    return jobs


def assemble_all(walks: list[Walk], params: dict[str, Any], reused: set[str], rows: bool) -> EngineResult:
    """Every walk assembled into one result (forecasts with an ``asset`` column in a universe); without
    ``rows``, each asset's are read back when asked for."""
    results = [assemble(w, params, reused, rows=rows) for w in walks]
    if len(results) == 1 and not walks[0].plan.asset:
        out = results[0]
    else:
        out = EngineResult(pd.concat([r.forecasts for r in results], ignore_index=True), [])
        for r in results:
            out.records += r.records
            out.fit_seconds += r.fit_seconds
            out.predict_seconds += r.predict_seconds
            out.segments += r.segments
    if not rows:
        out.rows_of = {w.plan.asset: partial(read_rows, w.stage, w.plan, list(w.specs)) for w in walks}
    return out


def _prepare(walk: Walk, executor: Executor, keyed: bool, resume: bool, previous: Path | None):
    """Tune (or reuse tunings), resolve each segment's params and keys, and with ``resume`` keep what the
    store holds. Returns ``(tunings, params by segment, segment keys, tuning keys)``."""
    plan, specs, series, where = walk.plan, walk.specs, walk.series, walk.stage
    base = key_base(walk)
    tuning_keys = (
        {
            s.key: tuning_key(base, s, specs[s.strategy].type, specs[s.strategy].params, series)
            for s in plan.segments()
            if s.tune
        }
        if keyed
        else {}
    )
    if resume and previous is not None:
        for seg in plan.segments():
            if (
                seg.key in tuning_keys
                and stored_tuning_key(tuning_dir(where, seg)) != tuning_keys[seg.key]
                and stored_tuning_key(tuning_dir(previous, seg)) == tuning_keys[seg.key]
            ):
                adopt_tuning(where, previous, seg)
    tunings = run_tunings(walk, executor, tuning_keys)
    params = {}
    for name, spec in specs.items():
        params.update(params_by_segment(spec.params, plan.segments(name), tunings))
    keys = (
        segment_keys(base, {n: plan.segments(n) for n in specs}, {n: s.type for n, s in specs.items()}, params, series)
        if keyed
        else {}
    )
    return tunings, params, keys, tuning_keys


def key_base(walk: Walk) -> RunKeyBase:
    ctx = walk.context
    return RunKeyBase.current(
        ctx.versions if ctx is not None and ctx.versions else versions(),
        ctx.backend if ctx is not None else None,
        walk.settings.run_seed,
        walk.settings.batched,
        (walk.settings.stack, walk.settings.stack_equal),
    )


def reuse(walks: list[Walk], keys: dict[str, str], tuning_keys: dict[str, str], previous: Path | None) -> set[str]:
    """Keep in the staging directory only what matches its key; link in the finished segments of the
    run being replaced that the staging directory lacks. Returns the keys of those taken over."""
    stage, need = walks[0].stage, walks[0].settings.save_models and walks[0].context is not None
    segments = [s for w in walks for s in w.plan.segments()]
    prune(stage, segments, keys, need, tuning_keys)
    adopted = set()
    if previous is not None and Path(previous).is_dir():
        for seg in segments:
            if not is_stored(stage, seg, keys[seg.key], need) and is_stored(previous, seg, keys[seg.key], need):
                adopt(stage, Path(previous), seg)
                adopted.add(seg.key)
    return adopted


def stop_early(
    strategy: str,
    keys: list[str],
    statuses: dict[str, str],
    max_failed: int,
    segments: dict[str, Segment] | None = None,
) -> None:
    """Stop the run as soon as the strategy's finished retrains, read in time order up to the first one
    not finished yet, hold more than ``max_failed`` failures in a row (the rest would be wasted)."""
    known = []
    for key in keys:
        if key not in statuses:
            break
        known.append(statuses[key])
    times = [segments[k].retrain_time for k in keys[: len(known)]] if segments else None
    check_failures(strategy, known, max_failed, times)


@contextmanager
def _staging(stage: Path | None) -> Iterator[Path]:
    if stage is not None:
        yield Path(stage)
        return
    tmp = Path(tempfile.mkdtemp(prefix="backtester-stage-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_tunings(walk: Walk, executor: Executor, keys: dict[str, str] | None = None) -> dict[str, TuneResult]:
    """Every tuning retrain's search, as jobs on ``executor`` (one finished under its key is read back);
    results by segment key."""
    keys = keys or {}
    jobs = [
        TuneJob(
            s,
            walk.specs[s.strategy].params,
            walk.series,
            walk.settings.run_seed,
            walk.stage,
            keys.get(s.key),
            walk.settings.trial_stack,
        )
        for s in walk.plan.segments()
        if s.tune
    ]
    out: dict[str, TuneResult] = {}
    executor.run(run_tuning, jobs, lambda job, result: out.__setitem__(job.segment.key, result))
    return out


def chains(
    walk: Walk,
    params: dict[str, Any],
    longest_first: bool = True,
    keys: dict[str, str] | None = None,
    skip: set[str] = frozenset(),
) -> list[ChainJob]:
    """The plan's segments as chains (a chaining strategy's in one, any other segment alone): longest first
    for executors that run them at once, else in plan order (strategy by strategy, in time order, so that
    a strategy failing every fit stops the run at once)."""
    groups: dict[str, list[Segment]] = {}
    for s in walk.plan.segments():
        if s.strategy in skip:  # a global model's retrains: pooled_jobs
            continue
        groups.setdefault(s.strategy if walk.specs[s.strategy].params.chains() else s.key, []).append(s)
    order = list(groups)
    if longest_first:
        cost = {k: sum(params[s.key].fit_cost(s.window.stop - s.window.start) for s in g) for k, g in groups.items()}
        order = cost_order(cost.items())
    keys = keys or {}
    return [
        ChainJob(
            tuple(groups[k]),
            tuple(params[s.key] for s in groups[k]),
            walk.specs[groups[k][0].strategy],
            walk.series,
            walk.plan.bars,
            walk.settings,
            walk.stage,
            walk.context,
            tuple(keys.get(s.key) for s in groups[k]) if keys else (),
        )
        for k in order
    ]


def assemble(walk: Walk, params: dict[str, Any], reused: set[str] = frozenset(), rows: bool = True) -> EngineResult:
    """Read every finished segment back from the staging directory, strategy by strategy in time order;
    give a failed fit without forecasts those of the strategy's previous good model; stop the run once
    more than ``max_failed`` fits in a row failed. Seconds count the segments computed in this run
    (not those in ``reused``). Without ``rows`` the forecasts are not kept (:func:`~backtester.segment.read_rows` reads them)."""
    out = EngineResult(forecasts=pd.DataFrame(), records=[])
    parts = []
    for name in walk.specs:
        records: list[FitRecord] = []
        last_ok: tuple[Segment, StoredSegment] | None = None
        live: LiveModel | None = None
        for seg in walk.plan.segments(name):
            stored = read_segment(walk.stage, seg)
            # a failed fit of a chain of one gets the previous good model's forecasts here, every time (the
            # previous segment may have been recomputed since); a chain made its own from its last good model
            kept = seg.key in reused and last_ok is not None and last_ok[0].key in reused and len(stored.rows)
            if params[seg.key].pools_assets() and seg.asset and kept:
                pass  # a global model's fallback rows, from a model that did not change (its artifact may be gone)
            elif not stored.ok and last_ok is not None and not params[seg.key].chains():
                if live is None or live.model_version != last_ok[0].model_version:
                    live = previous_model(walk, *last_ok, params[last_ok[0].key])
                stored = fall_back(walk, seg, stored, live, params[seg.key])
            if stored.ok:
                last_ok = (seg, stored)
            records.append(stored.record)
            check_failures(
                seg.owner, [r.status for r in records], walk.settings.max_failed, [r.retrain_time for r in records]
            )
            if rows:
                parts.append(stored.rows)
            if seg.key not in reused:
                out.fit_seconds += stored.fit_seconds
                out.predict_seconds += stored.predict_seconds
            out.segments += 1
        out.records.extend(records)
    out.forecasts = combine_rows(parts)
    if walk.plan.asset and rows:
        out.forecasts.insert(0, "asset", walk.plan.asset)
    return out


def previous_model(walk: Walk, seg: Segment, stored: StoredSegment, params: Any) -> LiveModel:
    """The model a finished segment fitted: reloaded from its artifact, else fitted again (deterministic)."""

    def reload(s: Segment, p: Any) -> LiveModel | None:
        return reload_model(artifact_dir(walk.stage, s.owner, s.model_version), stored, s, p)

    live = previous_good([(seg, params)], walk.series, walk.plan.bars, walk.settings.run_seed, reload, known_good=True)
    assert live is not None  # known_good: a refit that fails raised
    return live


def fall_back(walk: Walk, seg: Segment, stored: StoredSegment, live: LiveModel, params: Any) -> StoredSegment:
    """A failed fit's segment with the forecasts of ``live`` (the previous good model), written back
    (under the same key: the failed fit itself is what the key describes)."""
    t0 = time.perf_counter()
    rows = issue_forecasts(seg, live, walk.series.upto(seg.stop), walk.plan.bars, walk.settings.batched)
    seconds = time.perf_counter() - t0
    record = replace(stored.record, model_version=live.model_version)
    res = SegmentResult(seg, record, rows, live, stored.fit_seconds, seconds)
    key = stored_key(walk.stage, seg)
    write_segment(walk.stage, res, replace(walk.specs[seg.strategy], params=params), walk.context, False, key)
    return StoredSegment(record, rows, stored.fit_seconds, seconds)
