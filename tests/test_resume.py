"""Finished work is never lost: a rerun reuses every segment finished under the same key (from an
interrupted run's staging directory or from the finished run it replaces), an edited config
recomputes exactly the segments whose keys changed, and the results equal a run from scratch, as
whole frames and files. Killed (SIGKILL), interrupted (SIGINT, SIGTERM) and concurrent runs are
real ``backtest run`` subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from backtester.config import parse_config
from backtester.rundir import run_lock, stage_dir
from backtester.runner import run

from .conftest import TINY_LSTM, base_config

BACKTEST = str(Path(sys.executable).with_name("backtest"))
ROOT = Path(__file__).resolve().parents[1]
FRAMES = ("forecasts.parquet", "retrains.parquet", "metrics.parquet", "scores.parquet", "economic.parquet")
VOLATILE = {"seconds"}  # wall-clock seconds of a fit differ between runs; every other column must not


def frames(out: Path) -> dict[str, pd.DataFrame]:
    out_frames = {}
    for name in FRAMES:
        df = pd.read_parquet(out / name)
        out_frames[name] = df.drop(columns=[c for c in df.columns if c in VOLATILE])
    return out_frames


def artifacts(out: Path) -> dict[str, object]:
    """Every artifact file's content (artifact.json without its timing and run name)."""
    found = {}
    for p in sorted((out / "models").rglob("*")):
        if not p.is_file():
            continue
        rel = str(p.relative_to(out))
        if p.name == "artifact.json":
            meta = json.loads(p.read_text())
            for key in ("fit_seconds", "run"):
                meta.pop(key, None)
            found[rel] = meta
        elif p.suffix == ".json":
            found[rel] = p.read_bytes()
        else:
            found[rel] = p.stat().st_size > 0
    return found


def assert_same_run(a: Path, b: Path) -> None:
    fa, fb = frames(a), frames(b)
    for name in FRAMES:
        pd.testing.assert_frame_equal(fa[name], fb[name], check_exact=True, obj=name)
    assert artifacts(a) == artifacts(b)


def config(minute_file, tmp_path, name="r", **strategies):
    raw = base_config(
        minute_file, tmp_path, **(strategies or {"naive": {}, "har": {"type": "har"}, "ewma": {"type": "ewma"}})
    )
    raw["name"] = name
    raw["output"]["save_models"] = True
    return raw


def segments_in(manifest: dict) -> tuple[int, int]:
    return manifest["segments"]["reused"], manifest["segments"]["computed"]


# --------------------------------------------------------------------------- in process


def test_a_rerun_reuses_every_segment_and_equals_the_first_run(minute_file, tmp_path):
    raw = config(minute_file, tmp_path)
    first = run(parse_config(raw))
    saved = tmp_path / "first"
    os.rename(first.out_dir, saved)
    again = run(parse_config(raw))
    assert segments_in(again.manifest) == (0, 9)  # nothing to reuse: the finished run was moved away
    third = run(parse_config(raw), force=True)
    assert segments_in(third.manifest) == (9, 0)
    assert_same_run(saved, third.out_dir)


def test_an_edited_config_recomputes_exactly_the_segments_whose_keys_changed(minute_file, tmp_path):
    raw = config(minute_file, tmp_path, naive={}, har={"type": "har"})
    run(parse_config(raw))
    raw["strategies"]["ewma"] = {"type": "ewma"}  # a strategy added: its 3 segments only
    assert segments_in(run(parse_config(raw), force=True).manifest) == (6, 3)
    raw["strategies"]["har"] = {"type": "har", "lags": [1, 5, 24]}  # one strategy's params changed
    assert segments_in(run(parse_config(raw), force=True).manifest) == (6, 3)
    raw["seed"] = 2  # the run seed is in every key
    assert segments_in(run(parse_config(raw), force=True).manifest) == (0, 9)
    edited = run(parse_config(raw), force=True)
    fresh_raw = {**raw, "name": "fresh"}
    assert_same_run(edited.out_dir, run(parse_config(fresh_raw)).out_dir)


