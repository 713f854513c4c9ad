"""The local stack serves the documented search API, ``GET /v1/search``, beside the console: the
request goes through the real search function as an API Gateway v2 event."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from tagsmith.console import ConsoleServer, start_console
from tagsmith.local.httpapi import LocalHttpApi
from tagsmith.local.stack import REPO_ROOT, load_function

from tests.e2e.scene import Scene, new_scene


@pytest.fixture(scope="module")
def scene() -> Scene:
    return new_scene(blends=2, clean=3)


@pytest.fixture(scope="module")
def server(scene: Scene) -> Iterator[ConsoleServer]:
    def load(functions_dir: Any, name: str) -> Any:
        module = load_function(functions_dir, name)
        module.components.set(scene.components)  # the stack's components, as its environment builds
        return module.handler

    api = LocalHttpApi.from_definition(REPO_ROOT / "functions", load=load)
    s = start_console(scene.services, host="127.0.0.1", port=0, routes=api)
    yield s
    s.stop()


def get(server: ConsoleServer, path: str, token: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(server.url + path, headers=headers), timeout=30
        ) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_v1_search_answers_as_documented(server: ConsoleServer, scene: Scene) -> None:
    status, page = get(server, "/v1/search?q=jacket&size=5", scene.reviewer)

    assert status == 200
    assert set(page) >= {"total", "hits", "next_search_after", "next_cursor", "facets"}
    assert page["total"] > 0 and all(h["asset_key"].startswith("acme/") for h in page["hits"])


def test_v1_search_and_the_console_find_the_same_assets(server: ConsoleServer, scene: Scene) -> None:
    _, api = get(server, "/v1/search?q=bottle&size=50", scene.reviewer)
    _, console = get(server, "/api/search?q=bottle&size=50", scene.reviewer)

    assert [h["asset_key"] for h in api["hits"]] == [h["asset_key"] for h in console["hits"]]


def test_v1_search_refuses_a_missing_token_and_a_bad_parameter(server: ConsoleServer, scene: Scene) -> None:
    assert get(server, "/v1/search?q=jacket", None)[0] == 401
    status, body = get(server, "/v1/search?tenant=beta", scene.reviewer)
    assert status == 400 and "unknown parameter" in body["error"]


def test_v1_search_keeps_to_the_tokens_tenant(server: ConsoleServer, scene: Scene) -> None:
    _, page = get(server, "/v1/search?size=100", scene.other)

    assert page["total"] > 0 and all(h["asset_key"].startswith("beta/") for h in page["hits"])


def test_other_paths_still_reach_the_console(server: ConsoleServer, scene: Scene) -> None:
    assert get(server, "/api/me", scene.reviewer) == (
        200,
        {"tenant": "acme", "name": "ana", "role": "reviewer", "can_decide": True},
    )
