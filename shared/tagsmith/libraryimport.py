"""Bulk import of an existing library, down the same path as an upload (``tagsmith import``).

Nothing here tags. An import only makes the ingest handler see each photo or video as it sees an
upload, on the local stack and on AWS alike:

* a **local file** is PUT into the assets bucket: its upload event does the rest;
* an object of **another bucket** is copied there server-side (``CopyObject``, never downloaded):
  its ``ObjectCreated:Copy`` event does the rest;
* an object **already in the assets bucket** with no record for its content (a library that was
  there before Tagsmith was deployed raised no events) gets the S3 event S3 would have sent, on
  the ingest queue (:func:`~tagsmith.events.object_created_event`).

**Resumable without a checkpoint.** What is done is read from where it is true: the assets bucket
(is the object there, with this content?) and the records (does a record describe that content?).
:func:`decide` is the one rule: imported and current is skipped, there without a current record is
announced again (an event that may still be queued is sent twice: ingestion is idempotent on
bucket, key and ETag, so the second is a cheap no-op), anything else is sent. So a re-run of the
same import sends nothing twice, and an interrupted one (Ctrl-C, a crash, the stack killed) loses
nothing: the next run finds what got there. Both listings cost one request per 1,000 keys (S3's
page), so even a 100,000-photo prefix is surveyed in 200 requests; a checkpoint of the listing
position would save little and could disagree with the bucket.

**Progress** (:class:`RecordWatch`): the records under the import's destination are listed, and a
record is read only when its own ETag changed since it was last read, so a poll costs the listing
plus one GET per record written since, never one GET per asset per poll.

Example::

    >>> from tagsmith.storage import MemoryObjectStore
    >>> store = MemoryObjectStore()
    >>> _ = store.put("library", "2019/a.jpg", b"jpeg bytes")
    >>> job = LibraryImport(source=BucketSource(store=store, bucket="library", prefix="2019/"),
    ...                     store=store, assets_bucket="assets", data_bucket="data", tenant="acme",
    ...                     destination="acme/uploads/2019/", events=None)
    >>> [(r.key, r.action.value) for r in job.run(job.survey())]
    [('acme/uploads/2019/a.jpg', 'send')]
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from tagsmith.concurrency import IO_WORKERS, map_io
from tagsmith.errors import InvalidInputError, NotFoundError, TagsmithError
from tagsmith.events import object_created_event
from tagsmith.keys import asset_from_record_key, parse_asset_key, records_prefix
from tagsmith.records import AssetRecord, AssetStatus
from tagsmith.storage.base import ObjectInfo, ObjectStore

if TYPE_CHECKING:
    from tagsmith.backfill import DelayQueue

log = logging.getLogger(__name__)

#: The largest object one ``CopyObject`` request copies (S3's limit); larger ones need a multipart
#: copy, which an import does not do.
MAX_COPY_BYTES = 5 * 1024**3
#: Items sent per round: small enough that a progress bar moves every second or so, large enough
#: to keep ``IO_WORKERS`` requests in flight.
ROUND = 4 * IO_WORKERS


class LibraryImportError(InvalidInputError):
    """An import that cannot start as asked: a missing or empty folder or prefix, a prefix outside
    the tenant. Each message says what was wrong."""

    code = "import_request"


class Action(StrEnum):
    SEND = "send"  # put or copy into the assets bucket: its event does the rest
    ANNOUNCE = "announce"  # the object is there but no record describes it: send its event
    SKIP = "skip"  # imported already: a record describes this very content


@dataclass(frozen=True, slots=True)
class Entry:
    """One photo or video of a source: its path under the source's root (``/``-separated), its
    size, and what the source knows of its content without reading it (S3: ETag, last change)."""

    name: str
    size: int
    etag: str | None = None
    modified: str | None = None


@dataclass(frozen=True, slots=True)
class Seen:
    """What the record of one asset says, as far as an import cares."""

    record_etag: str  # the record object's own ETag: a changed one is read again
    etag: str  # the ETag of the content the record describes
    status: AssetStatus
    waiting_review: bool
    failure: str | None = None

    def describes(self, etag: str | None) -> bool:
        """Whether the record is the outcome of ingesting content ``etag`` (a tombstone is not:
        the object was deleted since)."""
        return etag is not None and self.etag == etag and self.status is not AssetStatus.DELETED

    @classmethod
    def of(cls, record: AssetRecord, record_etag: str) -> Seen:
        return cls(
            record_etag=record_etag,
            etag=record.source.etag,
            status=record.status,
            waiting_review=bool(record.pending_review()),
            failure=record.failure.message if record.failure else None,
        )


def decide(*, present: ObjectInfo | None, holds_entry: bool, seen: Seen | None) -> Action:
    """What to do with one entry: the one rule of resumability (see the module docstring).

    >>> there = ObjectInfo("acme/uploads/a.jpg", "e1", 3)
    >>> seen = Seen("r1", "e1", AssetStatus.TAGGED, waiting_review=False)
    >>> decide(present=there, holds_entry=True, seen=seen).value
    'skip'
    >>> decide(present=there, holds_entry=True, seen=None).value
    'announce'
    >>> decide(present=there, holds_entry=False, seen=seen).value  # the file changed since
    'send'
    """
    if present is None or not holds_entry:
        return Action.SEND
    if seen is not None and seen.describes(present.etag):
        return Action.SKIP
    return Action.ANNOUNCE


def same_time_or_later(a: str | None, b: str | None) -> bool:
    """Whether timestamp ``a`` is at or after ``b`` (ISO or S3's ``str(datetime)``); False when
    either is unknown.

    >>> same_time_or_later("2026-12-07 10:00:01+00:00", "2026-12-07T10:00:00.500000+00:00")
    True
    """
    if not a or not b:
        return False
    try:
        return datetime.fromisoformat(a) >= datetime.fromisoformat(b)
    except ValueError:
        return False


def relative_names(prefix: str) -> str:
    """A source prefix as a folder: ``"photos/2019"`` and ``"photos/2019/"`` both mean the folder
    (keys under ``photos/2019/``), never ``photos/2019-old/``; ``""`` is the whole bucket.

    >>> relative_names("photos/2019"), relative_names("/"), relative_names("")
    ('photos/2019/', '', '')
    """
    stripped = prefix.strip("/")
    return f"{stripped}/" if stripped else ""


# --- sources -------------------------------------------------------------------------------------
class ImportSource(Protocol):
    """Where an import reads from."""

    where: str  # how messages name it: a folder, s3://bucket/prefix

    def entries(self) -> Iterator[Entry]:
        """Every photo and video, in a stable order."""
        ...

    def refusal(self, entry: Entry) -> str | None:
        """Why ``entry`` cannot be imported, said before anything is sent; None if it can."""
        ...

    def holds(self, entry: Entry, present: ObjectInfo) -> bool:
        """Whether ``present`` (the object at the entry's destination) has the entry's content."""
        ...

    def send(self, entry: Entry, bucket: str, key: str) -> str:
        """Write the entry to ``bucket``/``key``; its ETag there. A :class:`TagsmithError` that
        is an :class:`InvalidInputError` refuses the entry (the file itself is bad)."""
        ...


class FolderSource:
    """Files on this machine. ``files`` pairs each file with its name under the import's
    destination; ``read`` returns a file's bytes or raises :class:`TagsmithError` saying what is
    wrong with it (the CLI's check: not a photo, empty, truncated)."""

    def __init__(
        self,
        *,
        store: ObjectStore,
        root: Path,
        files: Sequence[tuple[Path, str]],
        read: Callable[[Path], bytes],
    ) -> None:
        self.store = store
        self.where = str(root)
        self._paths = {name: path for path, name in files}
        self._read = read

    def entries(self) -> Iterator[Entry]:
        for name, path in self._paths.items():
            try:
                size = path.stat().st_size
            except OSError:
                size = -1  # gone since the folder was listed: refused, with the reason, below
            yield Entry(name, size)

    def refusal(self, entry: Entry) -> str | None:
        return f"{self._paths[entry.name]} no longer exists" if entry.size < 0 else None

    def holds(self, entry: Entry, present: ObjectInfo) -> bool:
        # S3's ETag of a single PUT (SSE-S3 or none) is the MD5 of the bytes: compare without
        # uploading. Only files of the right size are read for it.
        if present.size != entry.size:
            return False
        data = self._paths[entry.name].read_bytes()
        return hashlib.md5(data, usedforsecurity=False).hexdigest() == present.etag

    def send(self, entry: Entry, bucket: str, key: str) -> str:
        try:
            data = self._read(self._paths[entry.name])
        except TagsmithError as e:
            raise InvalidInputError(str(e)) from e
        return self.store.put(bucket, key, data)


class BucketSource:
    """Objects under ``prefix`` in ``bucket``: another bucket (copied server-side) or the assets
    bucket itself (nothing to copy: objects without a record are announced). ``accepts`` says
    which keys are photos or videos by name; the others are left out (:attr:`left_out`)."""

    def __init__(
        self,
        *,
        store: ObjectStore,
        bucket: str,
        prefix: str,
        accepts: Callable[[str], bool] = lambda key: True,
        in_place: bool = False,
    ) -> None:
        self.store = store
        self.bucket = bucket
        self.prefix = relative_names(prefix)
        self.where = f"s3://{bucket}/{self.prefix}"
        self.in_place = in_place
        self._accepts = accepts
        self.left_out = 0

    def entries(self) -> Iterator[Entry]:
        self.left_out = 0
        for info in self.store.list(self.bucket, self.prefix):
            name = info.key[len(self.prefix) :]
            if info.key.endswith("/") or not self._accepts(info.key):
                self.left_out += 1  # a console's "folder" marker, a .txt, a .DS_Store
                continue
            yield Entry(name, info.size, info.etag, info.last_modified)

    def refusal(self, entry: Entry) -> str | None:
        where = f"s3://{self.bucket}/{self.prefix}{entry.name}"
        if entry.size == 0:
            return f"{where} is empty (0 bytes)"
        if entry.size > MAX_COPY_BYTES and not self.in_place:
            return (
                f"{where} is larger than 5 GB, more than one CopyObject copies: copy it into the assets "
                "bucket with `aws s3 cp`, then import the assets bucket's prefix"
            )
        return None

    def holds(self, entry: Entry, present: ObjectInfo) -> bool:
        if present.size != entry.size:
            return False
        if present.etag == entry.etag or self.in_place:
            return True
        # A multipart object's ETag is not its MD5, and its copy gets another: a copy made after
        # the source last changed holds it.
        return "-" in (entry.etag or "") and same_time_or_later(present.last_modified, entry.modified)

    def send(self, entry: Entry, bucket: str, key: str) -> str:
        if self.in_place:
            raise NotFoundError(f"s3://{bucket}/{key} was deleted while being imported")
        return self.store.copy(self.bucket, self.prefix + entry.name, bucket, key)


# --- progress ------------------------------------------------------------------------------------
class RecordWatch:
    """The records of the assets under one destination prefix, read as cheaply as a poll can:
    one listing, then a GET only for a wanted record whose ETag changed since it was last read."""

    def __init__(self, *, store: ObjectStore, data_bucket: str, tenant: str, path_prefix: str) -> None:
        self.store = store
        self.bucket = data_bucket
        self.prefix = records_prefix(tenant) + path_prefix
        self.seen: dict[str, Seen] = {}  # asset key -> what its record says
        self.reads = 0  # record GETs so far (tests and the summary's cost line)

    def poll(self, wanted: Collection[str]) -> dict[str, Seen]:
        """Refresh what the records of ``wanted`` asset keys say; returns every record seen so far."""
        stale: list[tuple[str, str]] = []
        for info in self.store.list(self.bucket, self.prefix):
            key = asset_from_record_key(info.key).key
            if key in wanted and (key not in self.seen or self.seen[key].record_etag != info.etag):
                stale.append((key, info.key))

        def read(item: tuple[str, str]) -> tuple[str, Seen | None]:
            key, record_key = item
            try:
                got = self.store.get(self.bucket, record_key)
            except NotFoundError:
                return key, None
            return key, Seen.of(AssetRecord.from_json(got.body), got.info.etag)

        for key, seen in map_io(read, stale):
            self.reads += 1
            if seen is not None:
                self.seen[key] = seen
        return self.seen


# --- the import ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ItemResult:
    """What happened to one entry. ``action`` None: not sent, ``error`` says why (``refused``: the
    file itself is bad; otherwise the store or queue failed, and a re-run tries it again)."""

    name: str
    key: str | None
    action: Action | None
    etag: str | None = None  # the content the asset's record will describe
    size: int = 0
    error: str | None = None
    refused: bool = False


@dataclass
class Survey:
    """What an import found before sending anything: the entries and the destination's objects
    (the records of those objects are in :attr:`LibraryImport.watch`)."""

    entries: list[Entry]
    present: dict[str, ObjectInfo] = field(default_factory=dict)


class LibraryImport:
    """One import of ``source`` into ``destination`` (an assets-bucket prefix ``<tenant>/...``,
    ending with ``/``). ``events``: the ingest queue, for objects that raised no event; None where
    there is no queue to send to (then such objects are reported, not announced)."""

    def __init__(
        self,
        *,
        source: ImportSource,
        store: ObjectStore,
        assets_bucket: str,
        data_bucket: str,
        tenant: str,
        destination: str,
        events: DelayQueue | None,
        workers: int = IO_WORKERS,
    ) -> None:
        if not destination.startswith(f"{tenant}/") or not destination.endswith("/"):
            raise LibraryImportError(f"destination {destination!r} is not a folder of tenant {tenant!r}")
        self.source = source
        self.store = store
        self.assets_bucket = assets_bucket
        self.tenant = tenant
        self.destination = destination
        self.events = events
        self.workers = workers
        self.watch = RecordWatch(
            store=store, data_bucket=data_bucket, tenant=tenant, path_prefix=destination[len(tenant) + 1 :]
        )

    def survey(self) -> Survey:
        """List the source, the destination's objects and the records of those objects."""
        entries = list(self.source.entries())
        if not entries:
            raise LibraryImportError(f"{self.source.where} holds no photos or videos to import")
        present = {i.key: i for i in self.store.list(self.assets_bucket, self.destination)}
        self.watch.poll(present.keys())
        return Survey(entries, present)

    def key_of(self, entry: Entry) -> str:
        """The asset key ``entry`` is imported as (validated: no empty, ``.`` or ``..`` segment)."""
        return parse_asset_key(self.destination + entry.name).key

    def run(self, survey: Survey) -> Iterator[ItemResult]:
        """Send what needs sending, ``ROUND`` entries at a time with their requests side by side;
        yields each entry's result as its round finishes (after its events are on the queue)."""
        for start in range(0, len(survey.entries), ROUND):
            results = map_io(
                lambda e: self._one(e, survey.present),
                survey.entries[start : start + ROUND],
                workers=self.workers,
            )
            yield from self._announce(results)

    def _one(self, entry: Entry, present: Mapping[str, ObjectInfo]) -> ItemResult:
        try:
            key = self.key_of(entry)
        except InvalidInputError as e:
            return ItemResult(entry.name, None, None, error=str(e), refused=True)
        reason = self.source.refusal(entry)
        if reason is not None:
            return ItemResult(entry.name, key, None, error=reason, refused=True)
        there = present.get(key)
        try:
            holds = there is not None and self.source.holds(entry, there)
            action = decide(present=there, holds_entry=holds, seen=self.watch.seen.get(key))
            if action is not Action.SEND:
                assert there is not None
                return ItemResult(entry.name, key, action, there.etag, there.size)
            etag = self.source.send(entry, self.assets_bucket, key)
            return ItemResult(entry.name, key, action, etag, entry.size)
        except InvalidInputError as e:
            return ItemResult(entry.name, key, None, error=str(e), refused=True)
        except (TagsmithError, OSError) as e:
            log.warning("import of %s failed: %s", entry.name, e, extra={"tenant": self.tenant, "key": key})
            return ItemResult(entry.name, key, None, error=str(e))

    def _announce(self, results: Iterable[ItemResult]) -> list[ItemResult]:
        results = list(results)
        todo = [r for r in results if r.action is Action.ANNOUNCE]
        if not todo:
            return results
        if self.events is None:
            missing = "no ingest queue to send its event to (TAGSMITH_INGEST_QUEUE_URL)"
            return [
                ItemResult(
                    r.name, r.key, None, r.etag, error=f"{r.key} is in the bucket with no record; {missing}"
                )
                if r.action is Action.ANNOUNCE
                else r
                for r in results
            ]
        bodies = []
        for r in todo:
            assert r.key is not None and r.etag is not None
            bodies.append(object_created_event(self.assets_bucket, r.key, etag=r.etag, size=r.size))
        try:
            self.events.send_many(bodies, [0] * len(bodies))
        except TagsmithError as e:
            return [
                ItemResult(r.name, r.key, None, r.etag, error=f"sending its event failed: {e}")
                if r.action is Action.ANNOUNCE
                else r
                for r in results
            ]
        return results


@dataclass(frozen=True)
class ImportSummary:
    """What an import did and what became of it, from the entries' results and their records."""

    entries: int
    sent: int  # uploaded or copied
    announced: int  # there already, no record: event sent
    skipped: int  # there already and recorded
    tagged: int  # records that describe what was imported (skipped ones included)
    waiting_review: int  # of those, with tags waiting for a reviewer
    failed: tuple[tuple[str, str], ...]  # (asset key, reason on its record)
    waiting: int  # sent, but no record describes it yet
    refused: tuple[tuple[str, str], ...]  # (entry, reason): the file itself is bad
    errors: tuple[tuple[str, str], ...]  # (entry, error): the store or the queue failed
    left_out: int = 0  # objects of a bucket that are not photos or videos by name

    @classmethod
    def of(
        cls, results: Sequence[ItemResult], seen: Mapping[str, Seen], *, left_out: int = 0
    ) -> ImportSummary:
        done = [r for r in results if r.action is not None]
        records = [(r, s) for r in done if (s := record_of(r, seen)) is not None]
        return cls(
            entries=len(results),
            sent=sum(r.action is Action.SEND for r in done),
            announced=sum(r.action is Action.ANNOUNCE for r in done),
            skipped=sum(r.action is Action.SKIP for r in done),
            tagged=sum(s.status is AssetStatus.TAGGED for _, s in records),
            waiting_review=sum(s.status is AssetStatus.TAGGED and s.waiting_review for _, s in records),
            failed=tuple(
                (r.key or r.name, s.failure or "failed") for r, s in records if s.status is AssetStatus.FAILED
            ),
            waiting=len(done) - len(records),
            refused=tuple((r.name, r.error or "") for r in results if r.refused),
            errors=tuple((r.name, r.error or "") for r in results if r.action is None and not r.refused),
            left_out=left_out,
        )

    @property
    def complete(self) -> bool:
        """Every entry imported and recorded, none refused or failed."""
        return not (self.failed or self.waiting or self.refused or self.errors)

    def to_dict(self) -> dict[str, object]:
        return {
            "entries": self.entries,
            "sent": self.sent,
            "announced": self.announced,
            "skipped": self.skipped,
            "tagged": self.tagged,
            "waiting_review": self.waiting_review,
            "failed": [{"asset": k, "reason": why} for k, why in self.failed],
            "waiting": self.waiting,
            "refused": [{"file": n, "reason": why} for n, why in self.refused],
            "errors": [{"file": n, "error": why} for n, why in self.errors],
            "left_out": self.left_out,
        }


def record_of(result: ItemResult, seen: Mapping[str, Seen]) -> Seen | None:
    """The record of an imported entry if it describes what was imported, else None."""
    got = seen.get(result.key) if result.key is not None and result.action is not None else None
    return got if got is not None and got.describes(result.etag) else None


def pending(results: Iterable[ItemResult], seen: Mapping[str, Seen]) -> int:
    """How many sent, announced or skipped entries no record describes yet."""
    return sum(r.action is not None and record_of(r, seen) is None for r in results)
