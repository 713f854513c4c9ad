"""Costs of moto that grow with a queue or a bucket, removed for the local stack.

Found with py-spy ``--gil`` on the stack process during a 1,000-photo bulk upload
(docs/benchmarks.md, "Local stack on an idle machine"):

* ``ReceiveMessage`` checks each message it returns against the queue's retention period by
  calling ``get_queue_attributes(["MessageRetentionPeriod"])``, which builds *every* attribute of
  the queue three times over; three of them (messages visible, in flight, delayed) walk the whole
  queue. One receive of 10 from a backlog of 1,000 uploads walked it 90 times: half the stack's
  interpreter time, the handlers waiting for it.
* ``SendMessage`` (every S3 upload notification) builds every attribute once to read one flag,
  and every walk reads a datetime-based clock (``utcnow() - utcfromtimestamp(0)``, about 2 us) per
  message: a quarter of the interpreter time while uploads arrived.
* ``PutEvents`` builds a new JSONPath parser (a PLY grammar) for every input path of every event
  delivered to a queue: a tenth of it.
* ``ListObjectsV2`` with a prefix reads every key of the bucket through a Python-level generator
  (one call per key for its newest version) before filtering by the prefix: 20-30 ms per listing
  of one asset's thumbnails folder once the data bucket held 15,000 objects, for every record the
  sweep checks.

:func:`apply` answers the same from cheaper sources: the retention check reads the queue's
``message_retention_period``; ``get_queue_attributes`` validates the names as moto does and builds
the attributes once; SQS's clock is ``time.time()`` (the same instant, without the datetimes);
parsed JSONPath expressions are kept by their text; a prefixed listing hands moto's own listing
code only the keys that start with the prefix (picked from a C-level copy of the key names). A
queue still walks its messages once per receive and per send. The behaviour is checked against
moto's own in ``tests/unit/test_motofixes.py``, so an upgrade that changes it fails there.
"""

from __future__ import annotations

import functools
import time
from typing import Any

_APPLIED = "_tagsmith_fixed"
#: moto's own functions, as they were before :func:`apply` (the tests compare against them)
ORIGINAL: dict[str, Any] = {}


def apply() -> bool:
    """Patch moto (idempotent); False if this moto lacks what is patched (nothing is changed)."""
    import jsonpath_ng.ext
    from moto.s3 import models as s3_models
    from moto.sqs import models as sqs_models
    from moto.sqs.exceptions import InvalidAttributeName

    backend = sqs_models.SQSBackend
    if getattr(backend, _APPLIED, False):
        return True
    needed = (
        hasattr(backend, "is_message_valid_based_on_retention_period"),
        hasattr(backend, "get_queue_attributes"),
        callable(getattr(sqs_models, "unix_time", None)),
        callable(getattr(sqs_models, "unix_time_millis", None)),
        callable(getattr(jsonpath_ng.ext, "parse", None)),
        hasattr(s3_models.S3Backend, "list_objects") and hasattr(s3_models, "FakeBucket"),
    )
    if not all(needed):
        return False
    unix_time, unix_time_millis = sqs_models.unix_time, sqs_models.unix_time_millis

    def fast_unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else float(unix_time(dt))

    def fast_unix_time_millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else float(unix_time_millis(dt))

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention + message.sent_timestamp / 1000 > time.time())

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

    list_objects = s3_models.S3Backend.list_objects

    def prefixed_list_objects(
        self: Any, bucket: Any, prefix: str | None, delimiter: Any, marker: Any, max_keys: Any
    ) -> Any:
        if prefix and type(bucket) is s3_models.FakeBucket and isinstance(bucket.keys, dict):
            bucket = _PrefixView(bucket, prefix)
        return list_objects(self, bucket, prefix, delimiter, marker, max_keys)

    ORIGINAL.update(
        is_message_valid_based_on_retention_period=backend.is_message_valid_based_on_retention_period,
        get_queue_attributes=backend.get_queue_attributes,
        unix_time=unix_time,
        unix_time_millis=unix_time_millis,
        jsonpath_parse=jsonpath_ng.ext.parse,
        list_objects=list_objects,
    )
    s3_models.S3Backend.list_objects = prefixed_list_objects  # type: ignore[method-assign]
    backend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period  # type: ignore[method-assign]
    backend.get_queue_attributes = get_queue_attributes  # type: ignore[method-assign]
    sqs_models.unix_time = fast_unix_time  # type: ignore[assignment]
    sqs_models.unix_time_millis = fast_unix_time_millis  # type: ignore[assignment]
    # moto.events imports ``parse`` from here at each call; an expression is immutable once built
    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=256)(jsonpath_ng.ext.parse)  # type: ignore[assignment]
    setattr(backend, _APPLIED, True)
    return True


class _PrefixView:
    """A bucket as moto's listing sees it, holding only the keys under ``prefix``."""

    def __init__(self, bucket: Any, prefix: str) -> None:
        self._bucket = bucket
        store = bucket.keys
        names = [k for k in list(dict.keys(store)) if k.startswith(prefix)]  # a copy: writers go on
        found = []
        for name in names:
            try:
                found.append((name, store[name]))  # the newest version, as moto's items() gives
            except (KeyError, IndexError):
                continue  # deleted since the copy
        self.keys = _Items(found)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bucket, name)


class _Items:
    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self._pairs = pairs

    def items(self) -> list[tuple[str, Any]]:
        return self._pairs
