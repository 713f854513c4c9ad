"""Bulk import core (tagsmith.libraryimport): what is sent, announced or skipped, resuming from the
bucket and the records alone, refusals, and progress read cheaply; with in-memory adapters."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from tagsmith.backfill import MemoryDelayQueue
from tagsmith.errors import TagsmithError
from tagsmith.events import ObjectRef, parse_storage_event
from tagsmith.keys import parse_asset_key
from tagsmith.libraryimport import (
    Action,
    BucketSource,
    FolderSource,
    ImportSummary,
    LibraryImport,
    LibraryImportError,
    RecordWatch,
    pending,
)
from tagsmith.records import AssetRecord, AssetStatus, Failure, Source, SourceObject, TagAssignment, TagState
from tagsmith.storage import MemoryObjectStore, RecordStore

ASSETS, DATA = "assets", "data"


def read_photo(path: Path) -> bytes:
    """The CLI's check, reduced: an empty file is refused with its reason."""
    data = path.read_bytes()
    if not data:
        raise TagsmithError(f"{path} is empty (0 bytes)")
    return data


def folder(root: Path, files: dict[str, bytes]) -> list[tuple[Path, str]]:
    for name, body in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(body)
    return [(root / name, name) for name in sorted(files)]


def importer(store: MemoryObjectStore, source: Any, destination: str, events: Any = None) -> LibraryImport:
    """An import of tenant acme into ``destination`` of the assets bucket."""
    return LibraryImport(
        source=source, store=store, assets_bucket=ASSETS, data_bucket=DATA, tenant="acme",
        destination=destination, events=events,
    )  # fmt: skip


def folder_import(
    store: MemoryObjectStore, root: Path, files: list[tuple[Path, str]], **kw: object
) -> LibraryImport:
    source = FolderSource(store=store, root=root, files=files, read=read_photo)
    return importer(store, source, "acme/uploads/", kw.get("events"))


def ingest_all(
    store: MemoryObjectStore, *, review: set[str] = frozenset(), fail: set[str] = frozenset()
) -> int:
    """What the ingest handler does for every object of the bucket, reduced to the record it writes."""
    records = RecordStore(store=store, bucket=DATA)
    n = 0
    for info in store.list(ASSETS, "acme/"):
        asset = parse_asset_key(info.key)
        got = records.get(asset)
        if got is not None and got[0].source.etag == info.etag:
            continue
        tags = (
            (TagAssignment("product", "hat", TagState.REVIEW, Source.AI, 0.4),) if info.key in review else ()
        )
        record = AssetRecord(
            tenant=asset.tenant,
            path=asset.path,
            source=SourceObject(ASSETS, info.key, info.etag, info.size),
            status=AssetStatus.FAILED if info.key in fail else AssetStatus.TAGGED,
            tags=tags,
            failure=Failure("unsupported_media", "not an image") if info.key in fail else None,
        )
        records.update(asset, lambda _old, r=record: r)
        n += 1
    return n


def test_a_folder_is_sent_once_and_a_rerun_skips_everything(tmp_path: Path) -> None:
    # GIVEN a folder of three photos, one in a sub-folder
    store = MemoryObjectStore()
    files = folder(tmp_path, {"a.jpg": b"aaa", "b.jpg": b"bbb", "2019/c.jpg": b"ccc"})
    job = folder_import(store, tmp_path, files)

    # WHEN it is imported
    first = list(job.run(job.survey()))

    # THEN each is uploaded under the tenant's folder, keeping its path, with its content's ETag
    assert [(r.key, r.action) for r in first] == [
        ("acme/uploads/2019/c.jpg", Action.SEND),
        ("acme/uploads/a.jpg", Action.SEND),
        ("acme/uploads/b.jpg", Action.SEND),
    ]
    assert store.get(ASSETS, "acme/uploads/2019/c.jpg").body == b"ccc"
    assert first[1].etag == hashlib.md5(b"aaa").hexdigest()

    # WHEN the handler has recorded them and the same import runs again
    assert ingest_all(store) == 3
    again = folder_import(store, tmp_path, files)
    second = list(again.run(again.survey()))

    # THEN nothing is sent: every one is skipped
    assert {r.action for r in second} == {Action.SKIP}
    summary = ImportSummary.of(second, again.watch.seen)
    assert (summary.sent, summary.skipped, summary.tagged, summary.complete) == (0, 3, 3, True)


