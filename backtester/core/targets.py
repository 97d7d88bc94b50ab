"""Target transforms: RV as a model learns it, and back to volatility.

They are the strategies' business, but the audit re-derives a saved scaler's fit with them, so they
live in the core, which never imports a Keras strategy module.
"""

from __future__ import annotations

import numpy as np


def to_target(rv: np.ndarray, target: str, floor: float) -> np.ndarray:
    """RV as the model learns it: ``rv`` as is, ``log`` (of RV floored at ``floor``, the training
    window's smallest positive RV, so a flat hour is not -inf) or ``variance`` (RV squared).

    >>> to_target(np.array([0.0, 2.0]), "log", 0.5).round(3).tolist()
    [-0.693, 0.693]
    >>> to_target(np.array([3.0]), "variance", 1.0).tolist()
    [9.0]
    """
    if target == "log":
        return np.log(np.maximum(rv, floor))
    if target == "variance":
        return np.square(rv)
    return np.asarray(rv, dtype="float64")


def from_target(values: np.ndarray, target: str) -> np.ndarray:
    """Back to volatility: the inverse of :func:`to_target` (a negative variance forecast gives 0).

    >>> from_target(np.array([0.0]), "log").tolist(), from_target(np.array([-1.0, 4.0]), "variance").tolist()
    ([1.0], [0.0, 2.0])
    """
    if target == "log":
        return np.exp(values)
    if target == "variance":
        return np.sqrt(np.maximum(values, 0.0))
    return values
