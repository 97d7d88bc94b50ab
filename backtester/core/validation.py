"""One-line descriptions of pydantic validation errors, naming the key path and the fix.

Kept apart from :mod:`backtester.config` so that strategies (which validate their
own parameters) and the config (which validates strategies) do not import each other.

Examples
--------
>>> from pydantic import BaseModel, ConfigDict, ValidationError
>>> class Box(BaseModel):
...     model_config = ConfigDict(extra="forbid")
...     width: int = 1
>>> try:
...     Box.model_validate({"widht": 2})
... except ValidationError as exc:
...     print(describe_validation_error(exc, Box, prefix="box"))
box.widht: unknown key (did you mean 'width'?); valid keys here: width
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError


def did_you_mean(word: str, choices: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string.

    >>> did_you_mean("horizn", ["horizon", "start"])
    " (did you mean 'horizon'?)"
    """
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def one_of(value: str, choices: list[str] | tuple[str, ...], what: str) -> str:
    """``value`` where it is one of ``choices``, else a ``ValueError`` naming the closest and every valid one.

    >>> one_of("normall", ["normal", "t"], "distribution")
    Traceback (most recent call last):
    ValueError: unknown distribution 'normall' (did you mean 'normal'?); valid: normal, t
    """
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}{did_you_mean(value, list(choices))}; valid: {', '.join(choices)}")
    return value


def describe_validation_error(exc: ValidationError, model: type[BaseModel], prefix: str = "") -> str:
    """One line for the first error in ``exc``, naming the key path (and the valid keys for an unknown one)."""
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    path = ".".join(([prefix] if prefix else []) + shown_path(model, loc)) or "(top level)"
    if err["type"] == "extra_forbidden":
        parent = model_at(model, loc[:-1])
        if parent is not None:
            valid = list(parent.model_fields)
            return f"{path}: unknown key{did_you_mean(loc[-1], valid)}; valid keys here: {', '.join(valid)}"
        return f"{path}: unknown key; remove it"
    if err["type"] == "missing":
        return f"{path}: required key is missing; add it"
    if err["type"] == "union_tag_invalid":
        return f"{path}: {err['msg']}"
    if err["type"] in _RANGE_ERRORS:
        allowed = allowed_range(model, loc)
        if allowed:
            return f"{path}: must be {allowed} (got {err.get('input')!r})"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{path}: {msg} (got {err.get('input')!r})" if not isinstance(err.get("input"), dict) else f"{path}: {msg}"


# a value too large for its field: say the whole range (a value too small keeps pydantic's "greater than" wording)
_RANGE_ERRORS = frozenset({"less_than_equal", "less_than", "int_parsing_size"})


def allowed_range(model: type[BaseModel], loc: list[str]) -> str | None:
    """The range a bounded field declares, in words (None if it declares none).

    >>> from pydantic import BaseModel, Field
    >>> class Box(BaseModel):
    ...     horizon: int = Field(default=24, ge=1, le=1000)
    ...     rate: float = Field(default=0.1, gt=0)
    >>> allowed_range(Box, ["horizon"]), allowed_range(Box, ["rate"])
    ('a whole number from 1 to 1000', 'a number above 0')
    """
    parent = model_at(model, loc[:-1]) if loc else None
    field = parent.model_fields.get(loc[-1]) if parent is not None else None
    if field is None:
        return None
    bounds = {}
    for item in field.metadata:
        for key in ("ge", "gt", "le", "lt"):
            if getattr(item, key, None) is not None:
                bounds[key] = getattr(item, key)
    if not bounds:
        return None
    fmt = lambda x: (
        f"{x:,}" if isinstance(x, int) and abs(x) >= 10_000 else f"{x:g}" if isinstance(x, float) else str(x)
    )
    kind = "a whole number" if int in _union_members(field.annotation) else "a number"
    if "ge" in bounds and "le" in bounds:
        return f"{kind} from {fmt(bounds['ge'])} to {fmt(bounds['le'])}"
    words = {"ge": "at least", "gt": "above", "le": "at most", "lt": "below"}
    return f"{kind} " + " and ".join(f"{words[k]} {fmt(v)}" for k, v in bounds.items())


def _union_members(annotation: Any) -> list[Any]:
    args = getattr(annotation, "__args__", None)
    if args is None:
        return [annotation]
    out = []
    for a in args:
        out.extend(_union_members(a) if getattr(a, "__args__", None) and not isinstance(a, type) else [a])
    return out


def _is_model(x: Any) -> bool:
    return isinstance(x, type) and issubclass(x, BaseModel)


def _tag(model: type[BaseModel]) -> str | None:
    """The value of a discriminated model's one-value Literal field (``MonthlyRule`` -> ``'monthly'``)."""
    for field in model.model_fields.values():
        args: tuple[Any, ...] = getattr(field.annotation, "__args__", ())
        if len(args) == 1 and isinstance(args[0], str):
            return args[0]
    return None


def _step(model: Any, loc: list[str], i: int) -> tuple[Any, int, bool]:
    """Move past ``loc[i]`` (a key of ``model``); return the next model, the next index and
    whether ``loc[i+1]`` is a union member tag pydantic inserted (then skipped)."""
    field = model.model_fields.get(loc[i]) if _is_model(model) else None
    if field is None:
        return None, i + 1, False
    members = _union_members(field.annotation)
    models = [m for m in members if _is_model(m)]
    nxt = loc[i + 1] if i + 1 < len(loc) else None
    if len(members) > 1 and nxt is not None:
        chosen = [m for m in models if nxt in (_tag(m), m.__name__)]
        if chosen:
            return chosen[0], i + 2, True
        if not nxt.isdigit() and nxt not in (getattr(models[0], "model_fields", {}) if len(models) == 1 else {}):
            if not models or nxt.islower() and ("[" in nxt or nxt in {"int", "float", "str", "bool", "none"}):
                return None, i + 2, True
    return (models[0] if len(models) == 1 else None), i + 1, False


def model_at(model: type[BaseModel], loc: list[str]) -> type[BaseModel] | None:
    """The model class that a pydantic error location ``loc`` leads to (None where it leaves the models)."""
    current: Any = model
    i = 0
    while i < len(loc):
        if loc[i].isdigit():
            i += 1
            continue
        current, i, _ = _step(current, loc, i)
        if current is None:
            return None
    return current if _is_model(current) else None


def shown_path(model: type[BaseModel], loc: list[str]) -> list[str]:
    """The location as a user writes it: union tags dropped (``retrain.monthly.day`` -> ``retrain.day``)."""
    current: Any = model
    out: list[str] = []
    i = 0
    while i < len(loc):
        out.append(loc[i])
        if loc[i].isdigit():
            i += 1
            continue
        current, i, _ = _step(current, loc, i)
    return out
