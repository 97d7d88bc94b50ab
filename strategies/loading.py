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

import importlib
import os
import sys
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
