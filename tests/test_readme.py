"""The README's worked example is the shipped example, and it runs end to end from the CLI."""

import re

from .conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_readme_starts_with_the_two_commands():
    commands = re.findall(r"^    (python3 -m venv .*)$", README, flags=re.M)[:2]
    assert commands[0].endswith("pip install -e . && backtest run configs/weekly.yaml")
    assert commands[1].endswith('pip install -e ".[test]" && python -m pytest')


def test_readme_shows_the_shipped_example_verbatim():
    assert (ROOT / "examples/my_models.py").read_text() in README
    assert (ROOT / "configs/custom.yaml").read_text() in README


# The custom example's commands (`backtest run configs/custom.yaml`, `backtest model predict ...`) run in a
# fresh process with every other README command: tests/test_readme_commands.py.
