"""The README's worked example is the shipped example, and it runs end to end from the CLI."""

import re

import pandas as pd
from click.testing import CliRunner

from backtester.cli import main

from .conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_readme_starts_with_the_two_commands():
    commands = re.findall(r"^    (python3 -m venv .*)$", README, flags=re.M)[:2]
    assert commands[0].endswith("pip install -e . && backtest run configs/weekly.yaml")
    assert commands[1].endswith('pip install -e ".[test]" && python -m pytest')


def test_readme_shows_the_shipped_example_verbatim():
    assert (ROOT / "examples/my_models.py").read_text() in README
    assert (ROOT / "configs/custom.yaml").read_text() in README


def test_the_custom_example_runs_and_its_models_reload(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the example module is imported from the current directory
    runner = CliRunner()
    small = ["--set", f"output.dir={tmp_path}", "--set", f"data.cache_dir={tmp_path}/cache",
             "--set", "backtest.end=2024-03-12 00:00", "--set", "backtest.horizon=4",
             "--set", "strategies.gru.epochs=1", "--set", "strategies.gru.memory=12",
             "--set", "strategies.gru.hyperparameters.units=4", "--set", "strategies.lstm.epochs=1",
             "--set", "strategies.lstm.memory=12", "--set", "strategies.lstm.layers=[{units: 4}]"]
    res = runner.invoke(main, ["run", "configs/custom.yaml", "-q", *small], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    run_dir = tmp_path / "custom"
    f = pd.read_parquet(run_dir / "forecasts.parquet")
    assert set(f["strategy"]) == {"gru", "median", "lstm", "har"}
    for model in ("gru/2", "median/1"):
        res = runner.invoke(main, ["model", "predict", str(run_dir / "models" / model)], catch_exceptions=False)
        assert res.exit_code == 0 and "identical to the" in res.output, res.output
