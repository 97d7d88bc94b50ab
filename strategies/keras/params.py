"""The config of a Keras strategy (``type: keras`` and what ``lstm`` and ``imported`` share): lookback,
training loop, multi-step scheme, target, loss, features, hybrid, tuning, warm start, scope.

A user's builder (``type: keras``)::

    def build(hp, memory, steps):
        import keras
        model = keras.Sequential([keras.Input((memory, 1)),
                                  keras.layers.GRU(hp.Int("units", 8, 64, default=16)),
                                  keras.layers.Dense(steps)])
        model.compile(optimizer=keras.optimizers.Adam(hp.Float("lr", 1e-4, 1e-2, default=1e-3)), loss="mse")
        return model

The builder is called as keras-tuner calls ``build(hp)``: ``hp`` is a ``keras_tuner.HyperParameters`` whose
values are fixed from the config's ``hyperparameters`` (any value the builder asks for that the config does
not fix takes the builder's default). Keras is imported on first use, after the backend is chosen, so
configs without a Keras strategy never load it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from backtester.core.errors import ConfigError
from backtester.core.schedule import retrain_times
from backtester.core.series import BarSeries

from ..base import Params, session_zone
from ..capabilities import StackedFit
from ..combination import baseline_min_bars
from ..loading import check_builder_signature, import_object, refuse_standard_library
from .features import check_features, needs_garch
from .forecaster import KerasForecaster, build_fixed
from .losses import check_pair
from .runtime import keras_module
from .search import tune
from .stacked import fit_stacked
from .tuning import HyperValue, TuningConfig, tuning_points


class WarmStart(BaseModel):
    """``warm_start: {epochs: N}``: each retrain continues the previous retrain's model for N epochs."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    epochs: int = Field(default=2, ge=1, le=100_000)


