"""``type: imported``: the notebook's saved model (Keras-2 ``.h5`` or ``.keras``) in the walk-forward.

Three ways to use it (``use``):

- ``as_is``: forecast with the saved weights and the saved scaler, no training at all.
  Only as leak-free as the notebook was: if the model saw the test period, so do these
  forecasts (the run log says so).
- ``warm_start``: the first retrain continues the saved weights for ``warm_start.epochs``
  epochs, each later retrain the previous retrain's model; the scaler is refitted on
  every training window.
- ``architecture``: cold retrains of the saved architecture (fresh weights every retrain),
  compiled with Adam at the saved learning rate (or ``learning_rate``), MSE.

The lookback is the model's input length (``memory`` may be left out; if given it must
match). The scaler is a pickled scikit-learn scaler, unpickled only with
``trust_pickle: true`` (unpickling runs code), or a ``scaler.json`` from ``backtest model inspect``.
A saved scaler used ``as_is`` must fit the run's data: one fitted on values of another size (daily
RV, percent, another asset) would scale every input off its range and every forecast by the same
factor, so it is refused unless the median RV of the training window falls inside the middle 98 % of
its fitted range (:func:`check_scaler_fits`).

Example::

    strategies:
      notebook:
        type: imported
        model: notebook/volatility_lstm_model.h5
        scaler: notebook/volatility_scaler.pkl
        trust_pickle: true
        use: as_is
        retrain: {rule: never}
"""

from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from backtester.core.errors import BuilderError, ModelFileError
from backtester.core.series import BarSeries

from ..base import FitInfo, positive_floor
from .archive import scaler_from_json
from .fitted import Fitted
from .forecaster import KerasForecaster, build_fixed
from .inspection import describe_model
from .notebook import check_scaler_file, file_kind, load_model_file, load_scaler
from .params import WindowedKerasParams
from .runtime import keras_module
from .windows import Channels, Scaling

_LOADED: dict[str, Any] = {}  # path -> the loaded Keras model (weights kept), once per process


def _loaded(path: str):
    key = str(Path(path).resolve())
    if key not in _LOADED:
        _LOADED[key] = load_model_file(path)
    return _LOADED[key]


def _input_steps(path: str) -> int | None:
    """The model's lookback, read from the file's stored config without Keras (None if not found)."""
    import zipfile

    p = Path(path)
    try:
        if zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as z:
                config = json.loads(z.read("config.json"))
        else:
            import h5py

            with h5py.File(p, "r") as f:
                raw = f.attrs.get("model_config")
                config = json.loads(raw.decode() if isinstance(raw, bytes) else raw) if raw is not None else None
    except Exception:
        return None  # the full load (preflight) names the problem
    found: list[Any] = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("batch_input_shape", "batch_shape"):
                if isinstance(node.get(key), list) and len(node[key]) == 3:
                    found.append(node[key][1])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(config)
    return int(found[0]) if found and isinstance(found[0], int) else None


SCALED_MEDIAN = (0.01, 0.99)  # where the training RV's median must fall in a saved MinMaxScaler's output range
MAX_MEDIAN_Z = 5.0  # how many standard deviations a saved StandardScaler may put the training RV's median away


