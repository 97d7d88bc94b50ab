"""Ctrl-C (SIGINT) and SIGTERM: one exception, one exit code, never swallowed.

:func:`install` makes both signals raise :class:`Interrupted` (a ``KeyboardInterrupt``) in the main
thread and remembers that they came. A ``KeyboardInterrupt`` raised while Python runs a finaliser or
a garbage-collector callback (JAX has one) is dropped by the interpreter: it is not printed, the
signal is delivered again a moment later, and :func:`check` raises it again at the engine's next step,
so an interruption is never lost. Once it has been handled (:func:`exit_code`), later deliveries are
ignored. A SIGINT that the parent shell ignores (a background
job of a non-interactive shell) stays ignored, as it does for any Unix program.

Examples
--------
>>> exit_code(Interrupted(signal.SIGTERM)), exit_code(KeyboardInterrupt())
(143, 130)
"""

from __future__ import annotations

import os
import signal
import sys
import threading

_received: list[int] = []
_settled: list[bool] = []


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def _handler(signum, frame) -> None:
    if _settled:
        return
    _received.append(signum)
    raise Interrupted(signum)


def _redeliver(signum: int) -> None:
    if not _settled:
        os.kill(os.getpid(), signum)


def _unraisable(hook):
    def drop_interrupts(info) -> None:
        if isinstance(info.exc_value, Interrupted):  # swallowed where it cannot propagate: deliver it again
            if not _settled:
                signum = info.exc_value.signum
                threading.Timer(0.05, _redeliver, (signum,)).start()
            return
        hook(info)

    setattr(drop_interrupts, "drops_interrupts", True)  # noqa: B010  (a marker on a function)
    return drop_interrupts


def install() -> None:
    """Route SIGINT (unless ignored) and SIGTERM to :class:`Interrupted` in this (main) thread."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    if not getattr(sys.unraisablehook, "drops_interrupts", False):
        sys.unraisablehook = _unraisable(sys.unraisablehook)


def check() -> None:
    """Raise :class:`Interrupted` again if a signal came (its first raise may have been swallowed)."""
    if _received:
        raise Interrupted(_received[-1])


def exit_code(exc: BaseException) -> int:
    """128 + the signal's number: 130 for Ctrl-C, 143 for SIGTERM. The interruption is handled now:
    signals that come after it (a second Ctrl-C) no longer interrupt the exit."""
    _settled.append(True)
    return 128 + getattr(exc, "signum", signal.SIGINT)
