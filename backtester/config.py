"""Typed, strict run configuration.

A run config is YAML. It is validated in two phases: first its shape (types,
unknown keys, value ranges), then cross-field rules. Every failure raises
:class:`~backtester.errors.ConfigError` with one line naming the key path
and the fix; an unknown or misspelt key lists the valid keys.

Examples
--------
>>> cfg = parse_config({"name": "demo", "data": {"path": "bars.parquet"},
...                     "backtest": {"start": "2024-02-05"},
...                     "strategies": {"naive": {}}})
>>> cfg.backtest.horizon, cfg.backtest.retrain.rule
(24, 'weekly')
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import pandas as pd
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _to_timedelta(value: Any) -> pd.Timedelta:
    try:
        td = pd.Timedelta(value)
    except (ValueError, TypeError):
        raise ValueError(f"{value!r} is not a duration; write e.g. '1h', '15min', '30D'") from None
    if td <= pd.Timedelta(0):
        raise ValueError(f"{value!r} must be a positive duration")
    return td


def _to_timestamp(value: Any) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ValueError(f"{value!r} is not a timestamp; write e.g. '2024-02-05 00:00'") from None
    if ts is pd.NaT:
        raise ValueError(f"{value!r} is not a timestamp")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _to_clock_time(value: Any) -> str:
    text = str(value)
    try:
        parsed = pd.Timestamp(f"2000-01-01 {text}")
    except ValueError:
        raise ValueError(f"{value!r} is not a time of day; write e.g. '00:00' or '16:30'") from None
    return parsed.strftime("%H:%M")


def _check_timezone(value: str) -> str:
    try:
        pd.Timestamp("2000-01-01").tz_localize(value)
    except Exception:
        raise ValueError(f"unknown timezone {value!r}; use an IANA name such as 'UTC' or 'America/New_York'") from None
    return value


Duration = Annotated[pd.Timedelta, BeforeValidator(_to_timedelta), PlainSerializer(lambda v: _fmt_td(v))]
Timestamp = Annotated[pd.Timestamp, BeforeValidator(_to_timestamp), PlainSerializer(lambda v: v.isoformat())]
ClockTime = Annotated[str, BeforeValidator(_to_clock_time)]
TimeZone = Annotated[str, BeforeValidator(_check_timezone)]


def _fmt_td(td: pd.Timedelta) -> str:
    secs = int(td.total_seconds())
    for unit, size in (("D", 86400), ("h", 3600), ("min", 60)):
        if secs % size == 0:
            return f"{secs // size}{unit}"
    return f"{secs}s"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class DataConfig(Strict):
    """Where the bars come from and how realized-volatility bars are built."""

    path: Path
    kind: Literal["minute", "rv"] = "minute"
    format: Literal["auto", "csv", "parquet"] = "auto"
    timestamp_column: str = "timestamp"
    price_column: str = "close"
    rv_column: str = "rv"
    timezone: TimeZone = "UTC"
    timestamp_is: Literal["open", "close"] = "open"
    interval: Duration = pd.Timedelta("1min")
    calendar: str = "24/7"
    bar: Duration = pd.Timedelta("1h")
    min_returns: int | None = Field(default=None, ge=1)  # default: half the input bars a bar holds in session
    max_gap: Duration = pd.Timedelta("15min")
    start: Timestamp | None = None  # keep only bars closing at or after this time
    end: Timestamp | None = None  # keep only bars closing at or before this time
    cache_dir: Path | None = Path(".cache/backtester")

    @model_validator(mode="after")
    def _bar_is_multiple(self) -> DataConfig:
        if self.kind == "minute" and self.bar % self.interval != pd.Timedelta(0):
            raise ValueError(f"data.bar ({_fmt_td(self.bar)}) must be a multiple of data.interval ({_fmt_td(self.interval)})")
        return self


class WeeklyRule(Strict):
    rule: Literal["weekly"] = "weekly"
    weekday: Literal[WEEKDAYS] = "mon"  # type: ignore[valid-type]
    time: ClockTime = "00:00"
    timezone: TimeZone = "UTC"


class MonthlyRule(Strict):
    rule: Literal["monthly"]
    day: Union[int, Literal["first", "last"]] = 1
    time: ClockTime = "00:00"
    timezone: TimeZone = "UTC"

    @field_validator("day")
    @classmethod
    def _day_range(cls, v: Any) -> Any:
        if isinstance(v, int) and not 1 <= v <= 31:
            raise ValueError("day must be 1..31, 'first' or 'last' (first/last trading day)")
        return v


class DailyRule(Strict):
    rule: Literal["daily"]
    time: ClockTime = "00:00"
    timezone: TimeZone = "UTC"


class EveryNBarsRule(Strict):
    rule: Literal["every_n_bars"]
    n: int = Field(ge=1)


class DatesRule(Strict):
    rule: Literal["dates"]
    dates: list[Timestamp] = Field(min_length=1)


class NeverRule(Strict):
    rule: Literal["never"]


RetrainRule = Annotated[
    Union[WeeklyRule, MonthlyRule, DailyRule, EveryNBarsRule, DatesRule, NeverRule],
    Field(discriminator="rule"),
]


class WindowConfig(Strict):
    """Training window: expanding, or rolling by time (``length``) or bar count (``bars``)."""

    kind: Literal["expanding", "rolling"] = "expanding"
    start: Timestamp | None = None
    length: Duration | None = None
    bars: int | None = Field(default=None, ge=2)

    @model_validator(mode="after")
    def _rolling_needs_size(self) -> WindowConfig:
        if self.kind == "rolling" and (self.length is None) == (self.bars is None):
            raise ValueError("a rolling window needs exactly one of 'length' (e.g. 30D) or 'bars' (e.g. 2000)")
        if self.kind == "expanding" and (self.length is not None or self.bars is not None):
            raise ValueError("'length' and 'bars' are for kind: rolling; remove them or set kind: rolling")
        return self


class BacktestConfig(Strict):
    start: Timestamp
    end: Timestamp | None = None
    horizon: int = Field(default=24, ge=1, le=1000)
    retrain: RetrainRule = Field(default_factory=WeeklyRule)
    window: WindowConfig = Field(default_factory=WindowConfig)
    max_failed_retrains: int = Field(default=3, ge=1)

    @model_validator(mode="after")
    def _end_after_start(self) -> BacktestConfig:
        if self.end is not None and self.end <= self.start:
            raise ValueError("backtest.end must be after backtest.start")
        return self


class OutputConfig(Strict):
    dir: Path = Path("results")
    plots: bool = True


class RunConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 0
    data: DataConfig
    backtest: BacktestConfig
    strategies: dict[str, Any] = Field(min_length=1)  # validated per strategy by strategies.validate_params
    output: OutputConfig = Field(default_factory=OutputConfig)

    def resolved(self) -> dict[str, Any]:
        """The config as plain YAML-ready data, with every default filled in."""
        out = self.model_dump(mode="json", exclude={"strategies"})
        out["strategies"] = {
            name: p.model_dump(mode="json") if isinstance(p, BaseModel) else p for name, p in self.strategies.items()
        }
        order = ["name", "seed", "data", "backtest", "strategies", "output"]
        out = {k: out[k] for k in order}
        return out

    def config_id(self) -> str:
        """sha256 of the resolved config: two runs with the same id ran the same thing."""
        blob = json.dumps(self.resolved(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# --------------------------------------------------------------------------- loading


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a YAML config, apply ``a.b=value`` overrides and validate it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; check the path")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a YAML mapping with keys name, data, backtest, strategies")
    for item in overrides:
        apply_override(raw, item)
    return parse_config(raw, source=str(path))


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set ``a.b.c=value`` in a nested dict; the value is parsed as YAML.

    >>> d = {"backtest": {"horizon": 24}}
    >>> apply_override(d, "backtest.horizon=6"); d
    {'backtest': {'horizon': 6}}
    """
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: write it as key.path=value, e.g. --set backtest.horizon=6")
    key, _, text = item.partition("=")
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set {item!r}: the key is empty")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {item!r}: {part!r} is not a mapping, so it has no key {parts[-1]!r}")
        node = child
    node[parts[-1]] = value


