"""Evaluation: losses, tests of predictive accuracy, plots.

- :mod:`.scoring`: actuals joined target-aligned, MSE/MAE/QLIKE per strategy and horizon.
- :mod:`.losses`: the volatility loss suite per row, the tidy loss table, coverage counts,
  Mincer–Zarnowitz regressions and out-of-sample R².
- :mod:`.accuracy`: Diebold–Mariano tests (HAC variance, Harvey–Leybourne–Newbold correction)
  and the Model Confidence Set (``arch.bootstrap.MCS``).
- :mod:`.plots`: figures.
"""

from .plots import plot_error_by_horizon, plot_forecasts
from .scoring import join_actuals, loss_frame, loss_matrix, metrics, qlike, summary

__all__ = ["join_actuals", "loss_frame", "loss_matrix", "metrics", "plot_error_by_horizon", "plot_forecasts", "qlike",
           "summary"]
