"""Strategies that see the future, each in a way the engine cannot stop by itself: ``backtest audit``
must catch every one (tests/test_audit.py). Written as a user would write them, as ``Params`` subclasses.

- ``FutureBatchParams``: ``forecast_batch`` reads the bar after each issue time out of the history it
  is handed (the bars up to the segment's last issue time), so the batched run scores almost
  perfectly; it keeps that history, and its per-bar ``forecast`` reads ahead in it too, so the two
  agree and the engine's spot check of a batch against per-bar forecasts cannot see the leak.
- ``SpyParams`` and ``PeekParams``: ``spy`` is honest and keeps the last series it was handed in a
  module global; ``peek``, listed after it (strategies run one after the other in config order in one
  process), fits its level on the bars after its training window that it finds in that global.
- ``LeakyScalerParams``: its ``forecast_batch`` refits the scaler on every bar it is handed, the
  segment's future included (and saves that scaler in its artifact).
"""

from __future__ import annotations

import json

import numpy as np

from strategies import FitInfo, Params


class FutureBatch:
    def fit(self, train, horizon):
        self.seen = train
        return FitInfo(samples=len(train))

    def _next(self, ends):
        """The RV of the bar after each issue time, where the kept history has it (the future)."""
        return self.seen.rv[np.minimum(np.asarray(ends), len(self.seen.rv) - 1)]

    def forecast(self, history, horizon):
        if len(self.seen) < len(history):
            self.seen = history
        return np.full(horizon, self._next([len(history)])[0])

    def forecast_batch(self, history, ends, horizon):
        self.seen = history
        return np.repeat(self._next(ends)[:, None], horizon, axis=1)


class FutureBatchParams(Params):
    def build(self, seed):
        return FutureBatch()


_SEEN: dict = {}  # the last series spy was handed: state shared between strategies of one process


class Spy:
    def fit(self, train, horizon):
        _SEEN["series"] = train
        self.level = float(np.mean(train.rv[-24:]))
        return FitInfo(samples=len(train))

    def forecast(self, history, horizon):
        _SEEN["series"] = history
        return np.full(horizon, 0.5 * self.level + 0.5 * history.rv[-1])


class SpyParams(Params):
    def build(self, seed):
        return Spy()


class Peek:
    def fit(self, train, horizon):
        seen = _SEEN.get("series")
        future = seen.rv[seen.time > train.time[-1]][:24] if seen is not None else np.empty(0)
        self.level = float(np.mean(future)) if len(future) else float(train.rv[-1])
        return FitInfo(samples=len(train), extra={"peeked": int(len(future))})

    def forecast(self, history, horizon):
        return np.full(horizon, self.level)


class PeekParams(Params):
    def build(self, seed):
        return Peek()


class LeakyScaler:
    """Shrinks the last RV toward the mean of a standard scaler: fitted on the training window in
    ``fit``, but refitted on everything handed to ``forecast_batch``."""

    def _scale(self, rv):
        self.mean, self.var, self.seen = float(np.mean(rv)), float(np.var(rv)), len(rv)

    def fit(self, train, horizon):
        self._scale(train.rv)
        return FitInfo(samples=len(train))

    def forecast(self, history, horizon):
        z = (history.rv[-1] - self.mean) / np.sqrt(self.var)
        return np.full(horizon, self.mean + 0.7 * np.sqrt(self.var) * z)

    def forecast_batch(self, history, ends, horizon):
        self._scale(history.rv)  # the leak: the segment's future bars are in history
        return np.array([self.forecast(history.upto(int(e)), horizon) for e in ends])

    def save(self, folder):
        state = {
            "kind": "StandardScaler",
            "mean": [self.mean],
            "var": [self.var],
            "n_samples_seen": self.seen,
            "target": "rv",
        }
        (folder / "scaler.json").write_text(json.dumps(state))

    def load(self, folder):
        state = json.loads((folder / "scaler.json").read_text())
        self.mean, self.var, self.seen = state["mean"][0], state["var"][0], state["n_samples_seen"]


class LeakyScalerParams(Params):
    def build(self, seed):
        return LeakyScaler()


class PeekingBatch:
    """The plain leak the run catches by itself: ``forecast`` is honest, ``forecast_batch`` reads the bar
    after each issue time."""

    def fit(self, train, horizon):
        return FitInfo(samples=len(train))

    def forecast(self, history, horizon):
        return np.full(horizon, history.rv[-1])

    def forecast_batch(self, history, ends, horizon):
        ahead = np.minimum(np.asarray(ends), len(history.rv) - 1)
        return np.repeat(history.rv[ahead][:, None], horizon, axis=1)


class PeekingBatchParams(Params):
    def build(self, seed):
        return PeekingBatch()
