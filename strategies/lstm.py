"""The notebook's LSTM: lookback window of scaled RV -> 1-2 LSTM layers (+ dropout) -> Dense head.

``lstm`` is one Keras builder among others (:mod:`strategies.keras` does the
windows, scaling, training and artifacts): :func:`build_lstm` reads its sizes from
``hp`` like a keras-tuner ``build(hp)``, with the notebook's search space as the
ranges (1-2 layers, 16-64 units, dropout 0-0.3, learning rate 1e-3..1e-2) and the
config's ``layers`` / ``learning_rate`` as the fixed values.

Examples
--------
>>> p = LstmParams(layers=[{"units": 32, "dropout": 0.1}])
>>> p.fixed_values()
{'num_layers': 1, 'units_0': 32, 'dropout_0': 0.1, 'learning_rate': 0.003}
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .keras.forecaster import KerasForecaster
from .keras.params import WindowedKerasParams
from .keras.runtime import keras_module
from .keras.tuning import HyperValue

__all__ = ["LayerSpec", "LstmParams", "Lstm", "build_lstm"]

Lstm = KerasForecaster


def build_lstm(hp, memory: int, steps: int, n_features: int = 1):
    """LSTM(units_0) [-> Dropout] [-> LSTM(units_1) [-> Dropout]] -> Dense(steps), Adam, MSE; input
    ``(memory, n_features)`` (one channel, RV, unless ``features`` lists more)."""
    keras = keras_module()
    n_layers = hp.Int("num_layers", 1, 2, default=1)
    layers = [keras.Input(shape=(memory, n_features))]
    for k in range(n_layers):
        units = hp.Int(f"units_{k}", 16, 64, step=16, default=32)
        dropout = hp.Float(f"dropout_{k}", 0.0, 0.3, step=0.1, default=0.1)
        layers.append(keras.layers.LSTM(units, return_sequences=k < n_layers - 1))
        if dropout > 0:
            layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(steps))
    model = keras.Sequential(layers)
    lr = hp.Float("learning_rate", 1e-3, 1e-2, sampling="log", default=3e-3)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr), loss="mse")
    return model


class LayerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    units: int = Field(default=32, ge=1, le=1024)
    dropout: float = Field(default=0.1, ge=0, lt=1)


class LstmParams(WindowedKerasParams):
    PROVEN_BATCH: ClassVar[bool] = True  # forecast_batch equals per-bar forecast: tests/test_strategies.py
    type: Literal["lstm"] = "lstm"
    layers: list[LayerSpec] = Field(default_factory=lambda: [LayerSpec()], min_length=1, max_length=2)
    learning_rate: float = Field(default=3e-3, gt=0, le=1)

    def builder_path(self) -> str:
        return "strategies.lstm:build_lstm"

    def net_words(self) -> str:
        units = " and ".join(f"{layer.units}" for layer in self.layers)
        drop = sorted({layer.dropout for layer in self.layers})
        n = len(self.layers)
        return (
            f"an LSTM of {n} layer{'s' if n > 1 else ''} of {units} units (dropout {'/'.join(f'{d:g}' for d in drop)})"
        )

    @model_validator(mode="after")
    def _space_fits_layers(self) -> LstmParams:
        """A tuning space for ``units``/``dropout`` must stay within what a layer takes (1..1024 units, dropout < 1)."""
        if self.tuning is None:
            return self
        limits = {"units": (1, 1024), "dropout": (0, 0.999), "num_layers": (1, 2)}
        for key, spec in self.tuning.space.items():
            base = key.rsplit("_", 1)[0] if key.rsplit("_", 1)[-1].isdigit() else key
            if base not in limits:
                continue
            values = (
                spec.values
                if getattr(spec, "values", None) is not None
                else ([spec.min, spec.max] if hasattr(spec, "min") else [spec])
            )
            lo, hi = limits[base]
            bad = [v for v in values if not isinstance(v, (int, float)) or not lo <= v <= hi]
            if bad:
                shown = f"{bad[0]:g}" if isinstance(bad[0], (int, float)) else repr(bad[0])
                raise ValueError(f"tuning.space.{key}: {shown} is outside {lo}..{hi}; narrow the range")
        return self

    def preflight(self, horizon: int) -> None:
        """Nothing to check: the builder is ours and the layers are validated, so a process that only
        hands fits to workers never imports Keras (``type: keras`` still builds its user's model once)."""

    def space_names(self, key: str) -> list[str]:
        """``units`` and ``dropout`` in a tuning space mean every layer's (``units_0``, ``units_1``)."""
        return [f"{key}_0", f"{key}_1"] if key in ("units", "dropout") else [key]

    def with_hyperparameters(self, values: dict[str, HyperValue]) -> LstmParams:
        """The layers and learning rate that ``values`` (tuned or imported, builder names) describe.

        >>> LstmParams().with_hyperparameters({"num_layers": 2, "units_0": 64, "dropout_0": 0.2,
        ...     "units_1": 16, "dropout_1": 0.0, "learning_rate": 0.005}).fixed_values()
        {'num_layers': 2, 'units_0': 64, 'dropout_0': 0.2, 'units_1': 16, 'dropout_1': 0.0, 'learning_rate': 0.005}
        """
        base = super().with_hyperparameters(values)
        n = int(values.get("num_layers", len(self.layers)))
        layers = []
        for k in range(n):
            old = self.layers[k] if k < len(self.layers) else LayerSpec()
            layers.append(
                LayerSpec(
                    units=int(values.get(f"units_{k}", old.units)),
                    dropout=float(values.get(f"dropout_{k}", old.dropout)),
                )
            )
        lr = float(values.get("learning_rate", self.learning_rate))
        return base.model_copy(update={"layers": layers, "learning_rate": lr})

    def fixed_values(self) -> dict[str, HyperValue]:
        out: dict[str, HyperValue] = {"num_layers": len(self.layers)}
        for k, spec in enumerate(self.layers):
            out[f"units_{k}"] = spec.units
            out[f"dropout_{k}"] = spec.dropout
        out["learning_rate"] = self.learning_rate
        return out
