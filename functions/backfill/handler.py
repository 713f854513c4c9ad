"""Backfill: re-tag a tenant's library after a promotion, one SQS message at a time.

The queue carries three kinds of body (see :mod:`tagsmith.backfill`): the S3 event of a model's
``active.json`` (starts a backfill), ``plan`` steps (list a page, queue it) and ``work`` batches
(re-ingest their keys through the ingest path, so human decisions are kept).
"""

from __future__ import annotations

from typing import Any

from tagsmith.errors import InvalidInputError
from tagsmith.lazy import lazy_components
from tagsmith.logs import function_logger, logged
from tagsmith.sqsbatch import RetryBackoff

logger = function_logger("tagsmith-backfill")  # library lines name this function while it runs
components = lazy_components()  # built on the first invocation, reused while warm
backoff = RetryBackoff(sqs=lambda: components().sqs)  # failed messages come back in seconds


@logged(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    failures = []
    for message in event.get("Records", ()):
        try:
            components().backfill.handle(message["body"])
        except InvalidInputError as e:
            logger.error("backfill message dropped: %s", e)  # retrying the same bytes cannot help
        except Exception:
            logger.exception("backfill step failed; the message will be retried")
            failures.append({"itemIdentifier": message["messageId"]})
    return backoff.apply(event, {"batchItemFailures": failures})
