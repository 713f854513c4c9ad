"""``tagsmith <command> --help`` reads cleanly for every command: no type placeholders such as
``<bool>``, no leftover doc markup, every option explained, required ones marked, and a command
list whose one-line summaries are whole sentences."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from tagsmith.cli import app
from typer.testing import CliRunner

runner = CliRunner()
# type placeholders typer prints when an option has no value name ("--json <bool>")
PLACEHOLDER = re.compile(r"<(bool|str|int|float|path|list\[[^\]]*\]|Path|datetime)>")
# markup meant for docs or rich, not for a terminal
MARKUP = ("``", ":class:", ":func:", ":meth:", ":mod:", "[bold", "[dim", "[/]", "\b", ">>>")


def command_paths(command: Any = None, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    command = command or typer.main.get_command(app)
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from command_paths(sub, (*path, name))


def params_of(path: tuple[str, ...]) -> list[Any]:
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return list(command.params)


PATHS = list(command_paths())


def help_text(path: tuple[str, ...]) -> str:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, prog_name="tagsmith")
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_is_rendered() -> None:
    assert {("train",), ("search",), ("models", "delete"), ("review", "decide"), ()} <= set(PATHS)
    assert len(PATHS) >= 30


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "tagsmith")
def test_help_has_no_type_placeholders_or_markup(path: tuple[str, ...]) -> None:
    text = help_text(path)

    assert not PLACEHOLDER.search(text), PLACEHOLDER.search(text)
    assert not [m for m in MARKUP if m in text], text


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "tagsmith")
def test_every_option_and_argument_says_what_it_is_for(path: tuple[str, ...]) -> None:
    text = help_text(path)

    for param in params_of(path):
        if getattr(param, "hidden", False):
            continue
        assert param.help, f"{' '.join(path)}: {param.name} has no help"
        if param.required:
            name = max(param.opts, key=len) if param.param_type_name == "option" else param.metavar
            assert "[required]" in entry(text, name), f"{' '.join(path)}: {name} is required but not marked"


def entry(text: str, name: str) -> str:
    """The help entry of one option or argument: its first line and the lines that continue it."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"\s+(-\w, )?{re.escape(name)}\b", line))
    end = start + 1
    while end < len(lines) and lines[end].startswith("   "):
        end += 1
    return " ".join(lines[start:end])


def test_command_lists_show_whole_first_sentences() -> None:
    for path in PATHS:
        text = help_text(path)
        if "Commands:" not in text:
            continue
        listed = text.split("Commands:", 1)[1].strip().splitlines()
        assert listed and all(not line.rstrip().endswith("...") for line in listed), listed


def test_target_explains_each_place_to_work() -> None:
    text = " ".join(help_text(("search",)).split())

    for where in ("auto = the running local stack", "files = the local data folder", "stack =", "aws ="):
        assert where in text


def test_examples_says_when_it_is_required() -> None:
    text = " ".join(help_text(("train",)).split())

    assert "-e, --examples FOLDER|S3-PREFIX|MANIFEST [required unless --corrections]" in text
    assert "-t, --tenant TENANT" in text and "--json machine-readable" in text