def test_extending_the_test_period_recomputes_only_the_segments_that_see_new_bars(minute_file, tmp_path):
    raw = config(minute_file, tmp_path, naive={}, har={"type": "har"})
    raw["backtest"]["end"] = "2024-01-20 23:00"  # retrains on the 9th (first fit), 15th; the last segment ends early
    short = run(parse_config(raw))
    assert segments_in(short.manifest) == (0, 4)
    raw["backtest"]["end"] = None
    longer = run(parse_config(raw), force=True)
    # the first segment of each strategy is unchanged; the second now issues more forecasts; the third is new
    assert segments_in(longer.manifest) == (2, 4)
    assert_same_run(longer.out_dir, run(parse_config({**raw, "name": "fresh"})).out_dir)


def test_fresh_computes_everything_again(minute_file, tmp_path):
    raw = config(minute_file, tmp_path)
    run(parse_config(raw))
    assert segments_in(run(parse_config(raw), force=True, fresh=True).manifest) == (0, 9)
    assert segments_in(run(parse_config(raw), force=True).manifest) == (9, 0)  # a fresh run is stored too


def test_an_interrupted_run_keeps_its_segments_and_the_rerun_continues(minute_file, tmp_path, monkeypatch):
    raw = config(minute_file, tmp_path)
    reference = run(parse_config({**raw, "name": "reference"}))
    restore = interrupt_after(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        run(parse_config(raw))
    restore()
    out = Path(raw["output"]["dir"]) / "r"
    assert not out.exists() and len(list((stage_dir(out) / "segments").glob("*/*.json"))) == 4
    resumed = run(parse_config(raw))
    assert segments_in(resumed.manifest) == (4, 5)
    assert not stage_dir(out).exists()
    assert_same_run(reference.out_dir, resumed.out_dir)


def interrupt_after(monkeypatch, n: int):
    """Make the engine's n+1-th segment raise KeyboardInterrupt (as Ctrl-C would, mid-run)."""
    import backtester.chain as engine  # the one chain loop runs every segment

    real, calls = engine.run_segment, []

    def run_segment(*args, **kwargs):
        if len(calls) == n:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "run_segment", run_segment)
    return lambda: monkeypatch.setattr(engine, "run_segment", real)


def test_a_warm_start_chain_resumes_from_its_last_saved_model_and_a_tuning_is_reused(
    minute_file, tmp_path, monkeypatch
):
    space = {"units": {"values": [2, 4]}, "num_layers": 1, "dropout": 0.0}
    raw = config(
        minute_file,
        tmp_path,
        warm={**TINY_LSTM, "warm_start": {"epochs": 1}},
        tuned={**TINY_LSTM, "tuning": {"max_trials": 2, "epochs": 1, "space": space}},
    )
    raw["output"]["save_models"] = False  # the chain keeps its models in the staging directory all the same
    reference = run(parse_config({**raw, "name": "reference"}))
    restore = interrupt_after(monkeypatch, 4)  # plan order: warm 1..3, then tuned 1 (after its search)
    with pytest.raises(KeyboardInterrupt):
        run(parse_config(raw))
    restore()
    resumed = run(parse_config(raw))
    assert segments_in(resumed.manifest) == (4, 2)  # the chain went on from version 3's kept weights
    assert not (resumed.out_dir / "models").exists()  # not asked for: not in the results
    assert_same_run(reference.out_dir, resumed.out_dir)
    pd.testing.assert_frame_equal(
        pd.read_parquet(reference.out_dir / "tuning.parquet").drop(columns="tuning_seconds"),
        pd.read_parquet(resumed.out_dir / "tuning.parquet").drop(columns="tuning_seconds"),
    )
    assert "tuning" not in resumed.manifest["seconds"] or resumed.manifest["seconds"]["tuning"] == 0


