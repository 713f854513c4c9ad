"""``tagsmith``: train, tag, search, review and run the local stack from the command line.

Each feature adds its commands in its own module; this one only assembles them and sets how help
reads (:func:`name_values`).
"""

from __future__ import annotations

import enum
import logging
import types
import typing
from pathlib import Path
from typing import Any

import typer

from tagsmith.cli import (
    assets,
    backfill,
    dashboards,
    importing,
    local,
    outputs,
    review,
    searching,
    training,
)

app = typer.Typer(
    help="Tagsmith: custom few-shot auto-tagging for digital asset libraries.\n\n"
    "Start with `make run` (the local stack and a demo tenant), then train a model from a folder "
    "of example photos (one sub-folder per tag) with `tagsmith train`, upload photos with "
    "`tagsmith upload` (a whole library with `tagsmith import`) and find them with "
    "`tagsmith search`. Every command takes --target: auto (the running local stack, else the "
    "local data folder), files, stack or aws.",
    no_args_is_help=True,
    # Plain help: flags without a type column, long options on their own line, no rich import
    # just to print help.
    rich_markup_mode=None,
    context_settings={"max_content_width": 100},
    pretty_exceptions_show_locals=False,  # a traceback must never print a token held in a local
)
for module in (
    local,
    training,
    assets,
    importing,
    searching,
    review,
    backfill,
    outputs,
    dashboards,
):  # a first hour's order
    app.registered_commands.extend(module.app.registered_commands)
    app.registered_groups.extend(module.app.registered_groups)


@app.callback()
def main(ctx: typer.Context) -> None:
    """Commands print what a person needs to read; the library's log lines (also raised as the
    error a command prints) stay out of the terminal. ``tagsmith up`` keeps them: its handlers
    write theirs to var/logs/functions.jsonl."""
    if ctx.invoked_subcommand != "up":
        logging.getLogger("tagsmith").addHandler(logging.NullHandler())


def _value_name(annotation: Any, option_name: str) -> str | None:
    """What a value of this option is called in help: ``--tenant TENANT``, ``--size N``."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = args[0]
    if typing.get_origin(annotation) is list:
        annotation = typing.get_args(annotation)[0]
    if annotation is bool:
        return None
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "|".join(str(m.value) for m in annotation)
    if annotation is int:
        return "N"
    if annotation is float:
        return "NUMBER"
    if annotation is Path:
        return "PATH"
    return option_name.lstrip("-").replace("-", "_").upper()


def name_values(typer_app: typer.Typer) -> None:
    """Give every option and argument without an explicit ``metavar`` a readable one, so help
    says ``--tenant TENANT`` and ``--size N`` instead of ``<str>`` and ``<int>``
    (``tests/unit/test_cli_help.py`` renders every command's help to keep it that way)."""
    callbacks = [c.callback for c in typer_app.registered_commands]
    if typer_app.registered_callback is not None:
        callbacks.append(typer_app.registered_callback.callback)
    for fn in callbacks:
        if fn is None:
            continue
        hints = typing.get_type_hints(fn, include_extras=True)
        # The modules use ``from __future__ import annotations``: every reading of the string
        # annotations would build new Option objects, so keep the evaluated ones, which typer reads.
        fn.__annotations__ = hints
        for name, hint in hints.items():
            if typing.get_origin(hint) is not typing.Annotated:
                continue
            base, *extras = typing.get_args(hint)
            for info in extras:
                if isinstance(info, typer.models.ParameterInfo) and info.metavar is None:
                    # Annotated options carry their first name in ``default`` ("--tenant", "-t")
                    names = [info.default, *(info.param_decls or ())]
                    declared = next((d for d in names if isinstance(d, str) and d.startswith("--")), name)
                    info.metavar = _value_name(base, declared)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            name_values(group.typer_instance)


def _argument_type(self: Any, ctx: Any) -> str | None:
    # typer shows an argument's type beside its metavar ("QUERY <str>"), unlike an option's;
    # the metavar already says what the value is.
    return None if self.metavar else _typed_argument(self, ctx)


_typed_argument = typer.core.TyperArgument.display_type_rich
typer.core.TyperArgument.display_type_rich = _argument_type  # type: ignore[method-assign]
name_values(app)

__all__ = ["app"]
