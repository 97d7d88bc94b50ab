"""The Keras backend: chosen by the config (``backend:``) or ``--backend``, applied before Keras loads.

Keras reads ``KERAS_BACKEND`` once, when it is first imported, so the choice is
made while the config is parsed (before any strategy module or user builder can
import Keras) and refused if Keras is already loaded with another backend.

Examples
--------
>>> select_backend("jax")
'jax'

"""

from __future__ import annotations

import importlib.util
import os
import sys

from .core.errors import ConfigError

BACKENDS = ("tensorflow", "jax")
PACKAGES = {"tensorflow": "tensorflow", "jax": "jax"}


def loaded_backend() -> str | None:
    """The backend of an already imported Keras, else None."""
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    try:
        return keras.backend.backend()
    except AttributeError:  # pragma: no cover - a half-imported keras
        return None


def select_backend(name: str) -> str:
    """Make ``name`` the Keras backend of this process; return it."""
    if name not in BACKENDS:
        raise ConfigError(f"backend: unknown Keras backend {name!r}; use one of {', '.join(BACKENDS)}")
    current = loaded_backend()
    if current is not None:
        if current != name:
            raise ConfigError(
                f"backend: Keras is already loaded with the {current!r} backend in this process; "
                f"start a new process (the CLI sets it first) or set KERAS_BACKEND={name} before importing keras"
            )
        return name
    if importlib.util.find_spec(PACKAGES[name]) is None:
        raise ConfigError(f"backend: {name!r} is not installed; pip install -e '.[{name}]' or use backend: tensorflow")
    os.environ["KERAS_BACKEND"] = name
    return name
