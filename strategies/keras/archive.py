"""A fitted Keras forecaster's artifact folder, and the codecs of its scalers.

:func:`save` writes ``model.keras``, ``scaler.json`` (the target's scaler, the floor, a hybrid's scale,
the feature channels and their scaler), ``config.json``, ``history.json`` and ``summary.txt`` (and a
hybrid's ``baseline/``, a GARCH channel's ``garch/``); :func:`load` reads them back into a
:class:`~strategies.keras.fitted.Fitted` on whichever Keras backend is active. Scalers are written as
JSON (:func:`scaler_to_json`, :func:`features_to_json`), never pickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from backtester.core.errors import ModelFileError

from ..combination import baseline_strategy
from .builder import learning_rate
from .features import channels, needs_garch
from .fitted import Fitted
from .runtime import keras_module
from .windows import Channels, Scaling, garch_feature


def save(folder: Path, spec: Any, seed: int, fitted: Fitted, model) -> None:
    """Write ``fitted`` (its ``model`` holding its weights) of a strategy ``spec`` into ``folder``."""
    folder = Path(folder)
    model.save(folder / "model.keras")
    (folder / "scaler.json").write_text(json.dumps(_scaler_file(folder, spec, fitted), indent=2))
    (folder / "config.json").write_text(json.dumps(_config(spec, seed, fitted, model), indent=2, default=str))
    (folder / "history.json").write_text(json.dumps(fitted.history, indent=2))
    lines: list[str] = []
    model.summary(print_fn=lambda line, **kw: lines.append(line))
    (folder / "summary.txt").write_text("".join(lines))


def _scaler_file(folder: Path, spec: Any, fitted: Fitted) -> dict[str, Any]:
    """``scaler.json``'s content (saving a hybrid's baseline and a GARCH channel's model beside it)."""
    scaling, ch = fitted.scaling, fitted.channels
    out = {**scaler_to_json(scaling.target), "output_floor": scaling.floor, "target": spec.target}
    if spec.residual_params is not None:
        out["residual"] = {"of": spec.residual_of, "scale": fitted.residual_scale}
        (folder / "baseline").mkdir(exist_ok=True)
        fitted.baseline.save(folder / "baseline")
    if needs_garch(spec.features):
        (folder / "garch").mkdir(exist_ok=True)
        ch.garch.save(folder / "garch")
    if spec.features != ["rv"]:
        out["features"] = {
            "channels": channels(spec.features, ch.assets),
            "assets": ch.assets,
            "asset": ch.asset,
            "scaler": features_to_json(scaling.features),
        }
    return out


def _config(spec: Any, seed: int, fitted: Fitted, model) -> dict[str, Any]:
    trainable = int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))
    return {
        "builder": spec.builder_path(),
        "hyperparameters": fitted.hp_values,
        "layers": describe_layers(model),
        "learning_rate": learning_rate(model),
        "memory": spec.memory,
        "batch_size": spec.batch_size,
        "epochs": spec.epochs,
        "multistep": spec.multistep,
        "target": spec.target,
        "features": spec.features,
        "residual_of": spec.residual_of,
        "loss": spec.loss or "builder's",
        "validation_split": spec.validation_split,
        "seed": seed,
        "started_from": fitted.started_from,
        "samples": fitted.samples,
        "params_total": int(model.count_params()),
        "params_trainable": trainable,
    }


def load(folder: Path, spec: Any, seed: int) -> Fitted:
    """A saved model and its scalers back (on whichever Keras backend is active)."""
    folder = Path(folder)
    model = keras_module().saving.load_model(folder / "model.keras", compile=False)
    d = json.loads((folder / "scaler.json").read_text())
    baseline, scale, garch = None, None, None
    if "residual" in d:
        scale = float(d["residual"]["scale"])
        baseline = baseline_strategy(spec.residual_params, seed, spec.residual_names())
        baseline.load(folder / "baseline")
    if needs_garch(spec.features):
        garch = garch_feature(spec, seed)
        garch.load(folder / "garch")
    f = d.get("features")
    assets, asset = (f["assets"], f["asset"]) if f is not None else (None, None)
    scaling = Scaling(scaler_from_json(d), float(d["output_floor"]), features_from_json(f["scaler"]) if f else None)
    ch = Channels(spec.features, spec.target, spec.session_timezone, assets, asset, garch)
    return Fitted(model, None, scaling, ch, baseline=baseline, residual_scale=scale)


def describe_layers(model) -> list[dict[str, Any]]:
    """Each layer's class and its main sizes (units, dropout rate)."""
    out = []
    for layer in model.layers:
        entry: dict[str, Any] = {"layer": type(layer).__name__}
        for attr in ("units", "rate", "dropout", "recurrent_dropout", "return_sequences"):
            if hasattr(layer, attr):
                value = getattr(layer, attr)
                entry[attr] = value if isinstance(value, (int, float, bool)) else str(value)
        out.append(entry)
    return out


