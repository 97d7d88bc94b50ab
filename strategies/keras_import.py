"""Import a model and scaler trained outside the backtester (the notebook's ``.h5`` and ``.pkl``).

The notebook saved ``volatility_lstm_model.h5`` with TensorFlow 2.x's bundled Keras 2
and pickled its scikit-learn ``MinMaxScaler`` to ``volatility_scaler.pkl``. Keras 3
refuses such ``.h5`` files as they are (``Unrecognized keyword arguments passed to
LSTM: {'time_major': False}``), so :func:`load_model_file` rewrites the stored
``model_config`` into what Keras 3 accepts (:func:`translate_config`), builds the model
with Keras' legacy-HDF5 deserializer and loads the stored weights into it.
:func:`describe_model` says what the model is, in the naming of our ``lstm`` builder
where it fits; :func:`load_scaler` turns the pickled scaler into the JSON form of our
artifacts (``scaler.json``), and only when told the pickle is trusted.

Examples
--------
>>> model = load_model_file("volatility_lstm_model.h5")              # doctest: +SKIP
>>> info = describe_model(model, "volatility_lstm_model.h5")        # doctest: +SKIP
>>> info["lookback"], info["hyperparameters"]["units_0"]            # doctest: +SKIP
(60, 32)
>>> load_scaler("volatility_scaler.pkl", trusted=True)["data_max"]  # doctest: +SKIP
[0.0312...]
"""

from __future__ import annotations

import copy
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backtester.core.errors import ModelFileError

from .keras_core import keras_module

__all__ = [
    "ModelFileError",
    "load_model_file",
    "translate_config",
    "describe_model",
    "load_scaler",
    "scaler_to_json",
    "scaler_from_json",
    "write_json",
    "Inspection",
    "inspect_model",
    "summary_lines",
]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
RNN_CLASSES = {"LSTM", "GRU", "SimpleRNN", "RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"}
KERAS2_ONLY_RNN_KEYS = ("time_major",)  # RNN kwargs Keras 2 saved and Keras 3 rejects
RESAVE = (
    "re-save it from the notebook with model.save('model.keras') under Keras 3, "
    "or rebuild it with a builder (type: keras)"
)


# ---------------------------------------------------------------------------------------------- model


def load_model_file(path: str | os.PathLike):
    """A Keras 3 model from a ``.keras`` file or a Keras 2 / Keras 3 ``.h5`` file, uncompiled.

    The format is told by the file's content (HDF5 or zip), not its name. A Keras 2
    ``.h5``'s ``model_config`` goes through :func:`translate_config`; the weights are
    then loaded layer by layer in order, as Keras 2 stored them.

    Examples
    --------
    >>> model = load_model_file("volatility_lstm_model.h5")         # doctest: +SKIP
    >>> model.predict(x)                                            # doctest: +SKIP
    """
    path = Path(path)
    kind = file_kind(path)
    keras = _keras()
    if kind == "keras":
        try:
            return keras.saving.load_model(path, compile=False)
        except Exception as exc:
            raise ModelFileError(f"{path}: cannot load this .keras file ({_first_line(exc)}); {RESAVE}") from None
    with _open_h5(path) as f:
        config = translate_config(_model_config(f, path))
        if "model_weights" not in f:
            raise ModelFileError(f"{path}: the HDF5 file holds a model_config but no weights (model_weights); {RESAVE}")
        return _build_from_h5(f["model_weights"], config, path)


def translate_config(config: dict[str, Any]) -> dict[str, Any]:
    """A Keras 2 ``model_config`` rewritten into what Keras 3's legacy deserializer accepts.

    - ``time_major`` (and any other key in ``KERAS2_ONLY_RNN_KEYS``) is dropped from
      LSTM/GRU/SimpleRNN configs, wherever they sit (also inside Bidirectional).
    - ``batch_input_shape``: an InputLayer's becomes ``batch_shape``; a Sequential whose
      first layer carries it (files older than TF 2.4 have no InputLayer) gets an
      InputLayer in front; on every other layer it is dropped (Keras 3 warns about it).
    - a dtype policy dict (``{"class_name": "Policy", "config": {"name": "mixed_float16"}}``)
      becomes its name.
    - ``module``/``registered_name`` (Keras 2.13+ writes ``"keras.initializers"``, ``null``) are
      kept: Keras 3 resolves them, and a Bidirectional's inner layer needs them.
    - ``class_name: "Model"`` (old functional models) becomes ``"Functional"``.

    The input is not modified.

    Examples
    --------
    >>> cfg = {"class_name": "Sequential", "config": {"name": "s", "layers": [
    ...     {"class_name": "LSTM", "config": {"name": "lstm", "units": 4, "time_major": False,
    ...                                       "batch_input_shape": [None, 60, 1]}},
    ...     {"class_name": "Dense", "config": {"units": 1, "dtype": {"class_name": "Policy", "config": {"name": "float32"}}}}]}}
    >>> for layer in translate_config(cfg)["config"]["layers"]:
    ...     print(layer["class_name"], layer["config"])
    InputLayer {'name': 'lstm_input', 'batch_shape': [None, 60, 1]}
    LSTM {'name': 'lstm', 'units': 4}
    Dense {'units': 1, 'dtype': 'float32'}
    """
    return _translate(copy.deepcopy(config))


