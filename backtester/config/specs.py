"""One ``strategies.<name>`` entry parsed: its schedule, its parameters (durations turned into bar
counts), its seed members, and the baselines a hybrid or a combination links to.

Examples
--------
>>> from backtester.config.sections import BacktestConfig
>>> spec = parse_strategy("lstm", {"repeats": 2, "epochs": 1}, BacktestConfig(start="2024-02-05"))
>>> [m.name for m in spec.members()]
['lstm#1', 'lstm#2']
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
from pydantic import ValidationError

from strategies import Params, strategy_class, validate_params

from ..core.errors import ConfigError
from ..core.names import SEED_MARK, Member
from ..core.schedule import RetrainRule, WindowConfig
from ..core.types import Strict, fmt_duration, to_timedelta
from ..core.validation import describe_validation_error, did_you_mean
from .sections import BacktestConfig

MAX_NUMBER = 10**15  # no config value is larger; beyond it ints lose float precision and arrays overflow


class StrategySchedule(Strict):
    """A strategy's own retrain rule and training window (default: those of ``backtest``)."""

    retrain: RetrainRule | None = None
    window: WindowConfig | None = None


@dataclass(frozen=True)
class StrategySpec:
    """One ``strategies.<name>`` entry: its parameters and the schedule it actually runs on.

    ``own_retrain`` / ``own_window`` say whether the strategy set them itself (else
    they are the ``backtest`` defaults).
    """

    name: str
    type: str
    params: Params
    retrain: RetrainRule
    window: WindowConfig
    own_retrain: bool = False
    own_window: bool = False
    repeats: int = 1  # >1: run with that many derived seeds (members name#1..name#N) plus their mean, `name`
    assets: tuple[str, ...] | None = None  # in a universe: only these assets (None: every asset)

    def members(self) -> list[StrategySpec]:
        """The strategies that actually run: itself, or its ``repeats`` seed members ``name#k``."""
        if self.repeats == 1:
            return [self]
        return [replace(self, name=str(Member(self.name, k)), repeats=1) for k in range(1, self.repeats + 1)]

    def resolved(self) -> dict[str, Any]:
        out = {"type": self.type, **self.params.model_dump(mode="json")}
        if self.repeats > 1:
            out["repeats"] = self.repeats
        if self.assets is not None:
            out["assets"] = list(self.assets)
        if self.own_retrain:
            out["retrain"] = self.retrain.model_dump(mode="json")
        if self.own_window:
            out["window"] = self.window.model_dump(mode="json")
        return out

    def schedule_label(self) -> str:
        """``weekly mon 00:00 UTC, expanding`` and the like."""
        return f"{self.retrain.label()}; window {self.window.label()}"


def link_residuals(specs: dict[str, StrategySpec], source: str, asset: str | None = None) -> dict[str, StrategySpec]:
    """Each strategy that links others (:meth:`strategies.base.Params.links`: a hybrid's ``residual_of:
    har``, a combination's ``of: [har, garch]``) gets their type and parameters
    (:meth:`~strategies.base.Params.with_links`), so it fits the same baselines on its own training window,
    and its results change when theirs do. Each must be a strategy of the run (on this asset) that does
    not depend on a seed and links none itself."""
    out = dict(specs)
    for name, spec in specs.items():
        names = spec.params.links()
        where = f"{source}: strategies.{name}.{spec.params.LINKS_FIELD}"
        linked = [linked_params(specs, name, base, where, asset) for base in names]
        if linked:
            out[name] = replace(spec, params=spec.params.with_links(linked))
    return out


def linked_params(
    specs: dict[str, StrategySpec], name: str, base_name: str, where: str, asset: str | None
) -> dict[str, Any]:
    """The type and parameters of ``base_name``, a baseline strategy ``name`` links (or a one-line error)."""
    if base_name not in specs:
        if asset is not None:
            raise ConfigError(
                f"{where}: {base_name!r} does not run on asset {asset}; give it that asset too, "
                f"or restrict {name} to the assets {base_name} runs on"
            )
        others = [
            n
            for n, o in specs.items()
            if n != name and not o.params.seeded() and o.repeats == 1 and not o.params.links()
        ]  # the baselines it can name
        raise ConfigError(
            f"{where}: {base_name!r} is not a strategy of this run"
            f"{did_you_mean(base_name, others)}; name one of its baselines: "
            f"{', '.join(others) or 'none (add one, e.g. har: {type: har})'}"
        )
    base = specs[base_name]
    if base.params.links() and not base.params.seeded():
        raise ConfigError(f"{where}: {base_name!r} is a combination itself; name its members instead")
    if base.params.seeded() or base.repeats > 1 or base_name == name:
        raise ConfigError(
            f"{where}: {base_name!r} is not a baseline (it depends on a seed); name a baseline such as har, garch or ewma"
        )
    return {"type": base.type, **base.params.model_dump(mode="json")}


