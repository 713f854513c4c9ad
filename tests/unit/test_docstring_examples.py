"""Every example in the library's docstrings runs and shows what it says (examples that need the
reader's own files, such as ``photo.jpg``, are marked ``+SKIP``)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest
import tagsmith

MODULES = sorted(m.name for m in pkgutil.walk_packages(tagsmith.__path__, prefix="tagsmith."))


def test_every_module_is_found() -> None:
    assert {"tagsmith.records", "tagsmith.storage.cas", "tagsmith.tagmodels.calibration"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=False, verbose=False)
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} examples in {name} failed (run pytest --doctest-modules on it)"
    )
