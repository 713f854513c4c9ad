"""Webhooks: change events (EventBridge rule -> SQS) -> signed POSTs to each tenant's subscriptions.

Failed deliveries are re-queued with a delay on their own (the message succeeds); after the last
attempt they go to the dead-letter queue. Only malformed messages, and trouble with the queue
itself, are reported as batch item failures (:mod:`tagsmith.outbound.webhooks`).
"""

from __future__ import annotations

from typing import Any

from tagsmith.lazy import lazy_components
from tagsmith.logs import function_logger, logged

logger = function_logger("tagsmith-webhooks")  # library lines name this function while it runs
components = lazy_components()  # built on the first invocation, reused while warm


@logged(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    messages = [(m["messageId"], m["body"]) for m in event.get("Records", ())]
    failed = components().webhooks.handle(messages)
    return {"batchItemFailures": [{"itemIdentifier": m} for m in failed]}
