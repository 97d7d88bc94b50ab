"""A user's own models, as a user would write them: a Keras builder and a Params class.

Used by the tests through ``type: keras, builder: tests.user_models:build_gru`` and
``type: tests.user_models:MedianParams``.
"""

from __future__ import annotations

import numpy as np

from strategies import FitInfo, Params


def build_gru(hp, memory, steps):
    import keras

    model = keras.Sequential(
        [
            keras.Input((memory, 1)),
            keras.layers.GRU(hp.Int("units", 2, 64, default=8)),
            keras.layers.Dense(steps),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(hp.Float("lr", 1e-4, 1e-1, default=1e-2)), loss="mse")
    return model


def build_uncompiled(hp, memory, steps):
    import keras

    return keras.Sequential([keras.Input((memory, 1)), keras.layers.Dense(steps)])


def build_wrong_output(hp, memory, steps):
    import keras

    model = keras.Sequential([keras.Input((memory, 1)), keras.layers.Flatten(), keras.layers.Dense(steps + 1)])
    model.compile(optimizer="adam", loss="mse")
    return model


def build_nothing(hp, memory, steps):
    return "a model"


NOT_A_FUNCTION = 42


class Median:
    """Median of the last ``bars`` RV values, scaled by a factor fitted on the training window."""

    def __init__(self, bars: int):
        self.bars = bars

    def fit(self, train, horizon):
        med = np.array([np.median(train.rv[max(0, i - self.bars + 1) : i + 1]) for i in range(len(train.rv) - 1)])
        self.scale = float(np.mean(train.rv[1:]) / np.mean(med))
        return FitInfo(samples=len(med), extra={"scale": self.scale})

    def forecast(self, history, horizon):
        return np.full(horizon, self.scale * np.median(history.rv[-self.bars :]))

    def save(self, folder):
        (folder / "median.txt").write_text(repr(self.scale))

    def load(self, folder):
        self.scale = float((folder / "median.txt").read_text())


class MedianParams(Params):
    bars: int = 24

    def build(self, seed):
        return Median(self.bars)

    def min_train_bars(self, horizon):
        return self.bars + 2


class NotAStrategyParams(Params):
    def build(self, seed):
        return object()


class NotParams:
    pass


class Level:
    """The last RV of the training window, held flat; the fit fails on the days in ``fail_days``
    and the process dies (once, leaving ``die_marker``) if ``die_marker`` is set."""

    def __init__(self, fail_days: list[int], die_marker: str | None):
        self.fail_days, self.die_marker = fail_days, die_marker

    def fit(self, train, horizon):
        import os

        import pandas as pd

        from backtester.core.errors import FailedRetrain

        if self.die_marker and not os.path.exists(self.die_marker):
            open(self.die_marker, "w").close()
            os._exit(3)  # a worker lost mid-segment
        if pd.Timestamp(int(train.time[-1]), tz="UTC").day in self.fail_days:
            raise FailedRetrain("a planned failure")
        self.level = float(train.rv[-1])
        return FitInfo(samples=len(train))

    def forecast(self, history, horizon):
        return np.full(horizon, self.level)


class LevelParams(Params):
    fail_days: list[int] = []
    die_marker: str | None = None

    def build(self, seed):
        return Level(self.fail_days, self.die_marker)
