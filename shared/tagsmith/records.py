"""The asset record, the source of truth for everything Tagsmith knows about one asset.

A record is JSON in the data bucket (see :mod:`tagsmith.keys`). The search index is a projection of
records and can always be rebuilt from them.

Human decisions beat model output. :func:`merge_tags` is the one place that combines a fresh set
of model proposals with what a record already holds:

* a tag a human confirmed stays confirmed, whatever the model now says;
* a tag a human rejected is never applied or proposed again for that asset;
* for an exclusive model, a human's choice (a confirmed tag, or "none of these") silences the
  model's other proposals for that model;
* AI tags of the models that ran are replaced by their new proposals; AI tags of models that did
  not run are kept.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from tagsmith.errors import InvalidInputError

RECORD_SCHEMA = 1
NONE_TAG = "__none__"  # an exclusive model's "none of these", as decided by a human


class TagState(StrEnum):
    APPLIED = "applied"  # the model was sure enough: applied without review
    REVIEW = "review"  # waiting for a human
    CONFIRMED = "confirmed"  # a human said yes (or picked this tag)
    REJECTED = "rejected"  # a human said no: never applied to this asset again


class Source(StrEnum):
    AI = "ai"
    HUMAN = "human"


HUMAN_STATES = frozenset({TagState.CONFIRMED, TagState.REJECTED})
VISIBLE_STATES = frozenset({TagState.APPLIED, TagState.CONFIRMED})  # what the asset "has"


class AssetStatus(StrEnum):
    TAGGED = "tagged"
    FAILED = "failed"
    DELETED = "deleted"  # a tombstone: the object was deleted; human decisions are kept


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Alternative:
    tag: str
    confidence: float


@dataclass(frozen=True, slots=True)
class TagAssignment:
    """One tag of one model on one asset, with where it came from."""

    model: str
    tag: str
    state: TagState
    source: Source
    confidence: float | None = None
    model_version: str | None = None
    threshold: float | None = None
    alternatives: tuple[Alternative, ...] = ()
    decided_by: str | None = None
    decided_at: str | None = None
    matched_text: str | None = None  # the printed text a tag model's text rule matched, if one did

    @property
    def is_human(self) -> bool:
        return self.state in HUMAN_STATES

    @property
    def is_visible(self) -> bool:
        return self.state in VISIBLE_STATES and self.tag != NONE_TAG

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["state"] = self.state.value
        d["source"] = self.source.value
        d["alternatives"] = [asdict(a) for a in self.alternatives]
        return {k: v for k, v in d.items() if v is not None and v != []}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TagAssignment:
        return cls(
            model=d["model"],
            tag=d["tag"],
            state=TagState(d["state"]),
            source=Source(d["source"]),
            confidence=d.get("confidence"),
            model_version=d.get("model_version"),
            threshold=d.get("threshold"),
            alternatives=tuple(Alternative(**a) for a in d.get("alternatives", ())),
            decided_by=d.get("decided_by"),
            decided_at=d.get("decided_at"),
            matched_text=d.get("matched_text"),
        )


@dataclass(frozen=True, slots=True)
class SourceObject:
    """The exact object version a record describes: the idempotency key of ingestion."""

    bucket: str
    key: str
    etag: str
    size: int


@dataclass(frozen=True, slots=True)
class Failure:
    # the error's code (tagsmith.errors): unsupported_media, image_too_large, invalid_input (e.g.
    # an empty object), video_job_gave_up
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Segment:
    """Where in a video one tag is seen: ``[start, end)`` in seconds, with the confidence of its
    frames and the data-bucket key of a small JPEG of its most confident frame."""

    model: str
    tag: str
    start: float
    end: float
    peak_confidence: float
    mean_confidence: float
    peak_time: float
    state: TagState = TagState.APPLIED  # applied, or review when the peak is below the tag's threshold
    thumbnail_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["state"] = self.state.value
        return {k: v for k, v in d.items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Segment:
        return cls(**{**d, "state": TagState(d.get("state", TagState.APPLIED.value))})


@dataclass(frozen=True, slots=True)
class TextLine:
    """A line of printed text read from the asset: its corners (x, y) in pixels of the original
    image or video frame, the reader's score, and for videos the time of the frame."""

    text: str
    score: float
    box: tuple[tuple[int, int], ...] = ()
    time: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"text": self.text, "score": self.score, "box": [list(p) for p in self.box]}
        if self.time is not None:
            d["time"] = self.time
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TextLine:
        box = tuple((int(x), int(y)) for x, y in d.get("box", ()))
        return cls(text=d["text"], score=float(d["score"]), box=box, time=d.get("time"))


