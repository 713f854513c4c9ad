"""Parsing storage events as they arrive in SQS message bodies.

Handles S3 event notifications, EventBridge "Object Created" / "Object Deleted" events, and the
``s3:TestEvent`` S3 sends once when a notification is configured (it carries no records and is
skipped).

Keys are URL-encoded in both shapes and always decoded here with ``unquote_plus`` (a space arrives
as ``+``, a real ``+`` as ``%2B``). For S3 notifications the S3 documentation says so. For
EventBridge the S3 event documentation's samples only show plain keys, but AWS's own event classes
(Powertools for AWS Lambda, ``S3EventBridgeNotificationObject.key``) decode the EventBridge key the
same way, so Tagsmith does too. Plain keys (letters, digits, ``/ . _ -``) are unchanged either way;
the one difference would be a key holding a literal ``+`` or ``%`` if an emitter (moto's EventBridge
path, for one) sent it raw: such a key would be mis-decoded and its event skipped (a creation is
picked up again by a backfill or the local stack's reconcile step; a removal would be missed).

:func:`parse_storage_event` returns the objects *created* (what the training and backfill queues
care about); :func:`parse_storage_changes` returns creations and removals, in message order, for
the ingest queue (see :mod:`tagsmith.deletion`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from tagsmith.errors import InvalidInputError


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One object version that was created (or, with ``removed``, a removal of the key)."""

    bucket: str
    key: str
    etag: str | None = None
    size: int | None = None
    version_id: str | None = None
    sequencer: str | None = None  # hex string S3 uses to order the events of one key (logged)
    removed: bool = False


def object_created_event(bucket: str, key: str, *, etag: str, size: int) -> dict[str, Any]:
    """The S3 notification S3 itself would send to the ingest queue for this object: how an object
    that raised no event (a library in the bucket before Tagsmith was deployed, an object restored
    while the local stack was down) is sent down the same path as an upload.

    >>> body = object_created_event("assets", "acme/Été 1+1.jpg", etag="abc", size=3)
    >>> parse_storage_event(body) == [ObjectRef("assets", "acme/Été 1+1.jpg", "abc", 3)]
    True
    """
    obj = {"key": quote_plus(key, safe="/"), "eTag": etag, "size": size}
    record = {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": obj},
    }
    return {"Records": [record]}


def parse_storage_event(body: str | dict[str, Any]) -> list[ObjectRef]:
    """Objects created according to one SQS message body (an empty list for test events).

    >>> parse_storage_event({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
    ...   "s3": {"bucket": {"name": "assets"}, "object": {"key": "acme/a+b%C3%A9.jpg", "eTag": "x", "size": 3}}}]})[0].key
    'acme/a bé.jpg'
    """
    return [ref for ref in parse_storage_changes(body) if not ref.removed]


def parse_storage_changes(body: str | dict[str, Any]) -> list[ObjectRef]:
    """Objects created and removed according to one SQS message body, in message order.

    Removals: S3's ``ObjectRemoved:Delete`` and ``ObjectRemoved:DeleteMarkerCreated`` (a versioned
    bucket) and EventBridge's "Object Deleted". Other event types (restores, tagging, ACLs) are
    ignored.

    >>> [r.removed for r in parse_storage_changes({"Records": [{"eventSource": "aws:s3",
    ...   "eventName": "ObjectRemoved:DeleteMarkerCreated",
    ...   "s3": {"bucket": {"name": "assets"}, "object": {"key": "acme/a.jpg", "versionId": "v2"}}}]})]
    [True]
    """
    try:
        event = json.loads(body) if isinstance(body, str) else body
    except (ValueError, RecursionError) as e:  # RecursionError: nested deeper than the parser goes
        raise InvalidInputError(f"message body is not JSON: {e}") from e
    if not isinstance(event, dict):
        raise InvalidInputError("message body is not a JSON object")
    if event.get("Event") == "s3:TestEvent":
        return []
    if event.get("source") == "aws.s3" and "detail" in event:
        return _eventbridge(event)
    if "Records" not in event:
        raise InvalidInputError(
            f"message is neither an S3 nor an EventBridge event: keys {sorted(event)[:5]}"
        )
    if not isinstance(event["Records"], list):
        raise InvalidInputError("'Records' of an S3 event must be a list")
    refs = []
    for rec in event["Records"]:
        name = str(rec.get("eventName", ""))
        if rec.get("eventSource") != "aws:s3":
            continue
        removed = name.startswith("ObjectRemoved:")
        if not removed and not name.startswith("ObjectCreated:"):
            continue
        try:
            s3 = rec["s3"]
            obj = s3["object"]
            refs.append(
                ObjectRef(
                    s3["bucket"]["name"],
                    unquote_plus(obj["key"]),
                    None if removed else obj.get("eTag") or obj.get("etag"),
                    None if removed else obj.get("size"),
                    version_id=obj.get("versionId"),
                    sequencer=obj.get("sequencer"),
                    removed=removed,
                )
            )
        except (KeyError, TypeError) as e:
            raise InvalidInputError(f"S3 event record {name or '?'} lacks bucket or key: {e!r}") from e
    return refs


def _eventbridge(event: dict[str, Any]) -> list[ObjectRef]:
    kind = event.get("detail-type")
    if kind not in ("Object Created", "Object Deleted"):
        return []
    removed = kind == "Object Deleted"
    try:
        detail = event["detail"]
        obj = detail.get("object") or {}
        return [
            ObjectRef(
                detail["bucket"]["name"],
                unquote_plus(obj["key"]),
                None if removed else obj.get("etag"),
                None if removed else obj.get("size"),
                version_id=obj.get("version-id"),
                sequencer=obj.get("sequencer"),
                removed=removed,
            )
        ]
    except (KeyError, TypeError, AttributeError) as e:
        raise InvalidInputError(f"EventBridge {kind!r} event lacks bucket or key: {e!r}") from e
