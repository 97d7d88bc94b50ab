"""The per-bar reference walk-forward (the engine before segments): the test oracle.

It walks the clock's events one by one for each strategy: a retrain event builds
and fits a fresh model on the training window of its time, a forecast event asks
the live model for horizons 1..H from the bars closed by then. Model versions
number the retrains; a failed fit keeps the previous model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtester.core.errors import FailedRetrain
from backtester.core.schedule import training_window
from backtester.recorder import ForecastRecorder
from backtester.segment import retrain_seed

from .clock import clock


def oracle_forecasts(plan, specs, series, run_seed: int) -> pd.DataFrame:
    recorder = ForecastRecorder(plan.bars)
    end = plan.bars[plan.stop - 1]
    for name, spec in specs.items():
        retrains = plan.schedules[name].retrains
        live, version = None, 0
        for event in clock(plan.bars, plan.bars[plan.first], retrains, end):
            if event.kind == "retrain":
                version += 1
                w = training_window(spec.window, plan.bars, event.time)
                train = series.slice(w.start, w.stop)
                model = spec.params.build(retrain_seed(run_seed, name, event.time))
                try:
                    if len(train) < spec.params.min_train_bars(plan.horizon):
                        raise FailedRetrain("short")
                    model.fit(train, plan.horizon)
                    live = (model, version, int(train.time[-1]))
                except FailedRetrain:
                    pass
            elif live is not None:
                values = np.asarray(live[0].forecast(series.upto(event.index + 1), plan.horizon), dtype="float64")
                recorder.add(name, event.index, values, live[1], live[2])
    return recorder.frame()
