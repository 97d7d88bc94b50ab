"""The flat event loop.

For each event from :func:`~backtester.clock.clock`: a ``retrain`` event at T asks
every provider to retrain on the bars closed at or before T; a ``forecast`` event
at T (which comes after any retrain at T) asks every provider for horizons 1..H
from the bars closed at or before T and hands the rows to the recorder. The
engine owns no calendar logic and knows nothing of Keras.
"""

from __future__ import annotations

from typing import Callable

import pandas as pd

from .clock import clock
from .plan import Plan
from .provider import ModelProvider, RetrainRecord
from .recorder import ForecastRecorder


def run_engine(
    plan: Plan,
    providers: list[ModelProvider],
    on_event: Callable[[str, pd.Timestamp], None] | None = None,
) -> tuple[pd.DataFrame, list[RetrainRecord]]:
    """Replay the plan; return origin-aligned forecast rows and the retrain records."""
    recorder = ForecastRecorder(plan.bars)
    records: list[RetrainRecord] = []
    end = plan.bars[plan.stop - 1]
    for event in clock(plan.bars, plan.bars[plan.first], plan.retrains, end):
        if event.kind == "retrain":
            for p in providers:
                records.append(p.retrain(event.time))
        else:
            for p in providers:
                values = p.forecast(event.index)
                if values is not None:
                    recorder.add(p.name, event.index, values, p.version, p.trained_through)
        if on_event is not None:
            on_event(event.kind, event.time)
    return recorder.frame(), records