def test_what_a_killed_write_leaves_is_recomputed(minute_file, tmp_path):
    """A segment cut mid-write (rows without a record, a torn record, stray temporary files, a record
    whose artifact is gone) is not reused; the run equals one from scratch."""
    raw = config(minute_file, tmp_path)
    reference = run(parse_config({**raw, "name": "reference"}))
    first = run(parse_config(raw))
    stage = stage_dir(first.out_dir)
    os.rename(first.out_dir, stage)  # as if killed just before the swap
    seg = stage / "segments"
    (seg / "naive" / "0001.json").unlink()  # rows written, record not yet
    (seg / "har" / "0002.json").write_text(
        '{"strategy": "har", "model_'
    )  # torn (cannot happen with rename: belt and braces)
    (seg / "har" / "0003.parquet.tmp-999").write_bytes(b"PAR1 half")
    import shutil

    shutil.rmtree(stage / "models" / "ewma" / "1")  # a record whose artifact is missing
    (stage / "forecasts.parquet").write_bytes(b"junk")  # an interrupted evaluation's output
    resumed = run(parse_config(raw))
    assert segments_in(resumed.manifest) == (6, 3)
    assert not list(resumed.out_dir.rglob("*.tmp-*"))
    assert_same_run(reference.out_dir, resumed.out_dir)


def test_a_changed_builder_module_changes_the_key(minute_file, tmp_path, monkeypatch):
    from backtester.store import files_digest

    mod = tmp_path / "mymod.py"
    mod.write_text("X = 1\n")
    before = files_digest([mod])
    mod.write_text("X = 2\n")
    assert files_digest([mod]) != before


# --------------------------------------------------------------------------- real processes


