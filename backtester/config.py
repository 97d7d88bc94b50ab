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

from __future__ import annotations

import copy
import glob
import hashlib
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from strategies import Params, strategy_class, validate_params

from .core.errors import ConfigError
from .core.schedule import RetrainRule, WeeklyRule, WindowConfig
from .core.types import Duration, Strict, Timestamp, TimeZone, fmt_duration, to_timedelta
from .core.validation import describe_validation_error, did_you_mean
from .overrides import blame_overrides, load_yaml, override_key, with_overrides


class DataConfig(Strict):
    """Where the bars come from and how realized-volatility bars are built: one file (``path``), or a
    universe of assets (``assets``: name -> file or {path, options it overrides}, or a glob whose file
    names name the assets; see :mod:`backtester.universe`)."""

    path: Path | None = None
    assets: dict[str, Any] | str | None = None
    kind: Literal["minute", "rv"] = "minute"
    format: Literal["auto", "csv", "parquet"] = "auto"
    timestamp_column: str | int = "timestamp"  # a column name, or its position (0 = first) when header: false
    price_column: str | int = "close"
    rv_column: str | int = "rv"
    timestamp_format: str | None = None  # strftime format of text timestamps, e.g. '%d/%m/%Y %H:%M' (default: ISO-like)
    epoch_unit: Literal["s", "ms", "us", "ns"] | None = None  # numeric timestamps (default: from their magnitude)
    separator: str = Field(default=",", min_length=1)  # CSV field separator, e.g. ';' or '\t'
    header: bool = True  # false: the CSV has no header row; name columns by position
    timezone: TimeZone = "UTC"
    timestamp_is: Literal["open", "close"] = "open"
    interval: Duration = pd.Timedelta("1min")
    calendar: str = "24/7"
    bar: Duration = pd.Timedelta("1h")
    anchor: Literal["session", "utc"] = "session"  # fx daily bars close at 17:00 New York (session) or 00:00 UTC
    min_returns: int | None = Field(
        default=None, ge=1, le=10_000_000
    )  # default: half the input bars a bar holds in session
    max_gap: Duration = pd.Timedelta("15min")
    start: Timestamp | None = None  # keep only bars closing at or after this time
    end: Timestamp | None = None  # keep only bars closing at or before this time
    cache_dir: Path | None = Path(".cache/backtester")

    @field_validator("path", mode="before")
    @classmethod
    def _one_path(cls, v: Any) -> Any:
        if isinstance(v, (list, tuple, dict)):
            raise ValueError(
                "one file; for several assets use data.assets instead (name: file, or a glob such as data/*.parquet)"
            )
        return v

    @field_validator("assets", mode="before")
    @classmethod
    def _assets_shape(cls, v: Any) -> Any:
        if v is not None and not isinstance(v, (dict, str)):
            raise ValueError(
                "a mapping of asset name to file (or to {path: file, ...options}), e.g. {btc: "
                "data/btc.parquet}, or a glob string such as data/*.parquet"
            )
        return v

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if (self.path is None) == (self.assets is None):
            raise ValueError(
                "data: give either path (one file) or assets (a universe: name -> file, or a glob such "
                "as data/*.parquet), not both"
                if self.path is not None
                else "data: path is missing; give path (one file) or assets (a universe: name -> file, or "
                "a glob such as data/*.parquet)"
            )
        return self

    @model_validator(mode="after")
    def _columns_by_position(self) -> DataConfig:
        cols = {"timestamp_column": self.timestamp_column, "price_column": self.price_column}
        if self.kind == "rv":
            cols = {"timestamp_column": self.timestamp_column, "rv_column": self.rv_column}
        if not self.header:
            named = [k for k, v in cols.items() if not isinstance(v, int)]
            if named:
                raise ValueError(
                    f"header: false: give data.{named[0]} as a column position (0 = the first column), not a name"
                )
        else:
            positions = [k for k, v in cols.items() if isinstance(v, int)]
            if positions:
                raise ValueError(
                    f"{positions[0]}: a position ({cols[positions[0]]}) needs header: false; "
                    "give the column's name, or set data.header: false if the file has no header row"
                )
        return self

    @model_validator(mode="after")
    def _bar_is_multiple(self) -> DataConfig:
        if self.kind == "minute" and self.bar % self.interval != pd.Timedelta(0):
            raise ValueError(
                f"data.bar ({fmt_duration(self.bar)}) must be a multiple of data.interval ({fmt_duration(self.interval)})"
            )
        return self


