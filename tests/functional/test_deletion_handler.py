"""Deletions end to end on moto: S3 sends ObjectRemoved to the ingest queue (the notification set up
from ``tagsmith.local.resources``), and the deployable ingest handler turns the record into a
tombstone, removes the document and closes the review item."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from tagsmith.config import Settings
from tagsmith.examples import Example
from tagsmith.keys import AssetKey
from tagsmith.local.resources import STACK
from tagsmith.local.runtime import LambdaContext
from tagsmith.local.stack import REPO_ROOT, load_function
from tagsmith.records import AssetStatus
from tagsmith.review import ReviewStatus
from tagsmith.search import InMemorySearchIndex, SearchQuery
from tagsmith.storage import S3ObjectStore
from tagsmith.trainer import TrainingOptions
from tagsmith.wiring import Components, build

from tests.conftest import load_event
from tests.fakes import COLOURS, FakeEncoder, solid_jpeg
from tests.functional.conftest import HANDLER_ASSETS, HANDLER_DATA, queue_with_arn

ASSETS, DATA = HANDLER_ASSETS, HANDLER_DATA


@pytest.fixture
def stack(moto_aws: dict[str, Any]) -> Iterator[dict[str, Any]]:
    s3, sqs = moto_aws["s3"], moto_aws["sqs"]
    ingest_url, arn = queue_with_arn(sqs, "tagsmith-ingest")
    events = [e for n in STACK.notifications if (n.bucket, n.queue) == ("assets", "ingest") for e in n.events]
    s3.put_bucket_notification_configuration(
        Bucket=ASSETS,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": events}]},
    )
    c = build(
        Settings(data_bucket=DATA, assets_bucket=ASSETS),
        store=S3ObjectStore(client=s3),
        index=InMemorySearchIndex(),
        encoder=FakeEncoder(),
    )
    examples = [
        Example(n, f"{n}{i}", lambda rgb=rgb, i=i: solid_jpeg(rgb, noise=20, seed=i))
        for n, rgb in COLOURS.items()
        for i in range(5)
    ]
    c.trainer.train(
        tenant="acme", model_id="colour", examples=examples, options=TrainingOptions(threshold=0.99)
    )
    module = load_function(REPO_ROOT / "functions", "ingest")
    module.components.set(c)
    yield {"s3": s3, "sqs": sqs, "url": ingest_url, "handler": module.handler, "c": c}


def drain(stack: dict[str, Any]) -> dict[str, Any]:
    """Hand what S3 sent to the ingest queue to the handler, as Lambda's event source mapping would."""
    messages = stack["sqs"].receive_message(QueueUrl=stack["url"], MaxNumberOfMessages=10)["Messages"]
    for m in messages:
        stack["sqs"].delete_message(QueueUrl=stack["url"], ReceiptHandle=m["ReceiptHandle"])
    event = {"Records": [{"messageId": m["MessageId"], "body": m["Body"]} for m in messages]}
    names = [r["eventName"] for m in messages for r in json.loads(m["Body"]).get("Records", [])]
    return {"names": names, "response": stack["handler"](event, LambdaContext("tagsmith-ingest"))}


def test_deleting_an_object_in_s3_tombstones_unindexes_and_closes_its_review(stack: dict[str, Any]) -> None:
    c: Components = stack["c"]
    key = "acme/summer shoot/grey+1.jpg"
    stack["s3"].put_object(Bucket=ASSETS, Key=key, Body=solid_jpeg((120, 120, 120)))
    assert drain(stack)["names"][-1].startswith("ObjectCreated:")
    [item] = c.reviews.pending("acme")
    assert c.index.count("acme") == 1

    stack["s3"].delete_object(Bucket=ASSETS, Key=key)
    ran = drain(stack)

    assert [n.split(":")[0] for n in ran["names"]] == ["ObjectRemoved"]
    assert ran["response"] == {"batchItemFailures": []}
    record, _ = c.records.get(AssetKey("acme", "summer shoot/grey+1.jpg"))
    assert record.status is AssetStatus.DELETED
    assert c.index.search("acme", SearchQuery(size=10)).hits == []
    assert c.reviews.get("acme", item.id).status is ReviewStatus.SUPERSEDED


def test_uploading_again_after_a_delete_revives_the_asset(stack: dict[str, Any]) -> None:
    c: Components = stack["c"]
    stack["s3"].put_object(Bucket=ASSETS, Key="acme/a.jpg", Body=solid_jpeg(COLOURS["red"]))
    drain(stack)
    stack["s3"].delete_object(Bucket=ASSETS, Key="acme/a.jpg")
    drain(stack)
    stack["s3"].put_object(Bucket=ASSETS, Key="acme/a.jpg", Body=solid_jpeg(COLOURS["red"]))
    drain(stack)
    record, _ = c.records.get(AssetKey("acme", "a.jpg"))
    assert record.status is AssetStatus.TAGGED and record.deleted_at is None
    assert [h.asset_key for h in c.index.search("acme", SearchQuery(size=10)).hits] == ["acme/a.jpg"]


def test_a_delete_marker_in_a_versioned_bucket_tombstones_and_a_late_one_does_not(
    stack: dict[str, Any],
) -> None:
    # moto sends no notification for delete markers: the handler gets AWS's sample event instead
    c: Components = stack["c"]
    stack["s3"].put_bucket_versioning(Bucket=ASSETS, VersioningConfiguration={"Status": "Enabled"})
    stack["s3"].put_object(Bucket=ASSETS, Key="acme/a.jpg", Body=solid_jpeg(COLOURS["red"]))
    drain(stack)
    marker = load_event("s3_delete_marker_sqs_body.json")
    marker["Records"][0]["s3"]["bucket"]["name"] = ASSETS
    marker["Records"][0]["s3"]["object"]["key"] = "acme/a.jpg"
    event = {"Records": [{"messageId": "m0", "body": json.dumps(marker)}]}

    stack["handler"](event, LambdaContext("tagsmith-ingest"))  # the object is still there: a late event
    assert c.records.get(AssetKey("acme", "a.jpg"))[0].status is AssetStatus.TAGGED

    stack["s3"].delete_object(Bucket=ASSETS, Key="acme/a.jpg")  # now a delete marker hides it
    stack["handler"](event, LambdaContext("tagsmith-ingest"))
    assert c.records.get(AssetKey("acme", "a.jpg"))[0].status is AssetStatus.DELETED