def test_an_interrupted_import_resumes_without_resending_and_a_changed_file_goes_again(
    tmp_path: Path,
) -> None:
    store = MemoryObjectStore()
    queue = MemoryDelayQueue()
    files = folder(tmp_path, {"a.jpg": b"aaa", "b.jpg": b"bbb", "c.jpg": b"ccc", "d.jpg": b"ddd"})
    # GIVEN a run that uploaded a.jpg (recorded) and b.jpg (its event lost, or still queued), and
    # replaced d.jpg's older upload (recorded) with today's, then stopped
    store.put(ASSETS, "acme/uploads/a.jpg", b"aaa")
    store.put(ASSETS, "acme/uploads/d.jpg", b"an older d")
    ingest_all(store)
    store.put(ASSETS, "acme/uploads/b.jpg", b"bbb")
    store.put(ASSETS, "acme/uploads/d.jpg", b"ddd")
    # and a.jpg changed on disk since
    (tmp_path / "a.jpg").write_bytes(b"AAA, retouched")

    job = folder_import(store, tmp_path, files, events=queue)
    results = {r.key: r for r in job.run(job.survey())}

    assert results["acme/uploads/a.jpg"].action is Action.SEND  # the new content
    assert store.get(ASSETS, "acme/uploads/a.jpg").body == b"AAA, retouched"
    assert results["acme/uploads/b.jpg"].action is Action.ANNOUNCE  # there, unrecorded: its event again
    assert results["acme/uploads/c.jpg"].action is Action.SEND
    assert results["acme/uploads/d.jpg"].action is Action.ANNOUNCE  # its record describes the older d
    assert [parse_storage_event(m) for m in queue.take()] == [
        [ObjectRef(ASSETS, "acme/uploads/b.jpg", hashlib.md5(b"bbb").hexdigest(), 3)],
        [ObjectRef(ASSETS, "acme/uploads/d.jpg", hashlib.md5(b"ddd").hexdigest(), 3)],
    ]


def test_a_bad_file_is_refused_with_its_reason_and_the_others_still_go(tmp_path: Path) -> None:
    store = MemoryObjectStore()
    files = folder(tmp_path, {"a.jpg": b"aaa", "empty.jpg": b"", "z.jpg": b"zzz"})
    job = folder_import(store, tmp_path, files)

    results = list(job.run(job.survey()))
    summary = ImportSummary.of(results, job.watch.seen)

    assert summary.refused == ((("empty.jpg", f"{tmp_path / 'empty.jpg'} is empty (0 bytes)")),)
    assert summary.sent == 2 and store.head(ASSETS, "acme/uploads/z.jpg") is not None
    assert store.head(ASSETS, "acme/uploads/empty.jpg") is None
    assert not summary.complete


def test_another_buckets_objects_are_copied_and_non_media_left_out() -> None:
    store = MemoryObjectStore()
    for key, body in {
        "lib/2019/a.jpg": b"a",
        "lib/2019/notes.txt": b"n",
        "lib/2019/e.jpg": b"",
        "lib-old/x.jpg": b"x",
    }.items():
        store.put("library", key, body)
    source = BucketSource(store=store, bucket="library", prefix="lib", accepts=lambda k: k.endswith(".jpg"))
    job = importer(store, source, "acme/archive/")

    results = list(job.run(job.survey()))

    # "lib" is a folder: lib-old/ is not in it; the text file is left out; the empty photo refused
    assert [(r.key, r.action) for r in results] == [
        ("acme/archive/2019/a.jpg", Action.SEND),
        ("acme/archive/2019/e.jpg", None),
    ]
    assert results[1].refused and "is empty (0 bytes)" in (results[1].error or "")
    assert store.get(ASSETS, "acme/archive/2019/a.jpg").body == b"a"
    assert source.left_out == 1


