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
from tagsmith.sqsbatch import RetryBackoff
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


@logged(logger)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    failures = []
    for message in event.get("Records", ()):
        try:
            for ref in parse_storage_event(message["body"]):
                outcome = jobs().run(ref.key)
                logger.info("training request %s: %s", ref.key, outcome.get("state"), extra={"key": ref.key})
        except (InvalidInputError, NotFoundError) as e:
            logger.error("training request dropped: %s", e)  # nothing to retry: the request is bad or gone
        except Exception:
            logger.exception("training failed; the message will be retried")
            failures.append({"itemIdentifier": message["messageId"]})
    return backoff.apply(event, {"batchItemFailures": failures})