def check_scaler_fits(state: dict[str, Any], rv: np.ndarray, where: str) -> None:
    """Refuse a saved scaler whose fitted values are unlike the RV of a training window.

    The rule: the median RV of ``rv`` (the bars known at the retrain, never later ones) must map to
    between 0.01 and 0.99 of a MinMaxScaler's output range (from 1 % to 99 % of the way from its fitted
    minimum to its fitted maximum), or lie within 5 standard deviations of a StandardScaler's mean. The
    notebook's scaler fitted on [0.002, 0.995] maps hourly RV near 0.004 to 0.002: refused.

    >>> state = {"kind": "MinMaxScaler", "data_min": [0.002], "data_max": [0.995]}
    >>> check_scaler_fits(state, np.array([0.0011, 0.004, 0.0093]), "nb.pkl")
    Traceback (most recent call last):
    ...
    backtester.core.errors.ModelFileError: nb.pkl: the scaler was fitted on values in [0.002, 0.995] but the training data's RV lies in [0.0011, 0.0093] (median 0.004, which the scaler maps to 0.002 of its range; it must map inside 0.01 .. 0.99), so every input and forecast would be off scale; refit the scaler on RV of this data's bar size and unit, or leave out scaler to fit one on each training window
    >>> check_scaler_fits(state, np.array([0.1, 0.4, 0.9]), "nb.pkl")
    """
    values = np.asarray(rv, dtype="float64")
    values = values[np.isfinite(values)]
    if not len(values):
        return
    lo, hi, med = float(values.min()), float(values.max()), float(np.median(values))
    seen = f"the training data's RV lies in [{lo:.2g}, {hi:.2g}] (median {med:.2g}"
    fix = (
        "so every input and forecast would be off scale; refit the scaler on RV of this data's bar size and unit, "
        "or leave out scaler to fit one on each training window"
    )
    if state.get("kind") == "MinMaxScaler":
        smin, smax = float(state["data_min"][0]), float(state["data_max"][0])
        pos = (med - smin) / (smax - smin) if smax > smin else float("nan")
        if not SCALED_MEDIAN[0] <= pos <= SCALED_MEDIAN[1]:
            raise ModelFileError(
                f"{where}: the scaler was fitted on values in [{smin:.4g}, {smax:.4g}] but {seen}, "
                f"which the scaler maps to {pos:.2g} of its range; it must map inside "
                f"{SCALED_MEDIAN[0]} .. {SCALED_MEDIAN[1]}), {fix}"
            )
    elif state.get("kind") == "StandardScaler" and state.get("with_mean") and state.get("with_std"):
        mean, scale = float(state["mean"][0]), float(state["scale"][0])
        z = (med - mean) / scale if scale > 0 else float("nan")
        if not abs(z) <= MAX_MEDIAN_Z:
            raise ModelFileError(
                f"{where}: the scaler was fitted on values of mean {mean:.4g} and standard deviation "
                f"{scale:.4g} but {seen}, {z:.3g} standard deviations from that mean; it must lie "
                f"within {MAX_MEDIAN_Z:g}), {fix}"
            )


def build_imported(hp, memory: int, steps: int, path: str, learning_rate: float):
    """The saved architecture with fresh (seeded) weights, compiled with Adam(learning_rate) and MSE."""
    keras = keras_module()
    saved = _loaded(path)
    out = saved.output_shape[-1]
    if out != steps:
        raise BuilderError(
            f"{path}: the model forecasts {out} step(s) but {steps} are needed; "
            f"use multistep: recursive for a 1-step model, or set backtest.horizon: {out}"
        )
    model = keras.models.clone_model(saved)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mse")
    return model


