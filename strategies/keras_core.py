"""What every Keras strategy module shares: importing Keras once, quietly, and the small pieces
around a model (supervised windows, target transforms, seeding, checking a builder's model).

Nothing here knows a strategy's params, so the tuning, import and model modules all build on it
without importing each other in a circle.

Examples
--------
>>> x, y = windows(np.arange(6.0), 3, 2)
>>> x.shape, y.shape
((2, 3), (2, 2))
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from backtester.core.errors import BuilderError
from backtester.core.targets import from_target, to_target  # noqa: F401  (re-exported for builders)

HyperValue = int | float | str | bool


def _silenced(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` with file descriptor 2 pointed at /dev/null (TensorFlow's C++ start-up chatter)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            return fn()
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def keras_module():
    """Import Keras (and keras-tuner) quietly, once, on the backend chosen by the config."""
    if not getattr(keras_module, "_configured", False):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("KERAS_BACKEND", "jax")  # the config default (backtester.config.RunConfig.backend)

        def load():
            if os.environ["KERAS_BACKEND"] == "tensorflow":
                import tensorflow as tf

                tf.config.experimental.enable_op_determinism()
                threads = int(os.environ.get("BACKTESTER_THREADS", "0"))
                if threads:  # a worker process gets its share of the cores
                    tf.config.threading.set_intra_op_parallelism_threads(threads)
                    tf.config.threading.set_inter_op_parallelism_threads(threads)
                tf.constant(0.0) + 1.0  # first op: device probing happens here, still silenced
            import keras  # noqa: F401
            import keras_tuner  # noqa: F401

        _silenced(load)
        if os.environ["KERAS_BACKEND"] != "tensorflow" and "tensorflow" not in sys.modules:
            # Keras would import TensorFlow (seconds, and its thread pools) only to seed it and for
            # isinstance checks when saving: neither matters on another backend.
            from keras.src.utils import module_utils

            module_utils.tensorflow._available = False
        cache = os.environ.get("BACKTESTER_XLA_CACHE")
        if os.environ["KERAS_BACKEND"] == "jax" and cache:
            # compiled train/predict steps persist across processes and runs (workers compile once); every
            # step is kept: a small LSTM's steps compile in well under a second each, but a fresh process
            # compiles several (measured: a first tiny-LSTM run in a new process 21.6 s cold, 15.3 s warm)
            import jax

            jax.config.update("jax_compilation_cache_dir", cache)
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        keras_module._configured = True
    import keras

    return keras


def windows(values: np.ndarray, memory: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Supervised samples: X[i] = values[i:i+memory], y[i] = values[i+memory:i+memory+steps].

    >>> x, y = windows(np.arange(6.0), 3, 2)
    >>> x.tolist(), y.tolist()
    ([[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]], [[3.0, 4.0], [4.0, 5.0]])
    """
    n = len(values) - memory - steps + 1
    if n <= 0:
        return np.empty((0, memory)), np.empty((0, steps))
    idx = np.arange(n)[:, None]
    x = values[idx + np.arange(memory)]
    y = values[idx + memory + np.arange(steps)]
    return x, y


def _private_python_random(seed: int) -> None:
    """Give Keras' default seeds (layers built with ``seed=None``) their own ``random.Random(seed)``.

    Keras draws them from Python's global ``random``, which ``set_random_seed`` has just seeded:
    the same numbers, unless another thread uses ``random`` meanwhile, as a Dask worker's
    event loop does. A private generator seeded the same way keeps the weights deterministic there.
    """
    try:
        from keras.src.random import seed_generator
    except ImportError:  # pragma: no cover - a Keras without this module
        return
    seed_generator.python_random = random.Random(seed)


def call_with_features(builder: Callable, path: str, hp, memory: int, steps: int, n_features: int):
    """``builder(hp, memory, steps, n_features)``: a builder for a model with several input channels takes
    their number as a fourth argument; refused, with the fix, if it cannot."""
    import inspect

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


def describe_layers(model) -> list[dict[str, Any]]:
    """Each layer's class and its main sizes (units, dropout rate)."""
    out = []
    for layer in model.layers:
        entry: dict[str, Any] = {"layer": type(layer).__name__}
        for attr in ("units", "rate", "dropout", "recurrent_dropout", "return_sequences"):
            if hasattr(layer, attr):
                value = getattr(layer, attr)
                entry[attr] = value if isinstance(value, (int, float, bool)) else str(value)
        out.append(entry)
    return out


def learning_rate(model) -> float | None:
    try:
        return float(np.asarray(model.optimizer.learning_rate))
    except Exception:
        return None
