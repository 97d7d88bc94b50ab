"""The model provider: retrains one strategy on schedule and serves its forecasts.

A retrain is a pure job: (training bars up to T, strategy params, seed) -> fitted
model. The seed of each retrain is derived from the run seed, the strategy name
and the retrain time, so any retrain can be rerun alone and gives the same model.

A failed retrain (:class:`~backtester.errors.FailedRetrain`) keeps the previous
model and is recorded; more than ``max_failed`` failures in a row stop the run.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import FailedRetrain, FatalError
from .schedule import training_window
from .series import BarSeries


def retrain_seed(seed: int, strategy: str, at: pd.Timestamp) -> int:
    """Deterministic per-retrain seed.

    >>> retrain_seed(0, "lstm", pd.Timestamp("2024-01-01", tz="UTC")) == retrain_seed(0, "lstm", pd.Timestamp("2024-01-01", tz="UTC"))
    True
    """
    digest = hashlib.sha256(f"{seed}|{strategy}|{at.value}".encode()).digest()
    return int.from_bytes(digest[:4], "little") % (2**31 - 1)


@dataclass(frozen=True)
class RetrainRecord:
    strategy: str
    model_version: int
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


class ModelProvider:
    """Holds the live model of one strategy."""

    def __init__(self, name: str, params, series: BarSeries, bars: pd.DatetimeIndex, window, seed: int,
                 horizon: int, max_failed: int = 3):
        self.name, self.params, self.series, self.bars = name, params, series, bars
        self.window, self.seed, self.horizon, self.max_failed = window, seed, horizon, max_failed
        self.model = None
        self.version = 0
        self.trained_through: int | None = None  # ns of the last bar close the live model saw
        self.failures = 0
        self.fit_seconds = 0.0
        self.predict_seconds = 0.0

    def retrain(self, at: pd.Timestamp) -> RetrainRecord:
        w = training_window(self.window, self.bars, at)
        train = self.series.slice(w.start, w.stop)
        seed = retrain_seed(self.seed, self.name, at)
        version = self.version + 1
        start_t = pd.Timestamp(int(train.time[0]), tz="UTC") if len(train) else None
        end_t = pd.Timestamp(int(train.time[-1]), tz="UTC") if len(train) else None
        t0 = time.perf_counter()
        try:
            if len(train) < self.params.min_train_bars(self.horizon):
                raise FailedRetrain(f"{len(train)} training bars, need {self.params.min_train_bars(self.horizon)}")
            model = self.params.build(seed)
            info = model.fit(train, self.horizon)
            status = "ok"
        except (FailedRetrain, FloatingPointError, np.linalg.LinAlgError) as exc:
            info, status = None, f"failed: {exc}"
        seconds = time.perf_counter() - t0
        self.fit_seconds += seconds
        if info is not None:
            self.model, self.version, self.failures = model, version, 0
            self.trained_through = int(train.time[-1])
        else:
            self.failures += 1
            if self.failures > self.max_failed:
                raise FatalError(
                    f"strategy {self.name!r}: {self.failures} retrains in a row failed (last: {status}); "
                    "check its parameters or raise backtest.max_failed_retrains"
                )
        return RetrainRecord(
            strategy=self.name,
            model_version=version if info is not None else self.version,
            retrain_time=at,
            window_start=start_t,
            window_end=end_t,
            train_bars=len(train),
            samples=info.samples if info else 0,
            train_loss=info.train_loss if info else float("nan"),
            val_loss=info.val_loss if info else float("nan"),
            seconds=seconds,
            status=status,
            seed=seed,
            details=json.dumps(info.extra if info else {}, default=float),
        )

    def forecast(self, index: int) -> np.ndarray | None:
        """Forecasts for horizons 1..H issued at bar ``index``; None while no model exists."""
        if self.model is None:
            return None
        t0 = time.perf_counter()
        out = np.asarray(self.model.forecast(self.series.upto(index + 1), self.horizon), dtype="float64")
        self.predict_seconds += time.perf_counter() - t0
        if out.shape != (self.horizon,):
            raise FatalError(f"strategy {self.name!r} returned {out.shape} forecasts, expected ({self.horizon},)")
        return out
