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

If the fit fails (:class:`~backtester.errors.FailedRetrain`), the segment's forecasts come from
``fallback``, the strategy's previous model, where the caller has it (inside a warm-start chain);
otherwise it is left without forecasts and :func:`backtester.engine.assemble` gives it those of the
previous model, reloaded from its artifact (:func:`issue_forecasts`).

Examples
--------
>>> import numpy as np, pandas as pd
>>> from backtester.schedule import TrainWindow
>>> from backtester.series import BarSeries
>>> from strategies.naive import NaiveParams
>>> bars = pd.date_range("2024-01-01 01:00", periods=6, freq="h", tz="UTC")
>>> series = BarSeries(bars.asi8, np.arange(1.0, 7.0), np.zeros(6), np.ones(6, bool))
>>> seg = Segment("naive", 1, bars[2], TrainWindow(bars[2], 0, 3), first=2, stop=4, horizon=2)
>>> res = run_segment(seg, NaiveParams(), series, bars, run_seed=0)
>>> res.record.status, res.rows["issued_at"].dt.hour.tolist(), res.rows["forecast"].tolist()
('ok', [3, 3, 4, 4], [3.0, 3.0, 4.0, 4.0])
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from strategies.base import BatchForecaster, Restorable, Strategy, WarmStartable

from .errors import BacktestError, FailedRetrain, FatalError
from .recorder import ForecastRecorder
from .schedule import TrainWindow
from .series import BarSeries


class StrategyError(BacktestError):
    """A strategy raised an unexpected exception, or returned forecasts of the wrong shape."""


def retrain_seed(seed: int, strategy: str, at: pd.Timestamp) -> int:
    """Deterministic per-retrain seed from (run seed, strategy name, retrain time).

    >>> retrain_seed(0, "lstm", pd.Timestamp("2024-01-01", tz="UTC")) == retrain_seed(0, "lstm", pd.Timestamp("2024-01-01", tz="UTC"))
    True
    """
    digest = hashlib.sha256(f"{seed}|{strategy}|{at.value}".encode()).digest()
    return int.from_bytes(digest[:4], "little") % (2**31 - 1)


@dataclass(frozen=True)
class Segment:
    """Strategy ``strategy``'s ``model_version``-th retrain at ``retrain_time`` (training bars
    ``window.start .. window.stop - 1``) and its forecasts issued at bars ``first .. stop - 1``."""

    strategy: str
    model_version: int
    retrain_time: pd.Timestamp
    window: TrainWindow
    first: int
    stop: int
    horizon: int
    tune: bool = False  # a tuning retrain: search hyperparameters on this window first (backtester.tuning)

    @property
    def issues(self) -> int:
        return self.stop - self.first

    @property
    def key(self) -> str:
        """File stem of the segment's part: ``<strategy>/<version>``."""
        return f"{self.strategy}/{self.model_version:04d}"


@dataclass(frozen=True)
class FitRecord:
    """One retrain, as written to ``retrains.parquet``."""

    strategy: str
    model_version: int  # the model serving this segment's forecasts (the previous one if this fit failed)
    retrain_time: pd.Timestamp
    window_start: pd.Timestamp | None
    window_end: pd.Timestamp | None
    train_bars: int
    samples: int
    train_loss: float
    val_loss: float
    seconds: float
    status: str
    seed: int
    details: str  # JSON of what the fit reported beyond the losses (coefficients, loss history, ...)
    artifact: str | None = None  # models/<strategy>/<version>, relative to the run directory


@dataclass
class LiveModel:
    """A fitted strategy and where it came from (what a failed retrain falls back on)."""

    strategy: Any
    model_version: int
    trained_through: int  # ns of the last bar close the model saw


@dataclass
class SegmentResult:
    segment: Segment
    record: FitRecord
    rows: pd.DataFrame
    model: LiveModel | None  # the model that made the rows (None if no model exists yet)
    fit_seconds: float
    predict_seconds: float

    @property
    def ok(self) -> bool:
        return self.record.status == "ok"


def call(strategy_name: str, what: str, fn, *args):
    """Run a strategy method; an unexpected exception becomes a one-line StrategyError naming it."""
    try:
        return fn(*args)
    except (FailedRetrain, BacktestError, KeyboardInterrupt):
        raise
    except (FloatingPointError, np.linalg.LinAlgError) as exc:
        raise FailedRetrain(f"{type(exc).__name__}: {exc}") from None
    except Exception as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise StrategyError(f"strategy {strategy_name!r}: {what} raised {type(exc).__name__}: {text}; "
                            "fix the strategy or its parameters") from None


