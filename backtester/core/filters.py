"""Signal filters the strategies and the synthetic data share, imported lazily.

>>> lfilter([0.5], [1.0, -0.5], [1.0, 1.0]).tolist()
[0.5, 0.75]
"""

from __future__ import annotations


def lfilter(*args, **kwargs):
    """``scipy.signal.lfilter``, imported on first use: scipy.signal takes about 2 s to import, and every
    ``backtest`` command imports the strategy modules that use it."""
    from scipy.signal import lfilter as _lfilter

    return _lfilter(*args, **kwargs)
