"""Runs the plan's segments and writes each one as soon as it is done.

The plan splits every strategy's walk-forward into segments (one retrain
interval each); the engine runs them strategy by strategy in time order,
hands a failed fit the previous model (:class:`~backtester.segment.LiveModel`)
and stops once more than ``max_failed_retrains`` fits in a row fail. It owns no
calendar logic and knows nothing of Keras.

The event semantics are those of :func:`~backtester.clock.clock`: a retrain at T
sees the bars closed at or before T and comes before the forecast issued at T.
A segment starts with its retrain event and holds every forecast event until the
next retrain of its strategy (``tests/test_segment.py`` checks this against the clock).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from .plan import Plan
from .segment import FitRecord, LiveModel, Segment, check_failures, run_segment, write_segment
from .series import BarSeries


@dataclass
class EngineResult:
    forecasts: pd.DataFrame
    records: list[FitRecord]
    fit_seconds: float = 0.0
    predict_seconds: float = 0.0
    segments: int = 0
    parts: list[pd.DataFrame] = field(default_factory=list, repr=False)


def run_engine(
    plan: Plan,
    specs: dict[str, Any],
    series: BarSeries,
    run_seed: int,
    max_failed: int = 3,
    stage: Path | None = None,
    context: dict[str, Any] | None = None,
    save_models: bool = False,
    on_segment: Callable[[Segment], None] | None = None,
    batched: bool = True,
) -> EngineResult:
    """Run every segment of ``plan``; write each to ``stage`` when one is given."""
    out = EngineResult(forecasts=pd.DataFrame(), records=[])
    for name, spec in specs.items():
        live: LiveModel | None = None
        records: list[FitRecord] = []
        for seg in plan.segments(name):
            res = run_segment(seg, spec.params, series, plan.bars, run_seed, fallback=live, batched=batched)
            record = res.record
            if stage is not None:
                record = write_segment(stage, res, spec, context or {}, save_models)
            if res.ok:
                live = res.model
            records.append(record)
            check_failures(records, max_failed)
            out.parts.append(res.rows)
            out.fit_seconds += res.fit_seconds
            out.predict_seconds += res.predict_seconds
            out.segments += 1
            if on_segment is not None:
                on_segment(seg)
        out.records.extend(records)
    out.forecasts = combine_rows(out.parts)
    return out


def combine_rows(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate segment rows in the canonical order (strategy, issued_at, horizon)."""
    from .recorder import ForecastRecorder, COLUMNS

    parts = [p for p in parts if len(p)]
    if not parts:
        return ForecastRecorder(pd.DatetimeIndex([], tz="UTC")).frame()
    df = pd.concat(parts, ignore_index=True)
    df["strategy"] = df["strategy"].astype("string")
    return df[COLUMNS].sort_values(["strategy", "issued_at", "horizon"], kind="stable").reset_index(drop=True)
