"""The deployable ingest handler, fed Lambda-shaped SQS events, against S3 and SQS on moto."""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import quote_plus

import pytest
from tagsmith.config import Settings
from tagsmith.examples import Example
from tagsmith.keys import AssetKey
from tagsmith.local.runtime import LambdaContext, SqsPoller
from tagsmith.local.stack import REPO_ROOT, load_function
from tagsmith.outbound import MemoryPublisher
from tagsmith.records import AssetStatus
from tagsmith.search import InMemorySearchIndex
from tagsmith.storage import S3ObjectStore
from tagsmith.trainer import TrainingOptions
from tagsmith.wiring import build

from tests.conftest import load_event
from tests.fakes import COLOURS, FakeEncoder, solid_jpeg
from tests.functional.conftest import HANDLER_ASSETS, HANDLER_DATA

ASSETS, DATA = HANDLER_ASSETS, HANDLER_DATA


@pytest.fixture
def aws(moto_aws: dict[str, Any]) -> dict[str, Any]:
    return {**moto_aws, "published": MemoryPublisher()}


@pytest.fixture
def handler(aws: dict[str, Any]) -> Any:
    """functions/ingest/handler.py exactly as deployed, wired to moto and a fast fake encoder."""
    module = load_function(REPO_ROOT / "functions", "ingest")
    settings = Settings(data_bucket=DATA, assets_bucket=ASSETS)
    c = build(
        settings, store=S3ObjectStore(client=aws["s3"]), index=InMemorySearchIndex(), encoder=FakeEncoder()
    )
    c.outbound.publisher = aws["published"]
    examples = [
        Example(n, f"{n}{i}", lambda rgb=rgb, i=i: solid_jpeg(rgb, noise=20, seed=i))
        for n, rgb in COLOURS.items()
        for i in range(5)
    ]
    c.trainer.train(
        tenant="acme", model_id="colour", examples=examples, options=TrainingOptions(threshold=0.6)
    )
    module.components.set(c)
    return module.handler


def sqs_event(*bodies: dict[str, Any] | str) -> dict[str, Any]:
    template = load_event("sqs_ingest_event.json")["Records"][0]
    records = []
    for i, body in enumerate(bodies):
        r = copy.deepcopy(template)
        r["messageId"] = f"m{i}"
        r["body"] = body if isinstance(body, str) else json.dumps(body)
        records.append(r)
    return {"Records": records}


def s3_body(key: str, etag: str = "x") -> dict[str, Any]:
    body = load_event("s3_put_sqs_body.json")
    body["Records"][0]["s3"]["object"].update({"key": quote_plus(key, safe="/"), "eTag": etag})
    return body


def test_handler_tags_an_upload_whose_key_needs_decoding(aws: dict[str, Any], handler: Any) -> None:
    aws["s3"].put_object(
        Bucket=ASSETS, Key="acme/summer shoot/ré+d.jpg", Body=solid_jpeg(COLOURS["red"], seed=9)
    )
    response = handler(sqs_event(s3_body("acme/summer shoot/ré+d.jpg")), LambdaContext("tagsmith-ingest"))
    assert response == {"batchItemFailures": []}
    body = (
        aws["s3"]
        .get_object(Bucket=DATA, Key="tenants/acme/records/summer shoot/ré+d.jpg.json")["Body"]
        .read()
    )
    assert [t["tag"] for t in json.loads(body)["tags"]] == ["red"]


def test_handler_reports_only_the_malformed_message_as_failed(aws: dict[str, Any], handler: Any) -> None:
    aws["s3"].put_object(Bucket=ASSETS, Key="acme/a.jpg", Body=solid_jpeg(COLOURS["blue"]))
    aws["s3"].put_object(Bucket=ASSETS, Key="acme/empty.jpg", Body=b"")
    event = sqs_event(
        s3_body("acme/a.jpg"),
        "{not json",
        {"Service": "Amazon S3", "Event": "s3:TestEvent"},
        s3_body("acme/empty.jpg"),
        s3_body("outside.jpg"),
    )
    response = handler(event, LambdaContext("tagsmith-ingest"))
    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    store = S3ObjectStore(client=aws["s3"])
    c = build(Settings(data_bucket=DATA), store=store, index=InMemorySearchIndex(), encoder=FakeEncoder())
    empty = c.records.get(AssetKey("acme", "empty.jpg"))[0]
    assert empty.status is AssetStatus.FAILED and "0 bytes" in empty.failure.message


def test_uncertain_tags_are_announced_as_review_change_events(aws: dict[str, Any], handler: Any) -> None:
    aws["s3"].put_object(Bucket=ASSETS, Key="acme/grey.jpg", Body=solid_jpeg((120, 120, 120)))
    handler(sqs_event(s3_body("acme/grey.jpg")), LambdaContext("tagsmith-ingest"))
    [event] = aws["published"].events
    assert (event["key"], event["kinds"]) == ("acme/grey.jpg", ["review"])


def test_a_poison_message_ends_in_the_dead_letter_queue_instead_of_looping(
    aws: dict[str, Any], handler: Any
) -> None:
    sqs = aws["sqs"]
    dlq = sqs.create_queue(QueueName="ingest-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(
        QueueName="ingest",
        Attributes={
            "VisibilityTimeout": "0",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}),
        },
    )["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="{not json")
    aws["s3"].put_object(Bucket=ASSETS, Key="acme/ok.jpg", Body=solid_jpeg(COLOURS["green"]))
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(s3_body("acme/ok.jpg")))
    poller = SqsPoller(
        sqs=sqs, queue_url=queue, queue_arn="arn", handler=handler, function_name="ingest", wait_seconds=0
    )
    for _ in range(6):
        poller.poll_once()
    remaining = int(
        sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
    )
    dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
    assert remaining == 0
    assert [m["Body"] for m in dead] == ["{not json"]
    assert aws["s3"].head_object(Bucket=DATA, Key="tenants/acme/records/ok.jpg.json")
