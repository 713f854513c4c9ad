"""Empty, ``.`` and ``..`` key segments are refused at every entry point, so no check holds only
because S3 keeps ``..`` literal: bulk-accept ids, training examples, the video frame route and
``tagsmith upload --prefix``."""

from __future__ import annotations

import json
import posixpath
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from tagsmith.cli import app
from tagsmith.console import Request, Response, handle
from tagsmith.search import InMemorySearchIndex
from tagsmith.trainjobs import TrainingJobs, TrainingRequest
from typer.testing import CliRunner

from tests.e2e.scene import Scene, clone_scene, new_scene


@pytest.fixture(scope="module")
def built() -> Scene:
    return new_scene(blends=3, clean=1)


@pytest.fixture
def scene(built: Scene) -> Scene:
    """The scene over a store that resolves ``..`` as a folder or URL would: the checks must not
    depend on the store keeping such keys literal."""
    cloned = clone_scene(built, index=InMemorySearchIndex())
    store = cloned.components.store
    for name in ("get", "head", "list", "open"):
        original = getattr(store, name)

        def resolving(bucket: str, key: str, *args: Any, _original: Any = original, **kw: Any) -> Any:
            trailing = "/" if key.endswith("/") else ""
            resolved = posixpath.normpath(key) + trailing if key else key
            return _original(bucket, resolved.lstrip("/") if resolved not in (".", "./") else "", *args, **kw)

        setattr(store, name, resolving)
    return cloned


def call(scene: Scene, method: str, target: str, token: str, body: Any = None) -> Response:
    data = json.dumps(body).encode() if body is not None else b""
    return handle(Request.build(method, target, {"Authorization": f"Bearer {token}"}, data), scene.services)


class Reads:
    """Records every key the store is asked for."""

    def __init__(self, scene: Scene) -> None:
        self.keys: list[str] = []
        store = scene.components.store
        original = store.get

        def get(bucket: str, key: str) -> Any:
            self.keys.append(key)
            return original(bucket, key)

        store.get = get  # type: ignore[method-assign]


def test_bulk_accept_never_reads_an_id_with_dot_dot_segments(scene: Scene) -> None:
    beta_item = scene.pending("beta")[0]
    reads = Reads(scene)
    sneaky = f"../../beta/reviews/{beta_item.id}"
    r = call(scene, "POST", "/api/decisions/bulk-accept", scene.reviewer, {"item_ids": [sneaky, ".", ""]})
    assert r.status == 200
    results = json.loads(r.body)["results"]
    assert [x["status"] for x in results] == [404, 404, 404]
    assert not [k for k in reads.keys if ".." in k or k.endswith("/.json")]


def test_the_frame_route_refuses_a_thumbnail_key_that_climbs_out_of_the_tenant(scene: Scene) -> None:
    item = scene.pending("acme")[0]
    beta_frame = "tenants/beta/frames/clip.jpg"
    scene.components.store.put(
        "data", beta_frame, scene.components.store.get("assets", f"acme/{item.asset_path}").body
    )
    scene.components.reviews.put(replace(item, thumbnail_key="tenants/acme/../beta/frames/clip.jpg"))
    assert call(scene, "GET", f"/api/items/{item.id}/frame", scene.reviewer).status == 404


@pytest.mark.parametrize(
    "examples",
    ["s3://data/tenants/acme/../beta/examples/", "s3://assets/acme/../beta/", "s3://assets/acme//x/"],
)
def test_training_examples_with_dot_dot_segments_are_outside_the_tenant(scene: Scene, examples: str) -> None:
    c = scene.components
    jobs = TrainingJobs(
        store=c.store, data_bucket="data", trainer=c.trainer, records=c.records, assets_bucket="assets"
    )
    status = jobs.train_now(TrainingRequest(tenant="acme", model="product", examples=(examples,)))
    assert status["state"] == "failed"
    assert "outside this tenant's objects" in status["error"]


@pytest.mark.parametrize("prefix", ["../beta", "a/./b", "x/../../beta"])
def test_upload_refuses_a_prefix_with_dot_segments(tmp_path: Path, prefix: str) -> None:
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"\xff\xd8")
    result = CliRunner().invoke(
        app, ["upload", "--tenant", "acme", "--prefix", prefix, str(photo), "--target", "aws"]
    )
    assert result.exit_code == 1
    assert "'.' or '..' path segment" in result.output
