"""Faults you can see: library log lines name the handler that wrote them (not the last handler
imported), every outcome has an INFO line (``unchanged`` included), and a failed message comes back
after seconds, not after the queue's whole visibility timeout."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tagsmith.config import Settings
from tagsmith.local.runtime import LambdaContext
from tagsmith.local.stack import REPO_ROOT, load_function
from tagsmith.search import InMemorySearchIndex
from tagsmith.storage import S3ObjectStore
from tagsmith.wiring import build

from tests.fakes import COLOURS, FakeEncoder, solid_jpeg
from tests.functional.conftest import HANDLER_ASSETS, HANDLER_DATA, queue_with_arn
from tests.functional.test_ingest_handler import s3_body, sqs_event


def lines(captured: str) -> list[dict[str, Any]]:
    out = []
    for line in captured.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


@pytest.fixture
def ingest(moto_aws: dict[str, Any]) -> Any:
    """The ingest handler loaded first, then every other handler (as the local stack loads them)."""
    module = load_function(REPO_ROOT / "functions", "ingest")
    for other in ("train", "search", "review", "video", "webhooks", "sweep", "backfill"):
        load_function(REPO_ROOT / "functions", other)
    c = build(
        Settings(data_bucket=HANDLER_DATA, assets_bucket=HANDLER_ASSETS),
        store=S3ObjectStore(client=moto_aws["s3"]),
        index=InMemorySearchIndex(),
        encoder=FakeEncoder(),
    )
    module.components.set(c)
    return module


@pytest.fixture
def written() -> Iterator[io.StringIO]:
    """What the function loggers' own handlers write (their streams pointed at a buffer)."""
    buf = io.StringIO()
    swapped = []
    for service in ("tagsmith-ingest", "tagsmith-backfill"):
        for handler in logging.getLogger(service).handlers:
            if isinstance(handler, logging.StreamHandler):
                swapped.append((handler, handler.setStream(buf)))
    yield buf
    for handler, stream in swapped:
        handler.setStream(stream)


def test_library_lines_name_the_handler_that_runs_and_unchanged_is_logged(
    moto_aws: dict[str, Any], ingest: Any, written: io.StringIO
) -> None:
    moto_aws["s3"].put_object(Bucket=HANDLER_ASSETS, Key="acme/a.jpg", Body=solid_jpeg(COLOURS["red"]))
    moto_aws["s3"].put_object(Bucket=HANDLER_ASSETS, Key="acme/notes.jpg", Body=b"a text file, not a photo")
    event = sqs_event(s3_body("acme/a.jpg"), s3_body("acme/notes.jpg"))
    assert ingest.handler(event, LambdaContext("tagsmith-ingest")) == {"batchItemFailures": []}
    redelivered = sqs_event(s3_body("acme/a.jpg"))
    assert ingest.handler(redelivered, LambdaContext("tagsmith-ingest")) == {"batchItemFailures": []}
    logged = lines(written.getvalue())
    library = [entry for entry in logged if str(entry.get("name", "")).startswith("tagsmith.")]
    assert any("cannot be tagged" in e["message"] for e in library), logged
    assert {entry["service"] for entry in library} == {"tagsmith-ingest"}  # not tagsmith-backfill
    outcomes = [(e["key"], e["message"].split(" (")[0], e["level"]) for e in library if e.get("outcome")]
    assert outcomes == [
        ("acme/a.jpg", "ingest tagged", "INFO"),
        ("acme/notes.jpg", "ingest failed: not a supported image", "INFO"),
        ("acme/a.jpg", "ingest unchanged", "INFO"),  # a redelivery that changes nothing is visible too
    ]
    assert [e.get("tenant") for e in library if e.get("outcome")] == ["acme"] * 3


def test_a_failed_message_is_retried_after_seconds_not_the_visibility_timeout(
    moto_aws: dict[str, Any], ingest: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs = moto_aws["sqs"]
    url, arn = queue_with_arn(sqs, "tagsmith-ingest")
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "120"})
    moto_aws["s3"].put_object(Bucket=HANDLER_ASSETS, Key="acme/a.jpg", Body=solid_jpeg(COLOURS["red"]))
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(s3_body("acme/a.jpg")))
    [m] = sqs.receive_message(QueueUrl=url, AttributeNames=["All"])["Messages"]
    event = {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m["Attributes"],
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
            }
        ]
    }

    def search_down(*args: Any, **kwargs: Any) -> None:
        from tagsmith.errors import TransientError

        raise TransientError("search cluster unreachable")

    for write in ("upsert", "bulk_upsert"):  # every index write fails
        monkeypatch.setattr(ingest.components().index, write, search_down)
    monkeypatch.setattr(ingest.backoff, "base", 1, raising=False)  # the same rule at a test's pace
    response = ingest.handler(event, LambdaContext("tagsmith-ingest"))
    assert response["batchItemFailures"] == [{"itemIdentifier": m["MessageId"]}]
    time.sleep(1.5)
    again = sqs.receive_message(QueueUrl=url).get("Messages", [])
    assert [x["MessageId"] for x in again] == [m["MessageId"]]  # back after ~1 s, not 120 s
