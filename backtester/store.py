"""The segment store: every finished segment found again by a key of what made it.

A segment's **key** is a hash of everything its rows, fit record and artifact depend on:

- the strategy's name (its seeds derive from it), type and resolved params (tuned values fixed),
  and the content of every file they name (the Params class's module, a builder's module, a saved
  model, a scaler: :meth:`strategies.base.Params.depends_on`);
- the segment: model version, retrain time, training window, issue range, horizon, tuning flag;
- the run seed and whether forecasts are batched;
- the data the segment can see: the RV bars up to its last issue time and the bar times up to its
  last target (so the data file, the RV options and the calendar are all in it, and appending bars
  to the data changes only the segments that see them);
- the backend, the versions of every package that can change a number (``rundir.versions``) and
  the source of the code that computes a segment (``strategies/`` and the engine's segment modules);
- in a warm-start chain, the key of the segment before it.

A finished segment (``segments/<strategy>/<version>.parquet`` and ``.json``, the record holding the
key and written last; its artifact under ``models/``) is reused by ``backtest run`` when its key
matches: from the run's staging directory (an interrupted run) or from the finished run it replaces.
Tunings are keyed the same way (``tuning/<strategy>/<version>/best.json``, written last).

Examples
--------
>>> import numpy as np
>>> from backtester.core.series import BarSeries
>>> s = BarSeries(np.arange(4, dtype="int64"), np.ones(4), np.zeros(4), np.ones(4, bool))
>>> a = data_keys(s, [(2, 3), (4, 4)])
>>> a[(2, 3)] == data_keys(s, [(2, 3)])[(2, 3)], a[(2, 3)] == a[(4, 4)]
(True, False)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .core.atomic import atomic_write_text
from .core.series import BarSeries
from .layout import BEST, STORED, RunDir, has_artifact
from .segment import Segment

# where a segment's computation starts: the code digest covers these and every module of ours they import
SEGMENT_ROOTS = ("backtester.segment", "backtester.stacking", "backtester.pooled", "backtester.tuning", "strategies")


def digest(payload: Any) -> str:
    """A stable hash of JSON-able ``payload``."""
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


@lru_cache(maxsize=256)
def file_digest(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def files_digest(paths: Iterable[str | Path]) -> str:
    """A hash of the content of ``paths`` (missing files count as missing)."""
    out = {}
    for p in sorted({str(Path(p).resolve()) for p in paths}):
        try:
            st = os.stat(p)
            out[p] = file_digest(p, st.st_mtime_ns, st.st_size)
        except OSError:
            out[p] = None
    return digest(out)


def code_digest() -> str:
    """The source of the code that computes segments: every module of ours that :data:`SEGMENT_ROOTS`
    import, directly or not (deferred and type-only imports included), found by reading the imports."""
    files = imported_files(SEGMENT_ROOTS)
    return digest([(str(f.relative_to(ROOT)), files_digest([f])) for f in files])


ROOT = Path(__file__).resolve().parent.parent  # the folder that holds backtester/ and strategies/
OURS = ("backtester", "strategies")


def module_file(name: str) -> Path | None:
    """The source file of our module ``name`` (a package's ``__init__.py``), or None."""
    base = ROOT.joinpath(*name.split("."))
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def module_imports(name: str, file: Path) -> set[str]:
    """Every module of ours that ``file`` (module ``name``) imports anywhere in its body (deferred and
    type-only imports too); ``tools/check_layers.py`` reads the import graph with it."""
    import ast

    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1]) if node.level else ""
            mod = ".".join(x for x in (base, node.module or "") if x)
            subs = {f"{mod}.{a.name}" for a in node.names if module_file(f"{mod}.{a.name}") is not None}
            found.update(subs or {mod})  # ``from pkg import module``: the module, not the package
    return {m for m in found if m.split(".")[0] in OURS and m != name and module_file(m) is not None}


@lru_cache(maxsize=8)
def imported_files(roots: tuple[str, ...]) -> list[Path]:
    """The source files of ``roots`` and of every module of ours they import (transitively); a package
    root brings every module under it. (A parent package's ``__init__`` counts only where imported.)

    Examples
    --------
    >>> names = [f.name for f in imported_files(("backtester.segment",))]
    >>> "segment.py" in names, "errors.py" in names, "markdown.py" in names
    (True, True, False)
    """
    todo = list(roots)
    for root in roots:
        f = module_file(root)
        if f is not None and f.name == "__init__.py":
            todo += [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in f.parent.rglob("*.py")]
    seen: dict[str, Path] = {}
    while todo:
        name = todo.pop().removesuffix(".__init__")
        f = module_file(name)
        if name in seen or f is None:
            continue
        seen[name] = f
        todo += list(module_imports(name, f))
    return sorted(set(seen.values()))


