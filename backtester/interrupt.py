"""Ctrl-C (SIGINT) and SIGTERM: one exception, one exit code, never swallowed.

:func:`install` makes both signals raise :class:`Interrupted` (a ``KeyboardInterrupt``) in the main
thread and remembers that they came. A ``KeyboardInterrupt`` raised while Python runs a finaliser or
a callback is printed and dropped by the interpreter; :func:`check` raises it again at the engine's
next step, so an interruption is never lost. A SIGINT that the parent shell ignores (a background
job of a non-interactive shell) stays ignored, as it does for any Unix program.

Examples
--------
>>> exit_code(Interrupted(signal.SIGTERM)), exit_code(KeyboardInterrupt())
(143, 130)
"""

from __future__ import annotations

import signal

_received: list[int] = []


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def _handler(signum, frame) -> None:
    _received.append(signum)
    raise Interrupted(signum)


def install() -> None:
    """Route SIGINT (unless ignored) and SIGTERM to :class:`Interrupted` in this (main) thread."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)


def check() -> None:
    """Raise :class:`Interrupted` again if a signal came (its first raise may have been swallowed)."""
    if _received:
        raise Interrupted(_received[-1])


def exit_code(exc: BaseException) -> int:
    """128 + the signal's number: 130 for Ctrl-C, 143 for SIGTERM."""
    return 128 + getattr(exc, "signum", signal.SIGINT)
