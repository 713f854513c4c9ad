"""Backfill: re-tag a tenant's library after a promotion, one SQS message at a time.

The queue carries three kinds of body (see :mod:`tagsmith.backfill`): the S3 event of a model's
``active.json`` (starts a backfill), ``plan`` steps (list a page, queue it) and ``work`` batches
(re-ingest their keys through the ingest path, so human decisions are kept).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from tagsmith.errors import InvalidInputError
from tagsmith.lazy import lazy_components

logger = Logger(service="tagsmith-backfill")
copy_config_to_registered_loggers(source_logger=logger, include={"tagsmith"})
components = lazy_components()  # built on the first invocation, reused while warm


@logger.inject_lambda_context
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
    return {"batchItemFailures": failures}
