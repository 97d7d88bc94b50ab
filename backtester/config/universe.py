"""A universe: ``data.assets`` expanded into one data block per asset, each asset's own test period,
and the strategies that run on each asset.

Examples
--------
>>> from backtester.config.sections import BacktestConfig
>>> asset_test_period(BacktestConfig(start="2024-01-01"), {}, "btc", "c").start
Timestamp('2024-01-01 00:00:00+0000', tz='UTC')
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..core.errors import ConfigError
from ..core.types import fmt_duration
from ..core.validation import describe_validation_error, did_you_mean
from .sections import BacktestConfig, DataConfig
from .specs import StrategySpec, link_residuals, parse_strategy


@dataclass(frozen=True)
class Asset:
    """One asset of a run: its name (``""`` for a run on one ``data.path``), the name tables and the
    report give it, and the run's config as it sees it."""

    name: str
    label: str
    cfg: Any  # RunConfig with this asset's data and strategies


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
    folder = os.path.dirname(os.path.normpath(pattern))
    hint = (  # a pattern under data/: the synthetic universe is made, not shipped
        f"; to make synthetic assets there: backtest data synth --out {folder} --assets 3"
        if Path(folder).parts[:1] == ("data",)
        else "; check the pattern"
    )
    raise ConfigError(
        f"{source}: data.assets: no file matches {pattern!r} (looked from the working directory"
        f"{' and beside the config file' if len(bases) > 1 else ''}){hint}"
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
    raw: dict[str, Any],
    backtest: BacktestConfig,
    assets: dict[str, DataConfig],
    specs: dict[str, StrategySpec],
    source: str,
) -> dict[str, tuple[DataConfig, dict[str, StrategySpec]]]:
    """Per asset: its data block and the strategies that run on it, parsed against its data (a
    strategy's defaults may depend on the asset's calendar) from their ``raw`` entries. Empty for a run
    on one ``data.path``."""
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
            name: parse_strategy(name, raw[name], backtest, source, bar=data.bar, data=data)
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
