"""What the engine asks a strategy's params, grouped into small declared capabilities.

:class:`~strategies.base.Params` has each of them, with defaults that describe a plain baseline: refitted
from scratch at every retrain on its own asset, never tuned, each fit alone, linked to no other
strategy. A strategy overrides what it can do; the engine only calls these methods (it never reads a
strategy's fields):

- :class:`Scheduling`: how its retrains are chained (a warm start) or pooled (one model on every asset);
- :class:`Tuning`: whether and how it searches hyperparameters;
- :class:`Stacking`: whether several of its fits train together, and the function that does it;
- :class:`Links`: the run's strategies it is built on (a hybrid's baselines, a combination's members);
- :class:`Costs`: what a fit costs, for ordering work and for ``backtest plan``;
- :class:`Describing`: what it is, in words, for the report's answer, and the realized measures it reads.

Examples
--------
>>> from strategies.naive import NaiveParams
>>> p = NaiveParams()
>>> p.chains(), p.stacks(), p.links(), p.tuning_budget()
(False, False, [], (0, 0))
>>> p.describe(), p.starts_from(), p.averages()
("the last bar's RV carried forward (the naive forecast)", [], [])
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from typing_extensions import Self

from backtester.core.series import BarSeries

StackedFit = Callable[[list[Any], list[Any], int], list[Any]]
"""``fit(strategies, trains, horizon) -> [FitInfo | FailedRetrain, ...]``: :meth:`Stacking.stacked_fitter`."""


class Scheduling:
    """How a strategy's retrains relate: each from scratch (default), a warm-start chain, or one model
    pooled over every asset of a universe."""

    def chains(self) -> bool:
        """Whether each retrain continues the previous retrain's model (a warm start): the
        strategy's segments then run in order, as one chain, in one worker."""
        return False

    def pools_assets(self) -> bool:
        """Whether one model per retrain is trained on every asset of a universe at once (``scope:
        global``; its strategy is :class:`PooledFit`) instead of one model per asset."""
        return False

    def schedule_asset(self) -> str | None:
        """For a pooled model: the asset whose retrain times every asset follows (None: they must agree)."""
        return None


class Tuning:
    """Whether a strategy searches hyperparameters at some retrains, and how (never, by default)."""

    def tuning_points(self, retrains: Any, bars: Any, start: Any, end: Any) -> list[bool]:
        """Per retrain time in ``retrains`` (on the bar grid ``bars``, test period ``start .. end``):
        does it search hyperparameters on its training window first? Never, by default."""
        return [False] * len(retrains)

    def tune(
        self, train: BarSeries, horizon: int, seed: int, folder: Path, stack: int = 1
    ) -> tuple[dict[str, Any], Any]:
        """Search hyperparameters on ``train`` (state under ``folder``); return the best values and a
        frame of trials (``trial, status, score, hyperparameters``). Raise FailedRetrain if it fails.
        ``stack``: the most trials it may train together (``execution.stack``), where it can."""
        raise NotImplementedError(f"{type(self).__name__} does not tune")

    def stacks_trials(self) -> bool:
        """Whether its tuning trains several trials together where their models compile alike (a random
        search's trials; ``tune``'s ``stack``). No, by default."""
        return False

    def with_hyperparameters(self, values: dict[str, Any]) -> Self:
        """These params with tuned hyperparameter values fixed."""
        return self

    def tuning_budget(self) -> tuple[int, int]:
        """(trials, epochs per trial) of one tuning: what a tuning costs next to a fit."""
        return (0, 0)


class Stacking:
    """Whether several of a strategy's fits train together in one compiled program (never, by default)."""

    def stacks(self) -> bool:
        """Whether its fits can be trained together, several in one compiled program (``execution.stack``; a
        warm-start chain's with those of the chains beside it, in lockstep), by :meth:`stacked_fitter`."""
        return False

    def stacked_fitter(self) -> StackedFit | None:
        """The function that trains several of its freshly built strategies together where :meth:`stacks`:
        ``fit(strategies, trains, horizon)`` fits each on its window as ``fit`` would and returns, per
        strategy, its ``FitInfo`` (``extra["stacked"]``: how many models its program held) or the
        ``FailedRetrain`` it met. None: each fits alone."""
        return None


class Links:
    """The run's strategies a strategy is built on (none, by default)."""

    LINKS_FIELD: ClassVar[str] = ""  # the config key that names the strategies it links (error messages)

    def links(self) -> list[str]:
        """The run's strategies this one is built on, by name (a hybrid's baselines, a combination's
        members): the config checks that each is a baseline of the run and hands their type and
        parameters to :meth:`with_links`. None by default."""
        return []

    def with_links(self, linked: list[dict[str, Any]]) -> Self:
        """These params with the type and parameters of each of :meth:`links` filled in (in that order)."""
        return self

    def starts_from(self) -> list[str]:
        """The linked strategies whose mean forecast this one starts from, untrained, and learns to correct
        (a hybrid's baselines): what its training adds is its loss against that start's. Empty: it starts
        from nothing of the run."""
        return []

    def averages(self) -> list[str]:
        """The linked strategies whose equal-weight mean forecast this one is (a combination); empty
        otherwise. A combination of a hybrid's baselines is that hybrid's untrained start."""
        return []


class Costs:
    """What a fit costs: for starting the slowest work first, and for ``backtest plan``."""

    def fit_cost(self, train_bars: int) -> float:
        """A rough relative cost of one fit (to start the slowest segments first)."""
        return train_bars * 1e-3

    def train_samples(self, train_bars: int, horizon: int) -> int:
        """Training samples a window of ``train_bars`` bars gives (shown by ``backtest plan``)."""
        return train_bars

    def fit_epochs(self) -> int | None:
        """Epochs of one fit for an iterative learner (None: a closed-form or one-shot fit)."""
        return None

    def timing_copy(self) -> Self:
        """A cheap variant (one epoch, no tuning) that ``backtest plan --estimate`` times."""
        return self


class Describing:
    """What a strategy is, in words: the report's answer opens with it."""

    def describe(self) -> str:
        """One phrase that says what the strategy is, e.g. ``HAR-RV: least squares on ...``; by default
        the first line of the params class's docstring."""
        doc = (type(self).__doc__ or "").strip().splitlines()
        return doc[0].rstrip(".") if doc else type(self).__name__

    def measures(self) -> list[str]:
        """The realized measures besides RV it reads from the bars (:mod:`backtester.measures`, e.g. ``bpv``):
        the config refuses data that cannot give them. None by default."""
        return []
