"""The unit of work's value types: what plan, engine, store and evaluation pass around.

A :class:`Segment` (one strategy x one retrain interval) is planned (:mod:`backtester.plan`), run by a
worker (:func:`backtester.segment.run_segment`, in the one chain loop of :mod:`backtester.chain`) into a
:class:`SegmentResult` (its :class:`FitRecord`, forecast rows and :class:`LiveModel`), written to the
staging directory and read back as a :class:`StoredSegment`; a worker answers a job with a
:class:`ChainDone`. This module imports nothing of the worker's, so anything may import it.

Examples
--------
>>> from backtester.core.schedule import TrainWindow
>>> t = pd.Timestamp("2024-01-01", tz="UTC")
>>> seg = Segment("lstm", 3, t, TrainWindow(t, 0, 10), first=10, stop=14, horizon=2, asset="btc")
>>> seg.owner, seg.key, seg.issues
('btc/lstm', 'btc/lstm/0003', 4)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .core.names import Owner
from .core.schedule import TrainWindow


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
    asset: str = ""  # the asset of a universe (data.assets); "" for a run on one data.path

    @property
    def issues(self) -> int:
        return self.stop - self.first

    @property
    def owner(self) -> str:
        """Whose segment this is: ``<strategy>``, or ``<asset>/<strategy>`` in a universe (its seeds and paths)."""
        return str(Owner(self.asset, self.strategy))

    @property
    def key(self) -> str:
        """File stem of the segment's part: ``<strategy>/<version>`` (``<asset>/<strategy>/<version>``)."""
        return f"{self.owner}/{self.model_version:04d}"


ALONE = 0  # FitRecord.stacked of a fit trained on its own


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
    asset: str = ""  # the asset of a universe; "" for a run on one data.path
    # how the fit was trained: ALONE (0), or N >= 1: in one stacked program of N models (backtester.stacking;
    # 1 where a group was halved down to one). Records written before the field: ALONE.
    stacked: int = ALONE


@dataclass
class LiveModel:
    """A fitted strategy and where it came from (what a failed retrain falls back on)."""

    strategy: Any
    model_version: int
    trained_through: int  # ns of the last bar close the model saw


@dataclass
class SegmentResult:
    """A segment just run: its fit record, its forecast rows, the model that made them and the seconds."""

    segment: Segment
    record: FitRecord
    rows: pd.DataFrame
    model: LiveModel | None  # the model that made the rows (None if no model exists yet)
    fit_seconds: float
    predict_seconds: float

    @property
    def ok(self) -> bool:
        return self.record.status == "ok"


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


@dataclass(frozen=True)
class ChainDone:
    """What a worker sends back: who ran the job, and per segment its busy seconds, fit status and
    whether it was found finished in the store (then nothing ran)."""

    worker: str
    segments: tuple[tuple[str, float, str, bool], ...]  # (segment key, fit + forecast seconds, status, reused)


@dataclass
class Prefit:
    """A segment's fit made before :func:`~backtester.segment.run_segment` (trained together with others:
    :mod:`backtester.stacking`): the fitted strategy, what its fit returned (a ``FitInfo``) or raised (a
    ``FailedRetrain``), its seconds, and the size of the program that trained it (:attr:`FitRecord.stacked`)."""

    strategy: Any
    info: Any
    seconds: float
    stacked: int = ALONE


@dataclass(frozen=True)
class RunContext:
    """What every segment's artifact records about the run it belongs to."""

    run: str
    bars: pd.DatetimeIndex  # the bar grid (issue and target times)
    data: dict[str, Any]  # the data fingerprint
    backend: str | None = None
    versions: dict[str, str] | None = None


@dataclass(frozen=True)
class Settings:
    """How a run's segments are fitted and written."""

    run_seed: int
    max_failed: int = 3  # more failed fits in a row than this, for one strategy, stop the run
    batched: bool = True  # one forecast_batch call per segment (False: the per-bar reference path)
    save_models: bool = False  # an artifact folder per retrain
    stack: int = 1  # Keras fits trained together per compiled program (backtester.stacking); 1: each alone
    stack_equal: bool = False  # only fits on windows of one length stack (stack: auto on a CPU)
    trial_stack: int = 1  # trials of a random search trained together
