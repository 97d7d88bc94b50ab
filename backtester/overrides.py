"""``--set key.path=value`` overrides on a raw config dict, and errors that name the override at fault.

An override's value is parsed as YAML and set at its key path, creating mappings on the way.
Switching a retrain rule or a window kind drops the keys the new kind does not take (see
:func:`with_overrides`). When the merged config fails validation, :func:`blame_overrides`
says whether an override caused it, so the message names ``--set ...`` instead of the file.

This module works on plain dicts and does not import :mod:`backtester.config`; the config's
parse function is passed in where one is needed.

Examples
--------
>>> raw = {"backtest": {"horizon": 24}}
>>> with_overrides(raw, ["backtest.horizon=6", "execution.jobs=2"])
{'backtest': {'horizon': 6}, 'execution': {'jobs': 2}}
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import yaml

from .core.errors import ConfigError
from .core.schedule import KEYS_BY_RULE, WindowConfig

# The blocks whose keys depend on a discriminator: block name -> (discriminator, its default, kind -> keys).
_KINDED_BLOCKS: dict[str, tuple[str, str, dict[str, frozenset[str]]]] = {
    "retrain": ("rule", "weekly", KEYS_BY_RULE),
    "window": ("kind", "expanding", WindowConfig.KEYS_BY_KIND),
}


def override_key(item: str) -> list[str]:
    """The key path of ``a.b.c=value``: ``['a', 'b', 'c']``."""
    return [p for p in item.partition("=")[0].strip().split(".") if p]


def with_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``raw`` with the overrides applied in order.

    An override that switches a retrain rule or window kind (``backtest.retrain.rule=monthly``,
    ``strategies.lstm.window.kind=expanding``) drops the keys of that block the new kind does not
    take (``weekday``), so the new kind's defaults apply; keys it also takes (``time``,
    ``timezone``) and keys set by another override stay.

    >>> raw = {"backtest": {"retrain": {"rule": "weekly", "weekday": "tue", "time": "06:00"}}}
    >>> with_overrides(raw, ["backtest.retrain.rule=monthly"])["backtest"]
    {'retrain': {'rule': 'monthly', 'time': '06:00'}}
    """
    raw = copy.deepcopy(raw)
    keys = [override_key(item) for item in overrides]
    for item, parts in zip(overrides, keys):
        block = _node(raw, parts[:-1]) if _is_switch(parts) else None
        if not isinstance(block, dict):
            apply_override(raw, item)
            continue
        block_path, leaf = parts[:-1], parts[-1]
        _, default, accepts = _KINDED_BLOCKS[block_path[-1]]
        old = block.get(leaf, default)
        apply_override(raw, item)
        new = block.get(leaf)
        if new == old or not isinstance(new, str) or new not in accepts:
            continue  # the same kind, or an unknown one (validation names it)
        kept = {k[len(block_path)] for k in keys if len(k) > len(block_path) and k[: len(block_path)] == block_path}
        for key in [key for key in block if key not in accepts[new] and key not in kept]:
            del block[key]
    return raw


def _node(raw: dict[str, Any], parts: list[str]) -> Any:
    node: Any = raw
    for part in parts:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def blame_overrides(
    exc: ConfigError, raw: dict[str, Any], overrides: list[str], source: str, parse: Callable[..., Any]
) -> ConfigError:
    """``exc`` naming the overrides that caused it instead of the file, where they did.

    An override is a suspect when its key and the failing key path lie on one branch
    (``execution.jobs``, or a block the error names as a whole, ``backtest.window``); it is
    blamed when the config without the suspects no longer gives the same error. ``parse``
    validates a raw config, ``parse(raw, source=source)``, raising :class:`ConfigError`.
    """
    message = str(exc)
    detail = message.removeprefix(f"{source}: ")
    failing = detail.partition(": ")[0].split(".")
    suspects = [item for item in overrides if _on_one_branch(override_key(item), failing)]
    exact = [item for item in suspects if override_key(item) == failing]
    switches = [
        item
        for item in overrides
        if _is_switch(override_key(item)) and _on_one_branch(override_key(item)[:-1], failing)
    ]
    suspects = exact or suspects or switches  # a switched kind may miss a key of its own (every_n_bars: n)
    if not suspects:
        return exc
    try:
        parse(with_overrides(raw, [item for item in overrides if item not in suspects]), source=source)
    except ConfigError as other:
        if str(other).removeprefix(f"{source}: ") == detail:
            return exc  # the file gives it too
    return ConfigError(", ".join(f"--set {item}" for item in suspects) + f": {detail}")


