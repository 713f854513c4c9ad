"""Ingest: S3 object events (via SQS) -> asset records, review items, search index.

Creations are tagged (:mod:`tagsmith.ingest`); removals turn the record into a tombstone, delete
the search document and close the asset's review items (:mod:`tagsmith.deletion`).
"""

from __future__ import annotations

from typing import Any

from tagsmith.deletion import DeletionService
from tagsmith.lazy import Lazy, lazy_components
from tagsmith.logs import function_logger, logged
from tagsmith.sqsbatch import RetryBackoff, storage_sqs_batch

logger = function_logger("tagsmith-ingest")  # library lines name this function while it runs
components = lazy_components()
backoff = RetryBackoff(sqs=lambda: components().sqs)  # failed messages come back in seconds
deletions = Lazy(lambda: DeletionService.from_components(components()))


@logged(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    response, _ = storage_sqs_batch(event, ingest=components().ingest.ingest, remove=deletions().remove)
    return backoff.apply(event, response)
