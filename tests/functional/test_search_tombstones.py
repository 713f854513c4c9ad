"""Tombstones (records of deleted objects) in the search index, on the fake and on OpenSearch (osmem)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from tagsmith.records import AssetRecord, AssetStatus
from tagsmith.search import SearchIndex, SearchQuery
from tagsmith.taxonomy import Taxonomy

RecordFactory = Callable[..., AssetRecord]


def keys(index: SearchIndex, text: str) -> list[str]:
    return sorted(h.asset_key for h in index.search("acme", SearchQuery(text=text)).hits)


def dead(record: AssetRecord, revision: int) -> AssetRecord:
    return replace(
        record, status=AssetStatus.DELETED, deleted_at="2026-11-22T09:00:00.000Z", revision=revision
    )


def test_upserting_a_tombstone_removes_the_document(
    search_index: SearchIndex, make_record: RecordFactory, tag: Any, garments: dict[str, Taxonomy]
) -> None:
    live = make_record("a.jpg", tag("scarf"), revision=1)
    search_index.upsert(live, garments)
    search_index.upsert(make_record("b.jpg", tag("scarf")), garments)

    search_index.upsert(dead(live, 2), garments)

    assert keys(search_index, "scarf") == ["acme/b.jpg"]


def test_a_versioned_delete_keeps_a_later_revision(
    search_index: SearchIndex, make_record: RecordFactory, tag: Any, garments: dict[str, Taxonomy]
) -> None:
    search_index.upsert(make_record("a.jpg", tag("scarf"), revision=5), garments)  # re-uploaded since

    search_index.delete("acme", "acme/a.jpg", revision=4)  # a late deletion

    assert keys(search_index, "scarf") == ["acme/a.jpg"]


def test_an_older_write_arriving_after_the_delete_is_refused(
    search_index: SearchIndex, make_record: RecordFactory, tag: Any, garments: dict[str, Taxonomy]
) -> None:
    live = make_record("a.jpg", tag("scarf"), revision=3)
    search_index.upsert(live, garments)
    search_index.upsert(dead(live, 4), garments)

    search_index.upsert(live, garments)  # the projection of revision 3, redelivered late

    assert keys(search_index, "scarf") == []


def test_rebuild_and_bulk_loads_skip_tombstones(
    search_index: SearchIndex, make_record: RecordFactory, tag: Any, garments: dict[str, Taxonomy]
) -> None:
    records = [make_record("a.jpg", tag("scarf")), dead(make_record("b.jpg", tag("scarf")), 2)]

    report = search_index.rebuild("acme", records, garments)
    errors = search_index.bulk_upsert(((r, garments) for r in records), "acme")

    assert (report.indexed, report.errors, errors) == (1, [], [])
    assert keys(search_index, "scarf") == ["acme/a.jpg"]
