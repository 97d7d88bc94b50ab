"""The segment: one strategy x one retrain interval, the unit of work of a run.

A segment is the fit at retrain time T (on the bars of its training window, all
closed at or before T) plus every forecast issued from T until the strategy's
next retrain. :func:`run_segment` is a pure function of (the bars up to the
segment's last issue time, the strategy's params, the segment's seed): it is
handed nothing later, keeps no state between calls, and returns a complete
:class:`SegmentResult` (the fit record, the forecast rows, the fitted strategy).
:func:`write_segment` puts a finished segment on disk (its rows as a Parquet
part, its fit record, its artifact folder), so finished segments can be reused
and segments can run anywhere.

If the fit fails (:class:`~backtester.core.errors.FailedRetrain`), the segment's forecasts come from
``fallback``, the strategy's previous model, where the caller has it (inside a warm-start chain);
otherwise it is left without forecasts and :func:`backtester.engine.assemble` gives it those of the
previous model, reloaded from its artifact (:func:`issue_forecasts`).

Examples
--------
>>> import numpy as np, pandas as pd
>>> from backtester.core.schedule import TrainWindow
>>> from backtester.core.series import BarSeries
>>> from strategies.naive import NaiveParams
>>> bars = pd.date_range("2024-01-01 01:00", periods=6, freq="h", tz="UTC")
>>> series = BarSeries(bars.asi8, np.arange(1.0, 7.0), np.zeros(6), np.ones(6, bool))
>>> seg = Segment("naive", 1, bars[2], TrainWindow(bars[2], 0, 3), first=2, stop=4, horizon=2)
>>> res = run_segment(seg, NaiveParams(), series, bars, run_seed=0)
>>> res.record.status, res.rows["issued_at"].dt.hour.tolist(), res.rows["forecast"].tolist()
('ok', [3, 3, 4, 4], [3.0, 3.0, 4.0, 4.0])
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from backtester.core.errors import LeakError, StrategyError
from strategies.base import BatchForecaster, Restorable, Strategy, WarmStartable

from .core.atomic import atomic_write_bytes, atomic_write_text, fsync_tree
from .core.errors import BacktestError, FailedRetrain, FatalError
from .core.series import BarSeries
from .layout import RunDir, artifact_files, write_artifact
from .recorder import ForecastRecorder, combine_rows
from .work import ALONE, FitRecord, LiveModel, Prefit, RunContext, Segment, SegmentResult, StoredSegment, retrain_seed

if TYPE_CHECKING:
    from .plan import Plan


def call(strategy_name: str, what: str, fn, *args):
    """Run a strategy method; an unexpected exception becomes a one-line StrategyError naming it."""
    try:
        return fn(*args)
    except (FailedRetrain, BacktestError, KeyboardInterrupt):
        raise
    except (FloatingPointError, np.linalg.LinAlgError) as exc:
        raise FailedRetrain(f"{type(exc).__name__}: {exc}") from None
    except Exception as exc:
        raise StrategyError(
            f"strategy {strategy_name!r}: {what} raised {_one_line(exc)}; fix the strategy or its parameters"
        ) from None


def attempt(what: str, fn, *args):
    """Run a strategy's fit or forecast: any exception in it (Keras's, a user's) is a failed retrain,
    recorded with its class and message; the previous model is kept (:func:`run_segment`)."""
    try:
        return fn(*args)
    except (FailedRetrain, BacktestError, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise FailedRetrain(f"{what} raised {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def segment_forecasts(
    seg: Segment, strategy, known: BarSeries, batched: bool = True, spot_check: bool = False
) -> np.ndarray:
    """The forecasts issued at bars ``seg.first .. seg.stop - 1``, shape (issues, horizon).

    One ``forecast_batch`` call when the strategy has it and ``batched``; else one
    ``forecast`` call per issue time (the per-bar reference path). ``spot_check``: compare the batch
    with per-bar ``forecast`` at the segment's first and middle issue times, where a batch that reads
    bars after each issue time differs most (:func:`check_batch`).
    """
    ends = np.arange(seg.first + 1, seg.stop + 1)
    if batched and isinstance(strategy, BatchForecaster):
        values = np.asarray(
            attempt("forecast_batch()", strategy.forecast_batch, known, ends, seg.horizon), dtype="float64"
        )
        if values.shape != (len(ends), seg.horizon):
            raise StrategyError(
                f"strategy {seg.strategy!r}: forecast_batch returned {values.shape} forecasts, "
                f"expected ({len(ends)}, {seg.horizon})"
            )
        values = _finite(values, "forecast_batch()")
        if spot_check:
            check_batch(seg, strategy, known, values)
        return values
    out = np.empty((len(ends), seg.horizon))
    for j, end in enumerate(ends):
        values = np.asarray(
            attempt("forecast()", strategy.forecast, known.upto(int(end)), seg.horizon), dtype="float64"
        )
        if values.shape != (seg.horizon,):
            raise StrategyError(
                f"strategy {seg.strategy!r} returned {values.shape} forecasts, expected ({seg.horizon},)"
            )
        out[j] = values
    return _finite(out, "forecast()")


def check_batch(seg: Segment, strategy, known: BarSeries, values: np.ndarray, rtol: float = 1e-5) -> None:
    """Refuse a ``forecast_batch`` whose rows differ from per-bar ``forecast`` on the bars known at the
    row's issue time (checked at the segment's first and middle issue times)."""
    for j in sorted({0, (seg.issues - 1) // 2}):
        end = seg.first + 1 + j
        alone = np.asarray(attempt("forecast()", strategy.forecast, known.upto(end), seg.horizon), dtype="float64")
        if alone.shape == values[j].shape and np.allclose(values[j], alone, rtol=rtol, atol=1e-12):
            continue
        at = pd.Timestamp(int(known.time[end - 1]), tz="UTC")
        diff = float(np.max(np.abs(values[j] - alone))) if alone.shape == values[j].shape else float("nan")
        raise LeakError(
            f"strategy {seg.strategy!r}: its forecast_batch issued at {at} differs from forecast() on the "
            f"bars known then (max abs diff {diff:.3g}): row j of the batch must use only "
            "history.upto(ends[j]); it saw bars after its issue time, so the run is not reported"
        )


def _finite(values: np.ndarray, what: str) -> np.ndarray:
    """Forecasts must be finite numbers: a NaN or inf (a model that diverged) fails the retrain."""
    bad = ~np.isfinite(values)
    if bad.any():
        raise FailedRetrain(f"{what} returned {int(bad.sum())} non-finite forecasts (NaN or inf)")
    return values


def run_segment(
    seg: Segment,
    params,
    series: BarSeries,
    bars: pd.DatetimeIndex,
    run_seed: int,
    fallback: LiveModel | None = None,
    batched: bool = True,
    start_from: LiveModel | None = None,
    prefit: Prefit | None = None,
) -> SegmentResult:
    """Fit the segment's model and issue its forecasts; see the module docstring.

    ``series`` is cut to the segment's last issue time before anything else, so
    nothing after it can reach the fit or a forecast. ``bars`` (the bar grid)
    only supplies target times. ``batched=False`` forecasts bar by bar (the reference path).
    ``start_from``: a warm start, the fit continues that model (strategies with ``start_from``).
    ``prefit``: the fit was made already (stacked training); only its forecasts are issued here.
    """
    known = series.upto(seg.stop)
    train = known.slice(seg.window.start, seg.window.stop)
    seed = retrain_seed(run_seed, seg.owner, seg.retrain_time)
    before = prefit.seconds if prefit is not None else 0.0  # the prefit's share of its group's training
    t0 = time.perf_counter()
    info, status, fit_seconds = None, "ok", 0.0
    try:
        strategy, info = fit_model(seg, params, train, seed, start_from, prefit)
        model: LiveModel | None = LiveModel(strategy, seg.model_version, int(train.time[-1]))
        fit_seconds = time.perf_counter() - t0 + before
        t0 = time.perf_counter()
        rows = issue_forecasts(seg, model, known, bars, batched, users_own(params))
    except FailedRetrain as exc:
        status = f"failed: {exc}"
        model, info = fallback, None
        fit_seconds = fit_seconds or time.perf_counter() - t0 + before
        t0 = time.perf_counter()
        rows = issue_forecasts(seg, model, known, bars, batched)
    predict_seconds = time.perf_counter() - t0
    stacked = prefit.stacked if prefit is not None and info is not None else ALONE
    record = fit_record(seg, train, info, model, fit_seconds, status, seed, stacked)
    return SegmentResult(seg, record, rows, model, fit_seconds, predict_seconds)


def fit_model(
    seg: Segment, params, train: BarSeries, seed: int, start_from: LiveModel | None, prefit: Prefit | None
) -> tuple[Any, Any]:
    """The segment's fitted strategy and what its fit returned (its ``FitInfo``, or None); raises
    :class:`FailedRetrain` for a window too short, a failed fit or an infinite training loss."""
    need = params.min_train_bars(seg.horizon)
    if len(train) < need:
        raise FailedRetrain(f"{len(train)} training bars, need {need}")
    if prefit is not None:
        if isinstance(prefit.info, BaseException):
            raise prefit.info
        strategy, info = prefit.strategy, prefit.info
    else:
        strategy = build(seg, params, seed)
        if start_from is not None and isinstance(strategy, WarmStartable):
            strategy.start_from(start_from.strategy, start_from.model_version)
        info = attempt("fit()", strategy.fit, train, seg.horizon)
    if info is not None and np.isinf(float(info.train_loss)):  # NaN: no loss reported (a baseline)
        raise FailedRetrain(f"training loss is {info.train_loss}")
    return strategy, info


def build(seg: Segment, params, seed: int):
    """A fresh strategy for the segment (``params.build(seed)``), refused unless it is a :class:`Strategy`."""
    strategy = call(seg.strategy, "build()", params.build, seed)
    if not isinstance(strategy, Strategy):
        raise StrategyError(
            f"strategy {seg.strategy!r}: {type(params).__name__}.build() returned "
            f"{type(strategy).__name__}, which has no fit/forecast methods; return a Strategy"
        )
    return strategy


def fit_record(
    seg: Segment,
    train: BarSeries,
    info,
    model: LiveModel | None,
    seconds: float,
    status: str,
    seed: int,
    stacked: int = ALONE,
) -> FitRecord:
    """The segment's :class:`FitRecord` (``info``: what its fit returned; None for a failed fit)."""
    return FitRecord(
        strategy=seg.strategy,
        model_version=model.model_version if model is not None else seg.model_version,
        retrain_time=seg.retrain_time,
        window_start=pd.Timestamp(int(train.time[0]), tz="UTC") if len(train) else None,
        window_end=pd.Timestamp(int(train.time[-1]), tz="UTC") if len(train) else None,
        train_bars=len(train),
        samples=int(info.samples) if info else 0,  # plain numbers: the record goes to JSON and back
        train_loss=float(info.train_loss) if info else float("nan"),
        val_loss=float(info.val_loss) if info else float("nan"),
        seconds=seconds,
        status=status,
        seed=seed,
        details=json.dumps(info.extra if info else {}, default=float),
        asset=seg.asset,
        stacked=stacked,
    )


