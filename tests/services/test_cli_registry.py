"""The command registry: each command is registered by the module that COMMANDS names."""

from __future__ import annotations

import pytest

from services import cli


def _subcommands(parser) -> set[str]:  # type: ignore[no-untyped-def]
    action = next(a for a in parser._actions if a.dest == "command")
    return set(action.choices)


def test_help_lists_every_command() -> None:
    assert _subcommands(cli.build_parser()) == set(cli.COMMANDS)


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_a_named_command_loads_its_own_module(command: str) -> None:
    assert command in _subcommands(cli.build_parser(command))


def test_an_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["no-such-command"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err
