"""The sweep and the self-healing index: an index that is missing, empty or behind its records is
noticed and repaired without anyone running ``tagsmith reindex``; lost review items come back."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from PIL import Image
from tagsmith.deletion import DeletionService
from tagsmith.events import ObjectRef
from tagsmith.keys import AssetKey, review_item_key
from tagsmith.local.runtime import LambdaContext
from tagsmith.local.stack import REPO_ROOT, load_function
from tagsmith.review import queue_entry_name, review_queue_prefix
from tagsmith.search import InMemorySearchIndex, SearchQuery
from tagsmith.storage import MemoryObjectStore
from tagsmith.sweep import SweepOptions, SweepService, tenant_ids
from tagsmith.wiring import Components, build

from tests.conftest import ASSETS, DATA
from tests.fakes import COLOURS, solid_jpeg
from tests.unit.test_ingest_service import train_colours, upload

LATER = datetime.now(UTC) + timedelta(hours=1)  # every record has settled by then


def sweeper(c: Components, *, at: datetime = LATER, settle: float = 60.0) -> SweepService:
    return SweepService(
        store=c.store,
        data_bucket=DATA,
        records=c.records,
        reviews=c.reviews,
        projections=c.projections,
        index=c.index,
        taxonomies=c.projections.taxonomies,
        options=SweepOptions(settle=settle),
        clock=lambda: at,
    )


def blend() -> bytes:
    a = Image.open(io.BytesIO(solid_jpeg(COLOURS["red"])))
    b = Image.open(io.BytesIO(solid_jpeg(COLOURS["blue"])))
    buf = io.BytesIO()
    Image.blend(a, b, 0.5).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
def library(components: Components) -> Components:
    train_colours(components, threshold=0.99)  # every photo goes to review
    refs = [upload(components, f"acme/p{i}.jpg", solid_jpeg(COLOURS["red"], seed=i)) for i in range(6)]
    refs.append(upload(components, "acme/mix.jpg", blend()))
    components.ingest.ingest(refs)
    return components


def test_a_search_server_that_restarted_empty_is_rebuilt_by_the_next_sweep(
    library: Components, caplog: pytest.LogCaptureFixture
) -> None:
    restarted = InMemorySearchIndex()  # what osmem is after a restart: nothing at all
    c = build(
        library.settings,
        store=library.store,
        index=restarted,
        encoder=library.encoder,
    )
    upload(c, "acme/new.jpg", solid_jpeg(COLOURS["green"]))
    c.ingest.ingest([upload(c, "acme/new.jpg", solid_jpeg(COLOURS["green"]))])  # re-creates the index
    assert restarted.count("acme") == 1  # one document of eight: silently incomplete
    with caplog.at_level(logging.WARNING, logger="tagsmith"):
        [report] = sweeper(c).sweep()
    assert report.index is not None and (report.index.state, report.index.action) == ("behind", "caught up")
    assert restarted.count("acme") == 8 == len(list(c.records.iter_tenant("acme")))
    assert "was behind its records: 7 documents missing" in caplog.text

    gone = InMemorySearchIndex()
    c2 = build(library.settings, store=library.store, index=gone, encoder=library.encoder)
    [report] = sweeper(c2, at=LATER + timedelta(minutes=20)).sweep()
    assert report.index is not None and (report.index.state, report.index.action) == ("missing", "rebuilt")
    assert gone.count("acme") == 8
    assert gone.search("acme", SearchQuery(text="p3")).total == 1


def test_a_second_sweep_reads_only_what_changed_and_finds_nothing_to_repair(library: Components) -> None:
    first = sweeper(library).sweep_tenant("acme")
    assert first.read == 7 and first.repaired == 0
    second = sweeper(library, at=LATER + timedelta(minutes=20)).sweep_tenant("acme")
    assert second.read == 0 and second.repaired == 0  # nothing written since: nothing read


def test_records_the_last_sweep_checked_are_not_read_again_while_in_its_window(library: Components) -> None:
    # a sweep every minute, each window reaching five minutes back: without a memory of what it
    # checked, each run would read every record of those five minutes again
    now = datetime.now(UTC)
    first = sweeper(library, at=now + timedelta(minutes=2)).sweep_tenant("acme")
    assert first.read == 7
    second = sweeper(library, at=now + timedelta(minutes=3)).sweep_tenant("acme")
    assert second.read == 0 and second.repaired == 0

    library.ingest.ingest([upload(library, "acme/p0.jpg", solid_jpeg(COLOURS["blue"]))])  # a new revision
    third = sweeper(library, at=now + timedelta(minutes=4)).sweep_tenant("acme")
    assert third.read == 1
    state = json.loads(library.store.get(DATA, "tenants/acme/sweep.json").body)
    assert len(state["checked"]) == 7

    full = sweeper(library, at=now + timedelta(minutes=5)).sweep_tenant("acme", full=True)
    assert full.read == 7  # a full sweep reads everything, whatever was checked
    past = sweeper(library, at=now + timedelta(minutes=30)).sweep_tenant("acme")
    assert past.read == 0
    state = json.loads(library.store.get(DATA, "tenants/acme/sweep.json").body)
    assert state["checked"] == {}  # out of the window: forgotten


def test_lost_review_items_and_entries_come_back_on_a_full_sweep(library: Components) -> None:
    pending = library.reviews.pending("acme")
    assert len(pending) == 7
    for item in pending[:3]:
        library.store.delete(DATA, review_item_key("acme", item.id))
    sweeper(library).sweep_tenant("acme")  # a first sweep reads every record
    assert len(library.reviews.pending("acme")) == 7
    page, _ = library.reviews.pending_page("acme", limit=50)
    assert len(page) == 7


def test_an_entry_left_by_two_writers_of_one_item_is_deleted_once_settled(library: Components) -> None:
    # A redelivered upload repairing an item while a backfill rewrites it: each writer puts its own
    # entry (another created_at) before the item, and the item keeps one; the other stays behind.
    item = library.reviews.pending("acme")[0]
    prefix = review_queue_prefix("acme")
    loser = queue_entry_name(replace(item, created_at="2026-01-01T00:00:00.000Z"))
    library.store.put(DATA, prefix + loser, b"")
    assert len(library.reviews.entry_times("acme")) == 8

    young = sweeper(library, at=datetime.now(UTC), settle=60).sweep_tenant("acme")
    assert young.stale_entries == 0 and prefix + loser in {i.key for i in library.store.list(DATA, prefix)}

    report = sweeper(library).sweep_tenant("acme")
    assert report.stale_entries == 1 and report.repaired == 1
    assert set(library.reviews.entry_times("acme")) == {
        queue_entry_name(i) for i in library.reviews.pending("acme")
    }
    assert len(library.reviews.pending_page("acme", limit=50)[0]) == 7


def test_records_still_being_written_are_left_for_the_next_sweep(library: Components) -> None:
    now = datetime.now(UTC)
    report = sweeper(library, at=now, settle=60).sweep_tenant("acme")
    assert report.read == 0  # all written in the last minute
    state = json.loads(library.store.get(DATA, "tenants/acme/sweep.json").body)
    assert datetime.fromisoformat(state["until"]) == now - timedelta(seconds=60)
    later = sweeper(library, at=now + timedelta(minutes=2), settle=60).sweep_tenant("acme")
    assert later.read == 7


def test_tombstones_are_remembered_so_later_sweeps_do_not_read_them(library: Components) -> None:
    deletions = DeletionService.from_components(library)
    for i in range(4):
        library.store.delete(ASSETS, f"acme/p{i}.jpg")
        deletions.remove([ObjectRef(ASSETS, f"acme/p{i}.jpg", removed=True)])
    sweeper(library).sweep_tenant("acme")
    assert library.index.count("acme") == 3
    later = sweeper(library, at=LATER + timedelta(minutes=20)).sweep_tenant("acme")
    assert later.read == 0


def test_a_record_and_document_written_during_the_sweep_are_not_taken_for_an_orphan(
    library: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = library.index
    original = index.revisions

    def an_upload_lands_then_revisions(tenant: str) -> Any:
        if tenant == "acme" and not library.records.get(AssetKey("acme", "late.jpg")):
            library.ingest.ingest([upload(library, "acme/late.jpg", solid_jpeg(COLOURS["green"]))])
        return original(tenant)

    monkeypatch.setattr(index, "revisions", an_upload_lands_then_revisions)
    sweeper(library, settle=0).sweep_tenant("acme")
    assert "acme/late.jpg" in (original("acme") or {})  # never deleted as a document without a record


def test_tenant_ids_jump_from_tenant_to_tenant() -> None:
    store = MemoryObjectStore()
    for tenant in ("acme", "acme-shoes", "beta"):
        for i in range(3):
            store.put(DATA, f"tenants/{tenant}/records/{i}.jpg.json", b"{}")
    assert tenant_ids(store, DATA) == ["acme", "acme-shoes", "beta"]


def test_the_sweep_handler_reports_what_it_repaired_as_metrics(library: Components, monkeypatch: Any) -> None:
    module = load_function(REPO_ROOT / "functions", "sweep")
    gone = InMemorySearchIndex()
    c = build(library.settings, store=library.store, index=gone, encoder=library.encoder)
    module.components.set(c)
    module.sweeper.set(sweeper(c))
    written = io.StringIO()
    target = logging.getLogger("tagsmith-sweep")
    handler = logging.StreamHandler(written)
    handler.setFormatter(target.handlers[0].formatter)
    target.addHandler(handler)
    try:
        result = module.handler({"full": True}, LambdaContext("tagsmith-sweep", timeout=900))
    finally:
        target.removeHandler(handler)
    assert [t["tenant"] for t in result["tenants"]] == ["acme"]
    [metrics] = [json.loads(line) for line in written.getvalue().splitlines() if '"_aws"' in line]
    assert metrics["service"] == "tagsmith-sweep"
    assert (metrics["IndexRebuilds"], metrics["IndexDocumentsRepaired"], metrics["TenantsSwept"]) == (1, 7, 1)
    assert {m["Name"] for m in metrics["_aws"]["CloudWatchMetrics"][0]["Metrics"]} >= {
        "IndexDocumentsRepaired"
    }
