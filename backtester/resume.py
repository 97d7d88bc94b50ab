"""Where a chain of segments goes on after an interruption: how many of its first segments the store
holds under their keys, and the model a warm-start chain continues from (the last good one among them,
reloaded from its artifact). Used by the engine's chains and by stacked chains (:mod:`.stacking`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .layout import RunDir, has_artifact, read_artifact
from .segment import LiveModel, Segment, StoredSegment, call, read_segment
from .store import is_stored


def resume_point(job, keys: tuple[str | None, ...]) -> tuple[int, LiveModel | None]:
    """How many of the chain's first segments are finished in the store, and the model to go on from
    (the last good one among them, reloaded from its artifact)."""
    need = job.settings.save_models and job.context is not None
    n = 0
    while n < len(keys) and keys[n] is not None and is_stored(job.stage, job.segments[n], keys[n], need):
        n += 1
    if n == 0 or n == len(keys) or not job.params[0].chains():
        return n, None
    for k in range(n - 1, -1, -1):
        stored = read_segment(job.stage, job.segments[k])
        if stored.ok:
            folder = RunDir(job.stage).artifact_dir(job.segments[k].owner, job.segments[k].model_version)
            live = reload_model(folder, stored, job.segments[k], job.params[k])
            return (n, live) if live is not None else (0, None)
    return n, None


def reload_model(folder: Path, stored: StoredSegment, seg: Segment, params: Any) -> LiveModel | None:
    """The model a finished segment saved in ``folder``, or None if it saved none it can reload."""
    if not has_artifact(folder) or not read_artifact(folder).restorable:
        return None
    strategy = call(seg.strategy, "build()", params.build, stored.record.seed)
    call(seg.strategy, "load()", strategy.load, folder)
    return LiveModel(strategy, seg.model_version, stored.record.window_end.value)
