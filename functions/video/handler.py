"""Video jobs: one step of a long video's job per SQS message (:mod:`tagsmith.videojobs`).

A step runs windows of the video while the invocation has time left, checkpoints each one, and
queues the next step; the last step writes the record, review items and search document. Bodies
that are not job messages fail and rest in the dead-letter queue; on a message's last delivery a
step that keeps failing ends its job ``failed`` with the reason on the record.
"""

from __future__ import annotations

from typing import Any

from tagsmith.config import ConfigurationError
from tagsmith.lazy import lazy_components
from tagsmith.local.resources import STACK
from tagsmith.logs import function_logger, logged
from tagsmith.sqsbatch import RetryBackoff, each_message
from tagsmith.videojobs import VideoJobService

logger = function_logger("tagsmith-video")  # library lines name this function while it runs
components = lazy_components()  # built on the first invocation, reused while warm
backoff = RetryBackoff(sqs=lambda: components().sqs)  # failed messages come back in seconds
MAX_RECEIVES = STACK.queue("video-jobs").max_receive_count


def jobs() -> VideoJobService:
    service = components().video_jobs
    if service is None:
        raise ConfigurationError(
            "TAGSMITH_VIDEO_JOBS_QUEUE_URL is not set: the video function needs its queue"
        )
    return service


@logged(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    def step(message: dict[str, Any]) -> None:
        receives = int(message.get("attributes", {}).get("ApproximateReceiveCount", 1))
        outcome = jobs().handle(
            message["body"],
            remaining=lambda: context.get_remaining_time_in_millis() / 1000,
            last_attempt=receives >= MAX_RECEIVES,
        )
        logger.info("video job message %s: %s", message["messageId"], outcome)

    # Nothing is dropped: a body that is not a job step rests in the dead-letter queue for a look,
    # and a step that keeps failing ends its job on its last delivery (VideoJobService.handle).
    return each_message(event, context, step, logger=logger, what="video job message", backoff=backoff)
