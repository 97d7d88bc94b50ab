"""The one seeded model build of a Keras strategy, used by fitting, preflight and the search alike.

:func:`build_model` clears the Keras session, seeds every generator from the retrain's seed, calls
the strategy's builder ``build(hp, memory, steps[, n_features])``, checks what it returned, and then
applies what the strategy's config says about the model: the config's ``loss`` replaces the
builder's (same optimizer), a hybrid (``residual_of``) starts at no correction (its last layer's
weights zero: exactly its baseline), and ``jit_compile`` is set. So a tuned model is built exactly as
the model that trains.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from backtester.core.errors import BuilderError

from .losses import training_loss
from .runtime import keras_module, keras_tuner_module, seed_everything
from .tuning import HyperValue


def fixed_hyperparameters(values: dict[str, HyperValue]):
    """A ``keras_tuner.HyperParameters`` with each value fixed (what a builder sees outside tuning)."""
    hp = keras_tuner_module().HyperParameters()
    for name, value in values.items():
        hp.Fixed(name, value)
    return hp


def build_model(spec: Any, seed: int, hp, memory: int, steps: int, n_features: int):
    """A fresh, seeded, checked model of ``spec`` (a strategy's Keras params) for ``hp``, with the config's
    loss, a hybrid's zero start and ``jit_compile`` applied."""
    seed_everything(seed)
    builder, path = spec.builder_function(), spec.builder_path()
    model = (
        builder(hp, memory, steps)
        if n_features == 1
        else call_with_features(builder, path, hp, memory, steps, n_features)
    )
    check_model(model, path, memory, steps, n_features)
    if spec.loss is not None:  # the config's loss replaces the builder's; same optimizer
        model.compile(optimizer=model.optimizer, loss=training_loss(spec.loss, spec.target))
    if spec.residual_params is not None:  # a hybrid starts at no correction: exactly its baseline
        last = next(layer for layer in reversed(model.layers) if layer.weights)
        for w in last.weights:
            w.assign(np.zeros(tuple(w.shape), dtype="float32"))
    if spec.jit_compile is not None:
        model.jit_compile = spec.jit_compile
    return model


def call_with_features(builder: Callable, path: str, hp, memory: int, steps: int, n_features: int):
    """``builder(hp, memory, steps, n_features)``: a builder for a model with several input channels takes
    their number as a fourth argument; refused, with the fix, if it cannot."""
    try:
        inspect.signature(builder).bind(hp, memory, steps, n_features)
    except TypeError:
        raise BuilderError(
            f"builder {path!r} takes (hp, memory, steps), but features make {n_features} input "
            "channels; add a parameter: def build(hp, memory, steps, n_features=1) and start the "
            "model with keras.Input((memory, n_features))"
        ) from None
    except ValueError:  # no signature to read (a builtin): just call it
        pass
    return builder(hp, memory, steps, n_features)


def check_model(model: Any, builder: str, memory: int, steps: int, n_features: int = 1) -> None:
    """Refuse a builder result that is not a compiled Keras model mapping (memory, n_features) to (steps,)."""
    keras = keras_module()
    if not isinstance(model, keras.Model):
        raise BuilderError(
            f"builder {builder!r} returned {type(model).__name__}, not a keras.Model; "
            "return the model from build(hp, memory, steps)"
        )
    if not getattr(model, "compiled", False) or getattr(model, "optimizer", None) is None:
        raise BuilderError(
            f"builder {builder!r} returned a model that is not compiled; "
            "call model.compile(optimizer=..., loss='mse') before returning it"
        )
    try:
        out = model.compute_output_shape((None, memory, n_features))
    except Exception as exc:
        wanted = "1" if n_features == 1 else "n_features"
        raise BuilderError(
            f"builder {builder!r}: the model does not take input (batch, {memory}, {n_features}) "
            f"({type(exc).__name__}: {exc}); start it with keras.Input((memory, {wanted}))"
        ) from None
    if tuple(out)[1:] != (steps,):
        raise BuilderError(
            f"builder {builder!r}: the model's output shape is {tuple(out)}, expected (None, {steps}); "
            "end it with keras.layers.Dense(steps)"
        )


def learning_rate(model) -> float | None:
    """The model's optimizer's learning rate as a float (None where it is a schedule or unreadable)."""
    try:
        return float(np.asarray(model.optimizer.learning_rate))
    except Exception:
        return None
