"""The results folder: every file name and path of a run, and its typed records, in one place.

A finished ``backtest run`` (and a ``backtest train`` folder, which has the same shape)::

    results/<name>/
      config.yaml        the resolved config                  manifest.json   what made the run (Manifest)
      forecasts.parquet  retrains.parquet  tuning.parquet ...  report.md       the evaluation
      segments/[<asset>/]<strategy>/<version>.parquet|.json    each finished segment (backtester.store)
      models/[<asset>/]<strategy>/<version>/artifact.json ...  each saved model (ArtifactMeta)
      tuning/[<asset>/]<strategy>/<version>/best.json          each tuning

``<asset>/`` is there in a universe (``data.assets``) only; ``<strategy>`` may be a seed member
``name#k`` (:class:`~backtester.core.names.Owner`). While it is built the run lives in
``.<name>.partial/`` beside it (:mod:`backtester.rundir`). Every reader goes through
:func:`read_manifest`, :func:`read_artifact` and :func:`locate_artifact`; a folder that is not a
run or not an artifact raises :class:`~backtester.core.errors.RunError` (``ArtifactError`` for an
artifact), one line naming the folder and the fix.

Examples
--------
>>> import tempfile
>>> run = RunDir(Path(tempfile.mkdtemp()) / "weekly")
>>> run.artifact_dir(Owner("btc", "lstm#2"), 3).relative_to(run.path).as_posix()
'models/btc/lstm#2/3'
>>> run.segment_paths("btc/lstm#2/0003")[1].relative_to(run.path).as_posix()
'segments/btc/lstm#2/0003.json'
>>> run.path.mkdir(); write_config(run.path, {"name": "weekly"})
>>> write_manifest(run.path, {"name": "weekly", "status": "complete", "data": {"path": "btc.parquet", "sha256": "ab"}})
>>> m = read_manifest(run.path)
>>> m.name, m.complete, m.data_of("").sha256, m.assets
('weekly', True, 'ab', [''])
>>> folder = run.artifact_dir(Owner("", "har"), 1)
>>> folder.mkdir(parents=True); write_artifact(folder, {"format": ARTIFACT_FORMAT, "strategy": "har"})
>>> locate_artifact(folder)
ArtifactHome(run_dir=..., owner=Owner(asset='', strategy='har'), version=1)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .core.errors import ArtifactError, RunError
from .core.names import Owner

CONFIG = "config.yaml"
MANIFEST = "manifest.json"
FORECASTS = "forecasts.parquet"
RETRAINS = "retrains.parquet"
TUNING_TABLE = "tuning.parquet"
COST = "cost.parquet"
REPORT = "report.md"
TRACKING = "tracking.json"  # where a tracked run was logged (backtester.tracking): uri, experiment, run_id
SEGMENTS = "segments"
MODELS = "models"
TUNING = "tuning"
ARTIFACT = "artifact.json"
ARTIFACT_FORMAT = "backtester-artifact/1"
BEST = "best.json"  # a finished tuning's choice, written last (backtester.tuning)
TRIALS = "trials.parquet"  # a tuning's trials, beside its best.json
STORED = (SEGMENTS, MODELS, TUNING)  # what a staging directory keeps between runs (backtester.store)


# --------------------------------------------------------------------------- staging beside results/<name>


def stage_dir(out: Path) -> Path:
    """Where ``backtest run`` builds ``out``: ``.<name>.partial/`` beside it (absolute: workers may run elsewhere)."""
    return Path(out).parent.resolve() / f".{Path(out).name}.partial"


def scratch_dir(out: Path, pid: int) -> Path:
    """A one-process staging directory (``backtest train``): ``.<name>.partial-<pid>/`` beside ``out``."""
    return Path(out).parent.resolve() / f".{Path(out).name}.partial-{pid}"


def scratch_pattern(out: Path) -> str:
    """The glob of every :func:`scratch_dir` of ``out`` (what a killed process may have left)."""
    return f".{Path(out).name}.partial-*"


def aside_dir(out: Path, pid: int) -> Path:
    """Where a swap moves the finished run it replaces until the new one is in: ``.<name>.old-<pid>/``."""
    return Path(out).parent / f".{Path(out).name}.old-{pid}"


def aside_pattern(out: Path) -> str:
    return f".{Path(out).name}.old-*"


def lock_path(out: Path) -> Path:
    """The lock file of ``out``'s run: ``.<name>.lock`` beside it."""
    return Path(out).parent / f".{Path(out).name}.lock"


# --------------------------------------------------------------------------- the folder


