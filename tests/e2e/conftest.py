"""Browser-test fixtures: Debian's headless chromium driven by Playwright, and a real console
server on a free loopback port over a populated scene whose index is OpenSearch (osmem).

Chromium comes from ``make browser`` (``apt-get install chromium``); Playwright only drives it and
never downloads a browser. The tests skip, saying why, only when chromium is truly absent.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import OpenSearch
from tagsmith.console import ConsoleServer, start_console
from tagsmith.search import OpenSearchIndex

from tests.e2e.scene import Scene, clone_scene, new_scene

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = CHROMIUM if CHROMIUM.exists() else Path(shutil.which("chromium") or CHROMIUM)
    if not executable.exists():
        pytest.skip(
            f"no chromium at {CHROMIUM}: run `make browser` (apt-get install chromium) to run browser tests"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is missing: pip install -e '.[dev]'")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def built() -> Scene:
    return new_scene(blends=6, clean=3)


@pytest.fixture
def scene(built: Scene, osmem_clone: Any) -> Iterator[Scene]:
    client = OpenSearch(hosts=[osmem_clone.url], timeout=30)
    yield clone_scene(built, index=OpenSearchIndex(client=client), retrain_every=50)
    client.close()


@pytest.fixture
def server(scene: Scene) -> Iterator[ConsoleServer]:
    s = start_console(scene.services, host="127.0.0.1", port=0)
    yield s
    s.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context per test; any JavaScript error fails the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.set_default_timeout(10_000)
    yield pg
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"
