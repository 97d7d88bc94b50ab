"""Several fits of one Keras strategy trained together, in one compiled program
(:func:`strategies.keras.training.train_fitting`): the fits of a retrain's seed members and assets, or
one retrain of their warm-start chains. Each member is prepared and finished exactly as its lone fit
(:meth:`~strategies.keras.forecaster.KerasForecaster.prepare` / ``finish``); only the training runs
together. A member whose preparation fails fails alone; a program that fails (not for memory: halved
then) makes every member train alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backtester.core.errors import BacktestError, FailedRetrain
from backtester.core.series import BarSeries

from .training import train_fitting


def alone(call: Callable[[], Any]) -> Any:
    """What a lone ``fit()`` would give: its result, or the FailedRetrain it records."""
    try:
        return call()
    except FailedRetrain as exc:
        return exc
    except (BacktestError, KeyboardInterrupt):
        raise
    except Exception as exc:  # as backtester.segment.attempt words it
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        return FailedRetrain(f"fit() raised {type(exc).__name__}" + (f": {text}" if text else ""))


def fit_stacked(members: list, trains: list[BarSeries], horizon: int) -> list[Any]:
    """Fit every member (a Keras forecaster, all of the same params) on its own training window as its
    ``fit`` would, all trained together. Returns per member its ``FitInfo``, or the ``FailedRetrain`` it met."""
    out: list[Any] = [None] * len(members)
    ready = []
    for k, (f, train) in enumerate(zip(members, trains)):
        got = alone(lambda f=f, train=train: f.prepare(train, horizon))  # a member whose preparation fails fails alone
        if isinstance(got, FailedRetrain):
            out[k] = got
        else:
            ready.append((k, got))
    if not ready:
        return out
    try:
        histories = _train_together(members, ready)
    except (BacktestError, KeyboardInterrupt):
        raise
    except Exception:  # the group's program failed (not for memory: halved then): each member trains alone
        for k, _ in ready:
            out[k] = alone(lambda k=k: members[k].fit(trains[k], horizon))
        return out
    for k, prepared in ready:
        f = members[k]
        history, size = histories[k]
        try:
            out[k] = f.finish(prepared, f.compiled(prepared), history)
            out[k].extra["stacked"] = size  # trained in a program of this many (the audit reads it)
        except FailedRetrain as exc:
            out[k] = exc
    return out


def _train_together(members: list, ready: list) -> dict[int, tuple]:
    """Each ready member's (history, program size), trained in one program per epoch count (warm and cold
    members train for different epochs)."""
    p = members[0].params
    key = members[ready[0][0]].program_key(ready[0][1])
    by_epochs: dict[int, list] = {}
    for k, prepared in ready:
        by_epochs.setdefault(prepared.epochs, []).append((k, prepared))
    histories: dict[int, tuple] = {}
    for epochs, part in by_epochs.items():
        got, sizes = train_fitting(
            [prepared.model for _, prepared in part],
            [(q.train.x, q.train.y, q.val.x, q.val.y) for _, q in part],
            p.batch_size,
            epochs,
            [members[k].seed for k, _ in part],
            program_key=key,
        )
        histories.update({k: (h, size) for (k, _), h, size in zip(part, got, sizes)})
    return histories