class WindowedKerasParams(Params):
    """What every Keras strategy shares: lookback, training loop, multi-step scheme."""

    PROVEN_BATCH: ClassVar[bool] = True  # forecast_batch equals per-bar forecast: tests/test_strategies.py

    memory: int = Field(default=60, ge=1, le=100_000)  # lookback in bars (or a duration such as 60h, 5D in a config)
    batch_size: int = Field(default=16, ge=1, le=1_000_000)
    epochs: int = Field(default=5, ge=1, le=100_000)
    multistep: Literal["direct", "recursive"] = "direct"
    target: Literal["rv", "log", "variance"] = "rv"  # what the model learns; forecasts are always volatility
    loss: Literal["mse", "qlike", "mse_log"] | None = None  # None: the builder's (strategies.keras.losses)
    features: list[str | dict[str, list[int]]] = Field(default_factory=lambda: ["rv"])  # strategies.keras.features
    session_timezone: str = "UTC"  # hour_of_day / weekday in this zone (default: the data calendar's)
    residual_of: str | list[str] | None = None  # a baseline of the run (or several: their mean forecast); the net
    #                                           learns the correction to its forecast
    residual_params: dict[str, Any] | list[dict[str, Any]] | None = None  # its type and parameters (filled in)
    validation_split: float = Field(default=0.1, ge=0, lt=0.5)
    tuning: TuningConfig | None = None  # keras-tuner at the first retrain, then on its cadence
    warm_start: WarmStart | None = None  # continue the previous retrain's model instead of starting fresh
    reuse_compiled: bool = True  # keep one compiled model per architecture and reset it per retrain
    jit_compile: bool | None = None  # XLA-compile the train step (None: Keras' choice, on for jax, off for TF on CPU)
    scope: Literal["local", "global"] = "local"  # global: one model per retrain, trained on every asset of a universe
    schedule_of: str | None = None  # global: the asset whose retrain times every asset follows (if they differ)

    @model_validator(mode="after")
    def _loss_fits_target(self) -> WindowedKerasParams:
        check_pair(self.loss, self.target)
        return self

    @field_validator("features")
    @classmethod
    def _known_features(cls, v: list) -> list:
        return check_features(v)

    @field_validator("residual_of", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        if v is None or isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v)):
            return v
        raise ValueError(
            f"a baseline's name (residual_of: har) or a list of names (residual_of: [har, garch]), not {v!r}"
        )

    @field_validator("residual_of")
    @classmethod
    def _one_or_several(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and (not v or len(set(v)) < len(v)):
            raise ValueError(
                "name one baseline (residual_of: har) or several different ones, whose mean forecast "
                "the net corrects (residual_of: [har, garch])"
            )
        return v[0] if isinstance(v, list) and len(v) == 1 else v

    LINKS_FIELD: ClassVar[str] = "residual_of"

    def links(self) -> list[str]:
        return self.residual_names()

    def with_links(self, linked: list[dict[str, Any]]) -> WindowedKerasParams:
        return self.model_copy(update={"residual_params": linked[0] if isinstance(self.residual_of, str) else linked})

    def starts_from(self) -> list[str]:
        return self.residual_names()

    def measures(self) -> list[str]:
        """The realized measures among its ``features`` (the config checks that the data give them)."""
        from backtester.core.series import MEASURES

        return [f for f in self.features if isinstance(f, str) and f in MEASURES]

    def net_words(self) -> str:
        """What the network is, e.g. ``an LSTM of 1 layer of 32 units (dropout 0.1)``."""
        return "a Keras network"

    def describe(self) -> str:
        """What the model is in words: the network, its inputs and training, and for a hybrid what it corrects.

        >>> from strategies.lstm import LstmParams
        >>> LstmParams(epochs=2).describe()
        "the notebook's LSTM: an LSTM of 1 layer of 32 units (dropout 0.1) on the last 60 bars of RV, trained on MSE, 2 epochs"
        """
        words = [_feature_words(k, v) for item in self.features for k, v in _items(item)]
        inputs = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
        net = (
            f"{self.net_words()} on the last {self.memory} bars of {inputs}, trained on "
            f"{(self.loss or 'mse').upper().replace('_LOG', ' of log RV')}, {self.epochs} epoch{'s' if self.epochs > 1 else ''}"
        )
        names = self.residual_names()
        if not names:
            plain = self.features == ["rv"] and self.net_words().startswith("an LSTM")
            return f"the notebook's LSTM: {net}" if plain else net
        start = f"`{names[0]}`" if len(names) == 1 else "the mean of " + " and ".join(f"`{n}`" for n in names)
        return f"a hybrid: {start} plus a learned correction by {net}"

    def residual_names(self) -> list[str]:
        """The baselines a hybrid corrects (``[]`` if it is not one)."""
        return (
            []
            if self.residual_of is None
            else [self.residual_of]
            if isinstance(self.residual_of, str)
            else list(self.residual_of)
        )

    @model_validator(mode="after")
    def _features_fit(self) -> WindowedKerasParams:
        if self.features != ["rv"] and self.multistep == "recursive":
            raise ValueError(
                "features: a recursive model feeds its forecasts back as the next input, which only "
                "works with features: [rv]; use multistep: direct"
            )
        if self.residual_params is not None and self.residual_of is None:
            raise ValueError(
                "residual_params: is filled in from residual_of (the baseline's own parameters); "
                "remove it and name the baseline: residual_of: har"
            )
        if self.residual_of is not None and (self.multistep == "recursive" or self.scope == "global"):
            raise ValueError(
                "residual_of: a hybrid forecasts every horizon at once on one asset's baseline; use "
                "multistep: direct and scope: local"
            )
        if needs_garch(self.features) and self.scope == "global":
            raise ValueError(
                "features: garch_variance / seasonal_profile fit a GARCH per training window of one "
                "asset; a global model (scope: global) cannot use them yet: drop them or use scope: local"
            )
        if "asset" in self.features and self.scope != "global":
            raise ValueError(
                "features: asset codes which asset a sample is from; only a global model (scope: "
                "global) trains on several"
            )
        return self

    @staticmethod
    def data_defaults(data) -> dict[str, Any]:
        """hour_of_day / weekday follow session time: New York for ``fx``, the exchange's zone on an exchange."""
        return session_zone(data)

    @classmethod
    def bar_values(cls, raw: dict[str, Any], to_bars: Callable[[Any, str], int], where: str) -> dict[str, Any]:
        """``features: [{rv_mean: [1D, 7D]}]``: the spans as bar counts."""
        items = raw.get("features")
        if not isinstance(items, list):
            return raw
        out = [
            {"rv_mean": [to_bars(k, f"{where}.features.rv_mean") for k in item["rv_mean"]]}
            if isinstance(item, dict) and isinstance(item.get("rv_mean"), list)
            else item
            for item in items
        ]
        return {**raw, "features": out}

    @model_validator(mode="after")
    def _global_alone(self) -> WindowedKerasParams:
        if self.scope == "global" and (self.tuning is not None or self.warm_start is not None):
            raise ValueError(
                "scope: global trains one model on every asset from scratch at each retrain; it "
                "cannot be combined with tuning or warm_start yet: remove one of them"
            )
        if self.scope == "local" and self.schedule_of is not None:
            raise ValueError("schedule_of: only a global model (scope: global) follows one asset's retrain times")
        return self

    DURATION_FIELDS: ClassVar[tuple[str, ...]] = ("memory",)

    def builder_path(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def builder_function(self) -> Callable:
        return import_object(self.builder_path(), "builder", "a function build(hp, memory, steps)")

    def fixed_values(self) -> dict[str, HyperValue]:
        """Hyperparameter values fixed for the builder."""
        return {}

    def build(self, seed: int) -> KerasForecaster:
        return KerasForecaster(self, seed)

    def space_names(self, key: str) -> list[str]:
        """The hyperparameter names a ``tuning.space`` key stands for (itself, by default)."""
        return [key]

    def tuning_fixed(self) -> dict[str, HyperValue]:
        """Values that stay fixed while tuning (unless the space searches them)."""
        return {}

    def with_hyperparameters(self, values: dict[str, HyperValue]) -> WindowedKerasParams:
        """These params with tuned (or imported) hyperparameter values fixed; ``memory`` among them sets the lookback."""
        update: dict[str, Any] = {}
        if "memory" in values:
            update["memory"] = int(values["memory"])
        return self.model_copy(update=update)

    def min_train_bars(self, horizon: int) -> int:
        steps = horizon if self.multistep == "direct" else 1
        own = self.memory + steps + 20
        if needs_garch(self.features):  # the GARCH channels' model needs its own history
            own = max(own, 100 + steps)
        if self.residual_params is not None:  # samples start where the baseline can forecast
            return max(own, baseline_min_bars(self.residual_params, steps) + steps + 20)
        return own

    def fit_cost(self, train_bars: int) -> float:
        return float(train_bars * self.epochs)

    def preflight(self, horizon: int) -> None:
        """Build the model once (no training) so a bad builder fails before any fit."""
        build_fixed(self, 0, horizon if self.multistep == "direct" else 1)

    def chains(self) -> bool:
        return self.warm_start is not None

    def stacks(self) -> bool:
        """Local fits of our own forecaster, compiled (a warm-start chain stacks with its seed members' and
        assets' chains, in lockstep): an imported model (or a params class whose ``build`` returns another
        forecaster), a global model or ``jit_compile: false`` train alone."""
        return self.scope == "local" and self.jit_compile is not False and type(self).build is WindowedKerasParams.build

    def stacked_fitter(self) -> StackedFit | None:
        return fit_stacked if self.stacks() else None

    def stacks_trials(self) -> bool:
        """A random search's trials train together (Bayesian search and Hyperband choose each trial from
        the ones before it)."""
        return self.stacks() and self.tuning is not None and self.tuning.tuner == "random"

    def pools_assets(self) -> bool:
        return self.scope == "global"

    def schedule_asset(self) -> str | None:
        return self.schedule_of

    def tuning_points(self, retrains: Any, bars: Any, start: Any, end: Any) -> list[bool]:
        """The first retrain tunes, then per ``tuning.every`` (none without a tuning block)."""
        if self.tuning is None:
            return [False] * len(retrains)
        rule = self.tuning.rule()
        times = retrain_times(rule, bars, start, end) if rule is not None else None
        return tuning_points(self.tuning.every, list(retrains), times)

    def tune(
        self, train: BarSeries, horizon: int, seed: int, folder: Path, stack: int = 1
    ) -> tuple[dict[str, HyperValue], Any]:
        return tune(self, train, horizon, seed, folder, stack if self.stacks() else 1)

    def tuning_budget(self) -> tuple[int, int]:
        t = self.tuning
        if t is None:
            return (0, 0)
        trials = t.max_trials if t.tuner != "hyperband" else 3 * max(1, int(math.log(t.epochs) / math.log(3)) + 1)
        return (trials, t.epochs)

    def train_samples(self, train_bars: int, horizon: int) -> int:
        steps = horizon if self.multistep == "direct" else 1
        n = max(0, train_bars - self.memory - steps + 1)
        return n - int(n * self.validation_split)

    def fit_epochs(self) -> int | None:
        return self.epochs

    def timing_copy(self) -> WindowedKerasParams:
        return self.model_copy(update={"epochs": 1, "tuning": None})

    def needs_backend(self) -> bool:
        return True

    @classmethod
    def seeded(cls) -> bool:
        return True

    def worker_setup(self) -> None:
        keras_module()  # imported now, so a segment's fit time is not the worker's start-up


class KerasParams(WindowedKerasParams):
    """``type: keras``: your own builder, ``"package.module:function"``."""

    PROVEN_BATCH: ClassVar[bool] = True  # forecast_batch equals per-bar forecast: tests/test_strategies.py

    type: Literal["keras"] = "keras"
    builder: str
    hyperparameters: dict[str, HyperValue] = Field(default_factory=dict)

    @field_validator("builder")
    @classmethod
    def _importable(cls, v: str) -> str:
        try:
            refuse_standard_library(v, "builder", "a function build(hp, memory, steps)")
            fn = import_object(v, "builder", "a function build(hp, memory, steps)")
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("builder: ")) from None
        if not callable(fn):
            raise ValueError(f"{v!r} is {type(fn).__name__}, not a function build(hp, memory, steps)")
        check_builder_signature(fn, v)
        return v

    def builder_path(self) -> str:
        return self.builder

    def fixed_values(self) -> dict[str, HyperValue]:
        return dict(self.hyperparameters)

    def tuning_fixed(self) -> dict[str, HyperValue]:
        return dict(self.hyperparameters)

    def with_hyperparameters(self, values: dict[str, HyperValue]) -> KerasParams:
        base = super().with_hyperparameters(values)
        hp = {**self.hyperparameters, **{k: v for k, v in values.items() if k != "memory"}}
        return base.model_copy(update={"hyperparameters": hp})


def _items(item: str | dict[str, list[int]]) -> list[tuple[str, list[int]]]:
    """A ``features`` entry as (name, bar counts) pairs: ``rv`` -> ``[("rv", [])]``."""
    return [(item, [])] if isinstance(item, str) else [(k, list(v)) for k, v in item.items()]


FEATURE_WORDS = {"rv": "RV", "log_rv": "log RV", "rv_mean": "RV's means over {} bars", "hour_of_day": "the hour of day"}


def _feature_words(name: str, bars: list[int]) -> str:
    """``rv_mean``, [24, 168] -> ``RV's means over 24/168 bars``."""
    return FEATURE_WORDS.get(name, name.replace("_", " ")).format("/".join(str(b) for b in bars))
