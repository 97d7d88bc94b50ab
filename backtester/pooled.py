"""Global models: one model per retrain trained on every asset of a universe at once (``scope: global``).

A global strategy's retrain ``k`` is one job over its segments ``k`` on every asset (a
:class:`~backtester.jobs.PooledJob`): the model is fitted on all the assets' training windows
(each ending at the retrain time: :meth:`strategies.base.PooledFit.fit_assets`), then forecasts each
asset over that asset's own issue times (:meth:`~strategies.base.PooledFit.for_asset`). Every asset's
segment is written as usual, with the same model in each asset's artifact folder; a failed fit fails
the retrain on every asset, whose forecasts then come from the previous good model, as for any
strategy. The model's seed comes from the run seed, ``global/<strategy>`` and the retrain time.

Examples
--------
>>> results = run_pooled_segment(segments, params, series, bars, run_seed=1)   # doctest: +SKIP
>>> [r.segment.asset for r in results]                                          # doctest: +SKIP
['btc', 'eth']
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from backtester.core.errors import StrategyError
from strategies.base import PooledFit

from .core.errors import FailedRetrain
from .core.names import Owner
from .core.series import BarSeries
from .segment import attempt, call, issue_forecasts
from .work import FitRecord, LiveModel, Segment, SegmentResult, retrain_seed


def run_pooled_segment(
    segments: tuple[Segment, ...],
    params: Any,
    series: tuple[BarSeries, ...],
    bars: tuple[pd.DatetimeIndex, ...],
    run_seed: int,
    batched: bool = True,
) -> list[SegmentResult]:
    """Fit one model on every asset's training window of retrain ``segments[0].model_version`` and issue
    each asset's forecasts with it; one :class:`SegmentResult` per asset, in the order of ``segments``.

    Each asset's bars are cut to its segment's last issue time first, so nothing after it reaches the
    fit or a forecast; every training window ends at or before the retrain time.
    """
    first = segments[0]
    known = [s.upto(seg.stop) for s, seg in zip(series, segments)]
    trains = {seg.asset: k.slice(seg.window.start, seg.window.stop) for seg, k in zip(segments, known)}
    seed = retrain_seed(run_seed, str(Owner("global", first.strategy)), first.retrain_time)
    t0 = time.perf_counter()
    strategy, info, status = None, None, "ok"
    try:
        need = params.min_train_bars(first.horizon)
        short = {a: len(t) for a, t in trains.items() if len(t) < need}
        if short:
            raise FailedRetrain(", ".join(f"{a}: {n} training bars" for a, n in short.items()) + f", need {need}")
        strategy = call(first.strategy, "build()", params.build, seed)
        if not isinstance(strategy, PooledFit):
            raise StrategyError(
                f"strategy {first.strategy!r}: scope: global needs a strategy with fit_assets() and "
                f"for_asset(); {type(strategy).__name__} has not"
            )
        info = attempt("fit_assets()", strategy.fit_assets, trains, first.horizon)
        if info is not None and np.isinf(float(info.train_loss)):
            raise FailedRetrain(f"training loss is {info.train_loss}")
    except FailedRetrain as exc:
        strategy, info, status = None, None, f"failed: {exc}"
    fit_seconds = (time.perf_counter() - t0) / len(segments)  # each asset's share of the one fit
    fitted = Fitted(strategy, info, status, seed, fit_seconds)
    return [
        asset_result(seg, k, grid, trains[seg.asset], fitted, batched) for seg, k, grid in zip(segments, known, bars)
    ]


@dataclass
class Fitted:
    """A global retrain's fit: the model (None if it failed), what its fit returned, its status, seed and
    each asset's share of its seconds."""

    strategy: Any
    info: Any
    status: str
    seed: int
    seconds: float


def asset_result(
    seg: Segment, known: BarSeries, grid: pd.DatetimeIndex, train: BarSeries, fitted: Fitted, batched: bool
) -> SegmentResult:
    """One asset's segment of a global retrain: its forecasts from the global model, and its fit record."""
    # trained_through: the asset's own last training bar (every asset's window ends at or before the
    # retrain time, so no window reaches past it; a model reloaded from its artifact says the same)
    strategy, info = fitted.strategy, fitted.info
    model = (
        LiveModel(strategy.for_asset(seg.asset), seg.model_version, int(train.time[-1]))
        if strategy is not None
        else None
    )
    t1 = time.perf_counter()
    try:
        rows = issue_forecasts(seg, model, known, grid, batched)
    except FailedRetrain as exc:  # non-finite forecasts on this asset: the retrain failed here
        model, status, rows = None, f"failed: {exc}", issue_forecasts(seg, None, known, grid, batched)
    else:
        status = fitted.status
    record = FitRecord(
        strategy=seg.strategy,
        model_version=seg.model_version,
        retrain_time=seg.retrain_time,
        window_start=pd.Timestamp(int(train.time[0]), tz="UTC") if len(train) else None,
        window_end=pd.Timestamp(int(train.time[-1]), tz="UTC") if len(train) else None,
        train_bars=len(train),
        samples=int(info.samples) if info and model else 0,
        train_loss=float(info.train_loss) if info and model else float("nan"),
        val_loss=float(info.val_loss) if info and model else float("nan"),
        seconds=fitted.seconds,
        status=status,
        seed=fitted.seed,
        details=json.dumps({**(info.extra if info else {}), "scope": "global"}, default=float),
        asset=seg.asset,
    )
    return SegmentResult(seg, record, rows, model, fitted.seconds, time.perf_counter() - t1)
