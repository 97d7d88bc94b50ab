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
backtester.core.errors.ConfigError: config: strategies.x.type: unknown strategy 'lsmt' (did you mean 'lstm'?); valid names: ewma, garch, har, imported, keras, lstm, mean_of, naive, rolling_mean, or a path 'package.module:ParamsClass'
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from pydantic import ValidationError

from backtester.core.errors import ConfigError
from backtester.core.validation import describe_validation_error, did_you_mean

from .base import FitInfo, Params, Strategy
from .combination import MeanOfParams
from .ewma import EwmaParams
from .garch import GarchParams
from .har import HarParams
from .keras.imported import ImportedParams
from .keras.inspection import inspect_model, summary_lines
from .keras.params import KerasParams
from .loading import import_object, refuse_standard_library
from .lstm import LstmParams
from .naive import NaiveParams, RollingMeanParams

ENTRY_POINT_GROUP = "backtester.strategies"

REGISTRY: dict[str, type[Params]] = {
    "ewma": EwmaParams,
    "garch": GarchParams,
    "har": HarParams,
    "imported": ImportedParams,
    "keras": KerasParams,
    "lstm": LstmParams,
    "mean_of": MeanOfParams,
    "naive": NaiveParams,
    "rolling_mean": RollingMeanParams,
}

__all__ = [
    "REGISTRY",
    "FitInfo",
    "Params",
    "Strategy",
    "inspect_model",
    "strategy_class",
    "summary_lines",
    "validate_params",
]  # inspect_model, summary_lines: `backtest model inspect`


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def strategy_class(kind: str, where: str = "strategies.x.type") -> type[Params]:
    """The :class:`Params` class for a strategy ``type``: built-in name, entry point or import path."""
    if kind in REGISTRY:
        return REGISTRY[kind]
    plugins = _entry_points()
    if kind in plugins:
        try:
            cls = plugins[kind].load()
        except Exception as exc:  # a broken plugin must not take the CLI down with a traceback
            raise ConfigError(
                f"{where}: strategy {kind!r} from entry point {plugins[kind].value!r} "
                f"failed to import ({type(exc).__name__}: {exc}); fix or reinstall that package"
            ) from None
        origin = f"entry point {plugins[kind].value!r}"
    elif ":" in kind or "." in kind:
        refuse_standard_library(kind, where, "a Params class")  # never imported: no Params class lives there
        cls = import_object(kind, where, "a Params class")
        origin = repr(kind)
    else:
        names = sorted(set(REGISTRY) | set(plugins))
        raise ConfigError(
            f"{where}: unknown strategy {kind!r}{did_you_mean(kind, names)}; valid names: "
            f"{', '.join(names)}, or a path 'package.module:ParamsClass'"
        )
    if not (isinstance(cls, type) and issubclass(cls, Params)):
        raise ConfigError(
            f"{where}: {origin} is {cls!r}, not a subclass of strategies.Params; "
            "point it at your Params class (see 'Add your own strategy' in the README)"
        )
    if cls.build is Params.build:
        raise ConfigError(
            f"{where}: {origin} is {cls.__name__}, which defines no build(seed); point it at a Params "
            "subclass that builds a strategy (see 'Add your own strategy' in the README)"
        )
    return cls


def validate_params(name: str, raw: dict[str, Any], source: str = "config") -> tuple[str, Params]:
    """Validate one ``strategies.<name>`` entry; ``type`` defaults to the entry's name.

    Returns the type as written and the validated parameters.
    """
    raw = dict(raw)
    kind = raw.pop("type", name)
    if not isinstance(kind, str):
        raise ConfigError(f"{source}: strategies.{name}.type: must be a strategy name or 'package.module:ParamsClass'")
    cls = strategy_class(kind, f"{source}: strategies.{name}.type")
    if "type" in cls.model_fields:
        raw["type"] = cls.model_fields["type"].default
    try:
        return kind, cls.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_validation_error(exc, cls, prefix=f'strategies.{name}')}") from None