@dataclass(frozen=True, slots=True)
class TagChange:
    """How one tag of one model changed in a revision: its state before and after (None: absent)."""

    model: str
    tag: str
    before: TagState | None
    after: TagState | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "tag": self.tag,
            "before": self.before.value if self.before else None,
            "after": self.after.value if self.after else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TagChange:
        before, after = d.get("before"), d.get("after")
        return cls(
            d["model"], d["tag"], TagState(before) if before else None, TagState(after) if after else None
        )


class Cause(StrEnum):
    """Why a revision of a record was written (what the change events report)."""

    UPLOAD = "upload"  # an object-created event (or a video job's last step)
    BACKFILL = "backfill"  # a promotion re-tagged the library
    REVIEW = "review"  # a reviewer's decision
    DELETION = "deletion"  # the object was deleted: the record became a tombstone
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class RecordChange:
    """What a revision changed, written with the revision itself (so that a change event is a pure
    function of the record and re-publishing one after a crash sends the same event again).

    ``tags`` is set by :class:`~tagsmith.storage.RecordStore` from the previous revision; when that
    revision's own change was never published (see ``AssetRecord.published_revision``) its changes
    are carried over, so no change is lost between two revisions."""

    cause: Cause
    action: str | None = None  # a review decision: accept | reject | pick | none
    by: str | None = None  # who decided (review decisions)
    tags: tuple[TagChange, ...] = ()
    status_before: AssetStatus | None = None  # set when the status changed (None: a new record too)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"cause": self.cause.value, "tags": [t.to_dict() for t in self.tags]}
        if self.action:
            d["action"] = self.action
        if self.by:
            d["by"] = self.by
        if self.status_before is not None:
            d["status_before"] = self.status_before.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RecordChange:
        before = d.get("status_before")
        return cls(
            cause=Cause(d.get("cause", Cause.OTHER.value)),
            action=d.get("action"),
            by=d.get("by"),
            tags=tuple(TagChange.from_dict(t) for t in d.get("tags", ())),
            status_before=AssetStatus(before) if before else None,
        )


def tag_changes(
    before: tuple[TagAssignment, ...] | list[TagAssignment],
    after: tuple[TagAssignment, ...] | list[TagAssignment],
) -> tuple[TagChange, ...]:
    """The tags whose state (or model version) differs between two revisions, by model and tag.

    >>> a = TagAssignment("sku", "milk", TagState.REVIEW, Source.AI, confidence=0.5)
    >>> b = TagAssignment("sku", "milk", TagState.CONFIRMED, Source.HUMAN)
    >>> [c.to_dict() for c in tag_changes([a], [b])]
    [{'model': 'sku', 'tag': 'milk', 'before': 'review', 'after': 'confirmed'}]
    """
    old = {(t.model, t.tag): t for t in before}
    new = {(t.model, t.tag): t for t in after}
    out = []
    for key in sorted(old.keys() | new.keys()):
        o, n = old.get(key), new.get(key)
        if o is not None and n is not None and (o.state, o.model_version) == (n.state, n.model_version):
            continue
        out.append(TagChange(key[0], key[1], o.state if o else None, n.state if n else None))
    return tuple(out)


def carry_changes(pending: tuple[TagChange, ...], fresh: tuple[TagChange, ...]) -> tuple[TagChange, ...]:
    """``fresh`` on top of ``pending`` (changes of an earlier revision that were never published):
    one entry per tag, from its state before ``pending`` to its state after ``fresh``; a tag that
    went back to where it was drops out."""
    merged = {(c.model, c.tag): c for c in pending}
    for c in fresh:
        earlier = merged.get((c.model, c.tag))
        merged[(c.model, c.tag)] = replace(c, before=earlier.before) if earlier else c
    return tuple(c for _, c in sorted(merged.items()) if c.before != c.after)


