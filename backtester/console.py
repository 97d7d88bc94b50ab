"""The ``backtest`` console script: Ctrl-C and SIGTERM are routed first, then the CLI is imported, so
that an interruption even while the CLI loads ends in one line and exit 130 (or 143), not a traceback.
Before anything loads NumPy or JAX, the process is pinned to one compute thread
(:func:`backtester.process.pin_threads`), so every command, and every worker it starts, adds floats in
one order.
"""

from __future__ import annotations

import os
import sys

from .core.interrupt import exit_code, install
from .process import pin_threads


def entry() -> None:
    install()
    pin_threads()  # nothing has loaded BLAS or XLA yet: they start on one thread
    try:
        from .cli import entry as run
    except KeyboardInterrupt as exc:
        sys.stderr.write("\ninterrupted: nothing was written\n")
        sys.stderr.flush()
        os._exit(exit_code(exc))
    run()