def parse_config(raw: dict[str, Any], source: str = "config") -> RunConfig:
    """Validate a raw dict (shape, then strategies, then cross-field rules)."""
    raw = copy.deepcopy(raw)
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_validation_error(exc, RunConfig)}") from None
    from strategies import validate_params  # late import: strategies depend on this module

    strategies = {}
    for name, params in cfg.strategies.items():
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise ConfigError(f"{source}: strategies.{name}: must be a mapping of parameters, e.g. {{type: {name}}}")
        strategies[name] = validate_params(name, params, source)
    return cfg.model_copy(update={"strategies": strategies})


def describe_validation_error(exc: ValidationError, model: type[BaseModel], prefix: str = "") -> str:
    """One line for the first error in ``exc``, naming the key path (and the valid keys for an unknown one)."""
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    shown = _shown_path(loc)
    path = ".".join(([prefix] if prefix else []) + shown) or "(top level)"
    if err["type"] == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        bad = loc[-1]
        if parent is not None:
            valid = list(parent.model_fields)
            close = difflib.get_close_matches(bad, valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return f"{path}: unknown key{hint}; valid keys here: {', '.join(valid)}"
        return f"{path}: unknown key; remove it"
    if err["type"] == "missing":
        return f"{path}: required key is missing; add it"
    if err["type"] == "union_tag_invalid":
        return f"{path}: {err['msg']}"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{path}: {msg} (got {err.get('input')!r})" if not isinstance(err.get("input"), dict) else f"{path}: {msg}"


def _union_members(annotation: Any) -> list[Any]:
    args = getattr(annotation, "__args__", None)
    if args is None:
        return [annotation]
    out = []
    for a in args:
        out.extend(_union_members(a) if getattr(a, "__args__", None) and not isinstance(a, type) else [a])
    return out


def _tag(model: type[BaseModel]) -> str | None:
    """The discriminator value of a retrain-rule model (``MonthlyRule`` -> ``'monthly'``)."""
    field = model.model_fields.get("rule")
    return field.annotation.__args__[0] if field is not None else None


def _model_at(model: type[BaseModel], loc: list[str]) -> type[BaseModel] | None:
    """Follow a pydantic error location to the model class that holds its last key."""
    current: Any = model
    i = 0
    while i < len(loc):
        if loc[i].isdigit():  # a list index
            i += 1
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(loc[i])
        if field is None:
            return None
        members = [m for m in _union_members(field.annotation) if isinstance(m, type) and issubclass(m, BaseModel)]
        if not members:
            return None
        if len(members) == 1:
            current = members[0]
            i += 1
            continue
        tag = loc[i + 1] if i + 1 < len(loc) else None
        chosen = [m for m in members if _tag(m) == tag]
        chosen = chosen or [m for m in members if m.__name__ == tag]
        if not chosen:
            return None
        current = chosen[0]
        i += 2
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _shown_path(loc: list[str]) -> list[str]:
    """Drop the union tags pydantic inserts (``retrain.weekly.time`` -> ``retrain.time``)."""
    rules = _union_members(RetrainRule.__origin__)
    tags = {_tag(m) for m in rules} | {m.__name__ for m in rules}
    out = []
    for i, part in enumerate(loc):
        if i > 0 and loc[i - 1] == "retrain" and part in tags:
            continue
        if part in {"int", "literal['first','last']"}:
            continue
        out.append(part)
    return out
