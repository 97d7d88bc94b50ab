"""The ``backtest`` console script: Ctrl-C and SIGTERM are routed first, then the CLI is imported, so
that an interruption even while the CLI loads ends in one line and exit 130 (or 143), not a traceback.
"""

from __future__ import annotations

import os
import sys

from .core.interrupt import exit_code, install


def entry() -> None:
    install()
    try:
        from .cli import entry as run
    except KeyboardInterrupt as exc:
        sys.stderr.write("\ninterrupted: nothing was written\n")
        sys.stderr.flush()
        os._exit(exit_code(exc))
    run()