@dataclass(frozen=True)
class RunDir:
    """The paths of one results folder (finished, or a staging directory being built)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def manifest(self) -> Path:
        return self.path / MANIFEST

    @property
    def forecasts(self) -> Path:
        return self.path / FORECASTS

    @property
    def retrains(self) -> Path:
        return self.path / RETRAINS

    @property
    def segments(self) -> Path:
        return self.path / SEGMENTS

    @property
    def models(self) -> Path:
        return self.path / MODELS

    @property
    def tuning(self) -> Path:
        return self.path / TUNING

    def is_finished(self) -> bool:
        """Whether a run finished here (its manifest is written last)."""
        return self.manifest.is_file()

    def models_of(self, asset: str = "") -> Path:
        """An asset's artifact folders: ``models/`` (``models/<asset>/`` in a universe)."""
        return self.models / asset if asset else self.models

    def artifact_dir(self, owner: Owner | str, model_version: int) -> Path:
        """``models/[<asset>/]<strategy>/<version>``."""
        owner = owner if isinstance(owner, Owner) else Owner.parse(owner)
        return self.models.joinpath(*owner.parts, str(model_version))

    def segment_paths(self, key: str) -> tuple[Path, Path]:
        """(rows part, fit record) of the segment whose key is ``[<asset>/]<strategy>/<version>``."""
        base = self.segments / key
        return base.with_suffix(".parquet"), base.with_suffix(".json")

    def tuning_dir(self, key: str) -> Path:
        return self.tuning / key

    def finished_segments(self) -> int:
        """How many finished segments the folder holds (their records)."""
        return sum(1 for _ in self.segments.rglob("*.json"))

    def read_table(self, name: str) -> pd.DataFrame:
        return pd.read_parquet(self.path / name)

    def table_rows(self, name: str) -> int:
        """How many rows a table has (from its Parquet footer)."""
        import pyarrow.parquet as pq

        return pq.read_metadata(self.path / name).num_rows

    def table_parts(self, name: str, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        """A table one row group at a time (a universe's tables hold one or more per asset, written by
        :class:`TableWriter`): what a reader of a large run streams instead of :meth:`read_table`."""
        import pyarrow.parquet as pq

        with pq.ParquetFile(self.path / name) as f:
            for k in range(f.num_row_groups):
                yield f.read_row_group(k, columns=columns, use_pandas_metadata=True).to_pandas()

    def config_block(self, key: str) -> dict[str, Any]:
        """One top-level block of ``config.yaml`` as written (empty if the file or the block is missing or bad)."""
        import yaml

        try:
            block = (yaml.safe_load(self.config.read_text()) or {}).get(key) if self.config.is_file() else None
        except (OSError, yaml.YAMLError):
            return {}
        return block or {}


class TableWriter:
    """Parquet tables written a part (an asset's rows) at a time, each part its own row groups in the first
    part's schema: read back whole (:meth:`RunDir.read_table`) or part by part (:meth:`RunDir.table_parts`).

    >>> import tempfile; from contextlib import closing; where = Path(tempfile.mkdtemp())
    >>> with closing(TableWriter(where)) as w: w.append("t.parquet", pd.DataFrame({"x": [1.0, 2.0]})); w.append("t.parquet", pd.DataFrame({"x": [3.0]}))
    >>> RunDir(where).read_table("t.parquet")["x"].tolist(), len(list(RunDir(where).table_parts("t.parquet")))
    ([1.0, 2.0, 3.0], 2)
    """

    def __init__(self, folder: Path, optional: list[str] | tuple[str, ...] = ()):
        self.folder, self.optional = Path(folder), set(optional)  # optional: not written without rows
        self.writers: dict[str, Any] = {}  # file name -> its pyarrow ParquetWriter
        self.empty: dict[str, pd.DataFrame] = {}  # a table with no rows yet: written as it is, if none come

    def append(self, name: str, frame: Any) -> None:
        """Append a part: a DataFrame, or a pyarrow Table (a part written to a file by a worker, read back)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not len(frame):
            self.empty.setdefault(name, frame if isinstance(frame, pd.DataFrame) else frame.to_pandas())
            return
        w = self.writers.get(name)
        table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
        if w is None:
            self.writers[name] = w = pq.ParquetWriter(self.folder / name, table.schema)
        elif not table.schema.equals(w.schema, check_metadata=False):
            table = table.cast(w.schema)
        w.write_table(table.replace_schema_metadata(w.schema.metadata))

    def close(self) -> None:
        """Finish the files (use the writer in ``contextlib.closing``)."""
        for w in self.writers.values():
            w.close()
        for name, frame in self.empty.items():
            if name not in self.writers and name not in self.optional:
                frame.to_parquet(self.folder / name, index=False)
        self.writers, self.empty = {}, {}


def write_config(stage: Path, resolved: dict[str, Any]) -> None:
    """``config.yaml``: the resolved config, keys in the config's order."""
    import yaml

    RunDir(stage).config.write_text(yaml.safe_dump(resolved, sort_keys=False))


# --------------------------------------------------------------------------- manifest.json


@dataclass(frozen=True)
class DataRecord:
    """The fingerprint of one asset's data: its file, sha256, and the bars' cache key (RV options and calendar)."""

    path: str
    sha256: str
    bars_key: str = ""

    @property
    def ident(self) -> str:
        """What identifies the bars: the same file read with other options makes other bars."""
        return f"{self.sha256}:{self.bars_key}"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataRecord:
        return cls(str(d.get("path", "")), str(d.get("sha256", "")), str(d.get("bars_key", "")))


@dataclass(frozen=True)
class Manifest:
    """``manifest.json``: what made a run (``kind`` ``run``) or a ``backtest train`` folder (``train``).

    ``raw`` is the JSON as written, in its order (written back byte for byte); the fields are what
    readers use. ``strategies`` is None for a run from before it recorded them."""

    name: str
    kind: str
    status: str | None
    config_id: str | None
    data: dict[str, DataRecord]  # by asset; "" for a run on one data.path
    strategies: dict[str, dict[str, Any]] | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Manifest:
        data = raw.get("data") or {}
        if "assets" in data:
            records = {name: DataRecord.from_dict(d) for name, d in data["assets"].items()}
        else:
            records = {"": DataRecord.from_dict(data)} if "sha256" in data else {}
        kinds = raw.get("strategies")
        return cls(
            str(raw.get("name", "")),
            str(raw.get("kind", "run")),
            raw.get("status"),
            raw.get("config_id"),
            records,
            kinds if isinstance(kinds, dict) else None,
            raw,
        )

    def to_dict(self) -> dict[str, Any]:
        return self.raw

    @property
    def complete(self) -> bool:
        """A finished run's manifest: status ``complete`` and a data fingerprint."""
        data = self.raw.get("data") or {}
        return self.status == "complete" and ("sha256" in data or "assets" in data)

    @property
    def assets(self) -> list[str]:
        return list(self.data)

    @property
    def universe(self) -> bool:
        return "assets" in (self.raw.get("data") or {})

    def data_of(self, asset: str = "") -> DataRecord:
        return self.data[asset]

    def seeded(self) -> set[str] | None:
        """The strategies whose forecasts depend on the seed (None: the manifest does not say)."""
        if self.strategies is None:
            return None
        return {name for name, k in self.strategies.items() if k.get("seeded")}

    def segments(self) -> dict[str, int]:
        return dict(self.raw.get("segments") or {})


def read_manifest(run_dir: Path) -> Manifest:
    """The manifest of the run in ``run_dir``; a missing folder, a missing or damaged manifest is a :class:`RunError`."""
    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise RunError(f"{run.path}: no such run directory; pass results/<name> of a finished run")
    if not run.manifest.is_file():
        raise RunError(f"{run.path}: not a finished run (no {MANIFEST}); run it again with backtest run --force")
    try:
        raw = json.loads(run.manifest.read_text())
    except json.JSONDecodeError as exc:
        raise RunError(
            f"{run.manifest}: not valid JSON ({exc.msg}, line {exc.lineno}); the run is damaged, run it again"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunError(f"{run.manifest}: cannot be read ({exc}); the run is damaged, run it again") from None
    if not isinstance(raw, dict):
        raise RunError(f"{run.manifest}: not a run's manifest; the run is damaged, run it again")
    try:
        return Manifest.from_dict(raw)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise RunError(f"{run.manifest}: not a run's manifest ({exc}); the run is damaged, run it again") from None


def peek_manifest(run_dir: Path) -> Manifest | None:
    """The manifest of ``run_dir`` if it has a readable one, else None (no error)."""
    try:
        return read_manifest(run_dir)
    except (RunError, OSError):
        return None


def write_manifest(stage: Path, manifest: Manifest | dict[str, Any]) -> None:
    """``manifest.json`` (written last by ``backtest run``: a run with one is finished)."""
    raw = manifest.to_dict() if isinstance(manifest, Manifest) else manifest
    RunDir(stage).manifest.write_text(json.dumps(raw, indent=2))


# --------------------------------------------------------------------------- artifact.json


@dataclass(frozen=True)
class ArtifactMeta:
    """``artifact.json``: what a saved model is, what it saw, and which forecasts it made.

    ``raw`` is the JSON as written; the fields are what readers use."""

    strategy: str
    type: str
    params: dict[str, Any]
    model_version: int
    seed: int
    horizon: int
    retrain_time: pd.Timestamp
    trained_through: pd.Timestamp
    issued: tuple[pd.Timestamp, pd.Timestamp] | None  # the first and last issue time it served; None: none
    sha256: str
    backend: str | None
    restorable: bool
    files: tuple[str, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ArtifactMeta:
        issued = raw.get("issued") or {}
        return cls(
            str(raw["strategy"]),
            str(raw["type"]),
            dict(raw.get("params") or {}),
            int(raw["model_version"]),
            int(raw["seed"]),
            int(raw["horizon"]),
            pd.Timestamp(raw["retrain_time"]),
            pd.Timestamp(raw["trained_through"]),
            (pd.Timestamp(issued["first"]), pd.Timestamp(issued["last"])) if issued.get("count") else None,
            str((raw.get("data") or {}).get("sha256", "")),
            raw.get("backend"),
            bool(raw.get("restorable", False)),
            tuple(raw.get("files", ())),
            raw,
        )


def read_artifact_json(folder: Path) -> dict[str, Any]:
    """``artifact.json`` of ``folder`` as written; a folder that is not an artifact is an :class:`ArtifactError`."""
    folder = Path(folder)
    meta_path = folder / ARTIFACT
    if not folder.is_dir():
        raise ArtifactError(
            f"{folder}: no such folder; pass an artifact folder such as results/<run>/models/<strategy>/<version>"
        )
    if not meta_path.is_file():
        raise ArtifactError(
            f"{folder}: not a model artifact (no {ARTIFACT}); pass a folder such as "
            "results/<run>/models/<strategy>/<version>"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(
            f"{meta_path}: not valid JSON ({exc.msg}, line {exc.lineno}); the artifact is damaged"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{meta_path}: cannot be read ({exc}); the artifact is damaged") from None
    if not isinstance(meta, dict) or not str(meta.get("format", "")).startswith("backtester-artifact/"):
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ArtifactError(f"{meta_path}: not a backtester artifact (format {found!r})")
    return meta


def read_artifact(folder: Path) -> ArtifactMeta:
    """The typed ``artifact.json`` of ``folder`` (:func:`read_artifact_json`)."""
    raw = read_artifact_json(folder)
    try:
        return ArtifactMeta.from_dict(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{Path(folder) / ARTIFACT}: incomplete ({exc}); the artifact is damaged") from None


def has_artifact(folder: Path) -> bool:
    return (Path(folder) / ARTIFACT).is_file()


def write_artifact(folder: Path, meta: dict[str, Any]) -> None:
    """``artifact.json`` into ``folder`` (the engine writes it into a temporary folder, then renames it)."""
    (Path(folder) / ARTIFACT).write_text(json.dumps(meta, indent=2, default=str))


def artifact_files(folder: Path) -> list[str]:
    """The files an artifact lists: what the strategy saved in ``folder``, and ``artifact.json``."""
    return sorted(p.name for p in Path(folder).iterdir()) + [ARTIFACT]


@dataclass(frozen=True)
class ArtifactHome:
    """Where an artifact folder sits: its run, its owner (asset and strategy) and its model version."""

    run_dir: Path
    owner: Owner
    version: int

    @property
    def run(self) -> RunDir:
        return RunDir(self.run_dir)


def locate_artifact(folder: Path) -> ArtifactHome:
    """The run an artifact folder belongs to: ``<run>/models/<strategy>/<version>`` or, in a universe,
    ``<run>/models/<asset>/<strategy>/<version>`` (the run is the folder with ``config.yaml`` above ``models/``)."""
    folder = Path(folder)
    strategy, above = folder.parent.name, folder.parent.parent
    if above.name == MODELS and (above.parent / CONFIG).is_file():
        return ArtifactHome(above.parent, Owner("", strategy), _version(folder))
    if above.parent.name == MODELS and (above.parent.parent / CONFIG).is_file():
        return ArtifactHome(above.parent.parent, Owner(above.name, strategy), _version(folder))
    guess = above.parent.parent if above.parent.name == MODELS else above.parent
    raise ArtifactError(
        f"{guess}: no {CONFIG} beside the {MODELS} folder; the artifact must stay inside its run directory"
    )


def _version(folder: Path) -> int:
    try:
        return int(folder.name)
    except ValueError:
        raise ArtifactError(
            f"{folder}: not a model version folder; pass a folder such as results/<run>/models/<strategy>/<version>"
        ) from None
