"""SQS batches in, partial batch failures out (Lambda's ``ReportBatchItemFailures`` contract).

Creations and removals of objects arrive on the same queue; a message fails (and is retried, then
dead-lettered by the queue's redrive policy) only for transient trouble or a malformed message body; bad *objects* are recorded on their asset record and
the message succeeds, so a poison image never loops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from tagsmith.errors import InvalidInputError
from tagsmith.events import ObjectRef, parse_storage_changes
from tagsmith.ingest import IngestOutcome

log = logging.getLogger(__name__)

BatchResponse = dict[str, list[dict[str, str]]]
IngestFn = Callable[[Sequence[ObjectRef]], list[IngestOutcome | Exception]]


def storage_sqs_batch(
    event: dict[str, Any], *, ingest: IngestFn, remove: IngestFn
) -> tuple[BatchResponse, list[IngestOutcome]]:
    """One SQS event of the ingest queue: creations to ``ingest`` (one batch, so images are embedded
    together), removals to ``remove``. Returns Lambda's partial batch response and the outcomes.

    A message fails only for a malformed body or a transient error of one of its objects; the
    order of creations and removals inside a batch does not matter, because both re-check the
    object itself.
    """
    failures: list[str] = []
    created: list[tuple[str, ObjectRef]] = []
    removed: list[tuple[str, ObjectRef]] = []
    for message in event.get("Records", ()):
        message_id = message["messageId"]
        try:
            changes = parse_storage_changes(message["body"])
        except (InvalidInputError, KeyError, TypeError) as e:
            log.error("malformed message %s left for the dead-letter queue: %s", message_id, e)
            failures.append(message_id)
            continue
        for ref in changes:
            (removed if ref.removed else created).append((message_id, ref))
    outcomes: list[IngestOutcome] = []
    for batch, run in ((created, ingest), (removed, remove)):
        if not batch:
            continue
        results = run([ref for _, ref in batch])
        for (message_id, _), result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                log.warning("message %s will be retried: %s", message_id, result)
                if message_id not in failures:
                    failures.append(message_id)
            else:
                outcomes.append(result)
    return {"batchItemFailures": [{"itemIdentifier": m} for m in failures]}, outcomes
