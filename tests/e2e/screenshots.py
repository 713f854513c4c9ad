"""Screenshots of the console for ``docs/`` (``python -m tests.e2e.screenshots``), taken with the same
headless chromium as the browser tests, over the browser tests' scene. Japanese labels need Debian's
``fonts-noto-cjk`` (chromium has no CJK font of its own)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright
from tagsmith.console import start_console

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.scene import new_scene

DOCS = Path(__file__).resolve().parents[2] / "docs"


def main(out: Path = DOCS) -> None:
    # the fake encoder (colour histograms) is unsure about many generated photos, which makes a
    # realistic queue; the real one is certain about every one of these simple drawings
    scene = new_scene(blends=12, clean=9, threshold=0.99)
    server = start_console(scene.services)
    out.mkdir(exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 960}, device_scale_factor=1)
            page.goto(f"{server.url}/review#token={scene.reviewer}")
            page.wait_for_selector("body[data-ready=true]")
            page.keyboard.press("j")
            page.keyboard.press("x")
            page.keyboard.press("s")
            page.wait_for_timeout(600)  # images are fetched after the cards
            page.screenshot(path=str(out / "console-review.png"))
            page.keyboard.press("Escape")
            page.keyboard.press("p")
            page.keyboard.type("bo")
            page.wait_for_timeout(200)
            page.screenshot(path=str(out / "console-pick.png"))
            page.keyboard.press("Escape")
            for (
                item
            ) in scene.pending():  # a reviewer settles the catalogue shots (their names say what they show)
                if item.asset_path.startswith("catalogue/"):
                    truth = item.asset_path.split("/")[1].rsplit("-", 1)[0]
                    action = "accept" if truth == item.suggestion else "pick"
                    scene.services.decisions.decide(
                        "acme", item.id, action, tag=truth if action == "pick" else None, reviewer="ana"
                    )
            page.goto(f"{server.url}/search")
            page.wait_for_selector("body[data-ready=true]")
            page.wait_for_timeout(800)
            page.screenshot(path=str(out / "console-search.png"))
            page.locator("#q").fill("veste")
            page.locator("#lang").select_option("fr")
            page.wait_for_timeout(800)
            page.screenshot(path=str(out / "console-search-french.png"))
            widths(browser, server.url, scene.reviewer, out)
            browser.close()
    finally:
        server.stop()
    print(f"wrote {', '.join(sorted(p.name for p in out.glob('console-*.png')))} to {out}", file=sys.stderr)


#: The widths the layout is tested at (tests/e2e/test_console_layout.py): a laptop, a small
#: laptop or tablet, a split window, a phone.
WIDTHS = (1366, 1024, 800, 390)


def widths(browser: Any, url: str, token: str, out: Path) -> None:
    """The review queue at every width, and a search with assets waiting for review."""
    for width in WIDTHS:
        page = browser.new_page(viewport={"width": width, "height": 800}, device_scale_factor=1)
        page.goto(f"{url}/review#token={token}")
        page.wait_for_selector("body[data-ready=true]")
        page.wait_for_timeout(600)
        page.screenshot(path=str(out / f"console-review-{width}.png"))
        if width in (800, 390):
            page.goto(f"{url}/search?q=Aurora")
            page.wait_for_selector("body[data-ready=true]")
            page.wait_for_timeout(800)
            page.screenshot(path=str(out / f"console-search-{width}.png"))
        page.close()


if __name__ == "__main__":
    main()
