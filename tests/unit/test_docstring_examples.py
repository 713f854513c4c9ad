"""Every example in the library's docstrings runs and shows what it says (examples that need the
reader's own files, such as ``photo.jpg``, are marked ``+SKIP``). They run in a folder of the
test session's own, so the ONNX graphs some of them write (``tagsmith-cache``: the session's
shared encoder cache) stay inside the sandbox."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest
import tagsmith

MODULES = sorted(m.name for m in pkgutil.walk_packages(tagsmith.__path__, prefix="tagsmith."))


def test_every_module_is_found() -> None:
    assert {"tagsmith.records", "tagsmith.storage.cas", "tagsmith.tagmodels.calibration"} <= set(MODULES)


@pytest.fixture(scope="module")
def examples_dir(tmp_path_factory: pytest.TempPathFactory, encoder_cache_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("docstring-examples")
    (folder / "tagsmith-cache").symlink_to(encoder_cache_dir, target_is_directory=True)
    return folder


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str, examples_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(examples_dir)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=False, verbose=False)
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} examples in {name} failed (run pytest --doctest-modules on it)"
    )
