"""Outbound adapters against moto: object tags never re-trigger ingestion, the object-tagging fake
behaves as S3 does, and change events reach a queue through the bus and a rule, as on AWS."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from tagsmith.errors import NotFoundError
from tagsmith.events import parse_storage_changes
from tagsmith.local.resources import STACK
from tagsmith.outbound import EventBridgePublisher, MemoryObjectTagging, S3ObjectTagging

from tests.functional.conftest import HANDLER_ASSETS, queue_with_arn

ASSETS = HANDLER_ASSETS


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    out = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for m in messages:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out


def test_writing_object_tags_is_no_object_created_event_and_keeps_the_etag(moto_aws: dict[str, Any]) -> None:
    s3, sqs = moto_aws["s3"], moto_aws["sqs"]
    url, arn = queue_with_arn(sqs, "tagsmith-ingest")
    events = [e for n in STACK.notifications if (n.bucket, n.queue) == ("assets", "ingest") for e in n.events]
    s3.put_bucket_notification_configuration(
        Bucket=ASSETS,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": events}]},
    )
    s3.put_object(Bucket=ASSETS, Key="acme/a.jpg", Body=b"jpeg")
    etag = s3.head_object(Bucket=ASSETS, Key="acme/a.jpg")["ETag"]
    assert [r.key for body in drain(sqs, url) for r in parse_storage_changes(body)] == ["acme/a.jpg"]
    # WHEN Tagsmith writes its object tags
    S3ObjectTagging(client=s3).put_tags(
        ASSETS, "acme/a.jpg", {"tagsmith:sku": "milk", "tagsmith:revision": "1"}
    )
    # THEN the ingest queue hears nothing, and the object is the same version
    assert drain(sqs, url) == []
    assert s3.head_object(Bucket=ASSETS, Key="acme/a.jpg")["ETag"] == etag
    # AND an EventBridge "Object Tags Added" event would not be taken for an upload either
    tagged = {"source": "aws.s3", "detail-type": "Object Tags Added", "detail": {"bucket": {"name": ASSETS}}}
    assert parse_storage_changes(tagged) == []


@pytest.mark.parametrize("adapter", ["memory", "s3"])
def test_object_tagging_adapters_agree(moto_aws: dict[str, Any], adapter: str) -> None:
    s3 = moto_aws["s3"]
    s3.put_object(Bucket=ASSETS, Key="acme/a.jpg", Body=b"x")
    exists = lambda b, k: k == "acme/a.jpg"  # noqa: E731
    tagging = S3ObjectTagging(client=s3) if adapter == "s3" else MemoryObjectTagging(exists)
    assert tagging.get_tags(ASSETS, "acme/a.jpg") == {}
    tagging.put_tags(ASSETS, "acme/a.jpg", {"owner": "ana", "tagsmith:sku": "milk oat"})
    assert tagging.get_tags(ASSETS, "acme/a.jpg") == {"owner": "ana", "tagsmith:sku": "milk oat"}
    with pytest.raises(NotFoundError):
        tagging.get_tags(ASSETS, "acme/gone.jpg")


def test_change_events_reach_the_webhooks_queue_through_the_bus_and_its_rule(
    moto_aws: dict[str, Any],
) -> None:
    sqs = moto_aws["sqs"]
    events = boto3.client("events", region_name="us-east-1")
    url, arn = queue_with_arn(sqs, "tagsmith-webhooks")
    events.create_event_bus(Name=STACK.bus_name())
    [rule] = STACK.rules
    events.put_rule(Name="r", EventBusName=STACK.bus_name(), EventPattern=json.dumps(rule.pattern()))
    events.put_targets(Rule="r", EventBusName=STACK.bus_name(), Targets=[{"Id": "q", "Arn": arn}])
    detail = [{"id": f"evt_{i:032x}", "tenant": "acme", "revision": i} for i in range(12)]
    EventBridgePublisher(client=events, bus=STACK.bus_name()).publish(detail)  # two PutEvents calls
    got = drain(sqs, url)
    assert sorted(e["detail"]["revision"] for e in got) == list(range(12))
    assert {(e["source"], e["detail-type"]) for e in got} == {("tagsmith", "Asset Tags Changed")}
