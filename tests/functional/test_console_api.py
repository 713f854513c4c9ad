"""The console API through its pure ``handle(request)``: routes, decisions, tenant isolation, roles.

The scene (two tenants, trained models, photos waiting for review) is built with the real training
and ingest services over in-memory adapters and a fake encoder; the search index is OpenSearch
(osmem) so the index checks run against the real adapter.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from tagsmith.console import Request, Response, handle
from tagsmith.keys import AssetKey
from tagsmith.records import TagState
from tagsmith.search import OpenSearchIndex

from tests.e2e.scene import Scene, clone_scene, new_scene


@pytest.fixture(scope="module")
def built() -> Scene:
    return new_scene()


@pytest.fixture
def scene(built: Scene, opensearch_index: OpenSearchIndex) -> Scene:
    """A fresh copy of the built scene per test, indexed in a per-test OpenSearch clone."""
    return clone_scene(built, index=opensearch_index, retrain_every=3)


def call(scene: Scene, method: str, target: str, token: str | None = None, body: Any = None) -> Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = json.dumps(body).encode() if body is not None else b""
    return handle(Request.build(method, target, headers, data), scene.services)


def payload(response: Response) -> Any:
    return json.loads(response.body)


def test_queue_lists_pending_items_most_informative_first_with_backlog(scene: Scene) -> None:
    r = call(scene, "GET", "/api/queue", scene.reviewer)
    assert r.status == 200
    data = payload(r)
    pending = scene.pending("acme")
    assert data["total"] == len(pending) >= 4
    scores = [i["informativeness"] for i in data["items"]]
    assert scores == sorted(scores, reverse=True)
    assert {i["asset_key"].split("/")[0] for i in data["items"]} == {"acme"}
    assert sum(b["pending"] for b in data["backlog"]) == len(pending)
    assert all(b["tenant"] == "acme" and b["model"] == "product" for b in data["backlog"])


def test_queue_filters_by_model_tag_and_confidence(scene: Scene) -> None:
    some = scene.pending("acme")[0]
    r = payload(call(scene, "GET", f"/api/queue?tag={some.suggestion}", scene.reviewer))
    assert r["items"] and {i["suggestion"] for i in r["items"]} == {some.suggestion}
    r = payload(call(scene, "GET", "/api/queue?min_confidence=0.99", scene.reviewer))
    assert r["items"] == []
    r = payload(call(scene, "GET", "/api/queue?model=nope", scene.reviewer))
    assert r["total"] == 0
    assert call(scene, "GET", "/api/queue?min_confidence=2", scene.reviewer).status == 400


def test_decisions_through_the_api_change_the_record_and_the_index(scene: Scene) -> None:
    c = scene.components
    first, second, third = scene.pending("acme")[:3]
    other = next(a.tag for a in third.alternatives)
    assert payload(
        call(scene, "POST", f"/api/items/{first.id}/decision", scene.reviewer, {"action": "accept"})
    )["ok"]
    assert (
        call(scene, "POST", f"/api/items/{second.id}/decision", scene.reviewer, {"action": "reject"}).status
        == 200
    )
    r = call(
        scene, "POST", f"/api/items/{third.id}/decision", scene.reviewer, {"action": "pick", "tag": other}
    )
    assert r.status == 200

    def tags(item: Any) -> list[tuple[str, TagState, str | None]]:
        got = c.records.get(AssetKey("acme", item.asset_path))
        assert got is not None
        return [(t.tag, t.state, t.decided_by) for t in got[0].tags]

    assert tags(first) == [(first.suggestion, TagState.CONFIRMED, "ana")]
    assert tags(second) == [(second.suggestion, TagState.REJECTED, "ana")]
    assert sorted(tags(third)) == sorted(
        [(other, TagState.CONFIRMED, "ana"), (third.suggestion, TagState.REJECTED, "ana")]
    )
    found = payload(call(scene, "GET", f"/api/search?tag=product/{other}&source=human", scene.reviewer))
    assert f"acme/{third.asset_path}" in [h["asset_key"] for h in found["hits"]]
    assert payload(call(scene, "GET", "/api/queue", scene.reviewer))["total"] == len(scene.pending("acme"))
    assert first.id not in {i.id for i in scene.pending("acme")}


def test_bulk_accept_reports_each_item(scene: Scene) -> None:
    items = scene.pending("acme")[:2]
    r = payload(
        call(
            scene,
            "POST",
            "/api/decisions/bulk-accept",
            scene.reviewer,
            {"item_ids": [i.id for i in items] + ["0" * 24]},
        )
    )
    assert r["accepted"] == 2
    assert [x["ok"] for x in r["results"]] == [True, True, False]
    assert r["results"][2]["status"] == 404


def test_enough_corrections_request_a_retrain_shown_by_the_models_route(scene: Scene) -> None:
    for item in scene.pending("acme")[:3]:
        r = payload(
            call(scene, "POST", f"/api/items/{item.id}/decision", scene.reviewer, {"action": "accept"})
        )
    assert r["retrain"] is not None and r["retrain"]["corrections"] is True
    [model] = payload(call(scene, "GET", "/api/models", scene.reviewer))["models"]
    assert model["corrections"]["total"] == 3 and model["corrections"]["since_request"] == 0
    assert model["corrections"]["requests"][-1]["baseline"]["version"] == model["version"]
    assert scene.components.store.head("data", r["retrain"]["key"]) is not None


def test_images_are_served_only_to_their_tenant(scene: Scene) -> None:
    item = scene.pending("acme")[0]
    key = f"acme/{item.asset_path}"
    ok = call(scene, "GET", f"/api/assets/image?key={key}", scene.reviewer)
    assert ok.status == 200 and ok.headers["content-type"] == "image/jpeg" and ok.body[:2] == b"\xff\xd8"
    assert call(scene, "GET", f"/api/assets/image?key={key}", scene.other).status == 404
    assert call(scene, "GET", f"/api/assets/image?key={key}").status == 401
    beta_key = f"beta/{scene.pending('beta')[0].asset_path}"
    assert call(scene, "GET", f"/api/assets/image?key={beta_key}", scene.reviewer).status == 404
    assert call(scene, "GET", "/api/assets/image?key=acme/../beta/x.jpg", scene.reviewer).status == 404
    assert call(scene, "GET", "/api/assets/image?key=acme/nothing.jpg", scene.reviewer).status == 404


def test_another_tenants_items_cannot_be_seen_or_decided(scene: Scene) -> None:
    theirs = scene.pending("beta")[0]
    for method, target, body in [
        ("GET", f"/api/items/{theirs.id}", None),
        ("POST", f"/api/items/{theirs.id}/decision", {"action": "accept"}),
    ]:
        r = call(scene, method, target, scene.reviewer, body)
        assert r.status == 404, (target, r.body)
    r = payload(call(scene, "POST", "/api/decisions/bulk-accept", scene.reviewer, {"item_ids": [theirs.id]}))
    assert r["accepted"] == 0 and r["results"][0]["status"] == 404
    assert theirs.id in {i.id for i in scene.pending("beta")}  # untouched
    queue = payload(call(scene, "GET", "/api/queue", scene.reviewer))
    assert theirs.id not in {i["id"] for i in queue["items"]}
    hits = payload(call(scene, "GET", "/api/search", scene.reviewer))["hits"]
    assert hits and all(h["asset_key"].startswith("acme/") for h in hits)


def test_a_reader_may_look_but_not_decide(scene: Scene) -> None:
    item = scene.pending("acme")[0]
    assert call(scene, "GET", "/api/queue", scene.reader).status == 200
    r = call(scene, "POST", f"/api/items/{item.id}/decision", scene.reader, {"action": "accept"})
    assert r.status == 403 and "reviewer" in payload(r)["error"]
    assert item.id in {i.id for i in scene.pending("acme")}


@pytest.mark.parametrize(
    ("token", "status"),
    [(None, 401), ("tsk.acme.not-a-real-secret", 401), ("garbage", 401), ("tsk.beta", 401)],
)
def test_requests_without_a_valid_token_are_refused(scene: Scene, token: str | None, status: int) -> None:
    assert call(scene, "GET", "/api/queue", token).status == status


def test_a_forged_token_for_another_tenant_fails(scene: Scene) -> None:
    secret = scene.reviewer.split(".", 2)[2]
    assert call(scene, "GET", "/api/me", f"tsk.beta.{secret}").status == 401


def test_bad_requests_say_what_is_wrong(scene: Scene) -> None:
    item = scene.pending("acme")[0]
    target = f"/api/items/{item.id}/decision"
    r = call(scene, "POST", target, scene.reviewer, {"action": "maybe"})
    assert r.status == 400 and "unknown action" in payload(r)["error"]
    r = call(scene, "POST", target, scene.reviewer, {"action": "pick", "tag": "unicorn"})
    assert r.status == 400 and "pick one of" in payload(r)["error"]
    r = handle(
        Request.build("POST", target, {"Authorization": f"Bearer {scene.reviewer}"}, b"{not json"),
        scene.services,
    )
    assert r.status == 400
    assert call(scene, "GET", target, scene.reviewer).status == 405
    assert call(scene, "GET", "/api/nothing", scene.reviewer).status == 404


def test_pages_and_static_files_are_served_with_a_strict_policy(scene: Scene) -> None:
    for path, kind in [
        ("/review", "text/html"),
        ("/search", "text/html"),
        ("/static/review.js", "javascript"),
        ("/static/console.css", "text/css"),
    ]:
        r = call(scene, "GET", path)
        assert r.status == 200 and kind in r.headers["content-type"], path
        assert "script-src 'self'" in r.headers["content-security-policy"]
    assert call(scene, "GET", "/static/../api.py").status == 404
    assert call(scene, "GET", "/etc/passwd").status == 404
    page = call(scene, "GET", "/review").body.decode()
    for key in ("<kbd>A</kbd>", "<kbd>R</kbd>", "<kbd>N</kbd>", "<kbd>P</kbd>", "<kbd>S</kbd>"):
        assert key in page  # every action's shortcut is documented on the page


def test_a_video_item_shows_its_frame_and_only_to_its_tenant(scene: Scene) -> None:
    from dataclasses import fields, replace

    from tagsmith.review import ReviewItem

    if "thumbnail_key" not in {f.name for f in fields(ReviewItem)}:
        pytest.skip("review items carry no video frame in this version")
    item = scene.pending("acme")[0]
    frame_key = "tenants/acme/frames/clip.jpg"
    frame = scene.components.store.get("assets", f"acme/{item.asset_path}").body
    scene.components.store.put("data", frame_key, frame)
    scene.components.reviews.put(replace(item, thumbnail_key=frame_key, timestamp=12.5))  # type: ignore[call-arg]
    [listed] = [
        i for i in payload(call(scene, "GET", "/api/queue", scene.reviewer))["items"] if i["id"] == item.id
    ]
    assert listed["image_url"].startswith(f"/api/items/{item.id}/frame") and listed["timestamp"] == 12.5
    r = call(scene, "GET", listed["image_url"], scene.reviewer)
    assert r.status == 200 and r.body[:2] == b"\xff\xd8"
    assert call(scene, "GET", listed["image_url"], scene.other).status == 404
    scene.components.reviews.put(replace(item, thumbnail_key="tenants/beta/frames/x.jpg"))  # type: ignore[call-arg]
    assert call(scene, "GET", f"/api/items/{item.id}/frame", scene.reviewer).status == 404