class BacktestConfig(Strict):
    start: Timestamp
    end: Timestamp | None = None
    horizon: int = Field(default=24, ge=1, le=1000)
    retrain: RetrainRule = Field(default_factory=WeeklyRule)
    window: WindowConfig = Field(default_factory=WindowConfig)
    max_failed_retrains: int = Field(default=3, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _end_after_start(self) -> BacktestConfig:
        if self.end is not None and self.end <= self.start:
            raise ValueError("backtest.end must be after backtest.start")
        return self


class OutputConfig(Strict):
    dir: Path = Path("results")
    plots: bool = True
    plot_unit: Literal["bar", "percent", "annualized"] = "bar"  # volatility per bar, in %, or annualized %
    save_models: bool = True  # an artifact folder per retrain under results/<name>/models/

    @field_validator("dir", mode="before")
    @classmethod
    def _a_folder(cls, v: Any) -> Any:
        """A folder, or a path where one can be made: no part of it may be an existing file."""
        if isinstance(v, str) and not v.strip():
            raise ValueError("give the folder runs are written under, e.g. results")
        if isinstance(v, (str, os.PathLike)):
            path = Path(v)
            for part in (path, *path.parents):
                if part.exists() or part.is_symlink():
                    if not part.is_dir():
                        what = "is a file" if part == path else f"lies under {part}, which is a file"
                        raise ValueError(
                            f"{path} {what}, not a folder; point output.dir at a folder (default: results)"
                        )
                    break
        return v


STACK_AUTO_ACCELERATOR = 32  # stack: auto on a GPU/TPU
STACK_AUTO_CPU = 16  # stack: auto on a CPU, for fits of one window length (seeds, assets, a search's trials)


class ExecutionConfig(Strict):
    """Where segments run: ``jobs`` local worker processes, or the Dask scheduler at ``scheduler``."""

    jobs: int = Field(default=1, ge=1, le=1024)  # 1: in this process
    scheduler: str | None = None  # e.g. tcp://10.0.0.5:8786; the results dir must be on a path the workers share
    batched: bool = True  # one model call per segment; false: one per issue time (the slow reference path)
    stack: Literal["auto", "off"] | int = "auto"  # Keras fits trained together per compiled program (jax only)

    @field_validator("stack", mode="before")
    @classmethod
    def _stack_size(cls, v):
        if isinstance(v, bool):  # YAML reads a bare off / on as a boolean
            return "auto" if v else "off"
        if v not in ("auto", "off") and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError("stack is auto, off, or the most models trained together (1 or more, e.g. 8)")
        return v

    def stack_size(self, backend: str, accelerator: bool = False, threads: int = 1) -> tuple[int, bool]:
        """Models per stacked training program, and whether only fits on windows of one length stack.

        ``off``, or a backend other than jax: 1 (each alone). ``N``: N, any windows. ``auto`` on a GPU or
        TPU: :data:`STACK_AUTO_ACCELERATOR`, any windows. ``auto`` on a CPU, where a stacked step costs
        about as much per model as a lone one and a group's shorter windows waste masked steps, stacking
        pays only for fits on windows of one length (a strategy's seed members and assets at one retrain,
        the retrains of a rolling window, a random search's trials), and for retrains only on workers of one
        thread each (``threads``), where it saves Keras' per-step dispatch (measured: bench/README.md,
        "Stacked training"). Trials
        stack on any thread count (they also share one compile). So: :data:`STACK_AUTO_CPU`, equal windows
        only, or 1 for retrains on several threads (trials then still stack: see ``trial_stack``).
        """
        if self.stack == "off" or backend != "jax":
            return 1, False
        if self.stack == "auto":
            if accelerator:
                return STACK_AUTO_ACCELERATOR, False
            return (STACK_AUTO_CPU if threads == 1 else 1), True
        return int(self.stack), False

    def trial_stack(self, backend: str, accelerator: bool = False) -> int:
        """The most trials of a random search trained together: ``stack``'s size; ``auto`` on a CPU
        :data:`STACK_AUTO_CPU` whatever the threads (a search's trials share one window)."""
        if self.stack == "auto" and backend == "jax" and not accelerator:
            return STACK_AUTO_CPU
        return self.stack_size(backend, accelerator)[0]


class EvaluationConfig(Strict):
    """Tests of predictive accuracy run at the end of every run."""

    benchmark: str | None = "har"  # DM tests against it; default har where the run has it
    loss: Literal["qlike", "mse", "mae", "mse_var", "mse_log"] = "qlike"  # the loss the tests and the MCS use
    mcs_sizes: list[float] = Field(default_factory=lambda: [0.10, 0.25], min_length=1)  # 0.10 = the 90 % set
    mcs_reps: int = Field(default=1000, ge=100, le=1_000_000)
    block_size: int | None = Field(default=None, ge=1, le=100_000)  # MCS bootstrap block; default: arch's choice

    @field_validator("mcs_sizes")
    @classmethod
    def _sizes(cls, v: list[float]) -> list[float]:
        if any(not 0 < x < 1 for x in v):
            raise ValueError("sizes are test sizes between 0 and 1, e.g. [0.10, 0.25] for the 90 % and 75 % sets")
        return v


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
        return [replace(self, name=f"{self.name}#{k}", repeats=1) for k in range(1, self.repeats + 1)]

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


@dataclass(frozen=True)
class Asset:
    """One asset of a run: its name (``""`` for a run on one ``data.path``), the name tables and the
    report give it, and the run's config as it sees it."""

    name: str
    label: str
    cfg: Any  # RunConfig with this asset's data and strategies


NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
MAX_SEED = 2**32 - 1
MAX_NUMBER = 10**15  # no config value is larger; beyond it ints lose float precision and arrays overflow


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
    _universe: dict[str, tuple[DataConfig, dict[str, StrategySpec]]] = PrivateAttr(default_factory=dict)
    _tests: dict[str, BacktestConfig] = PrivateAttr(default_factory=dict)  # an asset's own test period

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
        blob = json.dumps(self.resolved(), sort_keys=True, default=str).encode()
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


def resolve_data_path(data_path: Path, config_path: str | Path) -> Path:
    """Where a relative ``data.path`` written in the config file ``config_path`` is.

    Tried in order: the working directory (so commands run from the repository root work as
    written), the config file's folder, and that folder's parent (configs in ``configs/``, data in
    ``data/``). An absolute path is returned as it is (a missing one is reported when it is read).
    """
    data_path = Path(data_path)
    if data_path.is_absolute() or data_path.exists():
        return data_path
    folder = Path(os.path.abspath(config_path)).parent
    tried = [Path(os.path.abspath(data_path))]
    for base in (folder, folder.parent):
        candidate = Path(os.path.normpath(base / data_path))
        if candidate not in tried:
            tried.append(candidate)
    for candidate in tried[1:]:
        if candidate.exists():
            rel = os.path.relpath(candidate)
            return Path(rel) if not rel.startswith(os.path.join(os.pardir, os.pardir)) else candidate
    places = ", ".join(map(str, tried[:-1])) + f" and {tried[-1]}" if len(tried) > 1 else str(tried[0])
    raise ConfigError(
        f"{config_path}: data.path: {data_path} not found (looked in {places}); paths are relative to "
        "the working directory, the config file's folder or its parent"
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
    universe = universe_specs(cfg, assets, specs, source)
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


def expand_assets(data: DataConfig, source: str, config_path: str | Path | None = None) -> dict[str, DataConfig]:
    """``data.assets`` as one data block per asset: the ``data`` options, overridden by the asset's own.

    A glob (``data/*.parquet``) names each asset by its file name without the suffix; relative paths are
    looked for as :func:`resolve_data_path` says. Every asset must have the same ``bar``.
    """
    entries: dict[str, dict[str, Any]] = {}
    if isinstance(data.assets, str):
        found = _glob_assets(data.assets, source, config_path)
        for path in found:
            name = Path(path).name.split(".")[0]
            if name in entries:
                raise ConfigError(
                    f"{source}: data.assets: {data.assets} matches two files named {name!r} "
                    f"({entries[name]['path']} and {path}); list the assets by name instead"
                )
            entries[name] = {"path": path}
    else:
        for name, value in data.assets.items():
            if isinstance(value, (str, Path)):
                value = {"path": value}
            if not isinstance(value, dict) or "path" not in value:
                raise ConfigError(
                    f"{source}: data.assets.{name}: give the asset's file, or a mapping with its path "
                    f"and the data options it overrides, e.g. {{path: data/eurusd.csv, calendar: fx}}"
                )
            entries[str(name)] = dict(value)
    if not entries:
        raise ConfigError(f"{source}: data.assets: is empty; name at least one asset (name: file)")
    base = data.model_dump(exclude={"assets", "path"}, exclude_unset=True)
    out = {}
    for name, options in entries.items():
        if not ASSET_PATTERN.fullmatch(name):
            raise ConfigError(
                f"{source}: data.assets.{name}: an asset name is letters, digits, '_', '-' and '.', "
                "starting with a letter or digit (it names folders and table rows)"
            )
        if "assets" in options:
            raise ConfigError(f"{source}: data.assets.{name}.assets: an asset cannot hold assets")
        options = {k: v for k, v in options.items() if k != "backtest"}  # its own test period: asset_test_period
        path = Path(options["path"])
        if config_path is not None and not isinstance(data.assets, str):
            path = resolve_data_path(path, config_path)
        try:
            out[name] = DataConfig.model_validate({**base, **options, "path": path})
        except ValidationError as exc:
            raise ConfigError(
                f"{source}: {describe_validation_error(exc, DataConfig, prefix=f'data.assets.{name}')}"
            ) from None
    bars = {fmt_duration(d.bar) for d in out.values()}
    if len(bars) > 1:
        raise ConfigError(
            f"{source}: data.assets: the assets have different bars ({', '.join(sorted(bars))}); one run "
            "forecasts one bar size: set data.bar once for all"
        )
    return out


ASSET_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _glob_assets(pattern: str, source: str, config_path: str | Path | None) -> list[str]:
    """The files ``pattern`` matches: in the working directory, else beside the config file or in its parent."""
    bases = [Path(".")]
    if config_path is not None and not Path(pattern).is_absolute():
        folder = Path(os.path.abspath(config_path)).parent
        bases += [folder, folder.parent]
    for base in bases:
        found = sorted(glob.glob(str(base / pattern) if str(base) != "." else pattern))
        found = [f for f in found if Path(f).is_file()]
        if found:
            return [os.path.normpath(f) for f in found]
    raise ConfigError(
        f"{source}: data.assets: no file matches {pattern!r} (looked from the working directory"
        f"{' and beside the config file' if len(bases) > 1 else ''}); check the pattern"
    )


def asset_test_period(backtest: BacktestConfig, options: dict[str, Any], name: str, source: str) -> BacktestConfig:
    """The run's ``backtest`` block as asset ``name`` sees it: its own ``start`` / ``end`` where its entry
    says ``backtest: {start: ..., end: ...}`` (an FX asset of 2017 beside crypto of 2023), the rest shared.

    >>> b = BacktestConfig(start="2023-07-03")
    >>> asset_test_period(b, {"backtest": {"start": "2017-03-06", "end": "2017-06-30"}}, "eurusd", "c").start
    Timestamp('2017-03-06 00:00:00+0000', tz='UTC')
    >>> asset_test_period(b, {"backtest": {"horizon": 6}}, "eurusd", "c")
    Traceback (most recent call last):
    ...
    backtester.core.errors.ConfigError: c: data.assets.eurusd.backtest.horizon: an asset sets only its own test period (start, end); the rest of backtest is the run's
    """
    own = options.get("backtest")
    if own is None:
        return backtest
    if not isinstance(own, dict) or not own:
        raise ConfigError(
            f"{source}: data.assets.{name}.backtest: give the asset's own test period, e.g. "
            "{start: '2017-03-06', end: '2017-06-30'}"
        )
    for key in own:
        if key not in ("start", "end"):
            raise ConfigError(
                f"{source}: data.assets.{name}.backtest.{key}: an asset sets only its own test period "
                "(start, end); the rest of backtest is the run's"
            )
    merged = {
        **backtest.model_dump(exclude={"start", "end"}),
        "start": own.get("start", backtest.start),
        "end": own.get("end", backtest.end if "start" not in own else None),
    }
    try:
        return BacktestConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(
            f"{source}: {describe_validation_error(exc, BacktestConfig, prefix=f'data.assets.{name}.backtest')}"
        ) from None


def _asset_options(assets: dict[str, Any] | str, name: str) -> dict[str, Any]:
    """The data options an asset of ``assets`` overrides (besides its path), as written."""
    if isinstance(assets, dict) and isinstance(assets.get(name), dict):
        return {k: v for k, v in assets[name].items() if k != "path"}
    return {}


def universe_specs(
    cfg: RunConfig, assets: dict[str, DataConfig], specs: dict[str, StrategySpec], source: str
) -> dict[str, tuple[DataConfig, dict[str, StrategySpec]]]:
    """Per asset: its data block and the strategies that run on it, parsed against its data (a
    strategy's defaults may depend on the asset's calendar). Empty for a run on one ``data.path``."""
    for name, spec in specs.items():
        if spec.assets is None:
            continue
        if not assets:
            raise ConfigError(
                f"{source}: strategies.{name}.assets: only a universe (data.assets) has assets; "
                "remove it, or list the assets under data.assets"
            )
        unknown = [a for a in spec.assets if a not in assets]
        if unknown:
            raise ConfigError(
                f"{source}: strategies.{name}.assets: {unknown[0]!r} is not an asset of data.assets "
                f"({', '.join(assets)}){did_you_mean(unknown[0], list(assets))}"
            )
    for name, spec in specs.items():
        follow = spec.params.schedule_asset()
        if follow is not None and follow not in (spec.assets or list(assets)):
            raise ConfigError(
                f"{source}: strategies.{name}.schedule_of: {follow!r} is not an asset this strategy runs "
                f"on ({', '.join(spec.assets or list(assets))})"
            )
    out = {}
    for asset, data in assets.items():
        mine = {
            name: parse_strategy(name, cfg.strategies[name], cfg.backtest, source, bar=data.bar, data=data)
            for name, spec in specs.items()
            if spec.assets is None or asset in spec.assets
        }
        if not mine:
            raise ConfigError(
                f"{source}: data.assets.{asset}: no strategy runs on this asset (each names others in "
                "its assets: list); remove the asset or add it to a strategy's assets"
            )
        out[asset] = (data, link_residuals(mine, source, asset))
    return out


def link_residuals(specs: dict[str, StrategySpec], source: str, asset: str | None = None) -> dict[str, StrategySpec]:
    """A hybrid (``residual_of: har``) gets its baseline's type and parameters (``residual_params``; a list
    for several, ``residual_of: [har, garch]``), and a forecast combination (``type: mean_of``, ``of: [har,
    garch]``) its members' (``members``), so it fits the same baselines on its own training window, and its
    results change when theirs do. Each must be a strategy of the run (on this asset) that does not depend
    on a seed (and is not itself a combination)."""
    out = dict(specs)
    for name, spec in specs.items():
        combined = spec.type == "mean_of"  # a forecast combination: its members, by name
        names = (
            list(spec.params.of)
            if combined
            else spec.params.residual_names()
            if hasattr(spec.params, "residual_names")
            else []
        )
        where = f"{source}: strategies.{name}.{'of' if combined else 'residual_of'}"
        linked = []
        for base_name in names:
            if base_name not in specs:
                if asset is not None:
                    raise ConfigError(
                        f"{where}: {base_name!r} does not run on asset {asset}; give it that asset too, "
                        f"or restrict {name} to the assets {base_name} runs on"
                    )
                others = [
                    n
                    for n, o in specs.items()
                    if n != name and not o.params.seeded() and o.repeats == 1 and o.type != "mean_of"
                ]  # the baselines it can name
                raise ConfigError(
                    f"{where}: {base_name!r} is not a strategy of this run"
                    f"{did_you_mean(base_name, others)}; name one of its baselines: "
                    f"{', '.join(others) or 'none (add one, e.g. har: {type: har})'}"
                )
            base = specs[base_name]
            if base.type == "mean_of":
                raise ConfigError(f"{where}: {base_name!r} is a combination itself; name its members instead")
            if base.params.seeded() or base.repeats > 1 or base_name == name:
                raise ConfigError(
                    f"{where}: {base_name!r} is not a baseline (it depends on a seed); name a baseline "
                    "such as har, garch or ewma"
                )
            linked.append({"type": base.type, **base.params.model_dump(mode="json")})
        if linked and combined:
            out[name] = replace(spec, params=spec.params.model_copy(update={"members": linked}))
        elif linked:
            params = {"residual_params": linked[0] if isinstance(spec.params.residual_of, str) else linked}
            out[name] = replace(spec, params=spec.params.model_copy(update=params))
    return out


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
    if "#" in name:
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
