"""Train: a training request written to the data bucket (S3 event via SQS) -> a new model version.

Each SQS record carries an S3 event; each object it names is handed to
:meth:`tagsmith.trainjobs.TrainingJobs.run`, which writes the model's status (training, then trained
or failed). Bad or vanished requests are dropped (their status says why); anything else is reported
as a batch item failure so SQS retries it, and after the redrive limit moves it to the DLQ.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from tagsmith.errors import InvalidInputError, NotFoundError
from tagsmith.events import parse_storage_event
from tagsmith.lazy import Lazy, lazy_components
from tagsmith.trainjobs import TrainingJobs

logger = Logger(service="tagsmith-train")
copy_config_to_registered_loggers(source_logger=logger, include={"tagsmith"})
components = lazy_components()


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


@logger.inject_lambda_context
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
    return {"batchItemFailures": failures}
