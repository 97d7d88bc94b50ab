"""Runs the plan's segments and writes each one as soon as it is done.

The plan splits every strategy's walk-forward into segments (one retrain
interval each). In one process the engine runs them strategy by strategy in time
order, hands a failed fit the previous model (:class:`~backtester.segment.LiveModel`)
and stops once more than ``max_failed_retrains`` fits in a row fail. With
``jobs > 1`` or a Dask ``scheduler`` every segment is an independent job
(:mod:`backtester.executors`), run longest first; the fallbacks for failed fits
are then made here, in time order, with the same results. It owns no calendar
logic and knows nothing of Keras.

The event semantics are those of :func:`~backtester.clock.clock`: a retrain at T
sees the bars closed at or before T and comes before the forecast issued at T.
A segment starts with its retrain event and holds every forecast event until the
next retrain of its strategy (``tests/test_segment.py`` checks this against the clock).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from .executors import JobResult, chain_job, cost_order, run_jobs, tune_job
from .plan import Plan
from .recorder import combine_rows
from .segment import FitRecord, LiveModel, Segment, check_failures, run_segment, write_segment
from .series import BarSeries
from .tuning import TuneResult, params_by_segment, tune_segment


@dataclass
class EngineResult:
    forecasts: pd.DataFrame
    records: list[FitRecord]
    fit_seconds: float = 0.0
    predict_seconds: float = 0.0
    segments: int = 0
    parts: list[pd.DataFrame] = field(default_factory=list, repr=False)
    workers: dict[str, float] = field(default_factory=dict)  # busy seconds per worker (parallel runs)
    tunings: dict[str, TuneResult] = field(default_factory=dict)  # by segment key

    def add(self, res) -> None:
        self.parts.append(res.rows)
        self.fit_seconds += res.fit_seconds
        self.predict_seconds += res.predict_seconds
        self.segments += 1

    @property
    def compute_seconds(self) -> float:
        """Seconds of fitting and forecasting on the critical path: the busiest worker's, or all of them."""
        return max(self.workers.values()) if self.workers else self.fit_seconds + self.predict_seconds


def run_engine(
    plan: Plan,
    specs: dict[str, Any],
    series: BarSeries,
    run_seed: int,
    max_failed: int = 3,
    stage: Path | None = None,
    context: dict[str, Any] | None = None,
    save_models: bool = False,
    on_segment: Callable[[Segment], None] | None = None,
    batched: bool = True,
    jobs: int = 1,
    scheduler: str | None = None,
) -> EngineResult:
    """Run every segment of ``plan``; write each to ``stage`` when one is given.

    ``jobs > 1`` runs segments on that many local worker processes, ``scheduler`` on a
    Dask cluster; the results are the same as in this process.
    """
    if jobs > 1 or scheduler is not None:
        return _run_parallel(plan, specs, series, run_seed, max_failed, stage, context or {}, save_models,
                             on_segment, batched, jobs, scheduler)
    out = EngineResult(forecasts=pd.DataFrame(), records=[])
    for name, spec in specs.items():
        live: LiveModel | None = None
        records: list[FitRecord] = []
        params = spec.params
        warm = _warm(spec)
        for seg in plan.segments(name):
            if seg.tune:
                tuned = tune_segment(seg, spec.params, series, run_seed, stage)
                out.tunings[seg.key] = tuned
                if tuned.best is not None:
                    params = spec.params.with_hyperparameters(tuned.best)
            res = run_segment(seg, params, series, plan.bars, run_seed, fallback=live, batched=batched,
                              start_from=live if warm else None)
            record = res.record
            if stage is not None:
                record = write_segment(stage, res, replace(spec, params=params), context or {}, save_models)
            if res.ok:
                live = res.model
            records.append(record)
            check_failures(records, max_failed)
            out.add(res)
            if on_segment is not None:
                on_segment(seg)
        out.records.extend(records)
    out.forecasts = combine_rows(out.parts)
    return out


def _warm(spec) -> bool:
    """Does this strategy continue the previous retrain's model (a sequential chain)?"""
    return getattr(spec.params, "warm_start", None) is not None


def _run_parallel(plan, specs, series, run_seed, max_failed, stage, context, save_models, on_segment, batched,
                  jobs, scheduler) -> EngineResult:
    """All tunings, then all segments of all strategies as independent jobs, longest first (a warm-start
    strategy's segments as one chain job); then, in time order, a failed fit's forecasts from the
    strategy's previous model (refitted here: fits are deterministic)."""
    out = EngineResult(forecasts=pd.DataFrame(), records=[])
    backend = context.get("backend") or os.environ.get("KERAS_BACKEND", "tensorflow")
    keras = any(hasattr(spec.params, "builder_path") for spec in specs.values())
    all_segs = plan.segments()
    tuning = [(s.key, (s, specs[s.strategy].params, series, run_seed, stage, context.get("backend")))
              for s in all_segs if s.tune]
    if tuning:
        run_jobs(tuning, tune_job, min(jobs, len(tuning)), scheduler, backend,
                 lambda key, t: out.tunings.__setitem__(key, t), keras=keras)
    seg_params: dict[str, Any] = {}
    for name, spec in specs.items():
        seg_params.update(params_by_segment(spec.params, plan.segments(name), out.tunings))
    segs = {s.key: s for s in all_segs}
    chains: dict[str, list[Segment]] = {}
    for s in all_segs:  # a warm strategy is one chain; any other segment is a chain of one
        chains.setdefault(s.strategy if _warm(specs[s.strategy]) else s.key, []).append(s)
    cost = {k: sum(seg_params[s.key].fit_cost(s.window.stop - s.window.start) for s in c) for k, c in chains.items()}
    jobs_list = [(k, ([(s, replace(specs[s.strategy], params=seg_params[s.key])) for s in chains[k]], series,
                      plan.bars, run_seed, batched, stage, context, save_models))
                 for k in cost_order(cost.items())]
    done: dict[str, JobResult] = {}

    def finished(key: str, results: list[JobResult]) -> None:
        for job in results:
            done[job.result.segment.key] = job
            out.workers[job.worker] = (out.workers.get(job.worker, 0.0) + job.result.fit_seconds
                                       + job.result.predict_seconds)
            if on_segment is not None:
                on_segment(segs[job.result.segment.key])

    run_jobs(jobs_list, chain_job, min(jobs, len(jobs_list)), scheduler, backend, finished, keras=keras)
    for name, spec in specs.items():
        records: list[FitRecord] = []
        last_ok: Segment | None = None
        live: LiveModel | None = None
        for seg in plan.segments(name):
            res, record = done[seg.key].result, done[seg.key].record
            if not res.ok and last_ok is not None and not _warm(spec):  # a chain made its own fallbacks
                params = seg_params[seg.key]
                if live is None or live.model_version != last_ok.model_version:
                    live = run_segment(last_ok, seg_params[last_ok.key], series, plan.bars, run_seed,
                                       batched=batched).model
                res = run_segment(seg, params, series, plan.bars, run_seed, fallback=live, batched=batched)
                record = (write_segment(stage, res, replace(spec, params=params), context, save_models)
                          if stage is not None else res.record)
            if res.ok:
                last_ok = seg
            records.append(record)
            check_failures(records, max_failed)
            out.add(res)
        out.records.extend(records)
    out.forecasts = combine_rows(out.parts)
    return out
