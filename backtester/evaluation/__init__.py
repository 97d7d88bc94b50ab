"""Evaluation: forecast rows and fit records in, every evaluation file of a run out.

- :mod:`.results`: the entry point, :func:`~.results.write_results` (forecasts + retrains +
  losses -> every evaluation file in a directory), and the seed ensembles.
- :mod:`.losses`: the one loss pipeline: actuals joined target-aligned, the volatility loss suite
  per row (every formula once, :func:`~.losses.row_losses`), MSE/MAE/QLIKE per strategy and horizon,
  the tidy loss table, coverage counts, Mincer–Zarnowitz regressions, out-of-sample R², cost.
- :mod:`.accuracy`: Diebold–Mariano tests (HAC variance, Harvey–Leybourne–Newbold correction)
  and the Model Confidence Set (``arch.bootstrap.MCS``).
- :mod:`.plots`: figures.
- :mod:`.markdown`: the run's ``report.md``, section by section.
- :mod:`.report`: the evaluation figures drawn from a run's files, and ``report.html``.

Nothing here imports :mod:`backtester.runner` or :mod:`backtester.compare`.
"""

from .losses import join_actuals, loss_frame, loss_matrix, mean_qlike, metrics, qlike, summary
from .plots import plot_error_by_horizon, plot_forecasts

__all__ = [
    "join_actuals",
    "loss_frame",
    "loss_matrix",
    "mean_qlike",
    "metrics",
    "plot_error_by_horizon",
    "plot_forecasts",
    "qlike",
    "summary",
]
