"""The review console in a real headless Chromium: reviewers accept, reject and correct items with
the mouse and the keyboard, and the asset records and the OpenSearch index show it afterwards."""

from __future__ import annotations

from typing import Any

import pytest
from tagsmith.console import ConsoleServer
from tagsmith.keys import AssetKey
from tagsmith.records import NONE_TAG, Source, TagAssignment, TagState
from tagsmith.review import ReviewItem
from tagsmith.search import SearchQuery

from tests.e2e.scene import Scene, expect

pytestmark = [pytest.mark.e2e]


def open_queue(page: Any, server: ConsoleServer, token: str, query: str = "") -> None:
    page.goto(f"{server.url}/review{query}#token={token}")
    page.wait_for_selector("body[data-ready=true]")


def card(page: Any, item: ReviewItem) -> Any:
    return page.locator(f'article.card[data-id="{item.id}"]')


def tags_of(scene: Scene, item: ReviewItem) -> dict[str, TagAssignment]:
    got = scene.components.records.get(AssetKey("acme", item.asset_path))
    assert got is not None
    return {t.tag: t for t in got[0].tags if t.model == item.model}


def indexed(scene: Scene, item: ReviewItem) -> dict[str, Any]:
    """The asset's search hit (tags as the index holds them) and whether a tag filter finds it."""
    page = scene.components.index.search("acme", SearchQuery(text=None, size=100))
    [hit] = [h for h in page.hits if h.asset_key == f"acme/{item.asset_path}"]
    return {t["tag"]: t for t in hit.tags}


def found_by_tag(scene: Scene, item: ReviewItem, tag: str) -> bool:
    page = scene.components.index.search("acme", SearchQuery(tags=[f"{item.model}/{tag}"], size=100))
    return f"acme/{item.asset_path}" in [h.asset_key for h in page.hits]


def wait_gone(page: Any, item: ReviewItem) -> None:
    expect(card(page, item)).to_have_count(0)


def test_accept_with_the_mouse(page: Any, server: ConsoleServer, scene: Scene) -> None:
    item = scene.pending()[2]
    open_queue(page, server, scene.reviewer)
    card(page, item).locator("button[data-action=accept]").click()
    wait_gone(page, item)

    tag = tags_of(scene, item)[item.suggestion]
    assert (tag.state, tag.source, tag.decided_by) == (TagState.CONFIRMED, Source.HUMAN, "ana")
    assert indexed(scene, item)[item.suggestion]["state"] == "confirmed"
    assert found_by_tag(scene, item, item.suggestion)


def test_reject_with_the_keyboard(page: Any, server: ConsoleServer, scene: Scene) -> None:
    first, second = scene.pending()[:2]
    open_queue(page, server, scene.reviewer)
    expect(card(page, first)).to_have_class("card focused")
    page.keyboard.press("j")  # to the second item
    expect(card(page, second)).to_have_class("card focused")
    page.keyboard.press("r")
    wait_gone(page, second)

    assert tags_of(scene, second)[second.suggestion].state is TagState.REJECTED
    assert indexed(scene, second)[second.suggestion]["state"] == "rejected"
    assert not found_by_tag(scene, second, second.suggestion)
    assert tags_of(scene, first)[first.suggestion].state is TagState.REVIEW  # untouched


def test_correct_by_picking_an_alternative_with_a_number_key(
    page: Any, server: ConsoleServer, scene: Scene
) -> None:
    item = scene.pending()[0]
    right = item.alternatives[0].tag
    open_queue(page, server, scene.reviewer)
    page.keyboard.press("1")
    wait_gone(page, item)

    tags = tags_of(scene, item)
    assert (tags[right].state, tags[item.suggestion].state) == (TagState.CONFIRMED, TagState.REJECTED)
    assert found_by_tag(scene, item, right) and not found_by_tag(scene, item, item.suggestion)


def test_correct_with_the_pick_dialog(page: Any, server: ConsoleServer, scene: Scene) -> None:
    item = scene.pending()[0]
    others = [t for t in ("forest-bottle", "storm-blue-jacket", "sunset-tote") if t != item.suggestion]
    right = others[-1]
    label = {"forest-bottle": "bottle", "storm-blue-jacket": "jacket", "sunset-tote": "tote"}[right]
    open_queue(page, server, scene.reviewer)
    page.keyboard.press("p")
    expect(page.locator("#pick-dialog")).to_be_visible()
    page.keyboard.type(label)
    expect(page.locator("#pick-options li")).to_have_count(1)
    page.keyboard.press("Enter")
    wait_gone(page, item)

    assert tags_of(scene, item)[right].state is TagState.CONFIRMED
    assert found_by_tag(scene, item, right)


def test_none_of_these_with_the_mouse(page: Any, server: ConsoleServer, scene: Scene) -> None:
    item = scene.pending()[1]
    open_queue(page, server, scene.reviewer)
    card(page, item).locator("button[data-action=none]").click()
    wait_gone(page, item)

    assert list(tags_of(scene, item)) == [NONE_TAG]
    assert tags_of(scene, item)[NONE_TAG].state is TagState.CONFIRMED
    hit = scene.components.index.search("acme", SearchQuery(size=100)).to_dict()
    assert not any(f["value"].endswith(NONE_TAG) for f in hit["facets"]["tag_ids"])


