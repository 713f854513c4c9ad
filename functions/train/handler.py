"""Train: a training request written to the data bucket (S3 event via SQS) -> a new model version.

Each SQS record carries an S3 event; each object it names is handed to
:meth:`tagsmith.trainjobs.TrainingJobs.run`, which writes the model's status (training, then trained
or failed). Bad or vanished requests are dropped (their status says why); anything else is reported
as a batch item failure so SQS retries it, and after the redrive limit moves it to the DLQ.
"""

from __future__ import annotations

from typing import Any

from tagsmith.errors import InvalidInputError, NotFoundError
from tagsmith.events import parse_storage_event
from tagsmith.lazy import Lazy, lazy_components
from tagsmith.logs import function_logger, logged
from tagsmith.sqsbatch import RetryBackoff, each_message
from tagsmith.trainjobs import TrainingJobs

logger = function_logger("tagsmith-train")  # library lines name this function while it runs
components = lazy_components()
backoff = RetryBackoff(sqs=lambda: components().sqs)  # failed messages come back in seconds


def _training_jobs() -> TrainingJobs:
    c = components()
    return TrainingJobs(
        store=c.store,
        data_bucket=c.settings.data_bucket,
        trainer=c.trainer,
        records=c.records,
        assets_bucket=c.settings.assets_bucket,
    )


jobs = Lazy(_training_jobs)  # built on the first invocation, reused while warm


def _train(message: dict[str, Any]) -> None:
    for ref in parse_storage_event(message["body"]):
        outcome = jobs().run(ref.key)
        logger.info("training request %s: %s", ref.key, outcome.get("state"), extra={"key": ref.key})


@logged(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # A bad or vanished request is dropped: its status says why, and retrying cannot help.
    return each_message(
        event, context, _train, logger=logger, what="training request",
        drop=(InvalidInputError, NotFoundError), backoff=backoff,
    )  # fmt: skip
