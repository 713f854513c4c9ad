"""Tags leave Tagsmith through the local stack: upload, auto-apply, a review decision and a delete
reach a webhook receiver once per revision, signed; the object's S3 tags and the XMP sidecar
(read back with exiftool) match the record; tagging the object never re-ingests it.

The real stack (moto's S3, SQS and EventBridge, osmem, every function's poller) on free ports.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest
from tagsmith.console.api import ConsoleServices
from tagsmith.examples import Example
from tagsmith.keys import AssetKey, tenant_settings_key
from tagsmith.local.stack import LocalStack
from tagsmith.outbound.sidecars import sidecar_key
from tagsmith.records import AssetStatus, TagState
from tagsmith.trainer import TrainingOptions
from tagsmith.wiring import Components, build

from tests.functional.test_backfill_local import COLOURS, photo, stack, wait_for  # noqa: F401 (stack: the fixture)
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.slow
TENANT = "acme"


def train(c: Components, model: str, threshold: float) -> None:
    examples = [
        Example(tag, f"{tag}-{i}", lambda rgb=rgb, i=i: photo(rgb, 1000 + i))
        for tag, rgb in COLOURS.items()
        for i in range(4)
    ]
    c.trainer.train(
        tenant=TENANT, model_id=model, examples=examples, options=TrainingOptions(threshold=threshold)
    )


def backfills_done(c: Components, n: int) -> bool:
    ids = c.backfill.list_ids(TENANT)
    return len(ids) == n and all(c.backfill.status(TENANT, i).complete for i in ids)


def object_tags(c: Components, key: str) -> dict[str, str]:
    r = c.store.client.get_object_tagging(Bucket=c.settings.assets_bucket, Key=key)  # type: ignore[attr-defined]
    return {t["Key"]: t["Value"] for t in r["TagSet"]}


def test_upload_decision_and_delete_reach_webhooks_object_tags_and_sidecars(stack: LocalStack) -> None:  # noqa: F811
    assert stack.info is not None
    c = build(stack.info.settings())
    # GIVEN a tenant with object tags and sidecars on, labels in two languages, one webhook
    c.store.put(
        c.settings.data_bucket, tenant_settings_key(TENANT),
        json.dumps({"languages": ["en", "fr"], "outputs": {"object_tags": True, "sidecars": True}}).encode(),
    )  # fmt: skip
    receiver = Receiver(secrets={}).start()
    sub = c.webhooks.subscriptions.add(TENANT, receiver.url(), allow_private=True)
    receiver.secrets[TENANT] = sub.secret
    # ... a model sure of itself (auto-apply) and one that asks a human about everything
    train(c, "colour", threshold=0.5)
    train(c, "shade", threshold=0.9999)
    # ... and both activations' backfills finished: an upload that races a backfill is tagged
    # twice (two revisions), which is right but not the single revision this test follows
    wait_for(lambda: backfills_done(c, 2), 120, "the two activations' backfills")
    key = f"{TENANT}/shoot/red.jpg"
    asset = AssetKey(TENANT, "shoot/red.jpg")
    try:
        # WHEN a photo is uploaded
        c.store.put(c.settings.assets_bucket, key, photo(COLOURS["red"], 7))
        wait_for(lambda: receiver.latest.get(key) == 1, 120, "the upload's change event")
        record = c.records.get(asset)[0]  # type: ignore[index]
        states = {(t.model, t.tag): t.state for t in record.tags}
        assert states[("colour", "red")] is TagState.APPLIED
        assert TagState.REVIEW in {s for (m, _), s in states.items() if m == "shade"}
        assert set(receiver.state[key]["kinds"]) == {"applied", "review"}
        wait_for(lambda: c.records.get(asset)[0].published_revision == 1, 10, "the publish stamp")  # type: ignore[index]
        tags = object_tags(c, key)
        assert tags == {"tagsmith:colour": "red", "tagsmith:revision": "1"}

        # ... a reviewer accepts the shade model's question
        console = ConsoleServices.from_components(c)
        [item] = c.reviews.pending(TENANT)
        console.decisions.decide(TENANT, item.id, "accept", reviewer="ana")
        wait_for(lambda: receiver.latest.get(key) == 2, 60, "the decision's change event")
        assert "confirmed" in receiver.state[key]["kinds"]
        assert receiver.state[key]["decision"] == {"action": "accept", "by": "ana"}
        tags = object_tags(c, key)
        assert tags == {
            "tagsmith:colour": "red", "tagsmith:shade": item.suggestion, "tagsmith:revision": "2"
        }  # fmt: skip

        # THEN the sidecar carries the visible tags, as exiftool reads them
        xmp = c.store.get(c.settings.data_bucket, sidecar_key(TENANT, "shoot/red.jpg")).body
        if shutil.which("exiftool"):
            path = stack.config.home / "red.jpg.xmp"
            path.write_bytes(xmp)
            [meta] = json.loads(
                subprocess.run(
                    ["exiftool", "-j", "-XMP:all", str(path)], capture_output=True, check=True
                ).stdout
            )
            subjects = meta["Subject"] if isinstance(meta["Subject"], list) else [meta["Subject"]]
            assert "red" in subjects
            hierarchy = meta["HierarchicalSubject"]
            hierarchy = hierarchy if isinstance(hierarchy, list) else [hierarchy]
            assert set(hierarchy) == {"colour|red", f"shade|{item.suggestion}"}

        # AND writing object tags did not re-ingest the object (no ObjectCreated): no new revision
        time.sleep(3)
        assert c.records.get(asset)[0].revision == 2  # type: ignore[index]

        # WHEN the object is deleted
        c.store.delete(c.settings.assets_bucket, key)
        wait_for(lambda: receiver.latest.get(key) == 3, 60, "the deletion's change event")
        assert receiver.state[key]["status"] == "deleted" and "deleted" in receiver.state[key]["kinds"]
        assert c.records.get(asset)[0].status is AssetStatus.DELETED  # type: ignore[index]
        wait_for(
            lambda: c.store.head(c.settings.data_bucket, sidecar_key(TENANT, "shoot/red.jpg")) is None,
            10, "the sidecar's removal",
        )  # fmt: skip

        # AND every revision arrived (duplicates, if any, were dropped by revision), signed
        assert receiver.revisions(key) == [1, 2, 3]
        assert receiver.bad_signatures == 0
    finally:
        receiver.stop()