def test_bulk_accept_the_same_suggestion_with_the_keyboard(
    page: Any, server: ConsoleServer, scene: Scene
) -> None:
    pending = scene.pending()
    first = pending[0]
    same = [i for i in pending if i.suggestion == first.suggestion]
    open_queue(page, server, scene.reviewer)
    page.keyboard.press("s")
    expect(page.locator("#selection")).to_have_text(f"{len(same)} selected")
    page.keyboard.press("Shift+A")
    for item in same:
        wait_gone(page, item)

    for item in same:
        assert tags_of(scene, item)[item.suggestion].state is TagState.CONFIRMED
        assert found_by_tag(scene, item, item.suggestion)
    assert len(scene.pending()) == len(pending) - len(same)


def test_multi_select_with_the_mouse_then_accept_selected(
    page: Any, server: ConsoleServer, scene: Scene
) -> None:
    chosen = scene.pending()[:2]
    open_queue(page, server, scene.reviewer)
    for item in chosen:
        card(page, item).locator("input.select").check()
    page.locator("#bulk-accept").click()
    for item in chosen:
        wait_gone(page, item)
        assert tags_of(scene, item)[item.suggestion].state is TagState.CONFIRMED


def test_filters_narrow_the_queue(page: Any, server: ConsoleServer, scene: Scene) -> None:
    tag = scene.pending()[0].suggestion
    expected = {i.id for i in scene.pending() if i.suggestion == tag}
    open_queue(page, server, scene.reviewer)
    page.locator("#f-tag").select_option(tag)
    expect(page.locator("article.card")).to_have_count(len(expected))
    assert {
        page.locator("article.card").nth(n).get_attribute("data-id") for n in range(len(expected))
    } == expected
    page.locator("#f-min").fill("0.99")
    page.locator("#f-min").dispatch_event("change")
    expect(page.locator("article.card")).to_have_count(0)
    expect(page.locator("#queue-empty")).to_be_visible()


def test_shortcuts_are_documented_on_the_page(page: Any, server: ConsoleServer, scene: Scene) -> None:
    open_queue(page, server, scene.reviewer)
    page.keyboard.press("?")
    help_text = page.locator("#help-dialog").inner_text()
    for action in ("accept", "reject", "pick", "none of these", "select", "accept all selected"):
        assert action in help_text.lower()


def test_another_tenants_reviewer_sees_only_their_items(
    page: Any, server: ConsoleServer, scene: Scene
) -> None:
    acme_item = scene.pending("acme")[0]
    open_queue(page, server, scene.other)
    ids = {
        page.locator("article.card").nth(n).get_attribute("data-id")
        for n in range(len(scene.pending("beta")))
    }
    assert ids == {i.id for i in scene.pending("beta")}
    expect(page.locator("#who-tenant")).to_have_text("beta")
    probe = page.evaluate(
        """async ([id, key, token]) => {
            const h = {Authorization: `Bearer ${token}`, "Content-Type": "application/json"};
            const d = await fetch(`/api/items/${id}/decision`, {method: "POST", headers: h, body: '{"action":"accept"}'});
            const i = await fetch(`/api/assets/image?key=${encodeURIComponent(key)}`, {headers: h});
            return [d.status, i.status];
        }""",
        [acme_item.id, f"acme/{acme_item.asset_path}", scene.other],
    )
    assert probe == [404, 404]
    assert tags_of(scene, acme_item)[acme_item.suggestion].state is TagState.REVIEW


def test_a_wrong_token_shows_the_sign_in_form(page: Any, server: ConsoleServer, scene: Scene) -> None:
    page.goto(f"{server.url}/review#token=tsk.acme.wrong")
    expect(page.locator("#signin")).to_be_visible()
    expect(page.locator("#signin-error")).to_contain_text("unknown token")
    page.locator("#token").fill(scene.reviewer)
    page.locator("#signin-form button").click()
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#who-name")).to_contain_text("ana")


def test_search_page_finds_by_free_text_in_two_languages_and_filters_by_tag(
    page: Any, server: ConsoleServer, scene: Scene
) -> None:
    item = scene.pending()[0]
    page.goto(f"{server.url}/review#token={scene.reviewer}")
    page.wait_for_selector("body[data-ready=true]")
    card(page, item).locator("button[data-action=accept]").click()
    wait_gone(page, item)

    page.goto(f"{server.url}/search")
    page.wait_for_selector("body[data-ready=true]")
    french = {"forest-bottle": "gourde", "storm-blue-jacket": "veste", "sunset-tote": "cabas"}[
        item.suggestion
    ]
    page.locator("#q").fill(french)
    page.locator("#lang").select_option("fr")
    page.locator("#search-form button").click()
    result = page.locator("article.result", has_text=item.asset_path)
    expect(result).to_have_count(1)
    facet = page.locator(f'#facet-tags input[value="product/{item.suggestion}"]')
    facet.check()
    expect(page.locator("#active-filters")).not_to_be_empty()
    expect(page.locator("article.result", has_text=item.asset_path)).to_have_count(1)
    shown = page.locator("article.result").count()
    assert (
        shown
        == scene.components.index.search(
            "acme", SearchQuery(text=french, languages=["fr"], tags=[f"product/{item.suggestion}"])
        ).total
    )