def data_keys(series: BarSeries, stops: Iterable[tuple[int, int]]) -> dict[tuple[int, int], str]:
    """For each ``(stop, grid)``: a hash of the bars ``0 .. stop - 1`` (values) and of the bar times
    ``0 .. grid - 1`` (where targets fall). Each array is hashed as one stream, so a key depends on its
    own prefix only, never on which other prefixes were asked for.
    """
    stops = sorted(set(stops))
    arrays = {"rv": series.rv, "ret": series.ret, "observed": series.observed}
    arrays.update({name: series.measures[name] for name in sorted(series.measures)})  # realized measures too
    out = {}
    value_h = {k: hashlib.blake2b(digest_size=16) for k in arrays}
    time_h = hashlib.blake2b(digest_size=16)
    value_at, time_at = 0, 0
    # values and times advance independently: hash each to the point each key needs
    grids = sorted({g for _, g in stops})
    time_keys = {}
    for g in grids:
        time_h.update(np.ascontiguousarray(series.time[time_at:g]).tobytes())
        time_at = g
        time_keys[g] = time_h.copy().hexdigest()
    value_keys = {}
    for stop in sorted({s for s, _ in stops}):
        for k, arr in arrays.items():
            value_h[k].update(np.ascontiguousarray(arr[value_at:stop]).tobytes())
        value_at = stop
        value_keys[stop] = "".join(h.copy().hexdigest() for h in value_h.values())
    for stop, grid in stops:
        out[(stop, grid)] = digest([value_keys[stop], time_keys[grid]])
    return out


@dataclass(frozen=True)
class RunKeyBase:
    """What every key of a run shares: code, versions, backend, seed, batching; and how fits stack (the
    models per program and the equal-windows rule of ``execution.stack``), which only the keys of strategies
    that stack include: a fit trained in another group is another fit."""

    code: str
    versions: tuple[tuple[str, str], ...]
    backend: str | None
    run_seed: int
    batched: bool
    stack: tuple[int, bool] = (1, False)

    @classmethod
    def current(
        cls, versions: dict[str, str], backend: str | None, run_seed: int, batched: bool, stack: tuple[int, bool]
    ) -> RunKeyBase:
        return cls(code_digest(), tuple(sorted(versions.items())), backend, run_seed, batched, stack)

    def shared(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "stack"}


def segment_key(
    base: RunKeyBase, seg: Segment, type_name: str, params: Any, data: str, previous: str | None = None
) -> str:
    """The key of ``seg`` run with ``params`` (see the module docstring)."""
    return digest(
        {
            "base": base.shared(),
            "stack": list(base.stack) if params.stacks() else None,
            "strategy": seg.owner,
            "type": type_name,
            "params": params.model_dump(mode="json"),
            "files": files_digest(params.depends_on()),
            "segment": [
                seg.model_version,
                seg.retrain_time.value,
                seg.window.start,
                seg.window.stop,
                seg.first,
                seg.stop,
                seg.horizon,
                seg.tune,
            ],
            "data": data,
            "previous": previous,
        }
    )


def segment_keys(
    base: RunKeyBase,
    segments_by_strategy: dict[str, list[Segment]],
    types: dict[str, str],
    params: dict[str, Any],
    series: BarSeries,
) -> dict[str, str]:
    """Every segment's key, by segment key (``strategy/version``); a chaining strategy's keys chain."""
    n = len(series)
    spans = {s.key: (s.stop, min(n, s.stop + s.horizon)) for segs in segments_by_strategy.values() for s in segs}
    data = data_keys(series, spans.values())
    out: dict[str, str] = {}
    for name, segs in segments_by_strategy.items():
        previous = None
        for seg in segs:
            p = params[seg.key]
            key = segment_key(base, seg, types[name], p, data[spans[seg.key]], previous)
            out[seg.key] = key
            previous = key if p.chains() else None
    return out


