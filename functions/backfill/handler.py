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
from tagsmith.sqsbatch import RetryBackoff, each_message

logger = function_logger("tagsmith-backfill")  # library lines name this function while it runs
components = lazy_components()  # built on the first invocation, reused while warm
backoff = RetryBackoff(sqs=lambda: components().sqs)  # failed messages come back in seconds


@logged(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # A request that cannot be carried out is dropped: retrying the same bytes cannot help.
    return each_message(
        event, context, lambda m: components().backfill.handle(m["body"]),
        logger=logger, what="backfill message", drop=(InvalidInputError,), backoff=backoff,
    )  # fmt: skip
