"""Typed, strict run configuration.

A run config is YAML. It is validated in two phases: first its shape (types,
unknown keys, value ranges), then cross-field rules. Every failure raises
:class:`~backtester.core.errors.ConfigError` with one line naming the key path
and the fix; an unknown or misspelt key lists the valid keys.

Examples
--------
>>> cfg = parse_config({"name": "demo", "data": {"path": "bars.parquet"},
...                     "backtest": {"start": "2024-02-05"},
...                     "strategies": {"naive": {}}})
>>> cfg.backtest.horizon, cfg.backtest.retrain.rule
(24, 'weekly')
"""

import copy
import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import Field, PrivateAttr, ValidationError, field_validator

from ..core.errors import ConfigError
from ..core.types import Strict, fmt_duration
from ..core.validation import describe_validation_error, did_you_mean
from ..overrides import blame_overrides, load_yaml, override_key, with_overrides
from .sections import (
    STACK_AUTO_ACCELERATOR,
    STACK_AUTO_CPU,
    BacktestConfig,
    DataConfig,
    EvaluationConfig,
    ExecutionConfig,
    OutputConfig,
    TrackingConfig,
)
from .specs import MAX_NUMBER, StrategySchedule, StrategySpec, bars_in, check_numbers, link_residuals, parse_strategy
from .universe import (
    Asset,
    _asset_options,
    asset_test_period,
    expand_assets,
    resolve_data_path,
    universe_specs,
)

__all__ = [
    "MAX_NUMBER",
    "MAX_SEED",
    "STACK_AUTO_ACCELERATOR",
    "STACK_AUTO_CPU",
    "Asset",
    "BacktestConfig",
    "DataConfig",
    "EvaluationConfig",
    "ExecutionConfig",
    "OutputConfig",
    "RunConfig",
    "StrategySchedule",
    "StrategySpec",
    "asset_test_period",
    "bars_in",
    "check_numbers",
    "expand_assets",
    "link_residuals",
    "load_config",
    "parse_config",
    "parse_strategy",
    "resolve_data_path",
    "universe_specs",
]


NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
MAX_SEED = 2**32 - 1


