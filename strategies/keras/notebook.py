"""The Keras-2 translation: a model and scaler trained outside the backtester (the notebook's ``.h5`` and ``.pkl``).

The notebook saved ``volatility_lstm_model.h5`` with TensorFlow 2.x's bundled Keras 2
and pickled its scikit-learn ``MinMaxScaler`` to ``volatility_scaler.pkl``. Keras 3
refuses such ``.h5`` files as they are (``Unrecognized keyword arguments passed to
LSTM: {'time_major': False}``), so :func:`load_model_file` rewrites the stored
``model_config`` into what Keras 3 accepts (:func:`translate_config`), builds the model
with Keras' legacy-HDF5 deserializer and loads the stored weights into it.
:func:`load_scaler` turns the pickled scaler into the JSON form of our
artifacts (``scaler.json``), and only when told the pickle is trusted.

Examples
--------
>>> model = load_model_file("volatility_lstm_model.h5")              # doctest: +SKIP
>>> load_scaler("volatility_scaler.pkl", trusted=True)["data_max"]  # doctest: +SKIP
[0.0312...]
"""

from __future__ import annotations

import copy
import json
import os
import zipfile
from pathlib import Path
from typing import Any

from backtester.core.errors import ModelFileError

from .archive import scaler_to_json
from .runtime import keras_module

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
    keras = keras_module()
    if kind == "keras":
        try:
            return keras.saving.load_model(path, compile=False)
        except Exception as exc:
            raise ModelFileError(f"{path}: cannot load this .keras file ({_first_line(exc)}); {RESAVE}") from None
    with open_h5(path) as f:
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


def open_h5(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise ModelFileError(
            f"{path}: a corrupt or truncated HDF5 file ({_first_line(exc)}); "
            "save the model again with model.save('model.h5') or model.save('model.keras')"
        ) from None


def _model_config(f, path: Path) -> dict:
    raw = h5_attr(f, "model_config")
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


def h5_attr(f, name: str) -> str | None:
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