def tuning_key(base: RunKeyBase, seg: Segment, type_name: str, params: Any, series: BarSeries) -> str:
    """The key of a tuning at ``seg``: like a segment's, on the bars of its training window."""
    data = data_keys(series, [(seg.window.stop, seg.window.stop)])[(seg.window.stop, seg.window.stop)]
    return digest({"tuning": segment_key(base, seg, type_name, params, data)})


# --------------------------------------------------------------------------- finding and adopting


def segment_paths(stage: Path, seg: Segment) -> tuple[Path, Path]:
    """(rows part, fit record) of ``seg`` under ``stage`` (:meth:`backtester.layout.RunDir.segment_paths`)."""
    return RunDir(stage).segment_paths(seg.key)


def stored_key(stage: Path, seg: Segment) -> str | None:
    """The key recorded for ``seg`` under ``stage`` if the segment is complete there, else None."""
    rows, record = segment_paths(stage, seg)
    if not (record.is_file() and rows.is_file()):
        return None
    try:
        payload = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    if payload.get("artifact") and not has_artifact(Path(stage) / payload["artifact"]):
        return None
    return payload.get("key")


def is_stored(stage: Path, seg: Segment, key: str, need_artifact: bool) -> bool:
    """``seg`` is finished under ``stage`` with this ``key`` (and its artifact, if one is needed)."""
    if stored_key(stage, seg) != key:
        return False
    if need_artifact:
        payload = json.loads(segment_paths(stage, seg)[1].read_text())
        if payload.get("status") == "ok" and not payload.get("artifact"):
            return False
    return True


def adopt(stage: Path, source: Path, seg: Segment) -> None:
    """Link (or copy) a finished segment's files from ``source`` (a finished run) into ``stage``."""
    for src, dst in zip(segment_paths(source, seg), segment_paths(stage, seg)):
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix == ".json":
            payload = json.loads(src.read_text())
            if payload.get("artifact"):
                _copy_tree(source / payload["artifact"], stage / payload["artifact"])
            atomic_write_text(dst, src.read_text())  # the record last
        else:
            _link(src, dst)


def _link(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f"{dst.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def _copy_tree(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f"{dst.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, copy_function=lambda s, d: _link(Path(s), Path(d)))
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)


def prune(
    stage: Path, segments: Iterable[Segment], keys: dict[str, str], need_artifact: bool, tunings: dict[str, str]
) -> None:
    """Remove from ``stage`` everything but the finished segments and tunings whose keys match: an
    interrupted run's results and temporary files, and segments, models and tunings the plan no longer
    has or that were made from something else."""
    stage = Path(stage)
    stage.mkdir(parents=True, exist_ok=True)
    run = RunDir(stage)
    wanted, models = set(), set()
    for seg in segments:
        if is_stored(stage, seg, keys[seg.key], need_artifact):
            wanted.update(segment_paths(stage, seg))
            models.add(run.artifact_dir(seg.owner, seg.model_version))  # saved, or kept for a chain
    for p in stage.iterdir():
        if p.name not in STORED:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    _keep_only(run.segments, wanted)
    _keep_only(run.models, models)
    tuned = {
        p
        for p in run.tuning.rglob(BEST)
        if stored_tuning_key(p.parent) == tunings.get(str(p.parent.relative_to(run.tuning)))
    }
    _keep_only(run.tuning, {p.parent for p in tuned})


def _keep_only(root: Path, keep: set[Path]) -> None:
    """Remove everything under ``root`` but the files and folders in ``keep`` (and the folders above them)."""
    if not root.is_dir():
        return
    above = {parent for p in keep for parent in p.parents}
    for p in list(root.iterdir()):
        if p in keep:
            continue
        if p.is_dir() and p in above:
            _keep_only(p, keep)
        elif p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink()


def stored_tuning_key(folder: Path) -> str | None:
    """The key of the finished tuning in ``folder`` (its ``best.json``, written last), else None."""
    try:
        return json.loads((Path(folder) / BEST).read_text()).get("key")
    except (OSError, ValueError):
        return None


def adopt_tuning(stage: Path, source: Path, seg: Segment) -> None:
    """Link (or copy) a finished tuning's folder from ``source`` (a finished run) into ``stage``."""
    dst = RunDir(stage).tuning_dir(seg.key)
    dst.parent.mkdir(parents=True, exist_ok=True)
    _copy_tree(RunDir(source).tuning_dir(seg.key), dst)
