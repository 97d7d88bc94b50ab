"""Process-wide state, set once at start-up and nowhere else.

Keras reads its backend once, when it is first imported; JAX's compilation cache and TensorFlow's
log level belong to the whole process; Keras is imported quietly (file descriptor 2 silenced for
TensorFlow's C++ start-up) and told, on JAX, not to import TensorFlow. None of that belongs in a
function that a worker, a test or another program calls, so it happens here:

- the CLI calls :func:`choose_backend` while it reads the config (before a user's builder can
  import Keras) and :func:`setup` before it runs anything;
- a local worker process does the same in its initializer (:mod:`backtester.executors`);
- a Python API user calls :func:`setup` once before :func:`backtester.runner.run`; ``run`` itself only
  checks (:func:`check`) that the process is on the config's backend.

Examples
--------
>>> from backtester.config import load_config
>>> cfg = load_config("configs/smoke.yaml", before_strategies=choose_backend)  # doctest: +SKIP
>>> setup(cfg)                                                                  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

from .backend import loaded_backend, select_backend
from .core.errors import ConfigError

XLA_CACHE = "BACKTESTER_XLA_CACHE"  # where JAX keeps compiled steps across processes and runs


def choose_backend(cfg) -> None:
    """Make the config's ``backend`` this process's Keras backend (refused if Keras is loaded on another)."""
    select_backend(cfg.backend)


def setup(cfg, strategies: bool = True) -> None:
    """Everything process-wide a run of ``cfg`` needs: its backend, JAX's compile cache beside the bars,
    and (``strategies``) each strategy type's own set-up (``Params.worker_setup``: Keras imported now)."""
    choose_backend(cfg)
    if cfg.data.cache_dir is not None:  # workers inherit it
        os.environ.setdefault(XLA_CACHE, str(Path(cfg.data.cache_dir).resolve() / "xla"))
    if strategies:
        done: set[type] = set()
        for spec in cfg.run_strategies().values():
            if type(spec.params) not in done:
                spec.params.worker_setup()
                done.add(type(spec.params))


def check(cfg) -> None:
    """Refuse to run ``cfg`` in a process whose Keras backend is another one (where a strategy uses Keras)."""
    if not any(spec.params.needs_backend() for spec in cfg.strategies.values()):
        return
    current = loaded_backend() or os.environ.get(
        "KERAS_BACKEND", "jax"
    )  # strategies.keras.runtime imports Keras on jax by default
    if current != cfg.backend:
        raise ConfigError(
            f"backend: the config asks for {cfg.backend!r} but this process uses {current!r}; call "
            f"backtester.process.setup(cfg) before anything imports Keras, or set "
            f"KERAS_BACKEND={cfg.backend}"
        )
