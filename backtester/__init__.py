"""backtester: walk-forward backtests of volatility forecasts (Keras LSTMs and baselines)."""

__version__ = "0.1.0"