def segment_forecasts(seg: Segment, strategy, known: BarSeries, batched: bool = True) -> np.ndarray:
    """The forecasts issued at bars ``seg.first .. seg.stop - 1``, shape (issues, horizon).

    One ``forecast_batch`` call when the strategy has it and ``batched``; else one
    ``forecast`` call per issue time (the per-bar reference path).
    """
    ends = np.arange(seg.first + 1, seg.stop + 1)
    if batched and isinstance(strategy, BatchForecaster):
        values = np.asarray(call(seg.strategy, "forecast_batch()", strategy.forecast_batch, known, ends, seg.horizon),
                            dtype="float64")
        if values.shape != (len(ends), seg.horizon):
            raise StrategyError(f"strategy {seg.strategy!r}: forecast_batch returned {values.shape} forecasts, "
                                f"expected ({len(ends)}, {seg.horizon})")
        return values
    out = np.empty((len(ends), seg.horizon))
    for j, end in enumerate(ends):
        values = np.asarray(call(seg.strategy, "forecast()", strategy.forecast, known.upto(int(end)), seg.horizon),
                            dtype="float64")
        if values.shape != (seg.horizon,):
            raise StrategyError(f"strategy {seg.strategy!r} returned {values.shape} forecasts, expected ({seg.horizon},)")
        out[j] = values
    return out


def run_segment(seg: Segment, params, series: BarSeries, bars: pd.DatetimeIndex, run_seed: int,
                fallback: LiveModel | None = None, batched: bool = True,
                start_from: LiveModel | None = None) -> SegmentResult:
    """Fit the segment's model and issue its forecasts; see the module docstring.

    ``series`` is cut to the segment's last issue time before anything else, so
    nothing after it can reach the fit or a forecast. ``bars`` (the bar grid)
    only supplies target times. ``batched=False`` forecasts bar by bar (the reference path).
    ``start_from``: a warm start, the fit continues that model (strategies with ``start_from``).
    """
    known = series.upto(seg.stop)
    w: TrainWindow = seg.window
    train = known.slice(w.start, w.stop)
    seed = retrain_seed(run_seed, seg.strategy, seg.retrain_time)
    t0 = time.perf_counter()
    info, model, status = None, None, "ok"
    try:
        need = params.min_train_bars(seg.horizon)
        if len(train) < need:
            raise FailedRetrain(f"{len(train)} training bars, need {need}")
        strategy = call(seg.strategy, "build()", params.build, seed)
        if not isinstance(strategy, Strategy):
            raise StrategyError(f"strategy {seg.strategy!r}: {type(params).__name__}.build() returned "
                                f"{type(strategy).__name__}, which has no fit/forecast methods; return a Strategy")
        if start_from is not None and isinstance(strategy, WarmStartable):
            strategy.start_from(start_from.strategy, start_from.model_version)
        info = call(seg.strategy, "fit()", strategy.fit, train, seg.horizon)
        model = LiveModel(strategy, seg.model_version, int(train.time[-1]))
    except FailedRetrain as exc:
        status = f"failed: {exc}"
        model = fallback
    fit_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    rows = issue_forecasts(seg, model, known, bars, batched)
    predict_seconds = time.perf_counter() - t0

    record = FitRecord(
        strategy=seg.strategy,
        model_version=model.model_version if model is not None else seg.model_version,
        retrain_time=seg.retrain_time,
        window_start=pd.Timestamp(int(train.time[0]), tz="UTC") if len(train) else None,
        window_end=pd.Timestamp(int(train.time[-1]), tz="UTC") if len(train) else None,
        train_bars=len(train),
        samples=int(info.samples) if info else 0,  # plain numbers: the record goes to JSON and back
        train_loss=float(info.train_loss) if info else float("nan"),
        val_loss=float(info.val_loss) if info else float("nan"),
        seconds=fit_seconds,
        status=status,
        seed=seed,
        details=json.dumps(info.extra if info else {}, default=float),
    )
    return SegmentResult(seg, record, rows, model, fit_seconds, predict_seconds)


def issue_forecasts(seg: Segment, model: LiveModel | None, known: BarSeries, bars: pd.DatetimeIndex,
                    batched: bool = True) -> pd.DataFrame:
    """The rows of the forecasts ``model`` issues at the segment's bars (none without a model)."""
    recorder = ForecastRecorder(bars)
    if model is not None and seg.issues > 0:
        for i, values in zip(range(seg.first, seg.stop), segment_forecasts(seg, model.strategy, known, batched)):
            recorder.add(seg.strategy, i, values, model.model_version, model.trained_through)
    return recorder.frame()


# --------------------------------------------------------------------------- on disk


def segment_paths(stage: Path, seg: Segment) -> tuple[Path, Path]:
    """(rows part, fit record) of a segment under a run directory."""
    base = Path(stage) / "segments" / seg.key
    return base.with_suffix(".parquet"), base.with_suffix(".json")


def artifact_dir(run_dir: Path, strategy: str, model_version: int) -> Path:
    return Path(run_dir) / "models" / strategy / str(model_version)


