"""The walk-forward plan, known before anything trains: issue times, each strategy's schedule, the segments.

Every strategy forecasts at the same issue times (each bar close of the test
period); each has its own retrain rule and training window (the ``backtest``
defaults unless the strategy sets its own). Because all of this depends only on
the calendar and the config, the plan is fixed up front and splits into
**segments** (one strategy x one retrain interval) that run as independent jobs.

Examples
--------
>>> import pandas as pd
>>> from backtester.config import parse_config
>>> cfg = parse_config({"name": "d", "data": {"path": "x.parquet"},
...                     "backtest": {"start": "2024-01-08", "horizon": 2, "retrain": {"rule": "weekly"}},
...                     "strategies": {"naive": {}, "once": {"type": "naive", "retrain": {"rule": "never"}}}})
>>> bars = pd.date_range("2024-01-01 01:00", "2024-01-21 00:00", freq="h", tz="UTC")
>>> plan = make_plan(cfg, bars)
>>> [(s.strategy, s.model_version, str(s.retrain_time), s.issues) for s in plan.segments()]
[('naive', 1, '2024-01-08 00:00:00+00:00', 168), ('naive', 2, '2024-01-15 00:00:00+00:00', 145), ('once', 1, '2024-01-08 00:00:00+00:00', 313)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from .core.errors import ConfigError
from .core.names import base_name
from .core.schedule import TrainWindow, retrain_times, training_window
from .core.types import fmt_duration
from .work import Segment


@dataclass(frozen=True)
class Schedule:
    """One strategy's retrain times and the training window of each."""

    strategy: str
    label: str
    retrains: pd.DatetimeIndex
    windows: tuple[TrainWindow, ...]
    tunes: tuple[bool, ...] = ()  # per retrain: does it search hyperparameters first (Params.tuning_points)


@dataclass(frozen=True)
class Plan:
    bars: pd.DatetimeIndex  # every bar close in the data
    first: int  # position of the first test bar
    stop: int  # one past the last test bar
    horizon: int
    schedules: dict[str, Schedule]
    asset: str = ""  # the asset of a universe whose plan this is ("" for a run on one data.path)

    @property
    def issue_times(self) -> pd.DatetimeIndex:
        return self.bars[self.first : self.stop]

    @property
    def retrain_count(self) -> int:
        return sum(len(s.retrains) for s in self.schedules.values())

    def segments(self, strategy: str | None = None) -> list[Segment]:
        """Every segment in run order (strategy by strategy, in time order); or one strategy's."""
        out = []
        for name, sched in self.schedules.items():
            if strategy is not None and name != strategy:
                continue
            starts = [int(self.bars.searchsorted(t)) for t in sched.retrains]
            for k, (start, window) in enumerate(zip(starts, sched.windows)):
                stop = starts[k + 1] if k + 1 < len(starts) else self.stop
                tune = bool(sched.tunes[k]) if sched.tunes else False
                out.append(
                    Segment(
                        strategy=name,
                        model_version=k + 1,
                        retrain_time=sched.retrains[k],
                        window=window,
                        first=start,
                        stop=stop,
                        horizon=self.horizon,
                        tune=tune,
                        asset=self.asset,
                    )
                )
        return out

    def forecast_rows(self, strategies: int = 1) -> int:
        """Rows with a target inside the data, per strategy count."""
        n = len(self.bars)
        per_bar = sum(min(self.horizon, n - 1 - i) for i in range(self.first, self.stop))
        return per_bar * strategies

    def table(self, strategy: str) -> pd.DataFrame:
        sched = self.schedules[strategy]
        return pd.DataFrame(
            {
                "retrain_time": [w.time for w in sched.windows],
                "window_start": [self.bars[w.start] if w.stop > w.start else None for w in sched.windows],
                "window_end": [self.bars[w.stop - 1] if w.stop > 0 else None for w in sched.windows],
                "train_bars": [w.stop - w.start for w in sched.windows],
            }
        )

    def describe(self) -> str:
        names = list(self.schedules)
        lines = [
            f"test period: {self.issue_times[0]} .. {self.issue_times[-1]} ({len(self.issue_times):,} issue times)",
            f"horizons: 1..{self.horizon}; strategies: {', '.join(names)}",
            f"forecast rows: {self.forecast_rows(len(names)):,} ({self.forecast_rows():,} per strategy)",
            f"retrains: {self.retrain_count} in all",
        ]
        for group in self._groups():
            sched = self.schedules[group[0]]
            lines.append("")
            n = len(sched.retrains)
            tunes = sum(sched.tunes)
            tuned = f"; tuning at {tunes} of them (marked *)" if tunes else ""
            lines.append(f"{', '.join(group)}: {n} retrain{'s' if n != 1 else ''} ({sched.label}){tuned}")
            lines.append(
                "  retrain time                 window start                 window end                   bars"
            )
            for k, row in enumerate(self.table(group[0]).itertuples()):
                mark = " *" if tunes and sched.tunes[k] else ""
                lines.append(
                    f"  {row.retrain_time!s:28} {row.window_start!s:28} {row.window_end!s:28} {row.train_bars:>6}{mark}"
                )
        return "\n".join(lines)

    def _groups(self) -> list[list[str]]:
        """Strategies with identical schedules, listed together."""
        groups: dict[tuple, list[str]] = {}
        for name, s in self.schedules.items():
            key = (tuple(s.retrains.asi8), tuple((w.start, w.stop) for w in s.windows), s.label, s.tunes)
            groups.setdefault(key, []).append(name)
        return list(groups.values())


