"""Two costs of moto's SQS that grow with the queue, removed for the local stack.

moto 5.2's ``ReceiveMessage`` checks each message it returns against the queue's retention period
by calling ``get_queue_attributes(["MessageRetentionPeriod"])``, which builds *every* attribute of
the queue three times over; three of them (messages visible, in flight, delayed) walk the whole
queue, calling a datetime-based clock for each message. One receive of 10 from a backlog of 1,000
uploads made about 120,000 clock calls: in a 1,000-photo bulk upload through the stack, half the
stack process's interpreter time (py-spy ``--gil``) went there, with the handlers waiting for it
(docs/benchmarks.md, "Where the stack's interpreter time went").

:func:`apply` replaces the two methods with versions that answer the same from the queue's own
fields: the retention check reads ``message_retention_period``; ``get_queue_attributes`` validates
the names as moto does and builds the attributes once. Nothing else of moto changes (a queue still
walks its messages once per receive to find the visible ones). The behaviour is checked against
moto's own in ``tests/unit/test_motofixes.py``, so an upgrade that changes it fails there.
"""

from __future__ import annotations

from typing import Any

_APPLIED = "_tagsmith_fixed"
#: moto's own methods, as they were before :func:`apply` (the tests compare against them)
ORIGINAL: dict[str, Any] = {}


def apply() -> bool:
    """Patch moto's SQS backend (idempotent); False if this moto lacks what is patched."""
    from moto.core.utils import unix_time
    from moto.sqs.exceptions import InvalidAttributeName
    from moto.sqs.models import SQSBackend

    if getattr(SQSBackend, _APPLIED, False):
        return True
    if not all(
        hasattr(SQSBackend, name)
        for name in ("is_message_valid_based_on_retention_period", "get_queue_attributes")
    ):
        return False

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention + message.sent_timestamp / 1000 > unix_time())

    def get_queue_attributes(self: Any, queue_name: str, attribute_names: list[str]) -> dict[str, Any]:
        queue = self.get_queue(queue_name)
        if not attribute_names:
            return {}
        valid = {"All", *queue.BASE_ATTRIBUTES, *queue.FIFO_ATTRIBUTES, *queue.KMS_ATTRIBUTES}
        invalid = next((name for name in attribute_names if name not in valid), None)
        if invalid is not None:
            raise InvalidAttributeName(invalid)
        attributes: dict[str, Any] = queue.attributes  # a property that walks the queue: once
        if "All" in attribute_names:
            return attributes
        return {n: attributes[n] for n in attribute_names if attributes.get(n) is not None}

    ORIGINAL["is_message_valid_based_on_retention_period"] = (
        SQSBackend.is_message_valid_based_on_retention_period
    )
    ORIGINAL["get_queue_attributes"] = SQSBackend.get_queue_attributes
    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period  # type: ignore[method-assign]
    SQSBackend.get_queue_attributes = get_queue_attributes  # type: ignore[method-assign]
    setattr(SQSBackend, _APPLIED, True)
    return True
