"""Parsing storage events as they arrive in SQS message bodies.

Handles S3 event notifications (keys are URL-encoded with ``quote_plus``: always decoded here),
EventBridge "Object Created" events, and the ``s3:TestEvent`` S3 sends once when a notification is
configured (it carries no records and is skipped).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from tagsmith.errors import InvalidInputError


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One object version that was created: what ingestion works on."""

    bucket: str
    key: str
    etag: str | None = None
    size: int | None = None


def parse_storage_event(body: str | dict[str, Any]) -> list[ObjectRef]:
    """Objects created according to one SQS message body (an empty list for test events).

    >>> parse_storage_event({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
    ...   "s3": {"bucket": {"name": "assets"}, "object": {"key": "acme/a+b%C3%A9.jpg", "eTag": "x", "size": 3}}}]})
    [ObjectRef(bucket='assets', key='acme/a bé.jpg', etag='x', size=3)]
    """
    try:
        event = json.loads(body) if isinstance(body, str) else body
    except ValueError as e:
        raise InvalidInputError(f"message body is not JSON: {e}") from e
    if not isinstance(event, dict):
        raise InvalidInputError("message body is not a JSON object")
    if event.get("Event") == "s3:TestEvent":
        return []
    if event.get("source") == "aws.s3" and "detail" in event:
        if event.get("detail-type") != "Object Created":
            return []
        detail = event["detail"]
        obj = detail.get("object") or {}
        return [ObjectRef(detail["bucket"]["name"], obj["key"], obj.get("etag"), obj.get("size"))]
    if "Records" not in event:
        raise InvalidInputError(
            f"message is neither an S3 nor an EventBridge event: keys {sorted(event)[:5]}"
        )
    refs = []
    for rec in event["Records"]:
        if rec.get("eventSource") != "aws:s3" or not str(rec.get("eventName", "")).startswith(
            "ObjectCreated:"
        ):
            continue
        s3 = rec["s3"]
        obj = s3["object"]
        etag = obj.get("eTag") or obj.get("etag")
        refs.append(ObjectRef(s3["bucket"]["name"], unquote_plus(obj["key"]), etag, obj.get("size")))
    return refs
