"""The open registry of strategy types: a name is a built-in, an installed package's entry point
(group ``backtester.strategies``) or an import path ``package.module:ParamsClass``.

Built-ins are named by their import path and imported when first asked for, so the registry imports no
strategy itself: a strategy that names others (a hybrid's baseline, a combination's members) looks
them up here without an import cycle.

Examples
--------
>>> strategy_class("har").__name__
'HarParams'
>>> sorted(REGISTRY)[:3]
['ewma', 'garch', 'har']
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from importlib import metadata
from typing import Any

from pydantic import ValidationError

from backtester.core.errors import ConfigError
from backtester.core.validation import describe_validation_error, did_you_mean

from .base import Params
from .loading import import_object, refuse_standard_library

ENTRY_POINT_GROUP = "backtester.strategies"

BUILTIN = {
    "ewma": "strategies.ewma:EwmaParams",
    "garch": "strategies.garch:GarchParams",
    "har": "strategies.har:HarParams",
    "har_rv": "strategies.har:HarVarianceParams",
    "log_har": "strategies.har:LogHarParams",
    "wls_har": "strategies.har:WlsHarParams",
    "harq": "strategies.har:HarqParams",
    "har_j": "strategies.har:HarJParams",
    "har_cj": "strategies.har:HarCjParams",
    "shar": "strategies.har:SharParams",
    "har_periodic": "strategies.har:PeriodicHarParams",
    "imported": "strategies.keras.imported:ImportedParams",
    "keras": "strategies.keras.params:KerasParams",
    "lstm": "strategies.lstm:LstmParams",
    "mean_of": "strategies.combination:MeanOfParams",
    "naive": "strategies.naive:NaiveParams",
    "rolling_mean": "strategies.naive:RollingMeanParams",
}


class _Builtins(Mapping[str, type[Params]]):
    """The built-in types by name, each class imported when first looked up."""

    def __getitem__(self, name: str) -> type[Params]:
        module, _, attr = BUILTIN[name].partition(":")
        return getattr(importlib.import_module(module), attr)

    def __iter__(self) -> Iterator[str]:
        return iter(BUILTIN)

    def __len__(self) -> int:
        return len(BUILTIN)


REGISTRY: Mapping[str, type[Params]] = _Builtins()


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
