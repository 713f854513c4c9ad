"""The console in a real headless Chromium at the widths people use (a laptop, a small laptop or
tablet, a split window, a phone): no horizontal scroll, a one-line header, every action reachable
with the keyboard; and the details a first review session notices (the corrections counter, the
search placeholder, tags waiting for review, a confirmed tag shown once)."""

from __future__ import annotations

from typing import Any

import pytest
from tagsmith.console import ConsoleServer
from tagsmith.taxonomy import TagDefinition, Taxonomy

from tests.e2e.scene import Scene, expect

pytestmark = [pytest.mark.e2e]
WIDTHS = (1366, 1024, 800, 390)
# Everything a person can act on; each must be reachable with Tab
INTERACTIVE = "button:not([disabled]), a[href], input:not([type=hidden]), select"


def open_page(page: Any, server: ConsoleServer, token: str, name: str, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 860})
    page.goto(f"{server.url}/{name}#token={token}")
    page.wait_for_selector("body[data-ready=true]")


def open_with_results(page: Any, server: ConsoleServer, scene: Scene, name: str, width: int) -> None:
    """The review queue, or the search page with results and the waiting-for-review notice."""
    open_page(page, server, scene.reviewer, name, width)
    if name == "search":
        page.locator("#q").fill("jacket")
        page.keyboard.press("Enter")
        expect(page.locator("#waiting")).to_be_visible()


def layout(page: Any) -> dict[str, Any]:
    return dict(
        page.evaluate(
            """() => ({
                scroll: document.documentElement.scrollWidth,
                width: window.innerWidth,
                header: document.querySelector('.topbar').getBoundingClientRect().height,
                outside: [...document.querySelectorAll('.card, .toolbar, .panel, .searchbar, .notice')]
                    .filter((e) => e.offsetParent !== null)
                    .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5)
                    .map((e) => e.className),
            })"""
        )
    )


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", ["review", "search"])
def test_the_page_fits_the_window_with_a_one_line_header(
    page: Any, server: ConsoleServer, scene: Scene, name: str, width: int
) -> None:
    open_with_results(page, server, scene, name, width)
    got = layout(page)

    assert got["scroll"] <= got["width"], f"horizontal scroll at {width}px: {got}"
    assert got["outside"] == [], f"cut off at {width}px: {got['outside']}"
    assert got["header"] <= 60, f"the header wraps at {width}px ({got['header']}px high)"


@pytest.mark.parametrize("width", WIDTHS)
def test_the_sign_in_form_fits_the_window(page: Any, server: ConsoleServer, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 860})
    page.goto(f"{server.url}/review")
    expect(page.locator("#signin")).to_be_visible()
    got = layout(page)

    assert got["scroll"] <= got["width"] and got["outside"] == [], got
    assert "acme" not in (page.locator("#token").get_attribute("placeholder") or "")  # no demo tenant


def tab_through(page: Any, presses: int) -> set[str]:
    """The elements Tab reaches, each named by a path through the DOM."""
    reached = set()
    for _ in range(presses):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("() => window.__path(document.activeElement)"))
    return reached


PATH_JS = """() => { window.__path = (e) => {
    const parts = [];
    for (; e && e !== document.body; e = e.parentElement) {
        parts.unshift(`${e.tagName}:${[...e.parentElement.children].indexOf(e)}`);
    }
    return parts.join('/');
}; }"""


@pytest.mark.parametrize("width", [1366, 390])
@pytest.mark.parametrize("name", ["review", "search"])
def test_every_action_is_reachable_with_the_keyboard(
    page: Any, server: ConsoleServer, scene: Scene, name: str, width: int
) -> None:
    open_with_results(page, server, scene, name, width)
    page.evaluate(PATH_JS)
    wanted = set(
        page.evaluate(
            f"() => [...document.querySelectorAll('{INTERACTIVE}')]"
            ".filter((e) => e.offsetParent !== null && !e.closest('[hidden]')).map(window.__path)"
        )
    )
    page.locator("body").focus()
    reached = tab_through(page, len(wanted) + 10)

    assert wanted, "no action found on the page"
    assert wanted <= reached, f"not reachable with Tab: {sorted(wanted - reached)}"


