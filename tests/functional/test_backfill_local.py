"""Backfill through the local stack: a promotion re-tags the library via SQS, human decisions kept.

Runs the real stack (moto S3/SQS server, osmem, the Lambda-style pollers of every function in
``resources.py``) on free ports in a temporary home, with the real encoder and ingest path.
"""

from __future__ import annotations

import io
import time
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from tagsmith.examples import Example
from tagsmith.keys import AssetKey
from tagsmith.local.stack import LocalStack
from tagsmith.records import Source, TagAssignment, TagState
from tagsmith.trainer import TrainingOptions
from tagsmith.wiring import Components, build

pytestmark = pytest.mark.slow

COLOURS = {"red": (200, 30, 30), "green": (30, 180, 40), "blue": (30, 40, 200)}


def photo(rgb: tuple[int, int, int], seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(rgb) + rng.normal(0, 25, (96, 96, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def train(c: Components, tenant: str) -> str:
    examples = [
        Example(tag, f"{tag}-{i}", lambda rgb=rgb, i=i: photo(rgb, 1000 + i))
        for tag, rgb in COLOURS.items()
        for i in range(4)
    ]
    return c.trainer.train(
        tenant=tenant, model_id="colour", examples=examples, options=TrainingOptions(threshold=0.5)
    ).version


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def stack(local_stack: LocalStack) -> LocalStack:
    return local_stack


def test_promotion_backfills_the_library_through_sqs_keeping_human_decisions(stack: LocalStack):
    # GIVEN a tenant whose library was tagged by model version 1
    assert stack.info is not None
    c = build(stack.info.settings())
    tenant = "acme"
    v1 = train(c, tenant)
    colours = list(COLOURS)
    keys = [f"{tenant}/library/{i:03d}.jpg" for i in range(30)]
    for i, key in enumerate(keys):
        c.store.put(c.settings.assets_bucket, key, photo(COLOURS[colours[i % 3]], i))

    def all_on(version: str) -> bool:
        got = [c.records.get(AssetKey(tenant, k.split("/", 1)[1])) for k in keys]
        return all(g is not None and g[0].models.get("colour") == version for g in got)

    wait_for(lambda: all_on(v1), 120, "the first ingest")
    # ... and a reviewer rejected the AI's tag on one asset
    asset = AssetKey(tenant, "library/000.jpg")
    record = c.records.get(asset)[0]  # type: ignore[index]
    ai = next(t for t in record.tags if t.model == "colour" and t.source is Source.AI)
    rejected = TagAssignment("colour", ai.tag, TagState.REJECTED, Source.HUMAN, decided_by="ana")
    c.records.update(asset, lambda r: replace(r, tags=(rejected,)))  # type: ignore[arg-type]

    # WHEN a new version is promoted (training activates it: S3 event -> backfill queue)
    v2 = train(c, tenant)
    assert v2 != v1

    # THEN every asset is re-tagged by version 2 and the backfill reports completion
    wait_for(lambda: all_on(v2), 180, "the backfill")
    wait_for(lambda: c.backfill.status(tenant).complete, 30, "the backfill's progress")
    status = c.backfill.status(tenant)
    assert status.progress.id.startswith(f"colour-{v2}-at")  # this activation of v2 (a rollback gets its own)
    assert status.progress.listed == len(keys)
    assert status.done == len(keys)
    assert status.failed == 0
    # AND the human decision survived the machine's second opinion
    tags = c.records.get(asset)[0].tags  # type: ignore[index]
    assert rejected in tags
    assert not any(t.model == "colour" and t.tag == ai.tag and t.source is Source.AI for t in tags)