def scaler_to_json(scaler, path: str | os.PathLike = "scaler") -> dict[str, Any]:
    """Our JSON form of a fitted one-feature MinMaxScaler/StandardScaler; ``path`` names it in errors.

    >>> from sklearn.preprocessing import MinMaxScaler
    >>> d = scaler_to_json(MinMaxScaler().fit([[1.0], [3.0]]))
    >>> d["kind"], d["data_min"], d["scale"], d["n_samples_seen"]
    ('MinMaxScaler', [1.0], [0.5], 2)
    """
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    fix = "refit it on the RV column alone, e.g. MinMaxScaler().fit(rv.reshape(-1, 1)), and pickle that"
    if not isinstance(scaler, (MinMaxScaler, StandardScaler)):
        raise ModelFileError(
            f"{path}: holds a {type(scaler).__module__}.{type(scaler).__name__}, "
            f"not a fitted MinMaxScaler or StandardScaler; {fix}"
        )
    if not hasattr(scaler, "n_samples_seen_") or not hasattr(scaler, "scale_"):
        raise ModelFileError(f"{path}: the {type(scaler).__name__} is not fitted; {fix}")
    n_features = int(getattr(scaler, "n_features_in_", len(np.ravel(scaler.scale_))))
    if n_features != 1:
        raise ModelFileError(
            f"{path}: the {type(scaler).__name__} was fitted on {n_features} features; our models take one (RV): {fix}"
        )
    seen = int(np.max(np.ravel(scaler.n_samples_seen_)))
    if isinstance(scaler, MinMaxScaler):
        return {
            "kind": "MinMaxScaler",
            "feature_range": [float(v) for v in scaler.feature_range],
            "data_min": _floats(scaler.data_min_),
            "data_max": _floats(scaler.data_max_),
            "data_range": _floats(scaler.data_range_),
            "scale": _floats(scaler.scale_),
            "min": _floats(scaler.min_),
            "n_samples_seen": seen,
        }
    return {
        "kind": "StandardScaler",
        "with_mean": bool(scaler.with_mean),
        "with_std": bool(scaler.with_std),
        "mean": None if scaler.mean_ is None else _floats(scaler.mean_),
        "var": None if scaler.var_ is None else _floats(scaler.var_),
        "scale": None if scaler.scale_ is None else _floats(scaler.scale_),
        "n_samples_seen": seen,
    }


def scaler_from_json(d: dict[str, Any]):
    """The scikit-learn scaler back from our JSON form (``kind`` MinMaxScaler or StandardScaler).

    >>> from sklearn.preprocessing import MinMaxScaler
    >>> s = scaler_from_json(scaler_to_json(MinMaxScaler().fit([[1.0], [3.0]])))
    >>> s.transform([[2.0]]).tolist()
    [[0.5]]
    """
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    def arr(key):
        return None if d.get(key) is None else np.asarray(d[key], dtype="float64")

    if d.get("kind") == "StandardScaler":
        s = StandardScaler(with_mean=d["with_mean"], with_std=d["with_std"])
        s.mean_, s.var_, s.scale_ = arr("mean"), arr("var"), arr("scale")
    elif d.get("kind") == "MinMaxScaler":
        s = MinMaxScaler(feature_range=tuple(d["feature_range"]))
        s.data_min_, s.data_max_, s.data_range_ = arr("data_min"), arr("data_max"), arr("data_range")
        s.scale_, s.min_ = arr("scale"), arr("min")
    else:
        raise ModelFileError(f"scaler kind {d.get('kind')!r} is not MinMaxScaler or StandardScaler")
    s.n_samples_seen_, s.n_features_in_ = int(d["n_samples_seen"]), 1
    return s


def features_to_json(scaler) -> dict[str, Any] | None:
    """The feature channels' MinMaxScaler (several columns) as JSON; None where no channel is scaled.

    >>> from sklearn.preprocessing import MinMaxScaler
    >>> s = features_from_json(features_to_json(MinMaxScaler().fit([[1.0, 10.0], [3.0, 30.0]])))
    >>> s.transform([[2.0, 20.0]]).tolist()
    [[0.5, 0.5]]
    """
    if scaler is None:
        return None
    return {
        "data_min": _floats(scaler.data_min_),
        "data_max": _floats(scaler.data_max_),
        "n_samples_seen": int(np.max(np.ravel(scaler.n_samples_seen_))),
    }


def features_from_json(d: dict[str, Any] | None):
    """The feature channels' MinMaxScaler back from :func:`features_to_json` (refitted on its min and max)."""
    if d is None:
        return None
    from sklearn.preprocessing import MinMaxScaler

    lo, hi = np.asarray(d["data_min"], dtype="float64"), np.asarray(d["data_max"], dtype="float64")
    s = MinMaxScaler().fit(np.vstack([lo, hi]))
    s.n_samples_seen_ = int(d["n_samples_seen"])
    return s


def _floats(values) -> list[float]:
    return [float(v) for v in np.ravel(values)]


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` via a temporary name in the same folder and a rename.

    >>> import tempfile, pathlib
    >>> out = write_json(pathlib.Path(tempfile.mkdtemp()) / "x.json", {"a": 1})
    >>> json.loads(out.read_text())
    {'a': 1}
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
