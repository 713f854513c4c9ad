"""Video jobs: one step of a long video's job per SQS message (:mod:`tagsmith.videojobs`).

A step runs windows of the video while the invocation has time left, checkpoints each one, and
queues the next step; the last step writes the record, review items and search document. Bodies
that are not job messages fail and rest in the dead-letter queue; on a message's last delivery a
step that keeps failing ends its job ``failed`` with the reason on the record.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from tagsmith.config import ConfigurationError
from tagsmith.lazy import lazy_components
from tagsmith.local.resources import STACK
from tagsmith.videojobs import VideoJobService

logger = Logger(service="tagsmith-video")
copy_config_to_registered_loggers(source_logger=logger, include={"tagsmith"})
components = lazy_components()  # built on the first invocation, reused while warm
MAX_RECEIVES = STACK.queue("video-jobs").max_receive_count


def jobs() -> VideoJobService:
    service = components().ingest.video_jobs
    if service is None:
        raise ConfigurationError(
            "TAGSMITH_VIDEO_JOBS_QUEUE_URL is not set: the video function needs its queue"
        )
    return service


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    failures = []
    for message in event.get("Records", ()):
        receives = int(message.get("attributes", {}).get("ApproximateReceiveCount", 1))
        try:
            outcome = jobs().handle(
                message["body"],
                remaining=lambda: context.get_remaining_time_in_millis() / 1000,
                last_attempt=receives >= MAX_RECEIVES,
            )
            logger.info("video job message %s: %s", message["messageId"], outcome)
        except Exception:
            logger.exception("video job step failed; the message will be retried")
            failures.append({"itemIdentifier": message["messageId"]})
    return {"batchItemFailures": failures}
