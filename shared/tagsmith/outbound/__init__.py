"""Outbound projections: what the rest of the stack reads, derived from each asset record.

Like the search index and the review items, these are projections of the record (the truth), done
after the record is written, by one hook every writer calls, :meth:`Outbound.after_write`
(ingestion, video jobs, backfills through ingestion, review decisions, deletions):

1. **S3 object tags** on the asset (opt-in per tenant, :mod:`tagsmith.outbound.objecttags`);
2. an **XMP sidecar** in the data bucket (opt-in per tenant, :mod:`tagsmith.outbound.sidecars`);
3. a **change event** on the event bus (:mod:`tagsmith.outbound.changes`), last, so a consumer that
   hears of a revision finds the tags and sidecar already written;
4. the record is stamped ``published_revision = revision`` (a conditional write that changes no
   revision, so it triggers nothing).

Crash-safe without a second source of truth: a revision whose projections did not finish keeps
``published_revision < revision``. The message that wrote it is retried (its handler reported the
failure), and the retry finds the record current and calls :meth:`Outbound.after_write` again;
anything else (a decision whose API call died, a message that reached its DLQ) is caught by
:meth:`Outbound.repair_tenant` (``tagsmith republish``, and the local stack at every start). A
revision is published at least once; consumers drop duplicates by event id and stale ones by
revision. Nothing here writes a tag to a record, so publishing can never loop back into a write.

When a tenant has no outputs turned on and no event bus is configured, the hook costs nothing per
asset (one cached read of the tenant's settings per minute).

Settings in ``tenants/<t>/tenant.json``::

    {"languages": ["en", "fr"],                      # labels in events and sidecars
     "outputs": {"object_tags": true, "sidecars": true}}
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from tagsmith.errors import NotFoundError, TransientError
from tagsmith.keys import tenant_settings_key
from tagsmith.outbound.changes import (
    ChangePublisher,
    EventBridgePublisher,
    MemoryPublisher,
    change_event,
    needs_event,
)
from tagsmith.outbound.objecttags import MemoryObjectTagging, ObjectTagging, S3ObjectTagging, object_tags
from tagsmith.outbound.sidecars import sidecar_key, sidecar_xmp, written_by_us_only
from tagsmith.records import AssetRecord, AssetStatus
from tagsmith.storage.base import ObjectStore, PreconditionFailedError
from tagsmith.storage.records import RecordStore
from tagsmith.taxonomy import Taxonomy
from tagsmith.tenantcache import TenantCache

log = logging.getLogger(__name__)

#: Projections of one batch run this many at a time (each is a few S3 round trips).
WORKERS = 8


@dataclass(frozen=True)
class OutputSettings:
    """A tenant's outbound settings (``tenant.json``); everything opt-in is off by default."""

    object_tags: bool = False
    sidecars: bool = False
    languages: tuple[str, ...] = ()  # () = every language the taxonomies label

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OutputSettings:
        """
        >>> OutputSettings.from_dict({"languages": ["en", "fr"], "outputs": {"sidecars": True}})
        OutputSettings(object_tags=False, sidecars=True, languages=('en', 'fr'))
        """
        outputs = d.get("outputs") or {}
        if not isinstance(outputs, dict):
            raise ValueError("'outputs' must be an object like {\"object_tags\": true}")
        languages = d.get("languages") or ()
        if not isinstance(languages, list | tuple) or not all(isinstance(x, str) for x in languages):
            raise ValueError("'languages' must be a list of language codes")
        return cls(bool(outputs.get("object_tags")), bool(outputs.get("sidecars")), tuple(languages))


