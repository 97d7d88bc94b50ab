"""The strategy Protocol: fit on a training window, forecast H steps from what is known.

A strategy is built fresh for every retrain by its params' ``build(seed)``
(a pure factory), fitted once, then asked for forecasts at each bar until the
next retrain. ``history`` always ends at the issue time: the provider never
hands a strategy a bar that closed later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict

from backtester.series import BarSeries


@dataclass(frozen=True)
class FitInfo:
    """What one fit reports: training samples, final losses and anything else worth keeping."""

    samples: int
    train_loss: float = float("nan")
    val_loss: float = float("nan")
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Strategy(Protocol):
    def fit(self, train: BarSeries, horizon: int) -> FitInfo:
        """Fit on the training window (bars closed at or before the retrain time)."""

    def forecast(self, history: BarSeries, horizon: int) -> np.ndarray:
        """Volatility forecasts for the next ``horizon`` bars after ``history[-1]``."""


class Params(BaseModel):
    """Base for strategy parameters: strict, frozen, and a factory for fresh strategies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def build(self, seed: int) -> Strategy:  # pragma: no cover - overridden
        raise NotImplementedError

    def min_train_bars(self, horizon: int) -> int:
        """The fewest training bars this strategy can fit on."""
        return 2


def positive_floor(values: np.ndarray) -> float:
    """Smallest positive finite value (a floor for forecasts of a positive quantity)."""
    pos = values[np.isfinite(values) & (values > 0)]
    return float(pos.min()) if len(pos) else 1e-12