def test_the_backlog_filters_from_the_keyboard(page: Any, server: ConsoleServer, scene: Scene) -> None:
    open_page(page, server, scene.reviewer, "review", 1366)
    row = page.locator("#backlog button").first
    wanted = row.inner_text().split(" · ")[0]
    row.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#f-model")).to_have_value(wanted)
    expect(page.locator("#f-tag")).not_to_have_value("")


def test_the_corrections_counter_moves_with_each_decision(
    page: Any, server: ConsoleServer, scene: Scene
) -> None:
    open_page(page, server, scene.reviewer, "review", 1366)
    counter = page.locator("#models .small", has_text="new corrections before the next retrain")
    expect(counter).to_have_text("0 of 50 new corrections before the next retrain")
    page.keyboard.press("a")  # accept the first item
    expect(counter).to_have_text("1 of 50 new corrections before the next retrain")
    page.keyboard.press("1")  # pick the next one's first alternative: a correction too
    expect(counter).to_have_text("2 of 50 new corrections before the next retrain")


def test_the_search_placeholder_shows_the_tenants_own_labels(
    page: Any, server: ConsoleServer, scene: Scene
) -> None:
    beta = Taxonomy(
        (
            TagDefinition("storm-blue-jacket", {"en": "Harbour raincoat", "fr": "ciré du port"}),
            TagDefinition("sunset-tote", {"en": "Market basket"}),
            TagDefinition("forest-bottle", {"en": "Field flask"}),
        )
    )
    scene.components.models.save_taxonomy("beta", "product", beta)
    scene.services.models.invalidate("beta")

    open_page(page, server, scene.other, "search", 1366)
    beta_hint = page.locator("#q").get_attribute("placeholder")
    open_page(page, server, scene.reviewer, "search", 1366)
    acme_hint = page.locator("#q").get_attribute("placeholder")

    beta_words = ("Harbour raincoat", "ciré du port", "Market basket", "Field flask")
    acme_words = ("Aurora", "Sunset", "Forest", "veste", "gourde", "sac cabas")
    assert any(w in beta_hint for w in beta_words) and not any(w in beta_hint for w in acme_words)
    assert any(w in acme_hint for w in acme_words) and not any(w in acme_hint for w in beta_words)


def test_assets_waiting_for_review_are_counted_and_can_be_included(
    page: Any, server: ConsoleServer, scene: Scene
) -> None:
    open_page(page, server, scene.reviewer, "search", 1366)
    page.locator("#q").fill("Aurora")  # a label word: file names do not hold it
    page.keyboard.press("Enter")
    notice = page.locator("#waiting")
    expect(notice).to_be_visible()
    waiting = int(page.locator("#waiting-text").inner_text().split()[0])
    shown = page.locator("article.result").count()
    assert waiting > 0 and "waiting for review" in notice.inner_text()

    page.locator("#waiting-toggle").focus()
    page.keyboard.press("Enter")
    expect(page.locator("article.result")).to_have_count(shown + waiting)
    expect(page.locator("#waiting-text")).to_contain_text(f"Including {waiting} asset")
    expect(page.locator("article.result .chip.review").first).to_be_visible()


def test_a_confirmed_tag_is_shown_once(page: Any, server: ConsoleServer, scene: Scene) -> None:
    item = next(i for i in scene.pending() if i.suggestion == "storm-blue-jacket")
    scene.services.decisions.decide("acme", item.id, "accept", reviewer="ana")

    open_page(page, server, scene.reviewer, "search", 1366)
    page.locator("#q").fill("Aurora jacket")
    page.keyboard.press("Enter")
    result = page.locator("article.result", has_text=item.asset_path)
    expect(result.locator(".chip.human")).to_have_text("Aurora jacket, storm blue")
    expect(result.locator(".highlight")).to_have_count(0)
    assert result.inner_text().count("Aurora jacket, storm blue") == 1

    page.locator("#q").fill("parka")  # a synonym: the highlight says why it matched
    page.keyboard.press("Enter")
    expect(result.locator(".highlight")).to_have_text("parka")
