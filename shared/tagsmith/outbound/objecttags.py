"""S3 object tags: each model's visible tags on the asset itself, within S3's limits.

S3 allows 10 tags per object, keys of at most 128 characters and values of at most 256 (letters,
digits, spaces and ``+ - = . _ : / @``). The encoding (:func:`object_tags`):

* ``tagsmith:<model>`` = the model's visible tags (confirmed by a human first, then applied by
  confidence), tag ids separated by one space. Past 256 characters the tags that do not fit are
  left out and the value ends with `` +N`` (N tags more: the record and the change events have them);
* ``tagsmith:revision`` = the record revision the tags describe;
* keys that do not start with ``tagsmith:`` are the user's: always kept as they are. Ours fill the
  slots left: if the models do not all fit, the last slot becomes ``tagsmith:more`` = the ids of
  the models left out (space-separated); with no slot left, none of ours is written (a warning
  says so).

Writing tags is ``PutObjectTagging``, which S3 reports as ``s3:ObjectTagging:Put``, never as
``ObjectCreated``: it does not re-trigger ingestion, and it changes neither the ETag nor the version.

>>> from tagsmith.records import AssetRecord, AssetStatus, Source, SourceObject, TagAssignment, TagState
>>> r = AssetRecord("acme", "a.jpg", SourceObject("assets", "acme/a.jpg", "e1", 3), AssetStatus.TAGGED,
...     tags=(TagAssignment("sku", "milk", TagState.APPLIED, Source.AI, confidence=0.9),), revision=4)
>>> object_tags(r, {"owner": "ana"})
{'owner': 'ana', 'tagsmith:sku': 'milk', 'tagsmith:revision': '4'}
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from tagsmith.errors import NotFoundError, TransientError
from tagsmith.records import AssetRecord, TagAssignment

log = logging.getLogger(__name__)

PREFIX = "tagsmith:"
MAX_TAGS = 10
MAX_KEY = 128
MAX_VALUE = 256
REVISION_KEY = PREFIX + "revision"
MORE_KEY = PREFIX + "more"


def ours(key: str) -> bool:
    return key.startswith(PREFIX)


def _joined(items: list[str]) -> str:
    """Items separated by spaces, at most :data:`MAX_VALUE` characters; what does not fit becomes
    `` +N``."""
    for keep in range(len(items), -1, -1):
        left = len(items) - keep
        value = " ".join(items[:keep]) + (f" +{left}" if left else "")
        if len(value.strip()) <= MAX_VALUE:
            return value.strip()
    return ""  # unreachable: "+N" always fits


def _by_model(record: AssetRecord) -> dict[str, list[TagAssignment]]:
    out: dict[str, list[TagAssignment]] = {}
    for t in sorted(record.visible_tags(), key=lambda t: (not t.is_human, -(t.confidence or 0.0), t.tag)):
        out.setdefault(t.model, []).append(t)
    return dict(sorted(out.items()))


def object_tags(record: AssetRecord, existing: dict[str, str]) -> dict[str, str]:
    """The object's whole tag set after writing ``record``'s tags: the user's tags (every key not
    starting with ``tagsmith:``) first and untouched, then ours within the slots left."""
    theirs = {k: v for k, v in existing.items() if not ours(k)}
    free = MAX_TAGS - len(theirs)
    models = _by_model(record)
    if free < 1:
        log.warning(
            "object has %d tags of its own: no room for Tagsmith's", len(theirs),
            extra={"tenant": record.tenant, "key": record.key},
        )  # fmt: skip
        return theirs
    mine: dict[str, str] = {}
    slots = free - 1  # one for the revision
    names = list(models)
    if len(names) > slots:
        kept, left = names[: max(slots - 1, 0)], names[max(slots - 1, 0) :]
        if slots >= 1:
            mine[MORE_KEY] = _joined(left)
        names = kept
    for model in names:
        mine[(PREFIX + model)[:MAX_KEY]] = _joined([t.tag for t in models[model]])
    ordered = {k: mine[k] for k in sorted(mine, key=lambda k: (k == MORE_KEY, k))}
    return {**theirs, **ordered, REVISION_KEY: str(record.revision)}


# --- the boundary ------------------------------------------------------------------------------
class ObjectTagging(Protocol):
    """Read and replace an object's tag set (S3 ``GetObjectTagging`` / ``PutObjectTagging``)."""

    def get_tags(self, bucket: str, key: str) -> dict[str, str]:
        """The current version's tags; raises :class:`NotFoundError` if the object is gone."""
        ...

    def put_tags(self, bucket: str, key: str, tags: dict[str, str]) -> None: ...


def _s3_error(e: Exception, what: str, bucket: str, key: str) -> Exception:
    code = e.response.get("Error", {}).get("Code") if isinstance(e, ClientError) else None
    if code in ("NoSuchKey", "404", "NotFound"):
        return NotFoundError(f"s3://{bucket}/{key} does not exist")
    return TransientError(f"{what} the tags of s3://{bucket}/{key} failed: {e}")


class S3ObjectTagging:
    def __init__(self, *, client: Any) -> None:
        self.client = client

    def get_tags(self, bucket: str, key: str) -> dict[str, str]:
        try:
            r = self.client.get_object_tagging(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as e:
            raise _s3_error(e, "reading", bucket, key) from e
        return {t["Key"]: t["Value"] for t in r.get("TagSet", [])}

    def put_tags(self, bucket: str, key: str, tags: dict[str, str]) -> None:
        tag_set = [{"Key": k, "Value": v} for k, v in tags.items()]
        try:
            self.client.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": tag_set})
        except (ClientError, BotoCoreError) as e:
            raise _s3_error(e, "writing", bucket, key) from e


class MemoryObjectTagging:
    """Tags in a dict, for tests; ``objects`` says which (bucket, key) exist (all, when None)."""

    def __init__(self, exists: Any = None) -> None:
        self.tags: dict[tuple[str, str], dict[str, str]] = {}
        self.exists = exists
        self.puts = 0

    def get_tags(self, bucket: str, key: str) -> dict[str, str]:
        if self.exists is not None and not self.exists(bucket, key):
            raise NotFoundError(f"{bucket}/{key} does not exist")
        return dict(self.tags.get((bucket, key), {}))

    def put_tags(self, bucket: str, key: str, tags: dict[str, str]) -> None:
        if self.exists is not None and not self.exists(bucket, key):
            raise NotFoundError(f"{bucket}/{key} does not exist")
        if len(tags) > MAX_TAGS or any(len(k) > MAX_KEY or len(v) > MAX_VALUE for k, v in tags.items()):
            raise ValueError(f"S3 would refuse this tag set: {tags}")
        self.tags[(bucket, key)] = dict(tags)
        self.puts += 1
