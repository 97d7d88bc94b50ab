"""Forecasting strategies behind one small Protocol, and an open registry of their types.

Built in: ``lstm``, ``keras`` (your own Keras builder), ``imported`` (a saved model), ``naive``, ``rolling_mean``,
``ewma``, ``har``, ``garch``, ``mean_of`` (the mean of other baselines' forecasts). A strategy ``type`` may also be

- the name an installed package registers in the entry-point group
  ``backtester.strategies`` (``myname = "mypkg.module:MyParams"``), or
- a path to a :class:`Params` subclass, ``"mypkg.module:MyParams"``, imported from
  the current directory or anywhere on ``PYTHONPATH``.

Examples
--------
>>> kind, params = validate_params("baseline", {"type": "ewma", "lam": 0.97})
>>> kind, params.lam
('ewma', 0.97)
>>> validate_params("x", {"type": "lsmt"})
Traceback (most recent call last):
...
backtester.core.errors.ConfigError: config: strategies.x.type: unknown strategy 'lsmt' (did you mean 'lstm'?); valid names: ewma, garch, har, har_cj, har_j, har_periodic, har_rv, harq, imported, keras, log_har, lstm, mean_of, naive, rolling_mean, shar, wls_har, or a path 'package.module:ParamsClass'
"""

from __future__ import annotations

from .base import FitInfo, Params, Strategy
from .keras.inspection import inspect_model, summary_lines  # `backtest model inspect`
from .registry import ENTRY_POINT_GROUP, REGISTRY, strategy_class, validate_params

__all__ = [
    "ENTRY_POINT_GROUP",
    "REGISTRY",
    "FitInfo",
    "Params",
    "Strategy",
    "inspect_model",
    "strategy_class",
    "summary_lines",
    "validate_params",
]
