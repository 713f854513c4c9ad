"""SQS batches in, partial batch failures out (Lambda's ``ReportBatchItemFailures`` contract), and
failed messages brought back soon (:class:`RetryBackoff`) rather than after the queue's timeout.

Creations and removals of objects arrive on the same queue; a message fails (and is retried, then
dead-lettered by the queue's redrive policy) only for transient trouble or a malformed message body; bad *objects* are recorded on their asset record and
the message succeeds, so a poison image never loops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from tagsmith.assetwriter import IngestOutcome
from tagsmith.errors import InvalidInputError
from tagsmith.events import ObjectRef, parse_storage_changes

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


def queue_url_from_arn(arn: str) -> str:
    """The queue URL of an SQS queue ARN (what an SQS event record carries).

    >>> queue_url_from_arn("arn:aws:sqs:eu-west-1:123456789012:tagsmith-ingest")
    'https://sqs.eu-west-1.amazonaws.com/123456789012/tagsmith-ingest'
    """
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise ValueError(f"not an SQS queue ARN: {arn!r}")
    _, partition, _, region, account, name = parts
    suffix = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return f"https://sqs.{region}.{suffix}/{account}/{name}"


class RetryBackoff:
    """Failed messages of a batch become visible again after ``base * 2**(n - 1)`` seconds (``n``:
    deliveries so far; at most ``cap``) instead of after the queue's whole visibility timeout.

    The visibility timeout has to cover the slowest invocation (AWS: six times the function's
    timeout), but a message that failed fast (a search-cluster blip, an S3 500) should not wait it
    out (with the queue's timeout alone, a failed ingest message came back after 360 s). Each
    failure's receipt handle is given a short visibility (``ChangeMessageVisibility``, which the
    consuming role may call); if that call fails, the queue's visibility timeout applies. The redrive policy still counts every
    delivery, so a message that keeps failing reaches the dead-letter queue after
    ``maxReceiveCount`` tries, a minute or so after the first instead of after half an hour.
    """

    def __init__(self, *, sqs: Callable[[], Any], base: int = 10, cap: int = 120) -> None:
        self.sqs = sqs  # made on the first failure: a batch that succeeds builds no client
        self.base = base
        self.cap = cap

    def delay(self, receives: int) -> int:
        """Seconds before delivery ``receives + 1``.

        >>> [RetryBackoff(sqs=lambda: None).delay(n) for n in (1, 2, 3, 8)]
        [10, 20, 40, 120]
        """
        return int(min(self.cap, self.base * 2 ** max(0, receives - 1)))

    def apply(self, event: dict[str, Any], response: BatchResponse) -> BatchResponse:
        """Shorten the visibility of every message ``response`` reports as failed; returns it."""
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        for record in event.get("Records", ()):
            if record.get("messageId") not in failed:
                continue
            receives = int(record.get("attributes", {}).get("ApproximateReceiveCount", 1))
            delay = self.delay(receives)
            try:
                self.sqs().change_message_visibility(
                    QueueUrl=queue_url_from_arn(record["eventSourceARN"]),
                    ReceiptHandle=record["receiptHandle"],
                    VisibilityTimeout=delay,
                )
            except Exception as e:  # the queue's own visibility timeout still brings it back
                log.warning("could not shorten the retry delay of message %s: %s", record.get("messageId"), e)
                continue
            log.info("message %s will be retried in %d s (delivery %d)", record["messageId"], delay, receives)
        return response


def each_message(
    event: dict[str, Any],
    context: Any,
    handle: Callable[[dict[str, Any]], object],
    *,
    logger: logging.Logger | Any,  # a Powertools Logger too (the functions' own)
    what: str,
    drop: tuple[type[BaseException], ...] = (),
    backoff: RetryBackoff | None = None,
) -> BatchResponse:
    """Lambda's partial batch response for an SQS event whose messages are handled one at a time
    (train, backfill, video jobs; ingest embeds a batch together, :func:`storage_sqs_batch`).

    Powertools' batch processor runs ``handle(message)`` for each record and reports the ones that
    raised. The one rule every such function follows: an error of a ``drop`` class means the message
    itself can never succeed and its reason is already recorded where the user looks (a training's
    status, a backfill's progress), so it is logged and the message succeeds; any other error fails
    the message, which ``backoff`` brings back in seconds until the redrive policy dead-letters it.
    """
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    if not event.get("Records"):
        return {"batchItemFailures": []}  # Powertools refuses an event without records

    def record_handler(record: Any) -> None:
        message = record.raw_event
        try:
            handle(message)
        except drop as e:
            logger.error("%s %s dropped: %s", what, message.get("messageId"), e)
        except Exception:
            logger.exception("%s %s failed; it will be retried", what, message.get("messageId"))
            raise

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    result = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    failed = [str(f["itemIdentifier"]) for f in result["batchItemFailures"]]
    response: BatchResponse = {"batchItemFailures": [{"itemIdentifier": m} for m in failed]}
    return backoff.apply(event, response) if backoff is not None else response