class RunConfig(Strict):
    name: str  # the folder results/<name>/: one plain path component (see _plain_name)
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    backend: Literal["tensorflow", "jax"] = "jax"  # the Keras backend, set before Keras is imported (README: why jax)
    data: DataConfig
    backtest: BacktestConfig
    strategies: dict[str, Any] = Field(min_length=1)  # StrategySpec per name once parsed
    output: OutputConfig = Field(default_factory=OutputConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    tracking: TrackingConfig | None = None  # mlflow: log every finished run (backtester.tracking)
    _universe: dict[str, tuple[DataConfig, dict[str, StrategySpec]]] = PrivateAttr(default_factory=dict)
    _tests: dict[str, BacktestConfig] = PrivateAttr(default_factory=dict)  # an asset's own test period

    @field_validator("tracking", mode="before")
    @classmethod
    def _tracking(cls, v: Any) -> Any:
        if v is True or v == "mlflow":
            return {"to": "mlflow"}
        if v is False or v in ("none", "off"):
            return None
        if isinstance(v, str):
            raise ValueError(f"unknown tracking {v!r}; give mlflow (or a mapping: to, uri, experiment, strict)")
        return v

    @field_validator("name", mode="before")
    @classmethod
    def _plain_name(cls, v: Any) -> Any:
        """One plain folder name: letters, digits, ``_``, ``-`` and ``.``, not starting with ``.`` or ``-``
        (so never ``..``, a hidden folder, an absolute path or a path with separators), at most 100 characters."""
        if isinstance(v, str) and not NAME_PATTERN.fullmatch(v):
            raise ValueError(
                "the run's folder results/<name>/ must be one plain name: letters, digits, '_', '-' and "
                "'.', starting with a letter, digit or '_', at most 100 characters (e.g. weekly_lstm)"
            )
        return v

    def resolved(self) -> dict[str, Any]:
        """The config as plain YAML-ready data, with every default filled in."""
        out = self.model_dump(mode="json", exclude={"strategies"})
        out["data"] = {k: v for k, v in out["data"].items() if not (k in ("path", "assets") and v is None)}
        out["strategies"] = {
            name: s.resolved() if isinstance(s, StrategySpec) else s for name, s in self.strategies.items()
        }
        order = ["name", "seed", "backend", "data", "backtest", "strategies", "output", "evaluation", "execution"]
        order += ["tracking"] if self.tracking is not None else []
        out = {k: out[k] for k in order}
        return out

    def run_strategies(self) -> dict[str, StrategySpec]:
        """Every strategy that runs, with ``repeats`` expanded into seed members (``lstm#1``, ``lstm#2``, ...)."""
        return {m.name: m for spec in self.strategies.values() for m in spec.members()}

    def ensembles(self) -> dict[str, list[str]]:
        """Strategies with ``repeats`` > 1: name -> its members (their mean forecast is reported as ``name``)."""
        return {name: [m.name for m in s.members()] for name, s in self.strategies.items() if s.repeats > 1}

    def universe(self) -> list[Asset]:
        """The run's assets, each with the config as that asset sees it (its own data block, and the
        strategies that run on it). A run on one ``data.path`` is a universe of one, named ``""``.

        >>> [(a.name, a.label) for a in parse_config({"name": "d", "data": {"path": "btc.parquet"},
        ...     "backtest": {"start": "2024-01-03"}, "strategies": {"naive": {}}}).universe()]
        [('', 'btc')]
        """
        if self.data.assets is None:
            return [Asset("", Path(self.data.path).stem, self)]
        out = []
        for name, (data, specs) in self._universe.items():
            ev = self.evaluation
            if ev.benchmark is not None and ev.benchmark not in {m.name for s in specs.values() for m in s.members()}:
                ev = ev.model_copy(update={"benchmark": None})  # not run on this asset: pairwise tests only here
            backtest = self._tests.get(name, self.backtest)
            out.append(
                Asset(
                    name,
                    name,
                    self.model_copy(update={"data": data, "strategies": specs, "evaluation": ev, "backtest": backtest}),
                )
            )
        return out

    def backtest_period(self) -> tuple:
        """(start, end) of the run's own ``backtest`` block (an asset may have its own: :func:`asset_test_period`)."""
        return (self.backtest.start, self.backtest.end)

    def config_id(self) -> str:
        """sha256 of the resolved config: two runs with the same id ran the same thing."""
        what = {k: v for k, v in self.resolved().items() if k != "tracking"}  # where it is logged changes nothing
        blob = json.dumps(what, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# --------------------------------------------------------------------------- loading


def load_config(
    path: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    before_strategies: Callable[[RunConfig], None] | None = None,
) -> RunConfig:
    """Read a YAML config, apply ``a.b=value`` overrides and validate it.

    ``before_strategies(cfg)`` is called once the config's shape is valid and before any strategy is
    validated (which may import a user's builder, and with it Keras): the CLI chooses the Keras backend
    there (:func:`backtester.process.choose_backend`).

    An error caused by an override's value names the override (``--set execution.jobs=0: ...``),
    any other names the file. A relative ``data.path`` written in the file is looked for in the
    working directory, then in the config file's folder and that folder's parent (see
    :func:`resolve_data_path`); one given by ``--set`` is relative to the working directory only.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; check the path")
    try:
        raw = load_yaml(path.read_text(errors="replace"), str(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a YAML mapping with keys name, data, backtest, strategies")
    source = str(path)
    merged = with_overrides(raw, overrides)
    try:
        cfg = parse_config(merged, source=source, before_strategies=before_strategies, config_path=path)
    except ConfigError as exc:
        raise blame_overrides(exc, raw, list(overrides), source, parse_config) from None
    given = [item for item in overrides if override_key(item) in (["data"], ["data", "path"])]
    data_path = cfg.data.path
    if data_path is None:  # a universe: its files were found by parse_config
        return cfg
    if not given:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"path": resolve_data_path(data_path, path)})})
    elif not data_path.is_absolute() and not data_path.exists():
        raise ConfigError(
            f"--set {given[-1]}: data.path: {data_path} not found (looked in {os.path.abspath(data_path)}); "
            "paths given with --set are relative to the working directory"
        )
    return cfg


def check_measures(specs: dict[str, StrategySpec], datas: dict[str, Any], source: str, proxy: str = "rv") -> None:
    """Each realized measure a strategy reads (:meth:`~strategies.base.Params.measures`), and the proxy the
    forecasts are scored against, is one the data can give: minute bars (not ``kind: rv``) with enough
    returns within a bar."""
    from ..measures import MEASURES, NEEDS_RETURNS

    wanted = [(f"strategies.{name}", spec.type, m) for name, spec in specs.items() for m in spec.params.measures()]
    if proxy != "rv":
        wanted.append(("evaluation.proxy", "the proxy", proxy))
    for key, kind, m in wanted:
        if m not in MEASURES:
            raise ConfigError(
                f"{source}: {key}: unknown realized measure {m!r}{did_you_mean(m, list(MEASURES))}; "
                f"valid: {', '.join(MEASURES)}"
            )
        for asset, d in datas.items():
            where = f"data.assets.{asset}" if asset else "data"
            if d.kind == "rv":
                raise ConfigError(
                    f"{source}: {key}: {kind} reads the realized measure {m!r}, made from intrabar returns; "
                    f"{where}.kind: rv gives RV alone: give minute bars (kind: minute) or use RV alone"
                )
            per_bar = int(pd.Timedelta(d.bar) // pd.Timedelta(d.interval))
            need = NEEDS_RETURNS.get(m, 1)
            if per_bar < need:
                raise ConfigError(
                    f"{source}: {key}: {kind} reads {m!r}, which needs {need} or more returns within a bar; "
                    f"{where}.bar {fmt_duration(d.bar)} from {where}.interval {fmt_duration(d.interval)} "
                    f"gives {per_bar}: use shorter input bars or a longer bar"
                )


def check_economic(cfg: RunConfig, datas: dict[str, Any], source: str) -> None:
    """``evaluation.economic`` asked of data without returns (``kind: rv``), or rebalancing beyond the horizon."""
    eco = cfg.evaluation.economic
    rv_only = [a for a, d in datas.items() if d.kind == "rv"]
    if eco.enabled and rv_only:
        where = f"data.assets.{rv_only[0]}" if rv_only[0] else "data"
        raise ConfigError(
            f"{source}: evaluation.economic.enabled: VaR, ES and volatility targeting need the bars' returns, and "
            f"{where}.kind: rv gives RV alone: give minute bars (kind: minute) or set enabled: false"
        )
    if eco.rebalance > cfg.backtest.horizon:
        raise ConfigError(
            f"{source}: evaluation.economic.rebalance: {eco.rebalance} bars is beyond backtest.horizon "
            f"({cfg.backtest.horizon}): a position is sized from the forecasts of the bars it is held; "
            f"give at most {cfg.backtest.horizon}"
        )


def parse_config(
    raw: dict[str, Any],
    source: str = "config",
    before_strategies: Callable[[RunConfig], None] | None = None,
    config_path: str | Path | None = None,
) -> RunConfig:
    """Validate a raw dict (shape, then each strategy's schedule and parameters); see :func:`load_config`.
    ``config_path``: the file the dict came from (relative paths in ``data.assets`` are looked for beside it too)."""
    raw = copy.deepcopy(raw)
    stray = [k for k in raw if k not in RunConfig.model_fields]
    if stray:  # name a misspelt section before pydantic reports the section it hides as missing
        valid = list(RunConfig.model_fields)
        raise ConfigError(
            f"{source}: {stray[0]}: unknown key{did_you_mean(stray[0], valid)}; valid keys here: {', '.join(valid)}"
        )
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_validation_error(exc, RunConfig)}") from None
    out = Path(cfg.output.dir) / cfg.name
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{source}: name: {out} is a file, not a run folder; move that file away or change 'name'")
    if before_strategies is not None:
        before_strategies(cfg)
    assets = expand_assets(cfg.data, source, config_path) if cfg.data.assets is not None else {}
    data = next(iter(assets.values())) if assets else cfg.data
    specs = {
        name: parse_strategy(name, params, cfg.backtest, source, bar=data.bar, data=data)
        for name, params in cfg.strategies.items()
    }
    specs = link_residuals(specs, source)
    check_measures(specs, assets or {"": cfg.data}, source, cfg.evaluation.proxy)
    check_economic(cfg, assets or {"": cfg.data}, source)
    universe = universe_specs(cfg.strategies, cfg.backtest, assets, specs, source)
    check_numbers(raw, source)  # after each field's own range check, which words it better
    ev = cfg.evaluation
    if (
        ev.benchmark is not None
        and ev.benchmark not in specs
        and ev.benchmark not in {m.name for sp in specs.values() for m in sp.members()}
    ):
        if "benchmark" in ev.model_fields_set:
            raise ConfigError(
                f"{source}: evaluation.benchmark: {ev.benchmark!r} is not a strategy of this run; "
                f"use one of {', '.join(specs)} or null"
            )
        ev = ev.model_copy(update={"benchmark": None})  # the default har, absent: pairwise tests only
    if assets:
        listed = {name: {"path": str(d.path), **_asset_options(cfg.data.assets, name)} for name, d in assets.items()}
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"assets": listed})})
    cfg = cfg.model_copy(update={"strategies": specs, "evaluation": ev})
    cfg._universe = universe
    cfg._tests = {
        name: asset_test_period(cfg.backtest, _asset_options(cfg.data.assets, name), name, source) for name in universe
    }
    return cfg
