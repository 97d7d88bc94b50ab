"""Training losses for Keras strategies: ``loss: mse | qlike | mse_log``.

A Keras model learns its ``target`` (``rv``, ``log`` or ``variance``) min-max scaled on the training
window, so a plain MSE is a loss on that scaled unit. The evaluation scores QLIKE of the *variance*,
which weighs errors by the level of volatility (an error in a calm hour costs more than the same error
in a storm). ``qlike`` and ``mse_log`` train on what is evaluated:

- ``qlike``: ``a / f - log(a / f) - 1`` with ``a`` and ``f`` the actual and forecast variance, the
  model's output taken back through the scaler and the target transform inside the loss;
- ``mse_log``: the squared error of the log variance (``4 x`` that of log volatility);
- ``mse``: MSE on the scaled target (what our ``lstm`` builder compiles; naming it replaces the loss a
  user's builder compiled).

Both variance losses floor the variance at the square of the training window's smallest positive RV
(the forecasts' own floor), so a flat hour or a negative output keeps the loss finite. To read the
scale inside the loss, each sample's targets carry three more columns (:func:`with_scale`): the
scaler's range and minimum and the floor, per sample, so a global model's assets each keep their own
scale (and a hybrid's baseline forecast per step, :func:`with_scale`). Padding rows (all zeros) cost
nothing.

Sensible pairs: ``qlike`` and ``mse_log`` with any ``target`` (the loss is on variance whatever the model
learns); ``mse`` with any ``target`` (``mse`` with ``target: log`` is the least-squares HAR of the log
literature). ``mse_log`` with ``target: log`` is refused: it is ``mse`` with ``target: log`` again.

Examples
--------
>>> from sklearn.preprocessing import MinMaxScaler
>>> scaler = MinMaxScaler().fit(np.array([[1.0], [3.0]]))
>>> with_scale(np.array([[0.5, 1.0]]), scaler, 0.2).tolist()
[[0.5, 1.0, 2.0, 1.0, 0.20000000298023224, 0.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

LOSSES = ("mse", "qlike", "mse_log")
VARIANCE_LOSSES = ("qlike", "mse_log")
EXTRA_COLUMNS = 3  # range, minimum, floor


def with_scale(y: np.ndarray, scaler, floor: float, residual: tuple[float, np.ndarray] | None = None) -> np.ndarray:
    """``y`` (samples x steps, scaled) with what takes it back to the target's unit as more columns: the
    scale and the offset, the floor, and a baseline per step (a hybrid's, ``residual`` = (scale, baseline
    in the target's unit); zeros otherwise): target = baseline + y x scale + offset."""
    n, steps = y.shape
    if residual is None:
        span, low, base = np.full(n, scaler.data_range_[0]), np.full(n, scaler.data_min_[0]), np.zeros((n, steps))
    else:
        span, low, base = np.full(n, residual[0]), np.zeros(n), residual[1]
    return np.column_stack([y, span, low, np.full(n, floor), base]).astype("float32")


def training_loss(kind: str, target: str) -> Callable | str:
    """The loss to compile: ``"mse"``, or a function of (targets with scale columns, scaled forecasts)."""
    if kind not in VARIANCE_LOSSES:
        return "mse"
    from .runtime import keras_module

    ops = keras_module().ops

    def variance(values, floor):
        least = ops.maximum(ops.square(floor), 1e-12)
        if target == "log":
            return ops.maximum(ops.exp(2.0 * values), least)
        if target == "variance":
            return ops.maximum(values, least)
        return ops.maximum(ops.square(ops.maximum(values, 0.0)), least)

    def loss(y_true, y_pred):
        steps = y_pred.shape[-1]
        span, low, floor = (y_true[:, steps + k : steps + k + 1] for k in range(EXTRA_COLUMNS))
        base = y_true[:, steps + EXTRA_COLUMNS : 2 * steps + EXTRA_COLUMNS]
        actual = variance(base + y_true[:, :steps] * span + low, floor)
        forecast = variance(base + y_pred * span + low, floor)
        if kind == "qlike":
            ratio = actual / forecast
            return ops.mean(ratio - ops.log(ratio) - 1.0, axis=-1)
        return ops.mean(ops.square(ops.log(actual) - ops.log(forecast)), axis=-1)

    loss.__name__ = kind
    return loss


def check_pair(loss: str | None, target: str) -> None:
    """Refuse a loss/target pair that makes no sense (see the module docstring)."""
    if loss == "mse_log" and target == "log":
        raise ValueError(
            "loss: mse_log with target: log is loss: mse with target: log again (the squared error "
            "of log volatility); write loss: mse, or keep mse_log with target: rv"
        )