def test_a_copy_of_a_multipart_object_counts_as_current_when_made_after_the_source_changed() -> None:
    from tagsmith.libraryimport import Entry
    from tagsmith.storage import ObjectInfo

    source = BucketSource(store=MemoryObjectStore(), bucket="library", prefix="")
    entry = Entry("a.mp4", 10, "abc-2", "2026-12-07 10:00:00+00:00")  # a multipart ETag

    newer = ObjectInfo("acme/uploads/a.mp4", "def", 10, None, "2026-12-07T10:05:00+00:00")
    older = ObjectInfo("acme/uploads/a.mp4", "def", 10, None, "2026-12-07T09:00:00+00:00")
    assert source.holds(entry, newer)
    assert not source.holds(entry, older)
    assert not source.holds(Entry("a.mp4", 10, "abc", "2026-12-07 10:00:00+00:00"), newer)  # MD5 differs


def test_objects_already_in_the_assets_bucket_are_announced_unless_recorded() -> None:
    store = MemoryObjectStore()
    queue = MemoryDelayQueue()
    store.put(ASSETS, "acme/old/a.jpg", b"a")
    ingest_all(store)  # a.jpg was tagged
    store.put(ASSETS, "acme/old/b c+d.jpg", b"bc")  # put while nothing listened: no record
    source = BucketSource(store=store, bucket=ASSETS, prefix="acme/old/", in_place=True)
    job = importer(store, source, "acme/old/", queue)

    results = list(job.run(job.survey()))

    assert [(r.key, r.action) for r in results] == [
        ("acme/old/a.jpg", Action.SKIP),
        ("acme/old/b c+d.jpg", Action.ANNOUNCE),
    ]
    assert [r.key for m in queue.take() for r in parse_storage_event(m)] == ["acme/old/b c+d.jpg"]
    assert len(list(store.list(ASSETS))) == 2  # nothing was copied


def test_without_an_ingest_queue_an_unrecorded_object_is_an_error_not_a_silent_skip() -> None:
    store = MemoryObjectStore()
    store.put(ASSETS, "acme/old/a.jpg", b"a")
    source = BucketSource(store=store, bucket=ASSETS, prefix="acme/old", in_place=True)
    job = importer(store, source, "acme/old/")

    [result] = job.run(job.survey())

    assert result.action is None and "TAGSMITH_INGEST_QUEUE_URL" in (result.error or "")


def test_an_empty_source_and_a_destination_outside_the_tenant_are_refused(tmp_path: Path) -> None:
    store = MemoryObjectStore()
    empty = BucketSource(store=store, bucket="library", prefix="nothing/")
    job = importer(store, empty, "acme/x/")
    with pytest.raises(LibraryImportError, match=r"s3://library/nothing/ holds no photos or videos"):
        job.survey()
    with pytest.raises(LibraryImportError, match="is not a folder of tenant 'acme'"):
        importer(store, empty, "acmeco/x/")


def test_progress_reads_each_record_once_per_change_not_once_per_poll(tmp_path: Path) -> None:
    store = MemoryObjectStore()
    files = folder(tmp_path, {f"{i}.jpg": bytes([i + 1]) * 5 for i in range(6)})
    job = folder_import(store, tmp_path, files)
    results = list(job.run(job.survey()))
    wanted = {r.key for r in results if r.key}
    assert pending(results, job.watch.poll(wanted)) == 6

    ingest_all(store, review={"acme/uploads/1.jpg"}, fail={"acme/uploads/2.jpg"})
    reads_before = job.watch.reads
    for _ in range(5):
        job.watch.poll(wanted)

    assert job.watch.reads - reads_before == 6  # six records written: six reads over five polls
    summary = ImportSummary.of(results, job.watch.seen)
    assert (summary.tagged, summary.waiting_review, summary.waiting) == (5, 1, 0)
    assert summary.failed == (("acme/uploads/2.jpg", "not an image"),)


def test_a_tombstone_does_not_count_as_imported() -> None:
    store = MemoryObjectStore()
    store.put(ASSETS, "acme/old/a.jpg", b"a")
    ingest_all(store)
    records = RecordStore(store=store, bucket=DATA)
    asset = parse_asset_key("acme/old/a.jpg")
    records.update(asset, lambda r: None if r is None else _deleted(r))
    watch = RecordWatch(store=store, data_bucket=DATA, tenant="acme", path_prefix="old/")

    seen = watch.poll({"acme/old/a.jpg"})["acme/old/a.jpg"]

    assert seen.etag == hashlib.md5(b"a").hexdigest() and not seen.describes(seen.etag)


def _deleted(record: AssetRecord) -> AssetRecord:
    from dataclasses import replace

    return replace(record, status=AssetStatus.DELETED)
