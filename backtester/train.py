"""``backtest train``: tune (if the config says so) and train each strategy once, on the data up to a date.

The model is fitted as a retrain at that time would be (same training window rule,
seed derivation, tuning and artifact files; a warm-start strategy starts cold, as a
chain's first retrain does), and written as a run-like folder::

    results/<name>-model/
      config.yaml  manifest.json  tuning.parquet (when tuned)
      models/<strategy>/1/   model.keras, scaler.json, config.json, artifact.json, ...
      tuning/<strategy>/0001/ the tuner's state and trials

so ``backtest model inspect`` / :func:`backtester.artifacts.load_artifact` read it like
any retrain's artifact. Nothing is written unless every strategy trained.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from .core.errors import ConfigError, FatalError
from .core.schedule import training_window
from .core.series import BarSeries
from .layout import TUNING_TABLE, RunDir, write_config, write_manifest
from .process import check
from .rundir import data_record, guard_output, staging, swap_in, versions
from .rv import prepare_bars
from .segment import RunContext, Segment, run_segment, write_segment
from .tuning import read_trials, tune_segment


@dataclass
class Trained:
    out_dir: Path
    at: pd.Timestamp
    models: dict[str, Path]  # strategy -> artifact folder
    seconds: float


def train(
    cfg,
    until: str | None = None,
    only: tuple[str, ...] = (),
    out: str | Path | None = None,
    force: bool = False,
    log=lambda msg: None,
) -> Trained:
    """Train every strategy of ``cfg`` (or those in ``only``) on the bars closed at or before ``until``."""
    check(cfg)
    t0 = time.perf_counter()
    prepared = prepare_bars(cfg.data)
    bars = prepared.bars.index
    at = _train_time(bars, until)
    specs = cfg.run_strategies()
    unknown = [n for n in only if n not in specs]
    if unknown:
        raise ConfigError(f"--strategy {unknown[0]}: no such strategy in the config; choose from {', '.join(specs)}")
    specs = {n: s for n, s in specs.items() if not only or n in only}
    for spec in specs.values():
        spec.params.preflight(cfg.backtest.horizon)
    out_dir = Path(out) if out is not None else Path(cfg.output.dir) / f"{cfg.name}-model"
    guard_output(out_dir, force)
    with staging(out_dir) as stage:
        context = RunContext(cfg.name, bars, data_record(cfg, prepared), cfg.backend, versions())
        series = BarSeries.from_frame(prepared.bars)
        models = {
            name: out_dir / train_one(cfg, name, spec, series, at, stage, context, log) for name, spec in specs.items()
        }
        shutil.rmtree(RunDir(stage).segments, ignore_errors=True)  # no forecasts: only the fit matters here
        trials = read_trials(stage)
        if len(trials):
            trials.to_parquet(RunDir(stage).file(TUNING_TABLE), index=False)
        write_config(stage, cfg.resolved())
        manifest = {
            "kind": "train",
            "name": cfg.name,
            "trained_at": str(at),
            "strategies": list(models),
            "config_id": cfg.config_id(),
            "seed": cfg.seed,
            "backend": cfg.backend,
            "data": context.data,
            "versions": context.versions,
            "seconds": round(time.perf_counter() - t0, 3),
        }
        write_manifest(stage, manifest)
        swap_in(stage, out_dir)
    return Trained(out_dir, at, models, time.perf_counter() - t0)


def train_one(cfg, name: str, spec, series: BarSeries, at: pd.Timestamp, stage: Path, context: RunContext, log) -> str:
    """Tune (if the strategy tunes at ``at``) and fit one strategy as its retrain at ``at`` would; write its
    artifact under ``stage`` and return the artifact's path relative to it."""
    bars = context.bars
    window = training_window(spec.window, bars, at)
    position = int(bars.get_loc(at))
    seg = Segment(
        name,
        1,
        at,
        window,
        first=position + 1,
        stop=position + 1,
        horizon=cfg.backtest.horizon,
        tune=spec.params.tuning_points(pd.DatetimeIndex([at]), bars, at, at)[0],
    )
    params = spec.params
    if seg.tune:
        log(f"{name}: tuning on {window.stop - window.start:,} bars ...")
        tuned = tune_segment(seg, params, series, cfg.seed, stage)
        if tuned.best is None:
            raise FatalError(f"strategy {name!r}: tuning failed ({tuned.status}); train on more data (--until later)")
        params = params.with_hyperparameters(tuned.best)
    log(
        f"{name}: training on {window.stop - window.start:,} bars ({bars[window.start]} .. {bars[window.stop - 1]}) ..."
    )
    res = run_segment(seg, params, series, bars, cfg.seed)
    if not res.ok:
        raise FatalError(
            f"strategy {name!r}: training failed ({res.record.status}); "
            "train on more data (--until later) or check its parameters"
        )
    record = write_segment(stage, res, replace(spec, params=params), context, save_model=True)
    if record.artifact is None:  # pragma: no cover - write_segment saves every ok fit here
        raise FatalError(f"strategy {name!r}: no artifact written")
    return record.artifact


def _train_time(bars: pd.DatetimeIndex, until: str | None) -> pd.Timestamp:
    """The last bar closed at or before ``until`` (UTC unless it says otherwise); the last bar without it."""
    if until is None:
        return bars[-1]
    try:
        t = pd.Timestamp(until)
    except (ValueError, TypeError):
        raise ConfigError(f"--until {until}: not a date or time; write e.g. 2023-06-30 or '2023-06-30 23:00'") from None
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    text = until.strip()
    if len(text) == 4 and text.isdigit():  # a year: the whole year
        t = t + pd.DateOffset(years=1)
    elif len(text) == 7:  # a month (2023-06): the whole month
        t = t + pd.DateOffset(months=1)
    elif len(text) <= 10:  # a date alone means the whole day
        t = t + pd.Timedelta(days=1)
    pos = int(bars.searchsorted(t, side="right")) - 1
    if pos < 0:
        raise ConfigError(f"--until {until}: before the first bar ({bars[0]}); pick a later date")
    return bars[pos]
