"""The one chain loop: a strategy's segments run in order, alone, stacked or pooled.

A :class:`Chain` is a strategy's segments on one asset (a warm-start strategy's every segment, or one
segment alone) with their params, bars and seed. :func:`run_chains` runs several chains in lockstep,
retrain by retrain: at retrain ``i`` a *step* computes segment ``i`` of every chain that has not
finished it yet, each continuing its chain's last good model (a warm start, and what a failed fit's
forecasts come from); the results go to ``sink`` one by one as they are made. The steps:

- :func:`alone`: each segment fitted by itself (:func:`~backtester.segment.run_segment`);
- :func:`backtester.stacking.stacked`: the chains' fits trained together in one program, then each
  segment's forecasts issued alone;
- :func:`pooled`: one global model fitted on every chain's asset (:mod:`backtester.pooled`).

The engine's jobs (:mod:`backtester.jobs`, :class:`backtester.stacking.StackJob`) run their chains
here and write each result to the staging directory; the audit (:mod:`backtester.audit`) runs the same
chains here on bars cut at, or poisoned after, an issue time, so it checks the engine's execution
rules, not a copy. :func:`previous_good` is the model a failed fit keeps, where a chain of one has none.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from backtester.core.schedule import TrainWindow
>>> from backtester.core.series import BarSeries
>>> from strategies.naive import NaiveParams
>>> bars = pd.date_range("2024-01-01 01:00", periods=8, freq="h", tz="UTC")
>>> series = BarSeries(bars.asi8, np.arange(1.0, 9.0), np.zeros(8), np.ones(8, bool))
>>> segs = tuple(Segment("naive", k, bars[2 * k], TrainWindow(bars[2 * k], 0, 2 * k + 1), 2 * k, 2 * k + 2, 1)
...              for k in (1, 2))
>>> got = []
>>> run_chains([Chain(segs, (NaiveParams(),) * 2, series, bars, run_seed=0)], alone, lambda k, i, r: got.append(r))
>>> [(r.segment.model_version, r.rows["forecast"].tolist()) for r in got]
[(1, [3.0, 4.0]), (2, [5.0, 6.0])]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from .core.errors import FatalError
from .core.interrupt import check as check_interrupt
from .core.series import BarSeries
from .pooled import run_pooled_segment
from .segment import run_segment
from .work import LiveModel, Prefit, Segment, SegmentResult


@dataclass(frozen=True)
class Chain:
    """Segments of one strategy on one asset, run in order, with each segment's params (tuned values
    fixed), the bars they are computed on (the run's, or the audit's cut or poisoned ones), the bar grid,
    the run seed and whether forecasts are batched."""

    segments: tuple[Segment, ...]
    params: tuple[Any, ...]
    series: BarSeries
    bars: pd.DatetimeIndex
    run_seed: int
    batched: bool = True


# A step: segment i of each of the chains, each continuing its live model (None: none yet), as results in
# the chains' order (an iterator: each result reaches the sink before the next is made).
Step = Callable[[list[Chain], int, list[LiveModel | None]], Iterable[SegmentResult]]
Sink = Callable[[int, int, SegmentResult], None]  # (chain, segment index, its result)


def run_chains(
    chains: Sequence[Chain],
    step: Step,
    sink: Sink,
    start: Sequence[int] = (),
    live: Sequence[LiveModel | None] = (),
) -> None:
    """Run ``chains`` in lockstep with ``step``, handing each result to ``sink``. ``start``: per chain, how
    many of its first segments are done already (default none), ``live``: the model each goes on from."""
    start = list(start) or [0] * len(chains)
    models = list(live) or [None] * len(chains)
    for i in range(max(len(c.segments) for c in chains)):
        todo = [k for k, c in enumerate(chains) if start[k] <= i < len(c.segments)]
        if not todo:
            continue
        check_interrupt()
        for k, res in zip(todo, step([chains[k] for k in todo], i, [models[k] for k in todo])):
            sink(k, i, res)
            if res.ok:
                models[k] = res.model


def link(chain: Chain, i: int, live: LiveModel | None, prefit: Prefit | None = None) -> SegmentResult:
    """Segment ``i`` of ``chain``: a warm start continues ``live`` (where the strategy chains), and a failed
    fit's forecasts come from it; ``prefit``: its fit was made already (stacked)."""
    params = chain.params[i]
    return run_segment(
        chain.segments[i],
        params,
        chain.series,
        chain.bars,
        chain.run_seed,
        fallback=live,
        batched=chain.batched,
        start_from=live if params.chains() else None,
        prefit=prefit,
    )


def alone(chains: list[Chain], i: int, live: list[LiveModel | None]) -> Iterable[SegmentResult]:
    """The step that fits each chain's segment ``i`` by itself."""
    for chain, model in zip(chains, live):
        yield link(chain, i, model)


def pooled(chains: list[Chain], i: int, live: list[LiveModel | None]) -> Iterable[SegmentResult]:
    """The step of a global model: one model fitted on segment ``i`` of every chain (one per asset, the same
    retrain and params), each asset's forecasts issued with it (:func:`~backtester.pooled.run_pooled_segment`)."""
    first = chains[0]
    return run_pooled_segment(
        tuple(c.segments[i] for c in chains),
        first.params[i],
        tuple(c.series for c in chains),
        tuple(c.bars for c in chains),
        first.run_seed,
        first.batched,
    )


def refit(seg: Segment, params: Any, series: BarSeries, bars: pd.DatetimeIndex, run_seed: int) -> SegmentResult:
    """``seg``'s fit made again on its own window, without forecasts (a fit is deterministic)."""
    fit_only = replace(seg, first=seg.window.stop, stop=seg.window.stop)
    return run_segment(fit_only, params, series, bars, run_seed)


def previous_good(
    earlier: Sequence[tuple[Segment, Any]],
    series: BarSeries,
    bars: pd.DatetimeIndex,
    run_seed: int,
    reload: Callable[[Segment, Any], LiveModel | None] | None = None,
    known_good: bool = False,
) -> LiveModel | None:
    """The model a failed fit keeps: of the ``earlier`` segments (with their params, in time order), the
    latest whose fit succeeds, reloaded by ``reload`` (from its artifact) where it can be, else fitted again.
    ``known_good``: their records say they fitted, so one that fails when fitted again is fatal (its fit is
    not deterministic). A global model's retrain cannot be refitted on one asset: it must reload."""
    for seg, params in reversed(earlier):
        live = reload(seg, params) if reload is not None else None
        if live is not None:
            return live
        if params.pools_assets() and seg.asset:
            raise FatalError(
                f"strategy {seg.strategy!r} ({seg.asset}): the global model of the retrain at "
                f"{seg.retrain_time} left no artifact to fall back on; run it again with --fresh"
            )
        again = refit(seg, params, series, bars, run_seed)
        if again.ok:
            return again.model
        if known_good:
            raise FatalError(
                f"strategy {seg.strategy!r}: the retrain at {seg.retrain_time} fitted once but not when "
                f"fitted again ({again.record.status}); its fit is not deterministic"
            )
    return None
