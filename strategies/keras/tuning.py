"""The ``tuning`` block of a Keras strategy: the tuner, its budget, objective, cadence and space.

A Keras strategy with a ``tuning`` block is tuned at its first retrain and then on
its own cadence (``every``: ``first``, ``each``, every K retrains, or a calendar rule
such as ``{rule: monthly, day: 1}``); between tunings its retrains reuse the last
best hyperparameters. A search drives the same ``build(hp, memory, steps)`` builder
as training does, over the config's ``space`` (default: the ranges the builder
declares, for ``lstm`` the notebook's: 1-2 layers, 16-64 units step 16, dropout
0-0.3 step 0.1, learning rate 1e-3..1e-2 log-sampled).

The search itself is :mod:`strategies.keras.search`.

Examples
--------
>>> cfg = TuningConfig(space={"units": {"min": 16, "max": 64, "step": 16}, "memory": {"values": [30, 60]}})
>>> cfg.tuner, cfg.max_trials, cfg.every
('random', 10, 'first')
>>> tuning_points("first", [0, 1, 2]), tuning_points(2, [0, 1, 2, 3, 4])
([True, False, False], [True, False, True, False, True])
>>> TuningConfig(space={"units": {"min": 64, "max": 16}})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for TuningConfig
space
  Value error, units: min 64 is above max 16; swap them ...
"""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

HyperValue = int | float | str | bool


class Range(BaseModel):
    """One searched hyperparameter: ``{min, max[, step][, sampling]}`` or ``{values: [...]}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min: float | None = None
    max: float | None = None
    step: float | None = Field(default=None, gt=0)
    sampling: Literal["linear", "log"] = "linear"
    values: list[HyperValue] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _bounds(self) -> Range:
        if self.values is not None:
            if self.min is not None or self.max is not None:
                raise ValueError("give either values: [...] or min/max, not both")
            return self
        if self.min is None or self.max is None:
            raise ValueError("give min and max (e.g. {min: 16, max: 64, step: 16}) or values: [...]")
        if self.min > self.max:
            raise ValueError(f"min {_num(self.min)} is above max {_num(self.max)}; swap them")
        if self.sampling == "log" and self.min <= 0:
            raise ValueError(f"log sampling needs min > 0 (got {_num(self.min)})")
        return self

    @property
    def integer(self) -> bool:
        return (
            all(v is None or float(v).is_integer() for v in (self.min, self.max, self.step)) and self.sampling != "log"
        )

    def declare(self, hp, name: str) -> None:
        """Declare this range as ``name`` on a ``keras_tuner.HyperParameters``."""
        if self.values is not None:
            hp.Choice(name, self.values)
        elif self.integer:
            hp.Int(name, int(self.min), int(self.max), step=int(self.step or 1))
        else:
            hp.Float(name, float(self.min), float(self.max), step=self.step, sampling=self.sampling)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


class TuningConfig(BaseModel):
    """``strategies.<name>.tuning``: the tuner, its budget, its objective, its cadence and its space."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    tuner: Literal["random", "bayesian", "hyperband"] = "random"
    max_trials: int = Field(default=10, ge=1)  # random / bayesian; hyperband's budget is epochs and factor
    epochs: int = Field(default=5, ge=1)  # per trial (hyperband: the most any trial gets)
    objective: Literal["val_loss", "val_qlike"] = "val_loss"
    every: Literal["first", "each"] | int | dict[str, Any] = "first"
    space: dict[str, Any] = Field(default_factory=dict)  # name -> Range or a fixed value
    validation_split: float | None = Field(default=None, gt=0, lt=0.5)  # default: the strategy's, or 0.2

    @field_validator("space", mode="before")
    @classmethod
    def _ranges(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        from pydantic import ValidationError

        out = {}
        for name, spec in v.items():
            if isinstance(spec, dict):
                try:
                    out[name] = Range.model_validate(spec)
                except ValidationError as exc:
                    err = exc.errors()[0]
                    where = ".".join(str(p) for p in err["loc"])
                    msg = err["msg"].removeprefix("Value error, ")
                    raise ValueError(f"{name}{'.' + where if where else ''}: {msg}") from None
            elif isinstance(spec, (int, float, str, bool)):
                out[name] = spec
            else:
                raise ValueError(f"{name}: give {{min, max[, step][, sampling]}}, {{values: [...]}} or one fixed value")
        return out

    @field_validator("every")
    @classmethod
    def _cadence(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError("every: 'first', 'each', a number of retrains K, or a rule such as {rule: monthly}")
        if isinstance(v, int) and v < 1:
            raise ValueError(f"every {v} retrains: give K >= 1 (1 tunes at every retrain)")
        if isinstance(v, dict):
            from pydantic import TypeAdapter, ValidationError

            from backtester.core.schedule import RetrainRule

            try:
                TypeAdapter(RetrainRule).validate_python(v)
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"][1:])
                raise ValueError(f"rule{'.' + where if where else ''}: {err['msg']}") from None
        return v

    def rule(self):
        """The calendar rule of ``every`` (None when ``every`` counts retrains)."""
        if not isinstance(self.every, dict):
            return None
        from pydantic import TypeAdapter

        from backtester.core.schedule import RetrainRule

        return TypeAdapter(RetrainRule).validate_python(self.every)


def tuning_points(every: str | int, retrains: list, tune_times: pd.DatetimeIndex | None = None) -> list[bool]:
    """Which retrains tune: always the first; then per ``every`` (or at the first retrain at or
    after each time of ``tune_times``, a calendar rule's times)."""
    n = len(retrains)
    if tune_times is not None:
        out = [False] * n
        pos = pd.DatetimeIndex(retrains).searchsorted(tune_times, side="left")
        for p in pos:
            if p < n:
                out[p] = True
    elif every == "each":
        out = [True] * n
    elif every == "first":
        out = [False] * n
    else:
        out = [k % int(every) == 0 for k in range(n)]
    if n:
        out[0] = True
    return out


def declare_space(hp, params) -> None:
    """The config's space on ``hp`` (``units``/``dropout`` on ``lstm`` mean every layer's), and
    the strategy's fixed values that the space does not search."""
    space = params.tuning.space
    names: dict[str, Range | HyperValue] = {}
    for key, spec in space.items():
        for name in params.space_names(key):
            names[name] = spec
    for name, spec in names.items():
        if isinstance(spec, Range):
            spec.declare(hp, name)
        else:
            hp.Fixed(name, spec)
    for name, value in params.tuning_fixed().items():
        if name not in names:
            hp.Fixed(name, value)