def check_numbers(raw: Any, source: str = "config", where: str = "") -> None:
    """Refuse any number beyond ±MAX_NUMBER (1e15) or not finite, wherever it sits in the raw config.

    Fields with a range of their own say it first (``backtest.horizon: ... from 1 to 1000``); this
    catches the rest, e.g. a strategy's bar count of 10**20, before it reaches numpy or the plan.

    >>> check_numbers({"strategies": {"naive": {"bars": 10**20}}})
    Traceback (most recent call last):
    ...
    backtester.core.errors.ConfigError: config: strategies.naive.bars: 100000000000000000000 is out of range; numbers in a config lie between -1e15 and 1e15
    """
    if isinstance(raw, dict):
        for key, value in raw.items():
            check_numbers(value, source, f"{where}.{key}" if where else str(key))
    elif isinstance(raw, list):
        for k, value in enumerate(raw):
            check_numbers(value, source, f"{where}[{k}]")
    elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
        if isinstance(raw, float) and not math.isfinite(raw):
            raise ConfigError(f"{source}: {where}: {raw} is not a finite number; give a number")
        if abs(raw) > MAX_NUMBER:
            raise ConfigError(
                f"{source}: {where}: {raw} is out of range; numbers in a config lie between -1e15 and 1e15"
            )


def bars_in(value: Any, bar: pd.Timedelta, where: str) -> Any:
    """A bar count from a count or a duration on bars of ``bar`` (lists element by element).

    >>> bars_in(["1h", "1D", 3], pd.Timedelta("1h"), "lags"), bars_in("2h", pd.Timedelta("30min"), "memory")
    ([1, 24, 3], 4)
    >>> bars_in("90min", pd.Timedelta("1h"), "strategies.har.lags")
    Traceback (most recent call last):
    ...
    ValueError: strategies.har.lags: 90min is not a whole number of 1h bars; give a multiple of 1h or a bar count
    """
    if isinstance(value, list):
        return [bars_in(v, bar, where) for v in value]
    if not isinstance(value, str) or value.strip().lstrip("-").isdigit():
        return int(value) if isinstance(value, str) else value
    try:
        td = to_timedelta(value)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}; or give a bar count") from None
    n = td / bar
    if n < 1 or abs(n - round(n)) > 1e-9:
        raise ValueError(
            f"{where}: {value} is not a whole number of {fmt_duration(bar)} bars; give a multiple of "
            f"{fmt_duration(bar)} or a bar count"
        )
    return int(round(n))


def _bars_from_durations(
    cls: type[Params], raw: dict[str, Any], bar: pd.Timedelta, where: str, data=None
) -> dict[str, Any]:
    """Fields a strategy declares in ``DURATION_FIELDS`` may be durations ('1h', '1D', '7D'): turn them into
    bar counts; a strategy's ``bar_defaults(bar)`` gives defaults that mean the same time on any bar size."""
    out = dict(raw)
    for field in cls.DURATION_FIELDS:
        if field in out:
            out[field] = bars_in(out[field], bar, f"{where}.{field}")
    out = cls.bar_values(out, lambda value, at: bars_in(value, bar, at), where)
    out = {**cls.bar_defaults(bar, data), **out}
    if data is not None:
        out = {**cls.data_defaults(data), **out}
    return out


def parse_strategy(
    name: str, raw: Any, backtest: BacktestConfig, source: str = "config", bar: pd.Timedelta | None = None, data=None
) -> StrategySpec:
    """One ``strategies.<name>`` entry: ``retrain`` / ``window`` override the backtest's, the rest are params."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: strategies.{name}: must be a mapping of parameters, e.g. {{type: {name}}}")
    raw = dict(raw)
    if "window" in raw and not isinstance(raw["window"], dict):
        raise ConfigError(
            f"{source}: strategies.{name}.window: is this strategy's training window, a mapping such as "
            f"{{kind: rolling, length: 30D}}; for how many bars naive/rolling_mean average, write 'bars: "
            f"{raw['window']}'"
        )
    schedule = {k: raw.pop(k) for k in ("retrain", "window") if k in raw}
    repeats = raw.pop("repeats", 1)
    assets = raw.pop("assets", None)
    if assets is not None and (
        not isinstance(assets, list) or not assets or not all(isinstance(a, str) for a in assets)
    ):
        raise ConfigError(
            f"{source}: strategies.{name}.assets: must be a list of asset names from data.assets, "
            f"e.g. [btc, eth] (got {assets!r})"
        )
    if not isinstance(repeats, int) or isinstance(repeats, bool) or not 1 <= repeats <= 100:
        raise ConfigError(
            f"{source}: strategies.{name}.repeats: must be a whole number of seeds from 1 to 100 (got {repeats!r})"
        )
    if SEED_MARK in name:
        raise ConfigError(f"{source}: strategies.{name}: '#' is reserved for seed members (name#1); rename it")
    try:
        own = StrategySchedule.model_validate(schedule)
    except ValidationError as exc:
        raise ConfigError(
            f"{source}: {describe_validation_error(exc, StrategySchedule, prefix=f'strategies.{name}')}"
        ) from None
    kind = raw.get("type", name)
    if bar is not None and isinstance(kind, str):
        try:
            raw = _bars_from_durations(
                strategy_class(kind, f"{source}: strategies.{name}.type"), raw, bar, f"strategies.{name}", data
            )
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    kind, params = validate_params(name, raw, source)
    return StrategySpec(
        name=name,
        type=kind,
        params=params,
        retrain=own.retrain or backtest.retrain,
        window=own.window or backtest.window,
        own_retrain=own.retrain is not None,
        own_window=own.window is not None,
        repeats=repeats,
        assets=tuple(assets) if assets is not None else None,
    )
