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

Every process also computes on one thread (:func:`pin_threads`): XLA's CPU matrix products (Eigen), BLAS
and OpenMP split a sum among their threads, so the thread count decides the order in which floats are
added, and with it the last bits of every GARCH fit and of every LSTM weight after a few epochs
(measured on ``configs/weekly.yaml``: two threads against one moved the GARCH fit by 2e-8 and, through
the hybrid LSTM that starts from it, its seeds by up to 5e-2 relative). One thread everywhere makes this
process, ``--jobs N`` workers and Dask workers give the same bits, whatever the machine's cores; a run on N cores still uses them
all through ``--jobs N``. The console script pins before anything loads NumPy (:mod:`backtester.console`),
:func:`setup` pins again for the Python API (BLAS already loaded is limited through threadpoolctl), and
the worker set-ups of :mod:`backtester.executors` pin each worker.

Examples
--------
>>> from backtester.config import load_config
>>> cfg = load_config("configs/smoke.yaml", before_strategies=choose_backend)  # doctest: +SKIP
>>> setup(cfg)                                                                  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from .backend import loaded_backend, select_backend
from .core.errors import ConfigError

XLA_CACHE = "BACKTESTER_XLA_CACHE"  # where JAX keeps compiled steps across processes and runs
THREADS = 1  # compute threads in every process that trains or fits (see pin_threads)
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")
THREADS_VAR = "BACKTESTER_THREADS"  # TensorFlow's intra- and inter-op pools (strategies.keras.runtime)
XLA_EIGEN = "--xla_cpu_multi_thread_eigen"  # XLA's CPU dots and convolutions on Eigen's thread pool, or not

log = logging.getLogger(__name__)


def choose_backend(cfg) -> None:
    """Make the config's ``backend`` this process's Keras backend (refused if Keras is loaded on another)."""
    select_backend(cfg.backend)


def setup(cfg, strategies: bool = True) -> None:
    """Everything process-wide a run of ``cfg`` needs: its backend, one compute thread (:func:`pin_threads`),
    JAX's compile cache beside the bars, and (``strategies``) each strategy type's own set-up (``Params.worker_setup``: Keras imported now)."""
    choose_backend(cfg)
    if not pin_threads():
        log.warning(
            "XLA already started in this process on its default threads: its numbers may differ in the last "
            "bits from --jobs and Dask workers; call backtester.process.setup(cfg) before anything runs JAX"
        )
    if cfg.data.cache_dir is not None:  # workers inherit it
        os.environ.setdefault(XLA_CACHE, str(Path(cfg.data.cache_dir).resolve() / "xla"))
    if strategies:
        done: set[type] = set()
        for spec in cfg.run_strategies().values():
            if type(spec.params) not in done:
                spec.params.worker_setup()
                done.add(type(spec.params))


def pin_threads() -> bool:
    """One compute thread in this process for XLA, BLAS, OpenMP and TensorFlow, so that sums are added in
    the same order in every process; the environment carries it to worker processes started from here.

    Libraries read these settings when they start: BLAS already loaded is limited now (threadpoolctl);
    XLA is pinned only if it has not yet started. Returns False where it had (too late for XLA here).
    """
    late = _xla_started() and f"{XLA_EIGEN}=false" not in os.environ.get("XLA_FLAGS", "").split()
    for var in (*THREAD_VARS, THREADS_VAR):
        os.environ[var] = str(THREADS)
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(XLA_EIGEN + "=")]
    os.environ["XLA_FLAGS"] = " ".join([*flags, f"{XLA_EIGEN}=false"])  # a caller's own XLA flags kept
    from threadpoolctl import threadpool_limits  # scikit-learn's dependency; imports no BLAS itself

    threadpool_limits(THREADS)  # for good: the libraries loaded by now (NumPy's OpenBLAS, after a config)
    return not late


def _xla_started() -> bool:
    """Whether JAX has started its XLA backend in this process (it reads ``XLA_FLAGS`` then, once)."""
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge
    except ImportError:  # pragma: no cover - a JAX without it: assume started
        return True
    return bool(xla_bridge.backends_are_initialized())


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
