"""The one per-message SQS rule the train, backfill and video functions share (sqsbatch.each_message)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from tagsmith.errors import InvalidInputError, NotFoundError
from tagsmith.sqsbatch import RetryBackoff, each_message

ARN = "arn:aws:sqs:eu-west-1:123456789012:tagsmith-train"


def sqs_event(*bodies: dict[str, Any], receives: int = 1) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": f"r{i}",
                "body": json.dumps(body),
                "attributes": {"ApproximateReceiveCount": str(receives)},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": ARN,
                "awsRegion": "eu-west-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


class FakeSqs:
    def __init__(self) -> None:
        self.visibility: list[tuple[str, int]] = []

    def change_message_visibility(self, *, QueueUrl: str, ReceiptHandle: str, VisibilityTimeout: int) -> None:
        self.visibility.append((ReceiptHandle, VisibilityTimeout))


def handle(message: dict[str, Any]) -> None:
    body = json.loads(message["body"])
    if body["do"] == "bad":
        raise InvalidInputError("this request names no model")
    if body["do"] == "gone":
        raise NotFoundError("the request was deleted")
    if body["do"] == "blip":
        raise OSError("S3 answered 503")


def test_a_message_that_can_never_succeed_is_dropped_and_a_blip_is_retried_soon(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a batch: one fine, one bad request, one whose request vanished, one S3 blip (2nd delivery)
    sqs = FakeSqs()
    event = sqs_event({"do": "ok"}, {"do": "bad"}, {"do": "gone"}, {"do": "blip"}, receives=2)
    logger = logging.getLogger("tagsmith-test")
    # WHEN the function handles it, dropping what its requests record themselves
    with caplog.at_level(logging.INFO, logger="tagsmith-test"):
        response = each_message(
            event, None, handle, logger=logger, what="training request",
            drop=(InvalidInputError, NotFoundError), backoff=RetryBackoff(sqs=lambda: sqs),
        )  # fmt: skip
    # THEN only the blip fails, and it comes back after 20 s (second delivery), not the queue's timeout
    assert response == {"batchItemFailures": [{"itemIdentifier": "m3"}]}
    assert sqs.visibility == [("r3", 20)]
    # ... and each dropped message says why, by id
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert dropped == [
        "training request m1 dropped: this request names no model",
        "training request m2 dropped: the request was deleted",
    ]


def test_without_a_drop_rule_every_error_fails_its_message_only() -> None:
    # GIVEN a function that drops nothing (video jobs: a bad body rests in the dead-letter queue)
    event = sqs_event({"do": "bad"}, {"do": "ok"}, {"do": "blip"})
    # WHEN it handles the batch
    response = each_message(event, None, handle, logger=logging.getLogger("t"), what="video job message")
    # THEN both failures are reported and the good message is not
    assert response == {"batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m2"}]}


def test_an_empty_batch_reports_no_failure() -> None:
    assert each_message({"Records": []}, None, handle, logger=logging.getLogger("t"), what="x") == {
        "batchItemFailures": []
    }
