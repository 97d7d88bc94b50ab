"""Every concrete `backtest` command the README shows runs as a user types it: in a fresh process,
without -q (progress bar, tables and all), from a project folder holding the shipped configs (shrunk
to a few days and tiny models so the suite stays fast) and the shipped sample data."""

import os
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from .conftest import ROOT

README = (ROOT / "README.md").read_text()
NEEDS_OTHER_DATA = (
    "btc_weekly",
    "configs/universe.yaml",
    "notebook/",
    "SCHEDULER_HOST",
    "local:",  # a Dask cluster of its own: tests/test_parallel.py runs the same path (--scheduler local:2)
)  # real data, a user's files, a cluster


def readme_commands() -> list[str]:
    """The README's `backtest ...` lines that name real files (no CONFIG/RUN_DIR placeholders)."""
    found = []
    for line in re.findall(r"^    (backtest .+?)\s*(?:#.*)?$", README, flags=re.M):
        if re.search(r"\b[A-Z_]{3,}\b", line.replace("SCHEDULER_HOST", "")) or "[" in line:
            continue
        if not any(skip in line for skip in NEEDS_OTHER_DATA) and line not in found:  # a repeat tests nothing new
            found.append(line)
    return found


def shrink(config: dict) -> dict:
    """A week and two hours of forecasts on two-week windows, one-epoch two-unit LSTMs, no tuning, a short
    bootstrap, figures only where the README opens them: the same commands, in seconds."""
    bt = config["backtest"]
    bt["end"] = str(pd.Timestamp(bt["start"]) + pd.Timedelta("7D2h"))  # a second weekly retrain, two bars long
    bt["window"] = {"kind": "rolling", "length": "14D"}
    config["evaluation"] = {**config.get("evaluation", {}), "mcs_reps": 100}
    config["output"] = {**config.get("output", {}), "plots": config["name"] == "compare"}
    for spec in config["strategies"].values():
        if spec.get("type") in ("lstm", "keras"):
            spec.update(epochs=1, memory=12)
            spec.pop("tuning", None)
            if spec["type"] == "lstm":
                spec["layers"] = [{"units": 2}]
    return config


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    (root / "configs").mkdir()
    for path in (ROOT / "configs").glob("*.yaml"):
        config = yaml.safe_load(path.read_text())
        (root / "configs" / path.name).write_text(yaml.safe_dump(shrink(config), sort_keys=False))
    (root / "examples").symlink_to(ROOT / "examples")
    (root / "data").mkdir()  # the shipped files linked; what a command writes (data synth) stays here
    for path in (ROOT / "data").iterdir():
        (root / "data" / path.name).symlink_to(path)
    return root


def backtest(project, line: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", "from backtester.cli import entry; entry()", *line.split()[1:]]
    return subprocess.run(args, cwd=project, env=env, capture_output=True, text=True, timeout=600)


def test_the_readme_lists_the_commands_a_user_starts_with():
    lines = readme_commands()
    for wanted in (
        "backtest plan configs/schemes.yaml",
        "backtest run configs/schemes.yaml",
        "backtest compare configs/compare.yaml",
        "backtest run configs/weekly.yaml --jobs 2",
        "backtest run configs/custom.yaml",
        "backtest model predict results/custom/models/gru/2",
    ):
        assert wanted in lines


def first_half() -> list[str]:
    """The README's commands up to (not including) the section that starts the second half; the rest run in
    tests/test_readme_commands_b.py, so that two test workers share them (each command is a fresh process)."""
    lines = readme_commands()
    cut = next(
        (k for k, line in enumerate(lines) if line.startswith("backtest run configs/competitive.yaml")), len(lines)
    )
    return lines[:cut]


def second_half() -> list[str]:
    return readme_commands()[len(first_half()) :]


def run_commands(project, lines: list[str]) -> None:
    for line in lines:
        if line.startswith("backtest run "):  # each section starts from no earlier run of that config
            name = yaml.safe_load((project / line.split()[2]).read_text())["name"]
            shutil.rmtree(project / "results" / name, ignore_errors=True)
        res = backtest(project, line)
        assert res.returncode == 0, f"{line}\n{res.stdout}\n{res.stderr}"
        assert "Traceback" not in res.stderr, f"{line}\n{res.stderr}"
        if line.startswith("backtest compare"):
            assert "wrote results/compare/comparison/" in res.stdout
            assert (project / "results/compare/comparison/report.html").is_file()
        if line.startswith("backtest run"):
            assert "wrote results/" in res.stdout and "QLIKE" in res.stdout
        if line.startswith("backtest model predict"):  # the reloaded artifact redoes the run's forecasts exactly
            assert "identical to the" in res.stdout, res.stdout


def test_every_readme_command_runs_in_a_fresh_process_without_q(project):
    run_commands(project, first_half())  # the second half: tests/test_readme_commands_b.py
    assert len(first_half()) >= 3 and len(second_half()) >= 3
