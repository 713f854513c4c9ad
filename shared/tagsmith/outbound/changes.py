"""Change events: one JSON document per revision of an asset record whose tags (or status) changed.

The event is a pure function of the record (:func:`change_event`): the record carries what its
revision changed and why (:class:`~tagsmith.records.RecordChange`), so an event re-published after a
crash is the same event. Its schema is ``schemas/asset-tags-changed.v1.json`` beside this module
(documented in docs/events.md); ``id`` is deterministic per tenant, asset and revision, so consumers
drop duplicates by ``id`` and stale deliveries by ``revision``.

Publishing goes through the :class:`ChangePublisher` boundary: :class:`EventBridgePublisher` on AWS
and in the local stack (moto's EventBridge, rules to SQS), :class:`MemoryPublisher` in tests.

Example::

    >>> from tagsmith.records import AssetRecord, AssetStatus, Cause, RecordChange, SourceObject
    >>> from tagsmith.records import Source, TagAssignment, TagState, tag_changes
    >>> milk = TagAssignment("sku", "milk", TagState.APPLIED, Source.AI, confidence=0.99, model_version="v1")
    >>> r = AssetRecord("acme", "a.jpg", SourceObject("assets", "acme/a.jpg", "e1", 3), AssetStatus.TAGGED,
    ...                 tags=(milk,), change=RecordChange(Cause.UPLOAD, tags=tag_changes((), (milk,))))
    >>> e = change_event(r)
    >>> (e["type"], e["revision"], e["kinds"], e["tags"][0]["labels"])
    ('tagsmith.asset.tags-changed', 1, ['applied'], {'en': 'milk'})
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from tagsmith.errors import TransientError
from tagsmith.records import NONE_TAG, AssetRecord, AssetStatus, Cause, TagState
from tagsmith.taxonomy import TagDefinition, Taxonomy

log = logging.getLogger(__name__)

EVENT_TYPE = "tagsmith.asset.tags-changed"
EVENT_VERSION = 1
SOURCE = "tagsmith"  # EventBridge ``source``
DETAIL_TYPE = "Asset Tags Changed"  # EventBridge ``detail-type``
SCHEMA_FILE = "asset-tags-changed.v1.json"
#: Every kind an event can carry (``kinds``): what subscriptions filter on.
KINDS = (
    "applied",  # a model applied a tag
    "review",  # a tag was sent to review
    "confirmed",  # a human confirmed a tag (accept, or the tag picked)
    "rejected",  # a human rejected a tag
    "picked",  # a reviewer picked another tag than the suggestion
    "none",  # a reviewer answered "none of these"
    "removed",  # a tag left the record (a model no longer proposes it, or the object was deleted)
    "deleted",  # the object was deleted: the record is a tombstone (human decisions kept)
    "restored",  # a deleted object was uploaded again
    "failed",  # the object cannot be tagged (the reason is on the record)
    "retagged",  # a backfill re-tagged the asset after a model promotion
)
_STATE_KIND = {
    TagState.APPLIED: "applied",
    TagState.REVIEW: "review",
    TagState.CONFIRMED: "confirmed",
    TagState.REJECTED: "rejected",
}


def schema() -> dict[str, Any]:
    """The event's JSON Schema (draft 2020-12)."""
    text = resources.files("tagsmith.outbound").joinpath("schemas", SCHEMA_FILE).read_text()
    return dict(json.loads(text))


def needs_event(record: AssetRecord) -> bool:
    """Whether ``record``'s revision is one consumers must hear about and has not been published:
    its tags or status changed, or the asset is new. Records written before change events existed
    (no ``change``) are never published on their own."""
    change = record.change
    if change is None or record.published_revision >= record.revision:
        return False
    return bool(change.tags) or change.status_before is not None or record.revision == 1


def event_id(tenant: str, path: str, revision: int) -> str:
    """Deterministic per asset revision: the same event re-published has the same id."""
    digest = hashlib.sha256(f"{tenant}\0{path}\0{revision}".encode()).hexdigest()[:32]
    return f"evt_{digest}"


def event_kinds(record: AssetRecord) -> list[str]:
    """What happened in this revision, as a sorted subset of :data:`KINDS`."""
    change = record.change
    kinds: set[str] = set()
    if change is not None:
        for c in change.tags:
            if c.after is None:
                kinds.add("removed")
            elif c.tag == NONE_TAG and c.after is TagState.CONFIRMED:
                kinds.add("none")
            else:
                kinds.add(_STATE_KIND[c.after])
        if change.action == "pick":
            kinds.add("picked")
        if change.action == "none":
            kinds.add("none")
        if change.cause is Cause.BACKFILL and change.tags:
            kinds.add("retagged")
        if change.status_before is AssetStatus.DELETED and record.status is not AssetStatus.DELETED:
            kinds.add("restored")
    if record.status is AssetStatus.DELETED and (change is None or change.status_before is not None):
        kinds.add("deleted")
    if record.status is AssetStatus.FAILED and (
        change is None or change.status_before is not None or record.revision == 1
    ):
        kinds.add("failed")
    return sorted(kinds)


