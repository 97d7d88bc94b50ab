"""Run preparation: a config's data, RV bars and plans per asset, checked before anything trains, and
what the run records about them (the artifacts' run context, the manifest).

:func:`plan_universe` is what ``backtest plan`` shows and what the audit rebuilds; :func:`prepare_universe`
adds the checks that need no training (a bad builder, an imported scaler unlike the data). Nothing here
trains or writes: :mod:`backtester.runner` does, with what this returns.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from .assets import AssetRun
from .core.errors import BacktestError, ConfigError
from .core.names import base_name
from .core.series import BarSeries
from .evaluation.profiles import profiles_of
from .plan import Plan, check_plan, make_plan
from .rundir import data_record, git_commit, versions
from .rv import PreparedBars, prepare_bars
from .segment import RunContext


def prepare(cfg, asset: str = "") -> tuple[PreparedBars, Plan]:
    """Load the data, build RV bars and resolve the plan (no training); ``cfg`` as one asset sees it."""
    prepared = prepare_bars(cfg.data)
    plan = make_plan(cfg, prepared.bars.index, asset)
    check_plan(cfg, plan)
    return prepared, plan


def prepare_universe(cfg) -> list[AssetRun]:
    """Every asset's bars and plan (:func:`plan_universe`), and the checks that need no training (a bad
    builder, an imported scaler unlike the data)."""
    runs = plan_universe(cfg)
    for spec in cfg.strategies.values():  # members share their params: one preflight each
        spec.params.preflight(cfg.backtest.horizon)  # a bad builder fails before anything trains
    for r in runs:
        for spec in r.cfg.strategies.values():  # e.g. an imported scaler fitted on values unlike the data
            members = {m.name for m in spec.members()}
            first = min((s for s in r.plan.segments() if s.strategy in members), key=lambda s: s.retrain_time)
            spec.params.check_training_data(r.series.slice(first.window.start, first.window.stop))
    return runs


def plan_universe(cfg) -> list[AssetRun]:
    """Every asset's bars and plan, a global model's retrains on the one schedule it follows
    (:func:`pooled_schedules`); a bad file or an impossible plan names its asset."""
    runs = []
    for asset in cfg.universe():
        try:
            prepared, plan = prepare(asset.cfg, asset.name)
        except BacktestError as exc:
            if not asset.name:
                raise
            exc.args = (f"data.assets.{asset.name}: {exc}",)
            raise
        runs.append(AssetRun(asset, prepared, plan, BarSeries.from_frame(prepared.bars)))
    follow = pooled_schedules(cfg, runs)
    for r in runs:
        if any(name in r.plan.schedules for name in follow):
            r.plan = make_plan(r.cfg, r.prepared.bars.index, r.asset.name, follow)
            check_plan(r.cfg, r.plan)
    return runs


def pooled_schedules(cfg, runs: list[AssetRun]) -> dict[str, pd.DatetimeIndex]:
    """The retrain times of each global model (``scope: global``) of a universe: one schedule for all its
    assets. Where the assets' own schedules differ (their calendars do), the config must name the asset to
    follow (``schedule_of``); returns the strategies to re-plan, with the times they follow."""
    out: dict[str, pd.DatetimeIndex] = {}
    if len(runs) < 2:
        return out
    for name, spec in cfg.run_strategies().items():
        if not spec.params.pools_assets():
            continue
        times = {r.asset.name: r.plan.schedules[name].retrains for r in runs if name in r.plan.schedules}
        periods = {r.asset.name: (r.cfg.backtest.start, r.cfg.backtest.end) for r in runs if name in r.plan.schedules}
        if len(set(periods.values())) > 1:
            odd = next(a for a, p in periods.items() if p != cfg.backtest_period())
            same = [a for a, p in periods.items() if p == cfg.backtest_period()]
            raise ConfigError(
                f"strategies.{base_name(name)}: scope: global trains one model per retrain for every "
                f"asset, but {odd} has its own test period ({periods[odd][0]} .. {periods[odd][1] or 'its data end'}); "
                f"give the global model the assets that share one, e.g. assets: [{', '.join(same)}]"
            )
        chosen = spec.params.schedule_asset()
        if chosen is not None:
            late = [r for r in runs if name in r.plan.schedules and r.plan.issue_times[0] < times[chosen][0]]
            if late:
                raise ConfigError(
                    f"strategies.{base_name(name)}.schedule_of: {chosen}'s first retrain "
                    f"({times[chosen][0]}) comes after {late[0].asset.name}'s first forecast "
                    f"({late[0].plan.issue_times[0]}), which no global model could serve; follow "
                    "the asset whose market opens first, or start the backtest later"
                )
            out[name] = times[chosen]
            continue
        first = next(iter(times.values()))
        differ = [a for a, t in times.items() if not t.equals(first)]
        if differ:
            a0 = next(iter(times))
            sample = "; ".join(f"{a}: {len(t)} retrains, {t[0]} .. {t[-1]}" for a, t in list(times.items())[:3])
            raise ConfigError(
                f"strategies.{base_name(name)}: scope: global trains one model per retrain for every "
                f"asset, but the assets' retrain times differ ({sample}); name the asset whose "
                f"times every asset follows, e.g. schedule_of: {a0}"
            )
    return out


def target_dir(cfg) -> Path:
    return Path(cfg.output.dir) / cfg.name


def describe_run(cfg, prepared: PreparedBars, plan: Plan, log: Callable[[str], None], asset: str = "") -> None:
    """The run log's opening lines for one asset (data, strategies' notes, plan)."""
    who = f"{asset}: " if asset else ""
    log(f"{who}data: {prepared.describe()}{' (cached)' if prepared.from_cache else ''}")
    for name, spec in cfg.strategies.items():
        for note in spec.params.notes(plan.issue_times[0]):
            log(f"{who}note: {name} {note}")
    log(
        f"{who}plan: {len(plan.issue_times):,} issue times, horizons 1..{plan.horizon}, "
        f"{plan.retrain_count} retrains in {len(plan.segments())} segments"
    )


def segment_context(cfg, prepared: PreparedBars, plan: Plan) -> RunContext:
    """What every segment's artifact records about the run."""
    return RunContext(cfg.name, plan.bars, data_record(cfg, prepared), cfg.backend, versions())


def make_manifest(cfg, runs: list[AssetRun], rows: int, retrains: pd.DataFrame, timings: dict[str, float]) -> dict:
    plans = [r.plan for r in runs]
    data = {
        r.asset.name: {**data_record(r.cfg, r.prepared), "missing_bars": [str(t) for t in r.prepared.missing]}
        for r in runs
    }
    return {
        "name": cfg.name,
        "config_id": cfg.config_id(),
        "seed": cfg.seed,
        "backend": cfg.backend,
        "created": pd.Timestamp.now(tz="UTC").isoformat(),
        "command": " ".join(sys.argv),
        "versions": versions(),
        "git_commit": git_commit(),
        "data": data[""] if "" in data else {"assets": data},
        "strategies": {
            name: {"type": spec.type, "seeded": spec.params.seeded(), "repeats": spec.repeats, **profile.record()}
            for (name, spec), profile in zip(cfg.strategies.items(), profiles_of(cfg).values())
        },
        "plan": {
            "retrains": sum(p.retrain_count for p in plans),
            "segments": sum(len(p.segments()) for p in plans),
            "issue_times": sum(len(p.issue_times) for p in plans),
            "horizon": plans[0].horizon,
        },
        "rows": rows,
        "failed_retrains": int((retrains["status"] != "ok").sum()),
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "status": "complete",
    }
