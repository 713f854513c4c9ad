"""The review Lambda handler: API Gateway v2 events in, console responses out (sample events in
``functions/review/events``)."""

from __future__ import annotations

import base64
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import pytest
from tagsmith.keys import AssetKey
from tagsmith.local.runtime import LambdaContext
from tagsmith.records import TagState
from tagsmith.search import InMemorySearchIndex

from tests.e2e.scene import Scene, clone_scene, new_scene

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
EVENTS = FUNCTIONS / "review" / "events"


@pytest.fixture(scope="module")
def built() -> Scene:
    return new_scene(blends=3, clean=1)


@pytest.fixture
def scene(built: Scene) -> Scene:
    return clone_scene(built, index=InMemorySearchIndex())


@pytest.fixture
def review(scene: Scene, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "review_handler_under_test", FUNCTIONS / "review" / "handler.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.services.set(scene.services)  # instead of what services() builds from the environment
    return module


def event(name: str, **replace: str) -> dict[str, Any]:
    text = (EVENTS / name).read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    return json.loads(text)


def invoke(module: ModuleType, ev: dict[str, Any]) -> dict[str, Any]:
    return module.handler(ev, LambdaContext(function_name="tagsmith-review"))


def test_a_decision_event_decides_the_item(review: ModuleType, scene: Scene) -> None:
    item = scene.pending()[0]
    result = invoke(review, event("decision.json", TOKEN=scene.reviewer, ITEM_ID=item.id))
    assert result["statusCode"] == 200 and not result["isBase64Encoded"]
    assert json.loads(result["body"])["changed"] is True
    got = scene.components.records.get(AssetKey("acme", item.asset_path))
    assert got is not None and got[0].tags[0].state is TagState.CONFIRMED


def test_another_tenants_token_gets_404_and_changes_nothing(review: ModuleType, scene: Scene) -> None:
    item = scene.pending()[0]
    result = invoke(review, event("decision.json", TOKEN=scene.other, ITEM_ID=item.id))
    assert result["statusCode"] == 404
    assert item.id in {i.id for i in scene.pending()}


def test_images_come_back_base64_encoded(review: ModuleType, scene: Scene) -> None:
    item = scene.pending()[0]
    ev = event("image.json", TOKEN=scene.reviewer, ASSET_KEY=quote(f"acme/{item.asset_path}", safe=""))
    result = invoke(review, ev)
    assert result["statusCode"] == 200 and result["isBase64Encoded"]
    assert base64.b64decode(result["body"])[:2] == b"\xff\xd8"
    assert result["headers"]["content-type"] == "image/jpeg"