class TenantOutputs:
    """Each tenant's :class:`OutputSettings`, cached for ``ttl`` seconds (a malformed file means
    the defaults, with a warning: it must not stop tagging)."""

    def __init__(self, *, store: ObjectStore, bucket: str, ttl: float = 60.0) -> None:
        self.store = store
        self.bucket = bucket
        self._cache = TenantCache(self._read, ttl=ttl)

    def for_tenant(self, tenant: str) -> OutputSettings:
        return self._cache.get(tenant)

    def invalidate(self, tenant: str | None = None) -> None:
        self._cache.invalidate(tenant)

    def _read(self, tenant: str) -> OutputSettings:
        key = tenant_settings_key(tenant)
        try:
            d = json.loads(self.store.get(self.bucket, key).body)
            if not isinstance(d, dict):
                raise ValueError("not a JSON object")
            return OutputSettings.from_dict(d)
        except NotFoundError:
            return OutputSettings()
        except (ValueError, TypeError) as e:
            log.warning("tenant settings %s: %s; outputs off", key, e, extra={"tenant": tenant})
            return OutputSettings()


class Taxonomies(Protocol):
    """What labels come from (:class:`~tagsmith.tagmodels.ActiveModels`)."""

    def for_tenant(self, tenant: str) -> list[Any]: ...


