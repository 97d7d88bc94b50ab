"""A Keras forecaster's fitted state, as one record (:class:`Fitted`), and where a warm start begins."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from .windows import Channels, Scaling


@dataclass(frozen=True)
class Fitted:
    """Everything a fit (or a load) leaves behind and a forecast reads.

    ``model`` may be a compiled model the process cache owns (:mod:`strategies.keras.cache`): ``weights``
    are this fit's own trained weights (None: the model's, as loaded), put back before the model is used.
    """

    model: Any
    weights: list | None
    scaling: Scaling
    channels: Channels
    hp_values: dict[str, Any] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)
    samples: int = 0
    started_from: Any = None
    baseline: Any | None = None  # a hybrid's baseline, fitted on the training window
    residual_scale: float | None = None  # a hybrid's: the net's output times this is its correction
    per_asset: dict[str, tuple[Scaling, Channels]] | None = None  # a global model's scaling of each asset


class WeightSource(Protocol):
    """What a warm start continues: something holding trained weights (a fitted forecaster, a saved file)."""

    def trained_weights(self) -> list: ...


@dataclass(frozen=True)
class Start:
    """A warm start: continue ``source``'s weights (model ``version``)."""

    source: WeightSource
    version: Any