def labels_for(taxonomy: Taxonomy | None, tag: str, languages: Sequence[str]) -> dict[str, str]:
    """The tag's label in each of ``languages`` (the taxonomy's own label languages when empty,
    English when it has none); a language without a label falls back as :meth:`TagDefinition.label`.

    >>> labels_for(None, "storm-blue", ["en", "fr"])
    {'en': 'storm blue', 'fr': 'storm blue'}
    """
    definition = taxonomy.get(tag) if taxonomy is not None else TagDefinition(tag)
    langs = list(languages) or sorted(definition.labels) or ["en"]
    return {lang: definition.label(lang) for lang in langs}


def change_event(
    record: AssetRecord,
    *,
    taxonomies: Mapping[str, Taxonomy] | None = None,
    languages: Sequence[str] = (),
) -> dict[str, Any]:
    """The change event of ``record``'s revision (the ``detail`` of the EventBridge event)."""
    taxonomies = taxonomies or {}
    change = record.change
    tags = []
    for t in record.tags:
        entry: dict[str, Any] = {
            "model": t.model,
            "tag": t.tag,
            "state": t.state.value,
            "source": t.source.value,
            "visible": t.is_visible,
            "confidence": t.confidence,
            "model_version": t.model_version,
            "labels": {} if t.tag == NONE_TAG else labels_for(taxonomies.get(t.model), t.tag, languages),
        }
        if t.decided_by:
            entry["decided_by"] = t.decided_by
            entry["decided_at"] = t.decided_at
        tags.append(entry)
    event: dict[str, Any] = {
        "type": EVENT_TYPE,
        "version": EVENT_VERSION,
        "id": event_id(record.tenant, record.path, record.revision),
        "tenant": record.tenant,
        "key": record.key,
        "path": record.path,
        "bucket": record.source.bucket,
        "object": {"etag": record.source.etag, "size": record.source.size},
        "revision": record.revision,
        "status": record.status.value,
        "changed_at": record.updated_at,
        "cause": change.cause.value if change else Cause.OTHER.value,
        "kinds": event_kinds(record),
        "changes": [c.to_dict() for c in change.tags] if change else [],
        "tags": tags,
    }
    if change is not None and change.action:
        event["decision"] = {"action": change.action, "by": change.by}
    if record.media_type:
        event["media_type"] = record.media_type
    return event


# --- publishing ----------------------------------------------------------------------------------
class ChangePublisher(Protocol):
    """Where change events go. ``publish`` raises :class:`TransientError` when any was not taken."""

    def publish(self, events: Sequence[dict[str, Any]]) -> None: ...


class EventBridgePublisher:
    """``PutEvents`` on a custom bus, ten entries per call (EventBridge's limit); an entry refused
    fails the whole call with :class:`TransientError` (re-publishing is harmless: ids repeat)."""

    MAX_ENTRIES = 10

    def __init__(self, *, client: Any, bus: str) -> None:
        self.client = client
        self.bus = bus

    def publish(self, events: Sequence[dict[str, Any]]) -> None:
        for start in range(0, len(events), self.MAX_ENTRIES):
            chunk = events[start : start + self.MAX_ENTRIES]
            entries = [
                {
                    "Source": SOURCE,
                    "DetailType": DETAIL_TYPE,
                    "Detail": json.dumps(e, ensure_ascii=False),
                    "EventBusName": self.bus,
                    "Resources": [],
                }
                for e in chunk
            ]
            try:
                r = self.client.put_events(Entries=entries)
            except (ClientError, BotoCoreError) as e:
                raise TransientError(
                    f"publishing {len(chunk)} change events to {self.bus} failed: {e}"
                ) from e
            if r.get("FailedEntryCount"):
                failed = [x for x in r.get("Entries", []) if x.get("ErrorCode")]
                raise TransientError(
                    f"EventBridge refused {r['FailedEntryCount']} of {len(chunk)} change events on "
                    f"{self.bus}: {failed[0] if failed else '?'}"
                )


class MemoryPublisher:
    """Keeps what was published (``events``); ``fail`` makes the next calls raise (tests)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.fail: Callable[[], bool] = lambda: False

    def publish(self, events: Sequence[dict[str, Any]]) -> None:
        if self.fail():
            raise TransientError("publisher unavailable (test)")
        self.events.extend(json.loads(json.dumps(e)) for e in events)