@dataclass
class RepairCounts:
    checked: int = 0
    published: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class Outbound:
    """The one hook after a record write; see the module docstring."""

    def __init__(
        self,
        *,
        records: RecordStore,
        settings: TenantOutputs,
        models: Taxonomies,
        publisher: ChangePublisher | None = None,
        tagging: ObjectTagging | None = None,
        store: ObjectStore | None = None,
        data_bucket: str = "",
    ) -> None:
        self.records = records
        self.settings = settings
        self.models = models
        self.publisher = publisher
        self.tagging = tagging
        self.store = store or records.store
        self.data_bucket = data_bucket or records.bucket

    # --- the hook ----------------------------------------------------------------------------
    def after_write(
        self, records: Iterable[AssetRecord | None], *, force: bool = False
    ) -> dict[str, Exception]:
        """Project every record whose revision is not published yet (every record with ``force``);
        returns the errors by asset key (transient: the caller retries, or the repair path
        publishes later). Never raises."""
        todo = [r for r in records if r is not None and (force or needs_event(r))]
        if not todo:
            return {}
        todo = [r for r in todo if self._wanted(r.tenant)]
        if not todo:
            return {}
        errors: dict[str, Exception] = {}
        events: list[tuple[AssetRecord, dict[str, Any]]] = []

        def project(record: AssetRecord) -> tuple[AssetRecord, dict[str, Any]] | Exception:
            try:
                return record, self._project(record)
            except Exception as e:
                log.warning(
                    "projecting revision %d failed; it will be retried: %s", record.revision, e,
                    extra={"tenant": record.tenant, "key": record.key},
                )  # fmt: skip
                return e

        results = self._map(project, todo)
        for record, result in zip(todo, results, strict=True):
            if isinstance(result, Exception):
                errors[record.key] = result
            else:
                events.append(result)
        if events and self.publisher is not None:
            try:
                self.publisher.publish([e for _, e in events])
            except Exception as e:
                log.warning("publishing %d change events failed: %s", len(events), e)
                for record, _ in events:
                    errors[record.key] = e
                events = []
        stamped = self._map(lambda pair: self._stamp(pair[0]), events)
        for (record, _), result in zip(events, stamped, strict=True):
            if isinstance(result, Exception):
                errors[record.key] = result
        for record, event in events:
            log.info(
                "published revision %d (%s)", record.revision, ", ".join(event["kinds"]) or "no tag change",
                extra={"tenant": record.tenant, "key": record.key},
            )  # fmt: skip
        return errors

    def _wanted(self, tenant: str) -> bool:
        if self.publisher is not None:
            return True
        s = self.settings.for_tenant(tenant)
        return (s.object_tags and self.tagging is not None) or s.sidecars

    def _map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        if len(items) <= 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(max_workers=min(WORKERS, len(items))) as pool:
            return list(pool.map(fn, items))

    def _stamp(self, record: AssetRecord) -> Exception | None:
        try:
            self.records.mark_published(record)
        except Exception as e:  # published but not stamped: the repair path publishes it again
            return e
        return None

    # --- one record ----------------------------------------------------------------------------
    def _taxonomies(self, tenant: str) -> dict[str, Taxonomy]:
        return {m.model_id: m.taxonomy for m in self.models.for_tenant(tenant)}

    def _project(self, record: AssetRecord) -> dict[str, Any]:
        """Object tags and sidecar (as the tenant wants them); returns the change event."""
        settings = self.settings.for_tenant(record.tenant)
        taxonomies = self._taxonomies(record.tenant)
        if settings.object_tags and self.tagging is not None:
            self._write_object_tags(record)
        if settings.sidecars:
            self._write_sidecar(record, taxonomies, settings.languages)
        return change_event(record, taxonomies=taxonomies, languages=settings.languages)

    def _write_object_tags(self, record: AssetRecord) -> None:
        assert self.tagging is not None
        if record.status is AssetStatus.DELETED:
            return  # the object is gone, and its tags with it
        bucket, key = record.source.bucket, record.source.key
        try:
            existing = self.tagging.get_tags(bucket, key)
            if int(existing.get("tagsmith:revision", "0") or 0) > record.revision:
                return  # a newer revision's tags are already there
            wanted = object_tags(record, existing)
            if wanted != existing:
                self.tagging.put_tags(bucket, key, wanted)
        except NotFoundError:
            log.info("object gone: no object tags to write", extra={"tenant": record.tenant, "key": key})

    def _write_sidecar(
        self, record: AssetRecord, taxonomies: dict[str, Taxonomy], languages: Sequence[str]
    ) -> None:
        key = sidecar_key(record.tenant, record.path)
        for _ in range(5):
            try:
                current = self.store.get(self.data_bucket, key)
                body, etag = current.body, current.info.etag
            except NotFoundError:
                body, etag = None, None
            if record.status is AssetStatus.DELETED and body is None:
                return
            xmp = sidecar_xmp(body, record, taxonomies=taxonomies, languages=languages)
            try:
                if record.status is AssetStatus.DELETED and written_by_us_only(xmp):
                    self.store.delete(self.data_bucket, key)
                else:
                    self.store.put(
                        self.data_bucket, key, xmp, content_type="application/rdf+xml",
                        if_match=etag, if_none_match=etag is None,
                    )  # fmt: skip
                return
            except PreconditionFailedError:
                continue  # someone edited the sidecar meanwhile: merge again on top of theirs
        raise TransientError(f"sidecar {key} kept changing; retry later")

    # --- repair ----------------------------------------------------------------------------------
    def repair_tenant(
        self,
        tenant: str,
        *,
        everything: bool = False,
        progress: Callable[[int], None] = lambda n: None,
        batch: int = 50,
    ) -> RepairCounts:
        """Publish every record of ``tenant`` whose revision was never published (a crash between
        the record write and the publish, a message that reached its DLQ). ``everything``: project
        every record again (a tenant that just turned object tags or sidecars on); their events are
        re-sent too, with the ids consumers already know."""
        counts = RepairCounts()
        pending: list[AssetRecord] = []

        def flush() -> None:
            errors = self.after_write(pending, force=everything)
            counts.published += len(pending) - len(errors)
            counts.failed += len(errors)
            counts.errors.extend(f"{k}: {e}" for k, e in errors.items())
            pending.clear()

        for record in self.records.iter_tenant(tenant):
            counts.checked += 1
            progress(counts.checked)
            if everything or needs_event(record):
                pending.append(record)
            if len(pending) >= batch:
                flush()
        if pending:
            flush()
        return counts


__all__ = [
    "ChangePublisher",
    "EventBridgePublisher",
    "MemoryObjectTagging",
    "MemoryPublisher",
    "ObjectTagging",
    "Outbound",
    "OutputSettings",
    "RepairCounts",
    "S3ObjectTagging",
    "TenantOutputs",
]
