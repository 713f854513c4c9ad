"""Ingest: S3 object events (via SQS) -> asset records, review items, search index.

Creations are tagged (:mod:`tagsmith.ingest`); removals turn the record into a tombstone, delete
the search document and close the asset's review items (:mod:`tagsmith.deletion`).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from tagsmith.deletion import DeletionService
from tagsmith.lazy import Lazy, lazy_components
from tagsmith.sqsbatch import storage_sqs_batch

logger = Logger(service="tagsmith-ingest")
copy_config_to_registered_loggers(source_logger=logger, include={"tagsmith"})
components = lazy_components()
deletions = Lazy(lambda: DeletionService.from_components(components()))


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    response, _ = storage_sqs_batch(event, ingest=components().ingest.ingest, remove=deletions().remove)
    return response