def make_plan(cfg, bars: pd.DatetimeIndex, asset: str = "", follow: dict[str, pd.DatetimeIndex] | None = None) -> Plan:
    """Resolve every strategy's schedule against the bar grid (of ``asset``, in a universe). ``follow``:
    retrain times some strategies take from elsewhere (a global model's, from the asset it follows);
    those after this asset's test period are left out."""
    bt = cfg.backtest
    first = int(bars.searchsorted(bt.start, side="left"))
    stop = len(bars) if bt.end is None else int(bars.searchsorted(bt.end, side="right"))
    if first >= len(bars) or first >= stop:
        raise ConfigError(
            f"backtest.start: {bt.start} is after the last bar ({bars[-1]}); pick a start inside the data"
        )
    if first == 0:
        raise ConfigError(
            f"backtest.start: {bt.start} leaves no training data (first bar closes {bars[0]}); start later"
        )
    schedules = {}
    for name, spec in cfg.run_strategies().items():
        where = f"strategies.{name}.retrain" if spec.own_retrain else "backtest.retrain"
        retrains = retrain_times(spec.retrain, bars, bt.start, bt.end)
        if follow and name in follow:
            retrains = follow[name][bars.searchsorted(follow[name]) < stop]
        if len(retrains) == 0:  # pragma: no cover - the first test bar always retrains
            raise ConfigError(f"{where}: no retrain falls in the test period")
        windows = tuple(training_window(spec.window, bars, t) for t in retrains)
        tunes = tuple(bool(t) for t in spec.params.tuning_points(retrains, bars, bt.start, bt.end))
        schedules[name] = Schedule(name, spec.schedule_label(), retrains, windows, tunes)
    return Plan(bars=bars, first=first, stop=stop, horizon=bt.horizon, schedules=schedules, asset=asset)


def check_plan(cfg, plan: Plan) -> None:
    """Cross-field check: each strategy's first training window holds enough bars for it.

    Every strategy that cannot fit is named in one message, with the fix that helps: a
    rolling window that is too short says by how much; a window cut short by the start
    of the data says from when the test can start.
    """
    short: dict[tuple[str, str], list[tuple[str, int]]] = {}  # (key, what) -> [(strategy, bars needed)]
    fixes: dict[tuple[str, str], str] = {}
    for name, spec in cfg.run_strategies().items():
        first = plan.schedules[name].windows[0]
        have = first.stop - first.start
        need = spec.params.min_train_bars(cfg.backtest.horizon)
        if have >= need:
            continue
        w = spec.window
        where = f"strategies.{name}.window" if spec.own_window else "backtest.window"
        if w.kind == "rolling" and w.bars is not None and w.bars < need:
            key = (where, f"a rolling window of {w.bars} bars is too short")
            short.setdefault(key, []).append((name, need))
            fixes[key] = f"set bars: {max(n for _, n in short[key])} or more"
        elif w.kind == "rolling" and w.length is not None and first.start > 0:
            key = (where, f"a rolling window of {fmt_duration(w.length)} holds {have} bars, too few")
            short.setdefault(key, []).append((name, need))
            hours = math.ceil(max(n for _, n in short[key]) * pd.Timedelta(cfg.data.bar) / pd.Timedelta(hours=1))
            longer = pd.Timedelta(days=math.ceil(hours / 24)) if hours > 24 else pd.Timedelta(hours=hours)
            fixes[key] = f"set length: {fmt_duration(longer)} or more"
        else:
            key = (
                "backtest.start",
                f"the first training window ({plan.bars[first.start]} .. "
                f"{plan.bars[first.stop - 1]}) has {have} bars, too few",
            )
            short.setdefault(key, []).append((name, need))
            most = max(n for _, n in short[key])
            ready = plan.bars[min(first.start + most - 1, len(plan.bars) - 1)]
            fixes[key] = f"start at {ready} or later, or shrink the lookback/lags"
    if short:
        parts = []
        for (where, what), names in short.items():
            bases = dict.fromkeys((base_name(n), k) for n, k in names)  # seed members: their strategy
            listed = ", ".join(f"strategy {n!r} needs {k}" for n, k in bases)
            parts.append(f"{where}: {what} ({listed}); {fixes[(where, what)]}")
        raise ConfigError("; ".join(parts))
