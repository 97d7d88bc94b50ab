"""Forecasting strategies behind one small Protocol, and a registry by name.

Built in: ``lstm``, ``naive``, ``rolling_mean``, ``ewma``, ``har``, ``garch``.

Examples
--------
>>> params = validate_params("baseline", {"type": "ewma", "lam": 0.97})
>>> params.lam
0.97
>>> validate_params("x", {"type": "lsmt"})
Traceback (most recent call last):
...
backtester.errors.ConfigError: config: strategies.x.type: unknown strategy 'lsmt' (did you mean 'lstm'?); valid names: ewma, garch, har, lstm, naive, rolling_mean
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import ValidationError

from backtester.errors import ConfigError

from .base import FitInfo, Params, Strategy
from .ewma import EwmaParams
from .garch import GarchParams
from .har import HarParams
from .lstm import LstmParams
from .naive import NaiveParams, RollingMeanParams

REGISTRY: dict[str, type[Params]] = {
    "ewma": EwmaParams,
    "garch": GarchParams,
    "har": HarParams,
    "lstm": LstmParams,
    "naive": NaiveParams,
    "rolling_mean": RollingMeanParams,
}

__all__ = ["REGISTRY", "FitInfo", "Params", "Strategy", "validate_params"]


def validate_params(name: str, raw: dict[str, Any], source: str = "config") -> Params:
    """Validate one ``strategies.<name>`` entry; ``type`` defaults to the entry's name."""
    from backtester.config import describe_validation_error

    raw = dict(raw)
    kind = raw.setdefault("type", name)
    if kind not in REGISTRY:
        close = difflib.get_close_matches(str(kind), list(REGISTRY), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"{source}: strategies.{name}.type: unknown strategy {kind!r}{hint}; valid names: {', '.join(sorted(REGISTRY))}"
        )
    try:
        return REGISTRY[kind].model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_validation_error(exc, REGISTRY[kind], prefix=f'strategies.{name}')}") from None