@dataclass(frozen=True, slots=True)
class AssetRecord:
    tenant: str
    path: str
    source: SourceObject
    status: AssetStatus
    media_type: str | None = None
    width: int | None = None
    height: int | None = None
    content_sha256: str | None = None
    encoder_id: str | None = None
    models: dict[str, str] = field(default_factory=dict)  # model id -> version applied
    tags: tuple[TagAssignment, ...] = ()
    failure: Failure | None = None
    created_at: str = field(default_factory=utc_now)
    updated_at: str = field(default_factory=utc_now)
    revision: int = 1
    schema: int = RECORD_SCHEMA
    # Optional, added for video and OCR; left out of the JSON when empty, so older records and
    # older readers see no difference.
    duration: float | None = None  # seconds (videos)
    segments: tuple[Segment, ...] = ()  # video segments, by model, tag and start
    text_lines: tuple[TextLine, ...] = ()  # printed text read by OCR
    ocr_engine: str | None = None  # set when OCR ran (even if it read nothing), else None
    deleted_at: str | None = None  # tombstones only: when the object's deletion was recorded
    # What this revision changed and why (set by RecordStore on every write; None on records written
    # before change events existed), and the last revision whose outbound projections (change event,
    # S3 object tags, XMP sidecar) are known to be done: see tagsmith.outbound.
    change: RecordChange | None = None
    published_revision: int = 0

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.path}"

    def visible_tags(self) -> list[TagAssignment]:
        return [t for t in self.tags if t.is_visible]

    def pending_review(self) -> list[TagAssignment]:
        return [t for t in self.tags if t.state is TagState.REVIEW]

    def to_json(self) -> bytes:
        d: dict[str, Any] = {
            "schema": self.schema,
            "tenant": self.tenant,
            "path": self.path,
            "source": asdict(self.source),
            "status": self.status.value,
            "media_type": self.media_type,
            "width": self.width,
            "height": self.height,
            "content_sha256": self.content_sha256,
            "encoder_id": self.encoder_id,
            "models": dict(self.models),
            "tags": [t.to_dict() for t in self.tags],
            "failure": asdict(self.failure) if self.failure else None,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "revision": self.revision,
        }
        if self.duration is not None:
            d["duration"] = self.duration
        if self.segments:
            d["segments"] = [seg.to_dict() for seg in self.segments]
        if self.ocr_engine is not None:
            d["ocr_engine"] = self.ocr_engine
            d["text_lines"] = [line.to_dict() for line in self.text_lines]
        if self.deleted_at is not None:
            d["deleted_at"] = self.deleted_at
        if self.change is not None:
            d["change"] = self.change.to_dict()
        if self.published_revision:
            d["published_revision"] = self.published_revision
        return json.dumps(d, ensure_ascii=False, indent=1).encode()

    @property
    def ocr_text(self) -> str:
        """Every line OCR read, one per line, in reading order (for search and text rules)."""
        return "\n".join(line.text for line in self.text_lines)

    @classmethod
    def from_json(cls, data: bytes | str) -> AssetRecord:
        try:
            d = json.loads(data)
            return cls(
                tenant=d["tenant"],
                path=d["path"],
                source=SourceObject(**d["source"]),
                status=AssetStatus(d["status"]),
                media_type=d.get("media_type"),
                width=d.get("width"),
                height=d.get("height"),
                content_sha256=d.get("content_sha256"),
                encoder_id=d.get("encoder_id"),
                models=dict(d.get("models") or {}),
                tags=tuple(TagAssignment.from_dict(t) for t in d.get("tags", ())),
                failure=Failure(**d["failure"]) if d.get("failure") else None,
                created_at=d["created_at"],
                updated_at=d["updated_at"],
                revision=int(d.get("revision", 1)),
                schema=int(d.get("schema", RECORD_SCHEMA)),
                duration=d.get("duration"),
                segments=tuple(Segment.from_dict(x) for x in d.get("segments", ())),
                text_lines=tuple(TextLine.from_dict(x) for x in d.get("text_lines", ())),
                ocr_engine=d.get("ocr_engine"),
                deleted_at=d.get("deleted_at"),
                change=RecordChange.from_dict(d["change"]) if d.get("change") else None,
                published_revision=int(d.get("published_revision", 0)),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise InvalidInputError(f"asset record is not valid JSON of schema {RECORD_SCHEMA}: {e}") from e


def merge_tags(
    existing: tuple[TagAssignment, ...] | list[TagAssignment],
    proposed: list[TagAssignment],
    *,
    models_run: set[str],
    exclusive_models: set[str] = frozenset(),  # type: ignore[assignment]
) -> tuple[TagAssignment, ...]:
    """Combine a record's tags with new model proposals; human decisions always win.

    >>> human = TagAssignment("sku", "milk", TagState.CONFIRMED, Source.HUMAN)
    >>> ai = TagAssignment("sku", "juice", TagState.APPLIED, Source.AI, confidence=0.97)
    >>> merge_tags([human], [ai], models_run={"sku"}, exclusive_models={"sku"}) == (human,)
    True
    """
    human = [t for t in existing if t.is_human]
    decided = {(t.model, t.tag) for t in human}
    settled_models = {t.model for t in human if t.state is TagState.CONFIRMED and t.model in exclusive_models}
    kept_ai = [t for t in existing if not t.is_human and t.model not in models_run]
    fresh = [
        p
        for p in proposed
        if (p.model, p.tag) not in decided and p.model not in settled_models and not p.is_human
    ]
    fresh = [
        replace(p, alternatives=tuple(a for a in p.alternatives if (p.model, a.tag) not in decided))
        for p in fresh
    ]
    merged = human + kept_ai + fresh
    return tuple(sorted(merged, key=lambda t: (t.model, t.tag)))