class ImportedParams(WindowedKerasParams):
    PROVEN_BATCH: ClassVar[bool] = True  # forecast_batch equals per-bar forecast: tests/test_strategies.py
    type: Literal["imported"] = "imported"
    model: str  # .h5 (Keras 2 or 3) or .keras
    scaler: str | None = None  # pickled scikit-learn scaler (.pkl) or our scaler.json
    trust_pickle: bool = False  # unpickling runs code: say yes only for files you made
    use: Literal["as_is", "warm_start", "architecture"] = "as_is"
    learning_rate: float | None = Field(default=None, gt=0, le=1)  # default: the one saved with the model

    def net_words(self) -> str:
        how = {
            "as_is": "used as saved, never retrained",
            "warm_start": "retrained from its saved weights",
            "architecture": "its architecture retrained from scratch",
        }[self.use]
        return f"the imported model `{Path(self.model).name}` ({how})"

    @model_validator(mode="before")
    @classmethod
    def _from_file(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("model"), str):
            return data
        path = Path(data["model"])
        if not path.is_file():
            raise ValueError(f"model: {path}: file not found; give the path of the saved .h5 or .keras file")
        try:
            file_kind(path)  # its first bytes only: a file that is no model (or not what its name says) fails now
        except ModelFileError as exc:
            raise ValueError(f"model: {exc}") from None
        steps = _input_steps(str(path))
        data = dict(data)
        if steps is not None:
            if "memory" in data and data["memory"] != steps:
                raise ValueError(
                    f"memory: {data['memory']} but the model in {path} takes {steps} bars "
                    f"(input shape (None, {steps}, 1)); set memory: {steps} or leave it out"
                )
            data["memory"] = steps
        if data.get("use") == "warm_start" and data.get("warm_start") is None:
            data["warm_start"] = {}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ImportedParams:
        if self.scaler is not None and not Path(self.scaler).is_file():
            raise ValueError(f"scaler: {self.scaler}: file not found")
        if self.scaler is not None and not self.scaler.endswith(".json"):
            try:
                check_scaler_file(self.scaler)  # empty, HDF5 or zip: no pickle, refused without unpickling
            except ModelFileError as exc:
                raise ValueError(f"scaler: {exc}") from None
        if self.use == "as_is" and self.target != "rv":
            raise ValueError("target: an imported model used as_is learned RV as is; leave target: rv")
        if self.residual_of is not None:
            raise ValueError(
                "residual_of: an imported model forecasts RV itself; for a hybrid use type: lstm with residual_of"
            )
        if self.features != ["rv"]:
            raise ValueError(
                "features: an imported model keeps its saved input, one channel of RV; leave features "
                "out (or use type: lstm with the features)"
            )
        if self.tuning is not None:
            raise ValueError(
                "tuning: an imported model keeps its saved architecture; to tune around it, use type: lstm "
                "with the hyperparameters `backtest model inspect` prints, and a tuning block"
            )
        return self

    def builder_path(self) -> str:
        return f"imported:{self.model}"

    def builder_function(self):
        return partial(build_imported, path=self.model, learning_rate=self.saved_learning_rate())

    def saved_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        info = self.describe()
        lr = info.get("learning_rate")
        return float(lr) if lr is not None and math.isfinite(float(lr)) else 1e-3

    def describe(self) -> dict[str, Any]:
        return describe_model(_loaded(self.model), self.model)

    def scaler_state(self) -> dict[str, Any] | None:
        """The saved scaler in our JSON form (None: fit one on the training window)."""
        if self.scaler is None:
            return None
        if self.scaler.endswith(".json"):
            try:
                state = json.loads(Path(self.scaler).read_text())
                scaler_from_json(state)
            except ModelFileError as exc:
                raise ModelFileError(f"{self.scaler}: {exc}") from None
            except (ValueError, KeyError, TypeError) as exc:
                raise ModelFileError(
                    f"{self.scaler}: not a scaler.json ({type(exc).__name__}: {exc}); write it with "
                    "`backtest model inspect MODEL --scaler PKL --trust-pickle`"
                ) from None
            return state
        return load_scaler(self.scaler, trusted=self.trust_pickle)

    def build(self, seed: int) -> ImportedForecaster:
        return ImportedForecaster(self, seed)

    def min_train_bars(self, horizon: int) -> int:
        return self.memory + 1 if self.use == "as_is" else super().min_train_bars(horizon)

    def preflight(self, horizon: int) -> None:
        """Load the model and the scaler now: a bad file fails before anything runs."""
        self.scaler_state()
        super().preflight(horizon)

    def check_training_data(self, train: BarSeries) -> None:
        """Refuse a saved scaler used ``as_is`` that does not fit ``train``'s RV (:func:`check_scaler_fits`);
        ``train`` holds only bars known at the retrain (the run checks its first training window before
        anything trains, and every ``as_is`` fit checks its own window)."""
        if self.use == "as_is" and self.scaler is not None:
            check_scaler_fits(self.scaler_state(), train.rv, self.scaler)

    def notes(self, first_issue: Any) -> list[str]:
        if self.use == "architecture":
            return []
        how = "as is" if self.use == "as_is" else "as the start of its warm retrains"
        return [f"uses a saved model {how}: leak-free only if that model was trained on data before {first_issue}"]


class _Saved:
    """The imported weights as a warm start's starting point."""

    def __init__(self, path: str):
        self.path = path

    def trained_weights(self) -> list:
        return _loaded(self.path).get_weights()


class ImportedForecaster(KerasForecaster):
    def fit(self, train: BarSeries, horizon: int) -> FitInfo:
        p: ImportedParams = self.params
        if p.use == "warm_start" and self.start is None:
            self.start_from(_Saved(p.model), f"imported {p.model}")
        if p.use != "as_is":
            return super().fit(train, horizon)
        return self._as_is(train, horizon)

    def _as_is(self, train: BarSeries, horizon: int) -> FitInfo:
        """The saved weights and scaler as they are: nothing trains."""
        from sklearn.preprocessing import MinMaxScaler

        p: ImportedParams = self.params
        p.check_training_data(train)
        model, hp_values = build_fixed(p, self.seed, self.steps(horizon))
        model.set_weights(_loaded(p.model).get_weights())
        state = p.scaler_state()
        floor = positive_floor(train.rv)
        scaler = (
            scaler_from_json(state)
            if state is not None
            else MinMaxScaler(feature_range=(0, 1)).fit(train.rv.reshape(-1, 1))
        )
        started_from = f"imported {p.model} (as is)"
        channels = Channels(p.features, p.target, p.session_timezone)
        self.adopt(Fitted(model, model.get_weights(), Scaling(scaler, floor), channels, hp_values, {}, 0, started_from))
        return FitInfo(
            samples=0,
            extra={
                "hyperparameters": hp_values,
                "started_from": started_from,
                "scaler": "saved" if state is not None else "fitted on the training window",
            },
        )
