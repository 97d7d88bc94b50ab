"""What every ``backtest`` command shares: the one-line error and its exit status, loading a config with
the process set up for it, and the common options. Imported by :mod:`backtester.cli` and its command modules.
"""

from __future__ import annotations

import os
import sys
import traceback

import click

from .core.errors import BacktestError, FatalError

EXIT_USAGE = 2
EXIT_STOPPED = 3
_DEBUG = [os.environ.get("BACKTEST_DEBUG", "") not in ("", "0")]


def _fail(exc: BacktestError, overrides: tuple[str, ...] = ()) -> None:
    if _DEBUG[0]:
        traceback.print_exception(exc)
    click.echo(f"error: {_blame(str(exc), overrides)}", err=True)
    sys.exit(EXIT_STOPPED if isinstance(exc, FatalError) else EXIT_USAGE)


def _blame(message: str, overrides: tuple[str, ...]) -> str:
    """Name the ``--set`` behind an error found after loading (e.g. ``backtest.start`` after the last bar).

    >>> _blame("backtest.start: 2030-01-01 is after the last bar", ("backtest.start=2030-01-01",))
    '--set backtest.start=2030-01-01: backtest.start: 2030-01-01 is after the last bar'
    >>> _blame("backtest.start: too early", ("seed=1",))
    'backtest.start: too early'
    """
    if message.startswith("--set "):
        return message
    key = message.split(":", 1)[0].strip()
    hits = [o for o in overrides if o.split("=", 1)[0].strip() == key]
    return f"--set {hits[-1]}: {message}" if hits else message


def _load(config: str, overrides: tuple[str, ...], train: bool = False, on_workers: bool = False):
    """The config, with this process set up for it (its backend chosen before any strategy is read;
    with ``train``, each strategy type's set-up done now, e.g. Keras imported). ``on_workers``: the command
    trains on the config's workers where it has any (``run`` with ``execution.jobs`` > 1 or a scheduler),
    so then this process, which only hands out jobs, is not set up to train."""
    from .config import load_config
    from .process import choose_backend, setup

    cfg = load_config(config, overrides, before_strategies=choose_backend)
    elsewhere = on_workers and (cfg.execution.jobs > 1 or cfg.execution.scheduler is not None)
    setup(cfg, strategies=train and not elsewhere)
    return cfg


set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key, e.g. --set backtest.horizon=6 (repeatable).",
)


backend_option = click.option(
    "--backend",
    type=click.Choice(["tensorflow", "jax"]),
    default=None,
    help="Keras backend (overrides the config's 'backend').",
)
