"""SQS batches in, partial batch failures out (Lambda's ``ReportBatchItemFailures`` contract).

A message fails (and is retried, then dead-lettered by the queue's redrive policy) only for
transient trouble or a malformed message body; bad *objects* are recorded on their asset record and
the message succeeds, so a poison image never loops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from tagsmith.errors import InvalidInputError
from tagsmith.events import ObjectRef, parse_storage_event
from tagsmith.ingest import IngestOutcome

log = logging.getLogger(__name__)

BatchResponse = dict[str, list[dict[str, str]]]


def ingest_sqs_batch(
    event: dict[str, Any], ingest: Callable[[Sequence[ObjectRef]], list[IngestOutcome | Exception]]
) -> tuple[BatchResponse, list[IngestOutcome]]:
    """Run one SQS event through ``ingest``; returns the Lambda response and the outcomes."""
    failures: list[str] = []
    refs: list[ObjectRef] = []
    owner: list[str] = []
    for message in event.get("Records", ()):
        message_id = message["messageId"]
        try:
            found = parse_storage_event(message["body"])
        except (InvalidInputError, KeyError, TypeError) as e:
            log.error("malformed message %s left for the dead-letter queue: %s", message_id, e)
            failures.append(message_id)
            continue
        refs.extend(found)
        owner.extend([message_id] * len(found))
    outcomes: list[IngestOutcome] = []
    for message_id, result in zip(owner, ingest(refs) if refs else [], strict=True):
        if isinstance(result, Exception):
            log.warning("message %s will be retried: %s", message_id, result)
            if message_id not in failures:
                failures.append(message_id)
        else:
            outcomes.append(result)
    return {"batchItemFailures": [{"itemIdentifier": m} for m in failures]}, outcomes
