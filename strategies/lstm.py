"""The notebook's LSTM: lookback window of scaled RV -> 1-2 LSTM layers -> Dense head.

- ``memory`` bars of RV (default 60), scaled by a ``MinMaxScaler(0, 1)`` fitted on
  the training window only, are the input; the targets are the next bars' RV.
- ``multistep: direct`` uses a ``Dense(H)`` head (one model call per forecast);
  ``recursive`` trains a one-step model and feeds each forecast back in.
- Adam with ``learning_rate``, MSE loss, ``batch_size`` 16, ``epochs``; the last
  ``validation_split`` of samples (in time order) gives the validation loss.
- A fresh model at every retrain: the Keras session is cleared and every random
  seed set from the retrain's seed before the model is built.

Keras is imported on first use, so configs without an LSTM never load TensorFlow.
"""

from __future__ import annotations

import math
import os
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from backtester.errors import FailedRetrain
from backtester.series import BarSeries

from .base import FitInfo, Params, positive_floor


def _quiet_import():
    """Import TensorFlow with its C++ start-up chatter (CUDA probes, oneDNN notes) kept off stderr."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf

            tf.config.experimental.enable_op_determinism()
            tf.constant(0.0) + 1.0  # first op: device probing happens here, still silenced
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _keras():
    if not getattr(_keras, "_configured", False):
        _quiet_import()
        _keras._configured = True
    import keras

    return keras


def windows(values: np.ndarray, memory: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Supervised samples: X[i] = values[i:i+memory], y[i] = values[i+memory:i+memory+steps].

    >>> x, y = windows(np.arange(6.0), 3, 2)
    >>> x.tolist(), y.tolist()
    ([[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]], [[3.0, 4.0], [4.0, 5.0]])
    """
    n = len(values) - memory - steps + 1
    if n <= 0:
        return np.empty((0, memory)), np.empty((0, steps))
    idx = np.arange(n)[:, None]
    x = values[idx + np.arange(memory)]
    y = values[idx + memory + np.arange(steps)]
    return x, y


class LayerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    units: int = Field(default=32, ge=1, le=1024)
    dropout: float = Field(default=0.1, ge=0, lt=1)


class Lstm:
    def __init__(self, params: LstmParams, seed: int):
        self.params, self.seed = params, seed
        self.model = None

    def _build(self, steps: int):
        keras = _keras()
        keras.backend.clear_session()
        keras.utils.set_random_seed(self.seed)
        p = self.params
        layers = [keras.Input(shape=(p.memory, 1))]
        for k, spec in enumerate(p.layers):
            layers.append(keras.layers.LSTM(spec.units, return_sequences=k < len(p.layers) - 1))
            if spec.dropout > 0:
                layers.append(keras.layers.Dropout(spec.dropout, seed=self.seed + k))
        layers.append(keras.layers.Dense(steps))
        model = keras.Sequential(layers)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=p.learning_rate), loss="mse")
        return model

    def fit(self, train: BarSeries, horizon: int) -> FitInfo:
        from sklearn.preprocessing import MinMaxScaler

        p = self.params
        steps = horizon if p.multistep == "direct" else 1
        values = train.rv.reshape(-1, 1)
        self.scaler = MinMaxScaler(feature_range=(0, 1)).fit(values)
        scaled = self.scaler.transform(values)[:, 0].astype("float32")
        x, y = windows(scaled, p.memory, steps)
        if len(x) < 2:
            raise FailedRetrain(f"LSTM needs more than memory + horizon = {p.memory + steps} training bars")
        n_val = int(len(x) * p.validation_split)
        x_tr, y_tr, x_val, y_val = x[: len(x) - n_val], y[: len(x) - n_val], x[len(x) - n_val :], y[len(x) - n_val :]
        self.model = self._build(steps)
        hist = self.model.fit(
            x_tr[..., None],
            y_tr,
            batch_size=p.batch_size,
            epochs=p.epochs,
            validation_data=(x_val[..., None], y_val) if n_val else None,
            shuffle=True,
            verbose=0,
        )
        train_loss = float(hist.history["loss"][-1])
        val_loss = float(hist.history["val_loss"][-1]) if n_val else float("nan")
        if not math.isfinite(train_loss):
            raise FailedRetrain("LSTM training loss is not finite")
        self.floor = positive_floor(train.rv)
        return FitInfo(
            samples=len(x_tr),
            train_loss=train_loss,
            val_loss=val_loss,
            extra={"loss_history": [float(v) for v in hist.history["loss"]]},
        )

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(x[None, :, None].astype("float32")))[0]

    def forecast(self, history: BarSeries, horizon: int) -> np.ndarray:
        p = self.params
        window = self.scaler.transform(history.rv[-p.memory :].reshape(-1, 1))[:, 0]
        if p.multistep == "direct":
            scaled = self._predict(window)[:horizon]
        else:
            buf = list(window)
            scaled = np.empty(horizon)
            for h in range(horizon):
                scaled[h] = self._predict(np.asarray(buf[-p.memory :]))[0]
                buf.append(scaled[h])
        out = self.scaler.inverse_transform(np.asarray(scaled, dtype="float64").reshape(-1, 1))[:, 0]
        return np.maximum(out, self.floor)


class LstmParams(Params):
    type: Literal["lstm"] = "lstm"
    memory: int = Field(default=60, ge=1)
    layers: list[LayerSpec] = Field(default_factory=lambda: [LayerSpec()], min_length=1, max_length=2)
    learning_rate: float = Field(default=3e-3, gt=0, le=1)
    batch_size: int = Field(default=16, ge=1)
    epochs: int = Field(default=5, ge=1)
    multistep: Literal["direct", "recursive"] = "direct"
    validation_split: float = Field(default=0.1, ge=0, lt=0.5)

    def build(self, seed: int) -> Lstm:
        return Lstm(self, seed)

    def min_train_bars(self, horizon: int) -> int:
        steps = horizon if self.multistep == "direct" else 1
        return self.memory + steps + 20
