"""The local runtime's SQS poller with several invocations at once (Lambda's concurrency per event
source mapping), against SQS on moto: batches overlap, partial batch failures still return only
the failed messages, and each invocation's log lines carry its own request id."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from typing import Any

import pytest
from tagsmith.local.resources import STACK
from tagsmith.local.runtime import SqsPoller
from tagsmith.logs import function_logger, logged

from tests.functional.conftest import queue_with_arn


def _visible(sqs: Any, url: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    for _ in range(10):
        r = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        got += r.get("Messages", [])
    return got


def test_poller_runs_invocations_at_once_and_reports_each_batchs_failures(moto_aws: dict[str, Any]) -> None:
    # GIVEN 30 messages, every fifth of which its handler reports as failed, and 3 invocations at once
    sqs = moto_aws["sqs"]
    url, arn = queue_with_arn(sqs, "runtime")
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "3"})
    for i in range(30):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": i, "fail": i % 5 == 0}))
    together = threading.Barrier(3, timeout=20)  # the first three invocations meet here
    lock = threading.Lock()
    seen: dict[int, int] = {}  # n -> times handled
    threads: set[str] = set()
    first = [0]

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        with lock:
            first[0] += 1
            meet = first[0] <= 3
            threads.add(threading.current_thread().name)
        if meet:
            together.wait()  # raises BrokenBarrierError unless three run at the same time
        failures = []
        for record in event["Records"]:
            body = json.loads(record["body"])
            with lock:
                seen[body["n"]] = seen.get(body["n"], 0) + 1
            if body["fail"]:
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    poller = SqsPoller(
        sqs=sqs,
        queue_url=url,
        queue_arn=arn,
        handler=handler,
        function_name="runtime",
        batch_size=2,
        wait_seconds=0,
        concurrency=3,
    )
    # WHEN it polls until every message was handled
    poller.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(seen) < 30:
            time.sleep(0.05)
    finally:
        poller.stop()
    # THEN three invocations ran at once, in three threads, none of which raised
    assert not together.broken
    assert poller.most_at_once == 3
    assert len(threads) == 3
    assert sorted(seen) == list(range(30))
    # and the queue holds exactly the failed messages, once each (the others were deleted)
    time.sleep(3.5)  # the failed messages' visibility timeout
    left = sorted(json.loads(m["Body"])["n"] for m in _visible(sqs, url))
    assert left == [0, 5, 10, 15, 20, 25]
    assert poller.invocations == len(poller.seconds) >= 15


def test_poller_sends_a_raising_invocations_whole_batch_back(moto_aws: dict[str, Any]) -> None:
    sqs = moto_aws["sqs"]
    url, arn = queue_with_arn(sqs, "raising")
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "2"})
    for i in range(4):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))

    raised: set[str] = set()
    handled: set[str] = set()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        bodies = {r["body"] for r in event["Records"]}
        handled.update(bodies)
        if "3" in bodies:
            raised.update(bodies)
            raise RuntimeError("this batch fails whole")
        return {"batchItemFailures": []}

    poller = SqsPoller(
        sqs=sqs,
        queue_url=url,
        queue_arn=arn,
        handler=handler,
        function_name="raising",
        batch_size=2,
        wait_seconds=0,
        concurrency=2,
    )
    poller.start()
    try:  # until every message was handled once (the raising batch may come back meanwhile)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(handled) < 4:
            time.sleep(0.05)
    finally:
        poller.stop()
    time.sleep(2.5)
    left = {m["Body"] for m in _visible(sqs, url)}
    # "3" and what shared its batch, nothing else; a message of that batch may also have come in
    # another, successful batch (at-least-once: two receives at once can both get it) and be gone
    assert "3" in left and left <= raised


def test_poller_refuses_no_invocations(moto_aws: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="at least one"):
        SqsPoller(
            sqs=None, queue_url="", queue_arn="", handler=lambda e, c: {}, function_name="f", concurrency=0
        )


def test_concurrent_invocations_log_their_own_request_id() -> None:
    # GIVEN one function's handler invoked from two threads at once, each logging after the other started
    stream = io.StringIO()
    logger = function_logger("tagsmith-runtime-test")
    for h in logger.handlers:  # this logger's lines only (send_function_logs_to is process-wide)
        if isinstance(h, logging.StreamHandler):
            h.setStream(stream)
    both = threading.Barrier(2, timeout=10)

    @logged(logger)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        both.wait()  # both invocations have set their keys
        both.wait()
        logging.getLogger("tagsmith.test").warning("handling %s", event["name"])
        return {}

    from tagsmith.local.runtime import LambdaContext

    def invoke(name: str) -> None:
        handler({"name": name}, LambdaContext("tagsmith-runtime-test", aws_request_id=f"req-{name}"))

    workers = [threading.Thread(target=invoke, args=(n,)) for n in ("a", "b")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=20)
    # THEN each line names its own invocation's request id
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if "handling" in line]
    assert {(line["message"], line["function_request_id"]) for line in lines} == {
        ("handling a", "req-a"),
        ("handling b", "req-b"),
    }


def test_local_concurrency_is_within_the_templates_maximum() -> None:
    for f in STACK.functions:
        assert 1 <= f.local_concurrency <= f.max_concurrency, f.name