def users_own(params) -> bool:
    """Whether ``params``' batch forecasts are spot-checked against per-bar ``forecast`` in every segment:
    those of a class that does not declare them proven (:meth:`strategies.base.Params.proven_batch`)."""
    return not params.proven_batch()


def issue_forecasts(
    seg: Segment,
    model: LiveModel | None,
    known: BarSeries,
    bars: pd.DatetimeIndex,
    batched: bool = True,
    spot_check: bool = False,
) -> pd.DataFrame:
    """The rows of the forecasts ``model`` issues at the segment's bars (none without a model)."""
    recorder = ForecastRecorder(bars)
    if model is not None and seg.issues > 0:
        values = segment_forecasts(seg, model.strategy, known, batched, spot_check)
        for i, row in zip(range(seg.first, seg.stop), values):
            recorder.add(seg.strategy, i, row, model.model_version, model.trained_through)
    return recorder.frame()


# --------------------------------------------------------------------------- on disk


def segment_paths(stage: Path, seg: Segment) -> tuple[Path, Path]:
    """(rows part, fit record) of a segment under a run directory (:meth:`backtester.layout.RunDir.segment_paths`)."""
    return RunDir(stage).segment_paths(seg.key)


def artifact_dir(run_dir: Path, strategy: str, model_version: int) -> Path:
    """A retrain's artifact folder (:meth:`backtester.layout.RunDir.artifact_dir`; ``strategy`` may be an owner)."""
    return RunDir(run_dir).artifact_dir(strategy, model_version)


