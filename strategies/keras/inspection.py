"""What ``backtest model inspect`` shows of a saved model: :func:`describe_model` says what the model is (its
file, format, layers, shapes, optimizer and sizes), in the naming of our ``lstm`` builder where it fits;
:func:`summary_lines` is the human summary the CLI prints; :func:`inspect_model` writes the description
(and a converted scaler) as JSON.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backtester.core.errors import ModelFileError

from .archive import write_json
from .notebook import file_kind, h5_attr, load_model_file, load_scaler, open_h5

# ------------------------------------------------------------------------------------------- describe


def describe_model(model, path: str | os.PathLike, h5_training_config: dict | None = None) -> dict[str, Any]:
    """What ``model_config.json`` holds: the file, its format, layers, shapes, optimizer, sizes.

    ``h5_training_config`` is the ``training_config`` a Keras 2 ``.h5`` keeps (optimizer,
    learning rate, loss); when None it is read from the file at ``path`` (for a ``.keras``
    file, its ``compile_config``). ``hyperparameters`` is set when the model is a stack
    of LSTM (+ Dropout) layers ending in Dense, as our ``lstm`` builder makes; otherwise
    it is None and ``hyperparameters_note`` says why.

    Examples
    --------
    >>> info = describe_model(model, "volatility_lstm_model.h5")    # doctest: +SKIP
    >>> info["lookback"], info["output_steps"], info["optimizer"], info["learning_rate"]  # doctest: +SKIP
    (60, 1, 'Adam', 0.005)
    """
    path = Path(path)
    meta = _file_meta(path)
    stored = meta.pop("training")
    training = _training_summary(h5_training_config if h5_training_config is not None else stored)
    input_shape = _shape(model.input_shape)
    output_shape = _shape(model.output_shape)
    single_input = bool(input_shape) and not isinstance(input_shape[0], list)
    lookback = input_shape[1] if single_input and len(input_shape) == 3 else None
    features = input_shape[-1] if single_input else None
    output_steps = output_shape[-1] if output_shape and not isinstance(output_shape[0], list) else None
    layers = [_describe_layer(layer) for layer in model.layers]
    hp, note = _lstm_hyperparameters(layers, training)
    info: dict[str, Any] = {
        "source": str(path.resolve()),
        **meta,
        "model_class": type(model).__name__,
        "layers": layers,
        "input_shape": input_shape,
        "lookback": lookback,
        "features": features,
        "output_shape": output_shape,
        "output_steps": output_steps,
        **training,
        "params_total": int(model.count_params()),
        "params_trainable": int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
        "hyperparameters": hp,
    }
    if note:
        info["hyperparameters_note"] = note
    return info


def _file_meta(path: Path) -> dict[str, Any]:
    """format, keras_version, backend and the stored training config of the file at ``path``."""
    kind = file_kind(path)
    if kind == "keras":
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            meta = json.loads(z.read("metadata.json")) if "metadata.json" in names else {}
            config = json.loads(z.read("config.json")) if "config.json" in names else {}
        return {
            "format": "keras",
            "keras_version": meta.get("keras_version"),
            "backend": None,
            "training": config.get("compile_config"),
        }
    with open_h5(path) as f:
        version = h5_attr(f, "keras_version")
        raw = h5_attr(f, "training_config")
        backend = h5_attr(f, "backend")
    keras2 = version is None or version.split(".")[0] in ("1", "2")
    try:
        training = json.loads(raw) if raw else None
    except ValueError:  # unreadable: describe the model without it
        training = None
    return {
        "format": "keras2-h5" if keras2 else "keras3-h5",
        "keras_version": version,
        "backend": backend,
        "training": training,
    }


def _training_summary(training: dict | None) -> dict[str, Any]:
    """optimizer name, learning rate (a schedule's initial one) and loss from a Keras 2 ``training_config``
    or a Keras 3 ``compile_config``.

    >>> _training_summary({"loss": "mse", "optimizer_config": {"class_name": "Custom>Adam",
    ...                    "config": {"name": "Adam", "learning_rate": 0.004999999888241291}}})
    {'optimizer': 'Adam', 'learning_rate': 0.005, 'loss': 'mse'}
    """
    out: dict[str, Any] = {"optimizer": None, "learning_rate": None, "loss": None}
    if not training:
        return out
    opt = training.get("optimizer_config") or training.get("optimizer")
    if isinstance(opt, str):
        out["optimizer"] = opt
    elif isinstance(opt, dict):
        cfg = opt.get("config") or {}
        name = opt.get("class_name") or cfg.get("name")
        out["optimizer"] = name.split(">")[-1] if isinstance(name, str) else None  # tf-keras 2.13+: "Custom>Adam"
        lr = cfg.get("learning_rate")
        out["learning_rate"] = _learning_rate(lr)
        if isinstance(lr, dict):
            out["learning_rate_schedule"] = lr.get("class_name")
    loss = training.get("loss")
    if isinstance(loss, dict):
        loss = (loss.get("config") or {}).get("name") or loss.get("class_name")
    out["loss"] = loss if isinstance(loss, str) else None if loss is None else str(loss)
    return out


def _learning_rate(value: Any) -> float | None:
    """A stored learning rate as the number the user typed: Keras keeps a float32 (0.004999999888 for 0.005).

    >>> _learning_rate(0.004999999888241291), _learning_rate({"class_name": "ExponentialDecay",
    ...     "config": {"initial_learning_rate": 0.01}}), _learning_rate(None)
    (0.005, 0.01, None)
    """
    if isinstance(value, dict):  # a schedule: its starting rate
        value = (value.get("config") or {}).get("initial_learning_rate")
    if isinstance(value, (int, float)):
        return float(str(np.float32(value)))
    return None


def _shape(shape: Any) -> Any:
    if isinstance(shape, tuple):
        return [None if d is None else int(d) for d in shape]
    if isinstance(shape, list):
        return [_shape(s) for s in shape]
    return shape


def _describe_layer(layer) -> dict[str, Any]:
    """A layer's class and its main settings (units, dropout rates, return_sequences, activation)."""
    entry: dict[str, Any] = {"class": type(layer).__name__, "name": layer.name}
    for attr in ("units", "rate", "dropout", "recurrent_dropout", "return_sequences"):
        value = getattr(layer, attr, None)
        if isinstance(value, (bool, int, float)):
            entry[attr] = value
    inner = getattr(layer, "forward_layer", None) or getattr(layer, "layer", None)  # Bidirectional, TimeDistributed
    if inner is not None and hasattr(inner, "name"):
        entry["wraps"] = _describe_layer(inner)
    activation = getattr(layer, "activation", None)
    if callable(activation):
        entry["activation"] = getattr(activation, "__name__", str(activation))
    return entry


def _lstm_hyperparameters(layers: list[dict], training: dict[str, Any]):
    """Our ``lstm`` builder's hyperparameters for LSTM [Dropout] [LSTM [Dropout]] Dense, or (None, why)."""
    body = [entry for entry in layers if entry["class"] != "InputLayer"]
    if not body or body[-1]["class"] != "Dense":
        return None, "not a stack of LSTM (+ Dropout) layers ending in Dense"
    hp: dict[str, Any] = {}
    k = -1
    for entry in body[:-1]:
        if entry["class"] == "LSTM":
            k += 1
            hp[f"units_{k}"], hp[f"dropout_{k}"] = entry["units"], 0.0
        elif entry["class"] == "Dropout" and k >= 0:
            hp[f"dropout_{k}"] = entry["rate"]
        else:
            return None, f"not a stack of LSTM (+ Dropout) layers ending in Dense (has {entry['class']})"
    if k < 0:
        return None, "no LSTM layer"
    lstms = [entry for entry in body if entry["class"] == "LSTM"]
    if any(entry.get("dropout") or entry.get("recurrent_dropout") for entry in lstms):
        return None, "an LSTM uses dropout/recurrent_dropout inside the cell, which the lstm builder does not set"
    if any(entry.get("activation") != "tanh" for entry in lstms) or body[-1].get("activation") != "linear":
        return None, "activations differ from the lstm builder's (tanh LSTMs, linear Dense)"
    out: dict[str, Any] = {"num_layers": k + 1}
    for i in range(k + 1):
        out[f"units_{i}"], out[f"dropout_{i}"] = hp[f"units_{i}"], hp[f"dropout_{i}"]
    if training["learning_rate"] is not None:
        out["learning_rate"] = training["learning_rate"]
    notes = []
    if k + 1 > 2:
        notes.append(f"{k + 1} LSTM layers; the lstm builder takes 1 or 2")
    if training.get("learning_rate_schedule"):
        notes.append(f"learning_rate is the initial rate of a {training['learning_rate_schedule']} schedule")
    return out, "; ".join(notes) or None


def summary_lines(info: dict[str, Any], scaler: dict[str, Any] | None = None) -> list[str]:
    """A short human summary of :func:`describe_model`'s dict (and a converted scaler).

    >>> info = {"source": "/m.h5", "format": "keras2-h5", "keras_version": "2.21.0", "model_class": "Sequential",
    ...         "layers": [{"class": "LSTM", "units": 8, "return_sequences": False}, {"class": "Dropout", "rate": 0.1},
    ...                    {"class": "Dense", "units": 1}], "lookback": 60, "features": 1, "output_steps": 1,
    ...         "optimizer": "Adam", "learning_rate": 0.005, "loss": "mse", "params_total": 329,
    ...         "params_trainable": 329, "hyperparameters": None}
    >>> print("\\n".join(summary_lines(info)))
    /m.h5: Sequential, keras2-h5 (Keras 2.21.0)
      LSTM(8)
      Dropout(0.1)
      Dense(1)
    lookback 60 bars x 1 feature -> 1 output step
    optimizer Adam, learning rate 0.005, loss mse
    parameters 329 (329 trainable)
    """
    version = f" (Keras {info['keras_version']})" if info.get("keras_version") else ""
    lines = [f"{info['source']}: {info['model_class']}, {info['format']}{version}"]
    lines += [f"  {_layer_call(entry)}" for entry in info["layers"] if entry["class"] != "InputLayer"]
    features = info.get("features")
    steps = info.get("output_steps")
    lines.append(
        f"lookback {info.get('lookback') or '?'} bars x {features} feature{'s' if features != 1 else ''}"
        f" -> {steps} output step{'s' if steps != 1 else ''}"
    )
    optimizer = info.get("optimizer") or "not stored (saved uncompiled or before training)"
    lr = f", learning rate {info['learning_rate']:g}" if info.get("learning_rate") is not None else ""
    loss = f", loss {info['loss']}" if info.get("loss") else ""
    lines.append(f"optimizer {optimizer}{lr}{loss}")
    lines.append(f"parameters {info['params_total']:,} ({info['params_trainable']:,} trainable)")
    hp = info.get("hyperparameters")
    if hp:
        lines.append(
            "lstm hyperparameters: "
            + " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in hp.items())
        )
    elif info.get("hyperparameters_note"):
        lines.append(f"lstm hyperparameters: none ({info['hyperparameters_note']})")
    if scaler:
        lines.append(
            f"scaler {scaler['kind']}, fitted on {scaler['n_samples_seen']:,} values"
            + (f" in [{scaler['data_min'][0]:.6g}, {scaler['data_max'][0]:.6g}]" if "data_min" in scaler else "")
        )
    return lines


def _layer_call(entry: dict[str, Any]) -> str:
    """``LSTM(32, return_sequences=True)``, ``Dropout(0.2)``, ``Bidirectional(LSTM(4))`` from a layer entry."""
    args = [_layer_call(entry["wraps"])] if "wraps" in entry else []
    args += [str(entry["units"])] if "units" in entry else []
    if "rate" in entry:
        args.append(f"{entry['rate']:g}")
    if entry.get("return_sequences"):
        args.append("return_sequences=True")
    for key in ("dropout", "recurrent_dropout"):
        if entry.get(key):
            args.append(f"{key}={entry[key]:g}")
    if entry.get("activation") not in (None, "linear", "tanh"):
        args.append(f"activation={entry['activation']}")
    return f"{entry['class']}({', '.join(args)})"


# ---------------------------------------------------------------------------------------------- files


@dataclass(frozen=True)
class Inspection:
    """What :func:`inspect_model` found and wrote."""

    info: dict[str, Any]
    scaler: dict[str, Any] | None
    written: list[Path]


def inspect_model(
    path: str | os.PathLike,
    out: str | os.PathLike | None = None,
    scaler_path: str | os.PathLike | None = None,
    trust_pickle: bool = False,
) -> Inspection:
    """Describe the model at ``path`` (and convert a pickled scaler); write nothing unless ``out`` is given.

    With ``out``, the description goes to ``out`` (``model_config.json``) and a converted scaler to
    ``scaler.json`` beside it; ``written`` lists the files written. Nothing is written if anything
    fails, and never beside the model file unless ``out`` says so.

    Examples
    --------
    >>> found = inspect_model("volatility_lstm_model.h5", out="imported/model_config.json",
    ...                       scaler_path="volatility_scaler.pkl", trust_pickle=True)  # doctest: +SKIP
    >>> [p.name for p in found.written]                             # doctest: +SKIP
    ['model_config.json', 'scaler.json']
    """
    path = Path(path)
    if out is not None:
        out = Path(out)
        inputs = [p.resolve() for p in (path, Path(scaler_path) if scaler_path is not None else None) if p is not None]
        for target in (out, out.parent / "scaler.json" if scaler_path is not None else None):
            if target is not None and target.resolve() in inputs:
                raise ModelFileError(f"{out}: --out would overwrite {target}, an input file; pass another file name")
        if (out.parent / "artifact.json").is_file():
            raise ModelFileError(
                f"{out.parent}: is a backtest model artifact (its scaler.json and config.json are the "
                "run's); pass --out into another folder"
            )
    scaler = load_scaler(scaler_path, trust_pickle) if scaler_path is not None else None
    info = describe_model(load_model_file(path), path)
    written: list[Path] = []
    if out is not None:
        written.append(write_json(out, info))
        if scaler is not None:
            written.append(write_json(out.parent / "scaler.json", scaler))
    return Inspection(info, scaler, written)
