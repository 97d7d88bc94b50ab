"""User-facing errors.

Every error a user can cause (bad config, bad data, bad model files) is a
:class:`BacktestError`. Its message is one line that names the file or config
key and says how to fix it; the CLI prints it and exits with status 2.

A retrain that fails (NaN loss, a numerical failure in a fit) is not fatal:
strategies raise :class:`FailedRetrain`, the segment keeps the previous model
and records the failure. :class:`FatalError` stops the run at once.
"""

from __future__ import annotations


class BacktestError(Exception):
    """Base class for errors caused by user input; the message is one line."""


class ConfigError(BacktestError):
    """The config file or a ``--set`` override is invalid."""


class DataError(BacktestError):
    """The input data cannot be used."""


class OutputError(BacktestError):
    """The output directory cannot be written as asked."""


class FailedRetrain(Exception):
    """A single retrain failed; the previous model is kept.

    Examples
    --------
    >>> raise FailedRetrain("training loss is NaN")
    Traceback (most recent call last):
    ...
    backtester.core.errors.FailedRetrain: training loss is NaN
    """


class FatalError(BacktestError):
    """The run cannot go on (for example, too many consecutive failed retrains)."""


class RunError(BacktestError):
    """A folder that is not a run, or not an artifact of one (missing, unfinished, damaged, moved out of its
    run); :mod:`backtester.layout` raises it for every reader of a results folder."""


class ArtifactError(RunError):
    """A model folder that is not a usable artifact."""


class AuditError(RunError):
    """The run directory cannot be audited (not a finished run, its data changed, an unknown strategy)."""


class CompareError(BacktestError):
    """Runs that cannot be compared."""


class LookAheadError(FatalError):
    """A forecast row would depend on data from after its issue time."""


class StrategyError(BacktestError):
    """A strategy raised an unexpected exception, or returned forecasts of the wrong shape."""


class LeakError(FatalError):
    """A strategy's forecasts depend on bars after their issue time."""


class BuilderError(BacktestError):
    """A builder returned something that is not a compiled Keras model of the right shape."""


class ModelFileError(BacktestError):
    """A model or scaler file that cannot be imported (missing, corrupt, untranslatable, untrusted)."""