def write_segment(
    stage: Path,
    result: SegmentResult,
    spec,
    context: RunContext | None,
    save_model: bool,
    key: str | None = None,
    keep_model: bool = False,
) -> FitRecord:
    """Write a finished segment: its artifact folder (if saved), its rows part and its fit record
    (with ``key``, the segment's store key: :mod:`backtester.store`). ``keep_model``: write the artifact
    folder even when it is not saved (a warm-start chain resumes from it), without naming it in the record.

    Every file is written under a temporary name, fsynced and renamed, and the record goes last, so a
    segment whose record exists is complete, whenever the process is killed.
    """
    seg, record = result.segment, result.record
    if (save_model or keep_model) and result.ok and context is not None:
        folder = artifact_dir(stage, seg.owner, seg.model_version)
        tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        meta = artifact_meta(result, spec, context)
        assert result.model is not None  # an ok result has its model
        strategy = result.model.strategy
        saved = isinstance(strategy, Restorable)
        if saved:
            call(seg.strategy, "save()", strategy.save, tmp)
        meta["restorable"] = saved
        meta["files"] = artifact_files(tmp)
        write_artifact(tmp, meta)
        fsync_tree(tmp)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
        if save_model:
            record = FitRecord(**{**asdict(record), "artifact": str(folder.relative_to(stage))})
    rows_path, record_path = segment_paths(stage, seg)
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    result.rows.to_parquet(buffer, index=False)
    atomic_write_bytes(rows_path, buffer.getvalue())
    payload = {
        **asdict(record),
        "fit_seconds": result.fit_seconds,
        "predict_seconds": result.predict_seconds,
        "key": key,
    }
    atomic_write_text(record_path, json.dumps(payload, default=str))
    return record


