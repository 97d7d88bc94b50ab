"""Import a user's object from ``"package.module:name"`` with a one-line error when it fails.

The module is looked up on ``sys.path`` with the current directory in front, so a
``my_models.py`` beside your config (run from that folder) or any installed package works.

Examples
--------
>>> import_object("math:sqrt", "builder", "a function")(4.0)
2.0
>>> import_object("math:nope", "strategies.x.builder", "a function")
Traceback (most recent call last):
...
backtester.core.errors.ConfigError: strategies.x.builder: module 'math' has no attribute 'nope'; check the name after ':'
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

from backtester.core.errors import ConfigError


def split_path(path: str) -> tuple[str, str]:
    """``"a.b:c"`` or ``"a.b.c"`` -> ``("a.b", "c")``."""
    if ":" in path:
        module, _, attr = path.partition(":")
    else:
        module, _, attr = path.rpartition(".")
    return module, attr


def import_object(path: str, where: str, what: str) -> Any:
    """Import ``path``; ``where`` names the config key in errors, ``what`` the expected object."""
    module_name, attr = split_path(path)
    if not module_name or not attr:
        raise ConfigError(f"{where}: {path!r} is not an import path; write 'package.module:name' ({what})")
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"{where}: cannot import module {module_name!r} ({exc}); run from the folder that holds it "
            "or add that folder to PYTHONPATH"
        ) from None
    except Exception as exc:
        raise ConfigError(
            f"{where}: importing module {module_name!r} raised {type(exc).__name__}: {exc}; fix that module"
        ) from None
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{where}: module {module_name!r} has no attribute {attr!r}; check the name after ':'")
        obj = getattr(obj, part)
    return obj


def refuse_standard_library(path: str, where: str, what: str) -> None:
    """Refuse an import path into Python's standard library (``os:system``, ``builtins:print``) before importing
    it: neither a builder nor a Params class lives there, and its functions must never get our arguments.

    >>> refuse_standard_library("my_models:build", "builder", "a function")
    >>> refuse_standard_library("os:system", "strategies.x.builder", "a function build(hp, memory, steps)")
    Traceback (most recent call last):
    ...
    backtester.core.errors.ConfigError: strategies.x.builder: 'os:system' is in Python's standard library (module 'os'), not a function build(hp, memory, steps); point it at your own code, e.g. 'my_models:build'
    """
    module = path.partition(":")[0] if ":" in path else path.rpartition(".")[0]
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        example = "my_models:MyParams" if "Params" in what else "my_models:build"
        raise ConfigError(
            f"{where}: {path!r} is in Python's standard library (module {top!r}), not {what}; point it "
            f"at your own code, e.g. {example!r}"
        )


def check_builder_signature(fn: Callable, path: str) -> None:
    """Refuse anything but a Python function that can take ``(hp, memory, steps)``, before it is ever
    called with them: a class, a built-in (``print``, ``exec``) or a function of the standard library
    (``subprocess.call``, ``os.path.join``) is refused even where its signature would accept three arguments.

    >>> check_builder_signature(lambda hp, memory, steps: None, "ok")
    >>> import os
    >>> check_builder_signature(os.system, "os:system")
    Traceback (most recent call last):
    ...
    ValueError: 'os:system' is a built-in function, not a Python function build(hp, memory, steps); point builder at your own function
    """
    target = fn.func if isinstance(fn, functools.partial) else fn
    if not inspect.isfunction(target):
        kind = (
            "a class"
            if isinstance(target, type)
            else "a built-in function"
            if inspect.isbuiltin(target)
            else f"a {type(target).__name__}"
        )
        raise ValueError(
            f"{path!r} is {kind}, not a Python function build(hp, memory, steps); point builder at your own function"
        )
    top = (getattr(target, "__module__", None) or "").split(".")[0]
    if top in sys.stdlib_module_names:
        raise ValueError(
            f"{path!r} is a function of Python's standard library (module {top!r}), not a builder; "
            "point builder at your own function build(hp, memory, steps)"
        )
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        raise ValueError(
            f"{path!r}: its signature cannot be read, so it is not called; point builder at a Python "
            "function build(hp, memory, steps)"
        ) from None
    try:
        sig.bind(None, None, None)
    except TypeError:
        params = ", ".join(str(p) for p in sig.parameters.values())
        raise ValueError(
            f"{path!r} takes ({params}), not (hp, memory, steps); point builder at a function build(hp, memory, steps)"
        ) from None
