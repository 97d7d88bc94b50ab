"""The walk-forward plan, known before anything trains: retrain times, windows, forecast count.

Because the schedule depends only on the calendar and the config, the whole plan
is fixed up front (which is what lets retrains later run as independent jobs).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .errors import ConfigError
from .schedule import TrainWindow, retrain_times, training_window


@dataclass(frozen=True)
class Plan:
    bars: pd.DatetimeIndex  # every bar close in the data
    first: int  # position of the first test bar
    stop: int  # one past the last test bar
    retrains: pd.DatetimeIndex
    windows: tuple[TrainWindow, ...]
    horizon: int

    @property
    def issue_times(self) -> pd.DatetimeIndex:
        return self.bars[self.first : self.stop]

    def forecast_rows(self, strategies: int = 1) -> int:
        """Rows with a target inside the data, per strategy count."""
        n = len(self.bars)
        per_bar = sum(min(self.horizon, n - 1 - i) for i in range(self.first, self.stop))
        return per_bar * strategies

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "retrain_time": [w.time for w in self.windows],
                "window_start": [self.bars[w.start] if w.stop > w.start else None for w in self.windows],
                "window_end": [self.bars[w.stop - 1] if w.stop > 0 else None for w in self.windows],
                "train_bars": [w.stop - w.start for w in self.windows],
            }
        )

    def describe(self, strategies: list[str]) -> str:
        lines = [
            f"test period: {self.issue_times[0]} .. {self.issue_times[-1]} ({len(self.issue_times):,} issue times)",
            f"horizons: 1..{self.horizon}; strategies: {', '.join(strategies)}",
            f"forecast rows: {self.forecast_rows(len(strategies)):,} ({self.forecast_rows():,} per strategy)",
            f"retrains: {len(self.retrains)}",
            "  retrain time                 window start                 window end                   bars",
        ]
        for row in self.table().itertuples():
            lines.append(f"  {row.retrain_time!s:28} {row.window_start!s:28} {row.window_end!s:28} {row.train_bars:>6}")
        return "\n".join(lines)


def make_plan(cfg, bars: pd.DatetimeIndex) -> Plan:
    """Resolve the schedule of ``cfg.backtest`` against the bar grid."""
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
    retrains = retrain_times(bt.retrain, bars, bt.start, bt.end)
    windows = tuple(training_window(bt.window, bars, t) for t in retrains)
    return Plan(bars=bars, first=first, stop=stop, retrains=retrains, windows=windows, horizon=bt.horizon)


def check_plan(cfg, plan: Plan) -> None:
    """Cross-field check: the first retrain's window holds enough bars for every strategy."""
    first = plan.windows[0]
    have = first.stop - first.start
    for name, params in cfg.strategies.items():
        need = params.min_train_bars(cfg.backtest.horizon)
        if have < need:
            raise ConfigError(
                f"backtest.start: the first training window ({plan.bars[first.start]} .. {plan.bars[first.stop - 1]}) "
                f"has {have} bars but strategy {name!r} needs {need}; start later or shrink its lookback/lags"
            )