def _translate(node: Any) -> Any:
    if isinstance(node, list):
        return [_translate(item) for item in node]
    if not isinstance(node, dict):
        return node
    cls, cfg = node.get("class_name"), node.get("config")
    if isinstance(cls, str) and isinstance(cfg, dict):
        if cls == "Model":
            node["class_name"] = cls = "Functional"
        if cls == "Sequential":
            _sequential_input(cfg)
        if cls in RNN_CLASSES:
            for key in KERAS2_ONLY_RNN_KEYS:
                cfg.pop(key, None)
        shape = cfg.pop("batch_input_shape", None)
        if cls == "InputLayer" and shape is not None:
            cfg.setdefault("batch_shape", shape)
        dtype = cfg.get("dtype")
        if isinstance(dtype, dict) and isinstance(dtype.get("config"), dict) and "name" in dtype["config"]:
            cfg["dtype"] = dtype["config"]["name"]
    return {key: _translate(value) for key, value in node.items()}


def _sequential_input(cfg: dict) -> None:
    """Put an InputLayer in front of a Sequential whose first layer carries ``batch_input_shape``."""
    layers = cfg.get("layers") or []
    if not layers or layers[0].get("class_name") == "InputLayer":
        return
    first = layers[0].get("config", {})
    shape = first.get("batch_input_shape")
    if shape is None:
        return
    input_cfg: dict[str, Any] = {"batch_input_shape": shape, "name": f"{first.get('name', 'input')}_input"}
    if isinstance(first.get("dtype"), str):
        input_cfg["dtype"] = first["dtype"]
    layers.insert(0, {"class_name": "InputLayer", "config": input_cfg})


def _build_from_h5(weights_group, config: dict, path: Path):
    """Build the model from the translated config (legacy scope, safe mode) and load its weights."""
    from keras.src.legacy.saving import legacy_h5_format, saving_options, saving_utils
    from keras.src.saving import serialization_lib

    with saving_options.keras_option_scope(use_legacy_config=True), serialization_lib.SafeModeScope(True):
        try:
            model = saving_utils.model_from_config(config)
        except Exception as exc:
            raise ModelFileError(
                f"{path}: cannot rebuild the model in Keras 3 ({_first_line(exc)}); {RESAVE}"
            ) from None
        try:
            legacy_h5_format.load_weights_from_hdf5_group(weights_group, model)
        except Exception as exc:
            raise ModelFileError(
                f"{path}: the stored weights do not fit the rebuilt model ({_first_line(exc)}); {RESAVE}"
            ) from None
    return model


H5_SUFFIXES = (".h5", ".hdf5")
SAVE = "save the model with model.save('model.h5') or model.save('model.keras')"


def looks_like(path: Path) -> str:
    """What a file is by its first bytes, in words, for errors about files that are not what their name says.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.h5").write_text("hello, world")
    >>> looks_like(folder / "a.h5"), looks_like(Path(tempfile.mkstemp()[1]))
    ("a text file starting 'hello, world'", 'empty (0 bytes)')
    """
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        return "empty (0 bytes)"
    if head.startswith(HDF5_SIGNATURE):
        return "an HDF5 file"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            keras = "config.json" in z.namelist()
        return "a zip archive holding a .keras model" if keras else "a zip archive (not a .keras model: no config.json)"
    if head.startswith(b"\x80") and len(head) > 1 and head[1] <= 5:
        return "a Python pickle"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text:
        first = text.strip().splitlines()[0][:40] if text.strip() else ""
        return f"a text file starting {first!r}" if first else "a text file of blanks"
    return "corrupt or another format"


def file_kind(path: Path) -> str:
    """``"h5"`` or ``"keras"`` from the file's first bytes; a one-line error for anything else, and for a
    file whose content is not what its name says (a ``.h5`` that is a zip, a ``.keras`` that is HDF5).

    A name other than ``.h5``, ``.hdf5`` or ``.keras`` is read by its content.
    """
    if not path.exists():
        raise ModelFileError(f"{path}: no such file; pass the .h5 or .keras file the model was saved to")
    if not path.is_file():
        raise ModelFileError(f"{path}: not a file; pass the .h5 or .keras file the model was saved to")
    what = looks_like(path)
    suffix = path.suffix.lower()
    if what == "an HDF5 file":
        if suffix == ".keras":
            raise ModelFileError(
                f"{path}: named .keras but it is an HDF5 file (the .h5 format); rename it to "
                f"{path.with_suffix('.h5').name}, or {SAVE}"
            )
        return "h5"
    if what == "a zip archive holding a .keras model":
        if suffix in H5_SUFFIXES:
            raise ModelFileError(
                f"{path}: named {suffix} but it is a zip archive holding a .keras model; rename it "
                f"to {path.with_suffix('.keras').name}, or {SAVE}"
            )
        return "keras"
    what = f" ({what})" if what == "corrupt or another format" else f": it is {what}"
    raise ModelFileError(f"{path}: not an HDF5 (.h5) or .keras file{what}; {SAVE}")