def artifact_meta(result: SegmentResult, spec, context: RunContext) -> dict[str, Any]:
    """``artifact.json``: what the model is, what it saw, and which forecasts it made."""
    seg, rec = result.segment, result.record
    bars = context.bars
    assert result.model is not None  # only an ok fit's model has an artifact
    return {
        "format": "backtester-artifact/1",
        "run": context.run,
        "strategy": seg.strategy,
        "type": spec.type,
        "params": spec.params.model_dump(mode="json"),
        "model_version": seg.model_version,
        "seed": rec.seed,
        "horizon": seg.horizon,
        "retrain_time": str(seg.retrain_time),
        "window": {
            "kind": spec.window.kind,
            "start": str(rec.window_start),
            "end": str(rec.window_end),
            "bars": rec.train_bars,
        },
        "trained_through": str(pd.Timestamp(result.model.trained_through, tz="UTC")),
        "issued": (
            {"first": str(bars[seg.first]), "last": str(bars[seg.stop - 1]), "count": seg.issues}
            if seg.issues
            else {"first": None, "last": None, "count": 0}
        ),
        "data": context.data,
        "train_loss": rec.train_loss,
        "val_loss": rec.val_loss,
        "fit_seconds": result.fit_seconds,
        "backend": context.backend,
        "versions": context.versions,
    }


_TIMES = ("window_start", "window_end")


def read_segment(stage: Path, seg: Segment) -> StoredSegment:
    """The rows and fit record :func:`write_segment` wrote for ``seg`` (times as UTC Timestamps)."""
    rows_path, record_path = segment_paths(stage, seg)
    payload = json.loads(record_path.read_text())
    fit_seconds, predict_seconds = payload.pop("fit_seconds"), payload.pop("predict_seconds")
    payload.pop("key", None)
    payload["retrain_time"] = seg.retrain_time
    for key in _TIMES:
        payload[key] = pd.Timestamp(payload[key]).tz_convert(seg.retrain_time.tz) if payload[key] else None
    return StoredSegment(FitRecord(**payload), pd.read_parquet(rows_path), fit_seconds, predict_seconds)


def read_rows(stage: Path, plan: Plan, strategies: list[str]) -> pd.DataFrame:
    """The forecast rows of ``strategies`` over every segment of ``plan``, read back from ``stage`` (with the
    ``asset`` column in a universe): a universe's evaluation reads each asset's when it comes to it."""
    rows = combine_rows([read_segment(stage, seg).rows for name in strategies for seg in plan.segments(name)])
    if plan.asset:
        rows.insert(0, "asset", plan.asset)
    return rows


def check_failures(strategy: str, statuses: list[str], max_failed: int, times: list | None = None) -> None:
    """More than ``max_failed`` failed retrains in a row (``statuses`` in time order, at ``times``) for one
    strategy is fatal.

    >>> check_failures("x", ["ok", "failed: NaN", "ok"], max_failed=1)
    >>> check_failures("x", ["failed: NaN", "failed: NaN"], max_failed=1, times=["2024-01-01", "2024-01-08"])
    Traceback (most recent call last):
    ...
    backtester.core.errors.FatalError: strategy 'x': 2 retrains in a row failed, the last at 2024-01-08 (failed: NaN); check its parameters or raise backtest.max_failed_retrains
    """
    run = 0
    for k, status in enumerate(statuses):
        run = run + 1 if status != "ok" else 0
        if run > max_failed:
            at = f", the last at {times[k]}" if times is not None else ""
            raise FatalError(
                f"strategy {strategy!r}: {run} retrains in a row failed{at} ({status}); "
                "check its parameters or raise backtest.max_failed_retrains"
            )
