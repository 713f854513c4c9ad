"""Ingest: S3 object-created events (via SQS) -> tagged asset records, review items, search index."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from tagsmith.config import Settings
from tagsmith.sqsbatch import ingest_sqs_batch
from tagsmith.wiring import Components, build

logger = Logger(service="tagsmith-ingest")
copy_config_to_registered_loggers(source_logger=logger, include={"tagsmith"})
_components: Components | None = None


def components() -> Components:
    # built on the first invocation, then reused by every warm invocation of this container
    global _components
    if _components is None:
        _components = build(Settings.from_env())
    return _components


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    response, _ = ingest_sqs_batch(event, components().ingest.ingest)
    return response
