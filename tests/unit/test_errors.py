"""One error tree: every error class declares its code and whether it is retryable, and is drawn,
with that code, in the tree of ``tagsmith.errors``' docstring."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest
import tagsmith
from tagsmith import errors
from tagsmith.errors import InvalidInputError, TagsmithError, TransientError

_LINE = re.compile(r"^(?P<indent>[ │├└─]*)(?P<name>\w+Error)\s+(?P<code>[a-z_]+)\s+(?P<retry>yes|no)\b")


def _all_error_classes() -> list[type[TagsmithError]]:
    for module in pkgutil.walk_packages(tagsmith.__path__, prefix="tagsmith."):
        importlib.import_module(module.name)
    found: list[type[TagsmithError]] = []
    todo: list[type[TagsmithError]] = [TagsmithError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(c for c in cls.__subclasses__() if c.__module__.startswith("tagsmith"))
    return found


def _drawn_tree() -> dict[str, tuple[str, bool, str | None]]:
    """Each class in the docstring's tree: (code, retryable, parent class name)."""
    drawn: dict[str, tuple[str, bool, str | None]] = {}
    parents: list[tuple[int, str]] = []  # (depth, name) of the path down to the current line
    doc = errors.__doc__ or ""
    for line in doc.splitlines():
        m = _LINE.match(line.strip("\n")[4:])  # the tree is indented by 4 in the docstring
        if not m:
            continue
        depth = len(m["indent"])
        while parents and parents[-1][0] >= depth:
            parents.pop()
        drawn[m["name"]] = (m["code"], m["retry"] == "yes", parents[-1][1] if parents else None)
        parents.append((depth, m["name"]))
    return drawn


def test_every_error_class_declares_its_own_code_and_the_codes_are_unique() -> None:
    classes = _all_error_classes()
    assert len(classes) > 20, "the walk found the feature modules' errors too"

    undeclared = [c.__name__ for c in classes if "code" not in vars(c)]
    codes = [c.code for c in classes]

    assert undeclared == []
    assert len(codes) == len(set(codes)), sorted(codes)
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", code) for code in codes)


def test_every_error_class_is_drawn_in_the_tree_with_its_code_retry_rule_and_parent() -> None:
    drawn = _drawn_tree()
    classes = _all_error_classes()

    assert set(drawn) == {c.__name__ for c in classes}
    for cls in classes:
        code, retryable, parent = drawn[cls.__name__]
        tagsmith_bases = [b.__name__ for b in cls.__bases__ if issubclass(b, TagsmithError)]
        assert (cls.code, cls.retryable) == (code, retryable), cls.__name__
        assert tagsmith_bases == ([parent] if parent else []), cls.__name__


def test_transient_errors_are_retryable_and_input_errors_never() -> None:
    classes = _all_error_classes()

    assert all(c.retryable for c in classes if issubclass(c, TransientError))
    assert not any(c.retryable for c in classes if issubclass(c, InvalidInputError))


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.UnsupportedMediaError("not a photo"), "unsupported_media"),
        (errors.ImageTooLargeError("too many pixels"), "image_too_large"),
        (errors.InvalidInputError("empty object: 0 bytes"), "invalid_input"),
    ],
)
def test_a_failed_record_carries_the_code_its_error_declares(error: TagsmithError, code: str) -> None:
    from tagsmith.assetwriter import failure_code

    assert failure_code(error) == code