def _open_h5(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise ModelFileError(
            f"{path}: a corrupt or truncated HDF5 file ({_first_line(exc)}); "
            "save the model again with model.save('model.h5') or model.save('model.keras')"
        ) from None


def _model_config(f, path: Path) -> dict:
    raw = _attr(f, "model_config")
    if raw is None:
        raise ModelFileError(
            f"{path}: an HDF5 file without a model_config (weights only, from save_weights?); "
            "save the whole model with model.save('model.h5') or model.save('model.keras')"
        )
    try:
        config = json.loads(raw)
    except ValueError:
        raise ModelFileError(
            f"{path}: its model_config is not valid JSON (corrupt file); save the model again"
        ) from None
    if not isinstance(config, dict) or "config" not in config:
        raise ModelFileError(f"{path}: its model_config is not a Keras model config; save the model again")
    return config


def _attr(f, name: str) -> str | None:
    value = f.attrs.get(name)
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    return None if value is None else str(value)


def _first_line(exc: BaseException) -> str:
    """An exception's first line, cut after the sentence that reaches 120 characters, for a one-line error.

    >>> _first_line(ValueError("Unknown layer: 'X'. Please ensure you are using a `keras.utils.custom_object_scope` "
    ...                        "and that this object is included in the scope. See the guide.\\nMore."))
    "Unknown layer: 'X'"
    >>> _first_line(ValueError("Layer count mismatch. Model expected 5 layers, found 4 saved layers."))
    'Layer count mismatch. Model expected 5 layers, found 4 saved layers'
    """
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    sentences = lines[0].split(". ")
    text = sentences[0]
    for sentence in sentences[1:]:
        if len(text) + 2 + len(sentence) > 120:
            break
        text += ". " + sentence
    text = text.rstrip(".")
    return text if len(text) <= 200 else text[:197] + "..."


def _keras():
    return keras_module()


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
    with _open_h5(path) as f:
        version = _attr(f, "keras_version")
        raw = _attr(f, "training_config")
        backend = _attr(f, "backend")
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


# --------------------------------------------------------------------------------------------- scaler


def load_scaler(path: str | os.PathLike, trusted: bool) -> dict[str, Any]:
    """A pickled scikit-learn MinMaxScaler (or StandardScaler) in our ``scaler.json`` form.

    Unpickling runs code from the file, so it is loaded only when ``trusted`` is True.
    The scaler must be fitted on one feature (RV).

    Examples
    --------
    >>> load_scaler("volatility_scaler.pkl", trusted=False)         # doctest: +SKIP
    Traceback (most recent call last):
    ...
    backtester.core.errors.ModelFileError: volatility_scaler.pkl: not loaded: unpickling runs code ...
    >>> load_scaler("volatility_scaler.pkl", trusted=True)["kind"]  # doctest: +SKIP
    'MinMaxScaler'
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(
            f"{path}: no such file; pass the pickled scaler the notebook saved (e.g. volatility_scaler.pkl)"
        )
    check_scaler_file(path)
    if not trusted:
        raise ModelFileError(
            f"{path}: not loaded: unpickling runs code from the file; if you trust it, "
            "pass --trust-pickle (or set trust_pickle: true in the config)"
        )
    import joblib

    try:
        scaler = joblib.load(path)  # reads plain pickles too
    except Exception as exc:
        what = looks_like(path)
        why = f": it is {what}" if what.startswith("a text") else f" ({_first_line(exc)})"
        raise ModelFileError(
            f"{path}: cannot unpickle it{why}; save the fitted scaler with joblib.dump(scaler, path) or pickle.dump"
        ) from None
    return scaler_to_json(scaler, path)


def check_scaler_file(path: str | os.PathLike) -> None:
    """Refuse, without unpickling it, a scaler file that cannot be a pickle: empty, HDF5 or a zip archive.

    >>> import tempfile
    >>> check_scaler_file(tempfile.mkstemp(suffix=".pkl")[1])      # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    backtester.core.errors.ModelFileError: ....pkl: not a pickled scaler: it is empty (0 bytes); ...
    """
    path = Path(path)
    what = looks_like(path)
    if what.startswith(("empty", "an HDF5", "a zip")):
        hint = " (the model file?)" if not what.startswith("empty") else ""
        raise ModelFileError(
            f"{path}: not a pickled scaler: it is {what}{hint}; pass the .pkl the notebook wrote "
            "with joblib.dump(scaler, path) or pickle.dump"
        )


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
