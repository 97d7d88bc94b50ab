"""The engine's jobs, what an executor runs: each kind runs itself through the one chain loop.

- :class:`ChainJob`: a strategy's chain (a warm start's every segment, in order) or one segment alone;
- :class:`PooledJob`: one retrain of a global model, its segment on every asset, fitted as one model;
- :class:`backtester.stacking.StackJob`: chains whose fits train together, in lockstep.

A job is a frozen value (picklable: it may run in another process), :meth:`run` runs its chains with
:func:`backtester.chain.run_chains` and writes every finished segment to the staging directory at once
(its rows, fit record and artifact), and :meth:`finished` says whether the store holds all of them
already. :func:`run_job` is what an executor calls.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from .chain import Chain, Step, alone, pooled, run_chains
from .core.series import BarSeries
from .resume import resume_point
from .segment import read_segment, write_segment
from .store import is_stored
from .work import ChainDone, RunContext, Segment, SegmentResult, Settings


def worker() -> str:
    """Who runs a job: ``host:pid``."""
    return f"{os.uname().nodename}:{os.getpid()}"


def run_job(job: Any) -> ChainDone:
    """What an executor runs: the job (:class:`ChainJob`, :class:`PooledJob` or a ``StackJob``) runs itself."""
    return job.run()


@dataclass(frozen=True)
class ChainJob:
    """Segments of one strategy, run in order in one worker, each written to ``stage`` when done."""

    segments: tuple[Segment, ...]
    params: tuple[Any, ...]  # each segment's params (tuned values fixed)
    spec: Any  # the StrategySpec (its type and window go into the artifacts)
    series: BarSeries
    bars: pd.DatetimeIndex
    settings: Settings
    stage: Path
    context: RunContext | None = None
    keys: tuple[str | None, ...] = ()  # each segment's store key (backtester.store); () : compute all

    def run(self) -> ChainDone:
        """Fit and forecast the chain's segments in order; write each under ``stage``.

        In a chain of several (a warm start) each fit continues the last good model, and a failed
        fit's forecasts come from it; a chain of one leaves a failed fit without forecasts for
        :func:`backtester.engine.assemble` to fill in. Segments already finished under the same key are
        skipped; a chain resumes after the last of them whose model it can reload from its artifact (else
        from its start)."""
        return run_members([self], alone)

    def finished(self) -> bool:
        """Whether every segment is finished in the store under its key (then running it only reads back)."""
        need = self.settings.save_models and self.context is not None
        return bool(self.keys) and all(
            k is not None and is_stored(self.stage, s, k, need) for s, k in zip(self.segments, self.keys)
        )

    def chain(self) -> Chain:
        return Chain(self.segments, self.params, self.series, self.bars, self.settings.run_seed, self.settings.batched)

    def store_keys(self) -> tuple[str | None, ...]:
        return self.keys or (None,) * len(self.segments)

    def write(self, i: int, res: SegmentResult) -> None:
        """Segment ``i``'s result to the staging directory (a warm chain's model kept: it resumes from it)."""
        params = self.params[i]
        write_segment(
            self.stage,
            res,
            replace(self.spec, params=params),
            self.context,
            self.settings.save_models,
            self.store_keys()[i],
            keep_model=params.chains() and len(self.segments) > 1,
        )


def run_members(members: Sequence[ChainJob], step: Step) -> ChainDone:
    """Run the chains of ``members`` in lockstep with ``step``, each from where the store leaves it
    (:func:`~backtester.resume.resume_point`), writing every result; what ran, in the members' order."""
    points = [resume_point(m, m.store_keys()) for m in members]
    done: dict[str, tuple[str, float, str, bool]] = {}
    for m, (start, _) in zip(members, points):
        for seg in m.segments[:start]:
            done[seg.key] = (seg.key, 0.0, read_segment(m.stage, seg).record.status, True)

    def sink(k: int, i: int, res: SegmentResult) -> None:
        members[k].write(i, res)
        seg = res.segment
        done[seg.key] = (seg.key, res.fit_seconds + res.predict_seconds, res.record.status, False)

    chains = [m.chain() for m in members]
    run_chains(chains, step, sink, [p[0] for p in points], [p[1] for p in points])
    return ChainDone(worker(), tuple(done[s.key] for m in members for s in m.segments))


@dataclass(frozen=True)
class PooledJob:
    """One retrain of a global model (``scope: global``): its segment on every asset, fitted as one model
    (:mod:`backtester.pooled`), each asset's segment written to ``stage`` when done."""

    segments: tuple[Segment, ...]  # one per asset, the same retrain
    params: Any
    spec: Any
    series: tuple[BarSeries, ...]
    bars: tuple[pd.DatetimeIndex, ...]
    settings: Settings
    stage: Path
    contexts: tuple[RunContext | None, ...]
    key: str | None = None  # the store key every member is written with (None: compute)

    def run(self) -> ChainDone:
        """Fit and forecast the retrain (unless finished in the store under its key); write each asset's
        segment, its model kept (a later failed fit falls back on it)."""
        if self.finished():
            return ChainDone(
                worker(), tuple((s.key, 0.0, read_segment(self.stage, s).record.status, True) for s in self.segments)
            )
        done = []

        def sink(k: int, i: int, res: SegmentResult) -> None:
            spec = replace(self.spec, params=self.params)
            write_segment(self.stage, res, spec, self.contexts[k], self.settings.save_models, self.key, keep_model=True)
            done.append((res.segment.key, res.fit_seconds + res.predict_seconds, res.record.status, False))

        run_chains(self.chains(), pooled, sink)
        return ChainDone(worker(), tuple(done))

    def finished(self) -> bool:
        need = self.settings.save_models and all(c is not None for c in self.contexts)
        return self.key is not None and all(is_stored(self.stage, s, self.key, need) for s in self.segments)

    def chains(self) -> list[Chain]:
        """One chain of one segment per asset (the pooled step fits them as one model)."""
        s = self.settings
        return [
            Chain((seg,), (self.params,), series, bars, s.run_seed, s.batched)
            for seg, series, bars in zip(self.segments, self.series, self.bars)
        ]
