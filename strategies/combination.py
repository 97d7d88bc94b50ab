"""Forecast combination: the equal-weight mean of several baselines' forecasts.

``type: mean_of`` is a baseline of its own (``har_garch: {type: mean_of, of: [har, garch]}``), and a
hybrid's ``residual_of: [har, garch]`` starts from the same mean. The equal-weight mean is famously hard
to beat with fitted weights (the "forecast combination puzzle"); on hourly crypto RV the mean of HAR and
the seasonal GARCH beats both (bench/README.md). Each member is fitted on the same training window and
forecasts from the same bars, so the mean is as causal as its members.

Examples
--------
>>> MeanOfParams(of=["har", "garch"]).min_train_bars(24)  # the most any member needs
197
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from backtester.core.series import BarSeries

from .base import FitInfo, Params
from .registry import strategy_class


def baseline_params(raw: dict[str, Any]) -> Params:
    """A hybrid's baseline parameters (``residual_params``: its type and fields)."""
    fields = dict(raw)
    return strategy_class(fields.pop("type")).model_validate(fields)


def baseline_min_bars(raw: dict[str, Any] | list[dict[str, Any]], steps: int) -> int:
    """The training bars a hybrid's baseline needs before it forecasts (the most any of several needs)."""
    return max(baseline_params(r).min_train_bars(steps) for r in (raw if isinstance(raw, list) else [raw]))


def baseline_strategy(raw: dict[str, Any] | list[dict[str, Any]], seed: int, names: list[str] | None = None):
    """A fresh baseline strategy for a hybrid: one baseline, or the mean of several (``residual_of: [har, garch]``)."""
    if isinstance(raw, list):
        return MeanOfBaselines({n: baseline_params(r).build(seed) for n, r in zip(names, raw)})
    return baseline_params(raw).build(seed)


class MeanOfBaselines:
    """The equal-weight mean of several baselines' volatility forecasts: the start of a hybrid with
    ``residual_of: [har, garch]``. A plain forecast combination is often better than each of its members
    (on BTC 2023 H1 the mean of HAR and the seasonal GARCH has QLIKE 0.62 against 0.77 and 0.70;
    bench/README.md), so the net starts from there.

    >>> import numpy as np
    >>> from strategies.naive import NaiveParams, RollingMeanParams
    >>> from backtester.core.series import BarSeries
    >>> rv = np.array([1.0, 1, 1, 1, 1, 1, 1, 1, 3, 1])
    >>> s = BarSeries(np.arange(10), rv, np.zeros(10), np.ones(10, bool))
    >>> m = MeanOfBaselines({"naive": NaiveParams().build(0), "mean": RollingMeanParams(bars=4).build(0)})
    >>> _ = m.fit(s, 1)
    >>> m.forecast_batch(s, np.array([9, 10]), 1)[:, 0].tolist()  # (3 + 1.5) / 2, (1 + 1.5) / 2
    [2.25, 1.25]
    """

    def __init__(self, members: dict[str, Any]):
        self.members = members

    def fit(self, train: BarSeries, horizon: int) -> FitInfo:
        for member in self.members.values():
            member.fit(train, horizon)
        return FitInfo(samples=len(train), extra={"members": list(self.members)})

    def forecast(self, history: BarSeries, horizon: int) -> np.ndarray:
        return self.forecast_batch(history, np.array([len(history)]), horizon)[0]

    def forecast_batch(self, history, ends: np.ndarray, horizon: int) -> np.ndarray:
        return np.mean(
            [np.asarray(m.forecast_batch(history, ends, horizon), dtype="float64") for m in self.members.values()],
            axis=0,
        )

    def save(self, folder: Path) -> None:
        """Each member in a folder of its own, by position (``0/``, ``1/``: a strategy's name may not be a
        safe folder name), and ``members.json`` naming them."""
        for k, member in enumerate(self.members.values()):
            (Path(folder) / str(k)).mkdir(exist_ok=True)
            member.save(Path(folder) / str(k))
        (Path(folder) / "members.json").write_text(json.dumps(list(self.members)))

    def load(self, folder: Path) -> None:
        for k, member in enumerate(self.members.values()):
            member.load(Path(folder) / str(k))


class MeanOfParams(Params):
    """``of``: the baselines whose forecasts are averaged, strategies of the run (their parameters are
    filled in as ``members``); built without a run, each name is a baseline type with its defaults."""

    PROVEN_BATCH: ClassVar[bool] = True  # forecast_batch equals per-bar forecast: tests/test_strategies.py

    type: Literal["mean_of"] = "mean_of"
    of: list[str] = Field(default_factory=lambda: ["har", "garch"])
    members: list[dict[str, Any]] | None = None  # each baseline's type and parameters (filled in from ``of``)

    @model_validator(mode="after")
    def _different(self) -> MeanOfParams:
        if len(set(self.of)) < len(self.of) or len(self.of) < 2:
            raise ValueError(
                "of: name two or more different baselines, e.g. of: [har, garch] (the mean of one is "
                "that baseline itself)"
            )
        if self.members is not None and len(self.members) != len(self.of):
            raise ValueError("members: is filled in from of (one per baseline); remove it")
        return self

    LINKS_FIELD: ClassVar[str] = "of"

    def links(self) -> list[str]:
        return list(self.of)

    def averages(self) -> list[str]:
        return list(self.of)

    def describe(self) -> str:
        return f"the equal-weight mean of {_names(self.of)}'s forecasts (a forecast combination; nothing learned)"

    def with_links(self, linked: list[dict[str, Any]]) -> MeanOfParams:
        return self.model_copy(update={"members": linked})

    def member_params(self) -> list[dict[str, Any]]:
        return self.members if self.members is not None else [{"type": name} for name in self.of]

    def build(self, seed: int) -> MeanOfBaselines:
        return baseline_strategy(self.member_params(), seed, self.of)

    def min_train_bars(self, horizon: int) -> int:
        return baseline_min_bars(self.member_params(), horizon)


def _names(names: list[str]) -> str:
    """```har` and `garch``, ```a`, `b` and `c``."""
    quoted = [f"`{n}`" for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
