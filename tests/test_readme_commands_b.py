"""The second half of the README's commands (see tests/test_readme_commands.py), in a file of its own so
that a second test worker runs it beside the first half."""

from .test_readme_commands import project, run_commands, second_half  # noqa: F401 - project is a fixture


def test_the_second_half_of_the_readme_commands_runs_in_fresh_processes(project):  # noqa: F811
    run_commands(project, second_half())
