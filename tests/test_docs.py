"""The README and the command line agree: every command is documented and every
documented command exists and answers --help."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from aupd.cli import COMMANDS, cli

README = (Path(__file__).parent.parent / "README.md").read_text()


def documented_commands() -> set[str]:
    return set(re.findall(r"`aupd ([a-z][a-z-]+)", README))


def test_every_command_is_in_the_readme() -> None:
    assert set(COMMANDS) - documented_commands() == set()


def test_every_command_the_readme_names_exists() -> None:
    assert documented_commands() - set(COMMANDS) == set()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_works_without_a_config(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_top_level_help_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output
