"""backtester: walk-forward backtests of volatility forecasts (Keras LSTMs and baselines).

The public API is what ``__all__`` lists; everything else is internal. One call loads a config, sets
this process up for it (the Keras backend, JAX's compile cache) and runs it:

>>> import backtester
>>> result = backtester.run_config("configs/smoke.yaml", ["backtest.horizon=3"], force=True)  # doctest: +SKIP
>>> result.metrics.head()  # doctest: +SKIP

The same in steps: ``cfg = load_config(path)``, ``setup(cfg)``, ``run(cfg)``. A finished run's models are
reloaded with ``load_artifact(folder)`` and their forecasts redone with ``predict(folder)``; ``audit_run``
and ``compare_runs`` are ``backtest audit`` and ``backtest compare``. Names are imported when first used, so ``import
backtester`` stays cheap (no Keras, no pandas).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .core.version import __version__

__all__ = [
    "BacktestError",
    "RunResult",
    "__version__",
    "audit_run",
    "compare_runs",
    "load_artifact",
    "load_config",
    "predict",
    "run",
    "run_config",
    "setup",
]

# name -> the module (under backtester) that defines it
_LAZY = {
    "BacktestError": "core.errors",
    "RunResult": "runner",
    "run": "runner",
    "load_config": "config",
    "setup": "process",
    "load_artifact": "artifacts",
    "predict": "artifacts",
    "audit_run": "audit:audit",  # (the modules audit and compare keep their names)
    "compare_runs": "compare:compare",
}

if TYPE_CHECKING:
    from .runner import RunResult


def run_config(
    path: str | Path,
    overrides: Sequence[str] = (),
    *,
    force: bool = False,
    fresh: bool = False,
    log: Callable[[str], None] = lambda msg: None,
) -> RunResult:
    """Load the YAML config at ``path`` (with ``key.path=value`` ``overrides``, as ``--set`` takes), set
    this process up for it and run it: what ``backtest run`` does, returning the
    :class:`~backtester.runner.RunResult` (``forecasts``, ``metrics``, ``out_dir``). ``force``
    overwrites a finished run of the same name; ``fresh`` reuses no finished segment."""
    from .config import load_config
    from .process import choose_backend, setup
    from .runner import run

    cfg = load_config(path, tuple(overrides), before_strategies=choose_backend)
    on_workers = cfg.execution.jobs > 1 or cfg.execution.scheduler is not None
    setup(cfg, strategies=not on_workers)  # a parent that only hands out fits does not import Keras
    return run(cfg, force=force, fresh=fresh, log=log)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, _, attr = _LAZY[name].partition(":")
        return getattr(importlib.import_module(f".{module}", __name__), attr or name)
    raise AttributeError(f"module 'backtester' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