def write_config(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def start(path: Path, *extra: str) -> subprocess.Popen:
    """``backtest run`` as a user starts it: its own process group, SIGINT at its default."""
    return subprocess.Popen(
        [BACKTEST, "run", str(path), *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for(predicate, timeout=240.0, poll=0.05) -> None:
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("the run never got there")
        time.sleep(poll)


def finished(stage: Path) -> int:
    return len(list((stage / "segments").glob("*/*.json")))


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


def lstm_config(minute_file, tmp_path, name="k"):
    raw = config(minute_file, tmp_path, name=name, lstm=TINY_LSTM, naive={}, har={"type": "har"})
    raw["data"]["path"] = str(minute_file)
    return raw


@pytest.fixture
def killed_runs(minute_file, tmp_path):
    raw = lstm_config(minute_file, tmp_path)
    reference = run_cli(write_config(tmp_path, {**raw, "name": "reference"}))
    assert reference.returncode == 0, reference.stderr
    return raw, Path(raw["output"]["dir"])


def run_cli(path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BACKTEST, "run", str(path), "-q", *extra], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_kill_9_at_several_points_then_the_same_command_gives_the_identical_run(killed_runs, tmp_path, jobs):
    raw, results = killed_runs
    path = write_config(tmp_path, raw)
    out, stage = results / raw["name"], stage_dir(results / raw["name"])
    kill_points = [lambda: True, lambda: finished(stage) >= 2, lambda: finished(stage) >= 6]  # start-up, early, late
    if jobs == "1":
        kill_points = kill_points[1:2]
    for ready in kill_points:
        proc = start(path, "--jobs", jobs)
        wait_for(lambda: ready() or proc.poll() is not None)
        workers = children(proc.pid)
        os.killpg(proc.pid, signal.SIGKILL) if jobs == "1" else proc.send_signal(signal.SIGKILL)  # -j2: parent only
        proc.wait()
        if jobs == "2":  # orphaned workers notice and exit by themselves
            wait_for(lambda: not any(alive(w) for w in workers), timeout=20)
        assert not out.exists() or (out / "manifest.json").is_file()
    before = finished(stage)
    done = run_cli(path, "--jobs", jobs)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["segments"]["reused"] >= before - 1  # at most the segment cut mid-write is recomputed
    assert_same_run(results / "reference", out)


def test_a_dask_client_killed_mid_run_then_the_same_command_resumes_from_the_store(killed_runs, tmp_path):
    distributed = pytest.importorskip("distributed")
    raw, results = killed_runs
    path = write_config(tmp_path, raw)
    out, stage = results / raw["name"], stage_dir(results / raw["name"])
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        proc = start(path, "--scheduler", cluster.scheduler_address)
        wait_for(lambda: finished(stage) >= 2 or proc.poll() is not None)
        proc.send_signal(signal.SIGKILL)  # the client, mid-run; the cluster drops its tasks
        proc.wait()
        assert not out.exists()
        before = finished(stage)
        assert before >= 2  # killed mid-run, with segments on disk
        done = run_cli(path, "--scheduler", cluster.scheduler_address)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["segments"]["reused"] >= before - 1  # at most a segment cut mid-write is recomputed
    assert_same_run(results / "reference", out)


@pytest.mark.parametrize(
    "sig, code, jobs", [(signal.SIGINT, 130, "1"), (signal.SIGINT, 130, "2"), (signal.SIGTERM, 143, "2")]
)
def test_ctrl_c_and_sigterm_exit_130_and_143_with_one_line_and_no_child_left(minute_file, tmp_path, sig, code, jobs):
    raw = lstm_config(minute_file, tmp_path)
    path = write_config(tmp_path, raw)
    stage = stage_dir(Path(raw["output"]["dir"]) / raw["name"])
    proc = start(path, "--jobs", jobs)
    wait_for(lambda: finished(stage) >= 1 or proc.poll() is not None)
    workers = children(proc.pid)
    t0 = time.monotonic()
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # Ctrl-C in a terminal: the whole foreground group
    else:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert time.monotonic() - t0 < 15
    lines = [line for line in err.splitlines() if line.strip() and "walk-forward" not in line]
    assert "Traceback" not in err
    assert lines[-1].startswith("interrupted: kept ") and "run the same command again to continue" in lines[-1]
    wait_for(lambda: not any(alive(w) for w in workers), timeout=10)


def test_a_second_writer_is_refused_and_a_stale_lock_is_taken_over(minute_file, tmp_path):
    raw = config(minute_file, tmp_path, name="locked")
    path = write_config(tmp_path, raw)
    out = Path(raw["output"]["dir"]) / "locked"
    with run_lock(out):
        refused = run_cli(path)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"error: {out}: another backtest (pid {os.getpid()}, started "
        + refused.stderr.split("started ")[1].split(")")[0]
        + f") is writing this run; wait for it to finish or stop it (kill {os.getpid()}), then run the same command again"
    ]
    assert not out.exists()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (out.parent / ".locked.lock").write_text(json.dumps({"pid": dead.pid, "started": "earlier"}))
    taken = subprocess.run([BACKTEST, "run", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert taken.returncode == 0, taken.stderr
    assert f"note: an earlier backtest of {out} (pid {dead.pid}) stopped without finishing; continuing" in taken.stderr


def test_a_swap_cut_between_its_renames_is_repaired_and_old_staging_folders_are_removed(tmp_path):
    from backtester.rundir import run_stage

    out = tmp_path / "results" / "r"
    (tmp_path / "results" / ".r.old-4242").mkdir(parents=True)  # killed after moving the old run aside
    (tmp_path / "results" / ".r.old-4242" / "manifest.json").write_text("{}")
    (tmp_path / "results" / ".r.partial-77").mkdir()  # an older version's per-process staging folder
    with run_lock(out), run_stage(out) as stage:
        assert (out / "manifest.json").is_file() and stage == stage_dir(out) and stage.is_dir()
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [".r.lock", ".r.partial", "r"]
