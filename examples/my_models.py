"""Your own models for backtester: a Keras builder and a strategy of your own.

Used by configs/custom.yaml (run it from the repository root: `backtest run configs/custom.yaml`).
"""

import numpy as np

from strategies import FitInfo, Params


def build_gru(hp, memory, steps):
    """A GRU forecaster. `hp` is a keras-tuner HyperParameters: values come from the config's
    `hyperparameters`, and anything the config leaves out takes the default given here."""
    import keras

    model = keras.Sequential(
        [
            keras.Input((memory, 1)),
            keras.layers.GRU(hp.Int("units", 8, 64, step=8, default=16)),
            keras.layers.Dropout(hp.Float("dropout", 0.0, 0.3, step=0.1, default=0.1)),
            keras.layers.Dense(steps),
        ]
    )
    lr = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=1e-3)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr), loss="mse")
    return model


class ScaledMedian:
    """The median RV of the last `bars` bars, times a bias factor fitted on the training window."""

    def __init__(self, bars):
        self.bars = bars

    def fit(self, train, horizon):
        rv = train.rv
        medians = np.array([np.median(rv[i - self.bars : i]) for i in range(self.bars, len(rv))])
        self.factor = float(np.mean(rv[self.bars :]) / np.mean(medians))
        return FitInfo(samples=len(medians), extra={"factor": self.factor})

    def forecast(self, history, horizon):
        return np.full(horizon, self.factor * np.median(history.rv[-self.bars :]))

    def save(self, folder):  # optional: lets `backtest model predict` reload it
        (folder / "factor.txt").write_text(repr(self.factor))

    def load(self, folder):
        self.factor = float((folder / "factor.txt").read_text())


class ScaledMedianParams(Params):
    """The median RV of the last ``bars`` bars times a bias factor fitted on the training window (the
    report's answer says what a strategy is with ``describe()``, by default its docstring's first line)."""

    bars: int = 24

    def describe(self):
        return f"the median RV of the last {self.bars} bars times a bias factor fitted on the training window"

    def build(self, seed):
        return ScaledMedian(self.bars)

    def min_train_bars(self, horizon):
        return self.bars + 2
