"""A local Lambda runtime for SQS sources: poll a queue, invoke the handler with a Lambda-shaped
event, delete what succeeded, leave the reported failures to the queue's visibility timeout and
redrive policy (exactly what the Lambda event source mapping does).

Like an event source mapping, a poller runs up to ``concurrency`` invocations at once, each in its
own thread receiving its own batches: while one invocation's handler embeds, another's waits on
S3, SQS or OpenSearch. The handler module is shared by those threads (one warm container serving
several invocations), so what it keeps between invocations must be thread-safe (``tagsmith.lazy``,
``TenantCache``, the record store's ETags, the encoder's session are).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class LambdaContext:
    """The bits of the Lambda context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int = 2048
    aws_request_id: str = ""
    invoked_function_arn: str = ""
    timeout: float = 60.0  # seconds, the function's timeout: remaining time counts down from it
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout - (time.monotonic() - self.started)) * 1000))


class SqsPoller:
    def __init__(
        self,
        *,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        handler: Handler,
        function_name: str,
        batch_size: int = 10,
        wait_seconds: int = 1,
        on_batch: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
        timeout: float = 60.0,
        concurrency: int = 1,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"a poller needs at least one invocation at a time, not {concurrency}")
        self.sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.handler = handler
        self.function_name = function_name
        self.batch_size = batch_size
        self.wait_seconds = wait_seconds
        self.on_batch = on_batch
        self.timeout = timeout
        self.concurrency = concurrency
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._busy = 0  # invocations running now
        self.invocations = 0
        self.seconds: list[float] = []  # each invocation's duration: what visibility timeouts are set against
        self.most_at_once = 0  # the most invocations that ran at the same time
        # set when a receive found the queue empty and no invocation was running
        self.idle = threading.Event()

    def poll_once(self) -> int:
        """Receive one batch and invoke the handler; returns how many messages it held."""
        r = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_seconds,
            AttributeNames=["All"],
        )
        messages = r.get("Messages", [])
        if not messages:
            with self._lock:
                if self._busy == 0:
                    self.idle.set()
            return 0
        with self._lock:
            self._busy += 1
            self.most_at_once = max(self.most_at_once, self._busy)
            self.idle.clear()
        try:
            return self._invoke(messages)
        finally:
            with self._lock:
                self._busy -= 1

    def _invoke(self, messages: list[dict[str, Any]]) -> int:
        event = {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": m.get("MD5OfBody", ""),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue_arn,
                    "awsRegion": "us-east-1",
                }
                for m in messages
            ]
        }
        context = LambdaContext(self.function_name, aws_request_id=str(uuid.uuid4()), timeout=self.timeout)
        started = time.perf_counter()
        try:
            response = self.handler(event, context) or {}
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except Exception:
            log.exception("%s raised; the whole batch returns to the queue", self.function_name)
            response, failed = {}, {m["MessageId"] for m in messages}
        seconds = time.perf_counter() - started
        with self._lock:
            self.invocations += 1
            self.seconds.append(seconds)
        log.info(
            "%s: %d messages in %.2f s, %d failed",
            self.function_name,
            len(messages),
            seconds,
            len(failed),
            extra={"function": self.function_name, "seconds": round(seconds, 3), "messages": len(messages)},
        )
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        if self.on_batch:
            self.on_batch(event, response)
        return len(messages)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("polling %s failed; retrying in 1 s", self.queue_url)
                time.sleep(1)

    def start(self) -> None:
        for i in range(self.concurrency):
            thread = threading.Thread(target=self._loop, name=f"poller-{self.function_name}-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.wait_seconds + 5)