def _is_switch(key: list[str]) -> bool:
    """Whether ``key`` is a retrain rule or window kind (``backtest.retrain.rule``, ``strategies.x.window.kind``)."""
    block = key[:-1]
    if not (block[:-1] == ["backtest"] or (len(block) == 3 and block[0] == "strategies")):
        return False
    switch = _KINDED_BLOCKS.get(block[-1])
    return switch is not None and key[-1] == switch[0]


def _on_one_branch(a: list[str], b: list[str]) -> bool:
    n = min(len(a), len(b))
    return n > 0 and a[:n] == b[:n]


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set ``a.b.c=value`` in a nested dict; the value is parsed as YAML.

    >>> d = {"backtest": {"horizon": 24}}
    >>> apply_override(d, "backtest.horizon=6"); d
    {'backtest': {'horizon': 6}}
    """
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: write it as key.path=value, e.g. --set backtest.horizon=6")
    text = item.partition("=")[2]
    parts = override_key(item)
    if not parts:
        raise ConfigError(f"--set {item!r}: the key is empty")
    try:
        value = load_yaml(text, f"--set {item!r}")
    except yaml.YAMLError:
        value = text
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {item!r}: {part!r} is not a mapping, so it has no key {parts[-1]!r}")
        node = child
    node[parts[-1]] = value


# --------------------------------------------------------------------------- YAML, safely

MAX_YAML_NODES = 100_000  # a config has a few hundred; an alias bomb expands to billions
_SAFE_TAGS = (frozenset(yaml.SafeLoader.yaml_constructors) - {None}) | {
    "tag:yaml.org,2002:merge"
}  # `<<: *defaults` too


def load_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load(text)``, refusing what a config never needs, before anything is built.

    Refused with a one-line :class:`ConfigError` naming ``where`` (the file or the ``--set``) and
    the line: tags that are not plain YAML types (``!!python/object/apply:os.system``, a custom
    ``!tag``); an alias that refers to the node it sits in; and a document that, with its aliases
    expanded, would hold more than ``MAX_YAML_NODES`` values (the "billion laughs": nine anchors of
    nine aliases each expand to 9**9 strings). The check walks the composed node graph once,
    counting each shared node's expanded size once, so it takes time linear in the text.
    Malformed YAML raises :class:`yaml.YAMLError` as ``yaml.safe_load`` does.

    >>> load_yaml("a: &x [1, 2]\\nb: *x", "demo.yaml")
    {'a': [1, 2], 'b': [1, 2]}
    >>> load_yaml("seed: !!python/object/apply:os.system [echo hi]", "demo.yaml")
    Traceback (most recent call last):
    ...
    backtester.core.errors.ConfigError: demo.yaml (line 1): the tag '!!python/object/apply:os.system' is not allowed in a config; remove it and write a plain value
    """
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise ConfigError(f"{where}: nested too deeply to be a config; flatten it") from None
        if node is None:
            return None
        _check_nodes(node, where)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _shown_tag(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag


def _check_nodes(root: yaml.Node, where: str) -> None:
    """Refuse unsafe tags, self-references and documents that expand to more than MAX_YAML_NODES values."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:  # iterative post-order walk: a deeply nested document cannot exhaust the Python stack
        node, done = stack.pop()
        key = id(node)
        if done:
            open_nodes.discard(key)
            size = 1 + sum(sizes[id(child)] for child in _children(node))
            if size > MAX_YAML_NODES:
                raise ConfigError(
                    f"{where} (line {node.start_mark.line + 1}): expands to more than {MAX_YAML_NODES:,} "
                    "values through its aliases (*name), far more than a config holds; write the "
                    "values out or use fewer aliases"
                )
            sizes[key] = size
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise ConfigError(
                f"{where} (line {node.start_mark.line + 1}): an alias refers to the block it sits in, "
                "which never ends; remove that alias"
            )
        if node.tag not in _SAFE_TAGS:
            raise ConfigError(
                f"{where} (line {node.start_mark.line + 1}): the tag {_shown_tag(node.tag)!r} is not "
                "allowed in a config; remove it and write a plain value"
            )
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for k, _ in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value in seen and k.value != "<<":
                    raise ConfigError(
                        f"{where} (line {k.start_mark.line + 1}): {k.value!r} appears twice in one "
                        "mapping (YAML keeps only the last); give each key once, e.g. each asset "
                        "a name of its own"
                    )
                if isinstance(k, yaml.ScalarNode):
                    seen.add(k.value)
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