@dataclass(frozen=True)
class RunContext:
    """What every segment's artifact records about the run it belongs to."""

    run: str
    bars: pd.DatetimeIndex  # the bar grid (issue and target times)
    data: dict[str, Any]  # the data fingerprint
    backend: str | None = None
    versions: dict[str, str] | None = None


def write_segment(stage: Path, result: SegmentResult, spec, context: RunContext | None, save_model: bool) -> FitRecord:
    """Write a finished segment: its artifact folder (if saved), its rows part and its fit record.

    The record goes last, so a segment whose record exists is complete. Each file
    is written under a temporary name and renamed.
    """
    seg, record = result.segment, result.record
    if save_model and result.ok and context is not None:
        folder = artifact_dir(stage, seg.strategy, seg.model_version)
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        meta = artifact_meta(result, spec, context)
        strategy = result.model.strategy
        saved = isinstance(strategy, Restorable)
        if saved:
            call(seg.strategy, "save()", strategy.save, tmp)
        meta["restorable"] = saved
        meta["files"] = sorted(p.name for p in tmp.iterdir()) + ["artifact.json"]
        (tmp / "artifact.json").write_text(json.dumps(meta, indent=2, default=str))
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
        record = FitRecord(**{**asdict(record), "artifact": str(folder.relative_to(stage))})
    rows_path, record_path = segment_paths(stage, seg)
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    result.rows.to_parquet(rows_path.with_suffix(".parquet.tmp"), index=False)
    rows_path.with_suffix(".parquet.tmp").replace(rows_path)
    payload = {**asdict(record), "fit_seconds": result.fit_seconds, "predict_seconds": result.predict_seconds}
    record_path.with_suffix(".json.tmp").write_text(json.dumps(payload, default=str))
    record_path.with_suffix(".json.tmp").replace(record_path)
    return record


def artifact_meta(result: SegmentResult, spec, context: RunContext) -> dict[str, Any]:
    """``artifact.json``: what the model is, what it saw, and which forecasts it made."""
    seg, rec = result.segment, result.record
    bars = context.bars
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
        "window": {"kind": spec.window.kind, "start": str(rec.window_start), "end": str(rec.window_end),
                   "bars": rec.train_bars},
        "trained_through": str(pd.Timestamp(result.model.trained_through, tz="UTC")),
        "issued": ({"first": str(bars[seg.first]), "last": str(bars[seg.stop - 1]), "count": seg.issues}
                   if seg.issues else {"first": None, "last": None, "count": 0}),
        "data": context.data,
        "train_loss": rec.train_loss,
        "val_loss": rec.val_loss,
        "fit_seconds": result.fit_seconds,
        "backend": context.backend,
        "versions": context.versions,
    }


@dataclass(frozen=True)
class StoredSegment:
    """A finished segment as read back from the staging directory."""

    record: FitRecord
    rows: pd.DataFrame
    fit_seconds: float
    predict_seconds: float

    @property
    def ok(self) -> bool:
        return self.record.status == "ok"


_TIMES = ("window_start", "window_end")


def read_segment(stage: Path, seg: Segment) -> StoredSegment:
    """The rows and fit record :func:`write_segment` wrote for ``seg`` (times as UTC Timestamps)."""
    rows_path, record_path = segment_paths(stage, seg)
    payload = json.loads(record_path.read_text())
    fit_seconds, predict_seconds = payload.pop("fit_seconds"), payload.pop("predict_seconds")
    payload["retrain_time"] = seg.retrain_time
    for key in _TIMES:
        payload[key] = pd.Timestamp(payload[key]).tz_convert(seg.retrain_time.tz) if payload[key] else None
    return StoredSegment(FitRecord(**payload), pd.read_parquet(rows_path), fit_seconds, predict_seconds)


def read_records(stage: Path) -> list[dict[str, Any]]:
    """The fit records of every finished segment under ``stage``, in key order."""
    return [json.loads(p.read_text()) for p in sorted((Path(stage) / "segments").glob("*/*.json"))]


def check_failures(strategy: str, statuses: list[str], max_failed: int) -> None:
    """More than ``max_failed`` failed retrains in a row (``statuses`` in time order) for one strategy is fatal.

    >>> check_failures("x", ["ok", "failed: NaN", "ok"], max_failed=1)
    >>> check_failures("x", ["failed: NaN", "failed: NaN"], max_failed=1)
    Traceback (most recent call last):
    ...
    backtester.errors.FatalError: strategy 'x': 2 retrains in a row failed (last: failed: NaN); check its parameters or raise backtest.max_failed_retrains
    """
    run = 0
    for status in statuses:
        run = run + 1 if status != "ok" else 0
        if run > max_failed:
            raise FatalError(f"strategy {strategy!r}: {run} retrains in a row failed (last: {status}); "
                             "check its parameters or raise backtest.max_failed_retrains")
