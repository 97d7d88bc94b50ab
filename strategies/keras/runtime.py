"""Keras itself, imported once, quietly, on the run's backend (:func:`keras_module`), and seeding.

Every module of :mod:`strategies.keras` imports Keras through :func:`keras_module` inside a function,
never at import time, so a process that only hands out work never loads it.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable
from typing import Any

_STATE = {"configured": False}  # Keras configured in this process (backend, silence, XLA cache)


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


def _load() -> None:
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


def keras_module():
    """Import Keras (and keras-tuner) quietly, once, on the backend chosen by the config."""
    if not _STATE["configured"]:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("KERAS_BACKEND", "jax")  # the config default (backtester.config.RunConfig.backend)
        _silenced(_load)
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
        _STATE["configured"] = True
    import keras

    return keras


def keras_tuner_module():
    """keras-tuner, imported after Keras (on the run's backend, quietly)."""
    keras_module()
    import keras_tuner

    return keras_tuner


def seed_everything(seed: int) -> None:
    """Clear the Keras session and seed every generator a build draws from (Keras', NumPy's, Python's)."""
    keras = keras_module()
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    private_python_random(seed)


def private_python_random(seed: int) -> None:
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
