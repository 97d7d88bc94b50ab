"""The compiled-model cache: one already-compiled Keras model per architecture, reused by later fits.

Retrains of one strategy share an architecture, so instead of tracing a new model's train and predict
functions every time, the first model built in this process for an architecture (builder,
hyperparameters, shapes, loss: :func:`program_key`) is kept, and every later fit copies its freshly
built model's variables (weights and dropout seed state) into the kept one and resets its optimizer to
its initial state. Forecasts are identical to training the fresh model itself (tested).

Ownership rule: the cache owns the models it keeps; a fitted forecaster only borrows one. A borrowed
model holds the weights of the last fit that trained in it, so every forecaster keeps its own trained
weights, and before it predicts with (or saves) a model it calls :meth:`CompiledModels.holding`, which
reloads its weights if another fit has used the model since. The cache records which weights each model
holds (by the identity of the forecaster's weight list) and nothing else; it never hands a model to two
fits at once (one process fits one model at a time).
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from .builder import learning_rate
from .features import channels

KEPT = 8  # architectures kept per process (the oldest is dropped)


def program_key(spec: Any, hp_values: dict, memory: int, steps: int, model, assets: list[str] | None) -> str:
    """What makes two models of ``spec`` (a Keras strategy's params) the same compiled program: builder,
    hyperparameters, shapes, loss."""
    return json.dumps(
        [
            spec.builder_path(),
            hp_values,
            memory,
            steps,
            model.jit_compile,
            learning_rate(model),
            spec.loss,
            spec.target,
            channels(spec.features, assets),
        ],
        default=str,
    )


@dataclass
class _Kept:
    model: Any
    optimizer_state: list[np.ndarray]


class CompiledModels:
    """Compiled models kept for reuse in this process, by architecture key (see the module's ownership rule)."""

    def __init__(self, size: int = KEPT):
        self.size = size
        self._kept: dict[str, _Kept] = {}
        self._holds: dict[int, tuple[weakref.ref, list]] = {}  # id(model) -> (the model, the weights it holds)

    def reuse(self, key: str, fresh):
        """The kept model of ``key`` in ``fresh``'s initial state (``fresh`` itself, now kept, if none is)."""
        kept = self._kept.get(key)
        if kept is None or [tuple(v.shape) for v in kept.model.variables] != [tuple(v.shape) for v in fresh.variables]:
            fresh.optimizer.build(fresh.trainable_variables)
            self._kept[key] = _Kept(fresh, [np.array(v.numpy()) for v in fresh.optimizer.variables])
            while len(self._kept) > self.size:
                self._kept.pop(next(iter(self._kept)))
            return fresh
        for dst, src in zip(kept.model.variables, fresh.variables):
            dst.assign(src)
        for var, value in zip(kept.model.optimizer.variables, kept.optimizer_state):
            var.assign(value)
        self._holds.pop(id(kept.model), None)  # it holds no forecaster's weights now
        return kept.model

    def hold(self, model, weights: list) -> None:
        """Record that ``model`` now holds ``weights`` (a fit's trained weights, just trained in it)."""
        self._holds = {k: v for k, v in self._holds.items() if v[0]() is not None}
        self._holds[id(model)] = (weakref.ref(model), weights)

    def holding(self, model, weights: list | None):
        """``model`` holding ``weights`` (reloaded if another fit used it since); ``weights`` None: the model's own."""
        held = self._holds.get(id(model))
        if weights is not None and (held is None or held[0]() is not model or held[1] is not weights):
            model.set_weights(weights)
            self.hold(model, weights)
        return model


MODELS = CompiledModels()  # this process's cache: every Keras forecaster of the process borrows from it
