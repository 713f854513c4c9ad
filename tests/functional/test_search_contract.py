"""The SearchIndex contract, run against the in-memory fake AND OpenSearch (an osmem clone).

Scores are constant tiers (see ``tagsmith.search.query``), so both backends must agree exactly:
a fake that drifts from the adapter fails here.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from tagsmith.errors import InvalidKeyError
from tagsmith.records import NONE_TAG, AssetRecord, TagAssignment, TagState
from tagsmith.search import MAPPING_VERSION, SearchIndex, SearchQuery
from tagsmith.taxonomy import Taxonomy

RecordFactory = Callable[..., AssetRecord]  # the make_record fixture (tests/functional/conftest.py)
Tag = Callable[..., TagAssignment]


def keys(page) -> list[str]:  # type: ignore[no-untyped-def]
    return [h.asset_key for h in page.hits]


def test_backend_satisfies_the_search_index_protocol(search_index: SearchIndex) -> None:
    assert isinstance(search_index, SearchIndex)


def test_count_and_search_of_an_unknown_tenant_are_empty(search_index: SearchIndex) -> None:
    page = search_index.search("nobody", SearchQuery(text="scarf"))

    assert search_index.count("nobody") == 0
    assert (page.total, page.hits, page.next_search_after) == (0, [], None)


def test_ensure_tenant_is_idempotent(search_index: SearchIndex) -> None:
    search_index.ensure_tenant("acme")
    search_index.ensure_tenant("acme")

    assert search_index.count("acme") == 0


def test_upsert_makes_an_asset_findable_by_its_label(
    search_index: SearchIndex, make_record: RecordFactory, tag: Tag, garments: dict[str, Taxonomy]
) -> None:
    search_index.upsert(make_record("a.jpg", tag("scarf")), garments)
    search_index.upsert(make_record("b.jpg", tag("hat")), garments)

    page = search_index.search("acme", SearchQuery(text="scarf"))

    assert keys(page) == ["acme/a.jpg"]
    assert page.total == 1
    assert page.hits[0].tags == [
        {
            "model": "garments",
            "tag": "scarf",
            "state": "applied",
            "source": "ai",
            "confidence": 0.6,
            "model_version": "1",
        }
    ]


def test_upsert_twice_keeps_one_document(
    search_index: SearchIndex, make_record: RecordFactory, tag: Tag, garments: dict[str, Taxonomy]
) -> None:
    record = make_record("a.jpg", tag("scarf"))

    search_index.upsert(record, garments)
    search_index.upsert(record, garments)

    assert search_index.count("acme") == 1


def test_upsert_of_a_stale_revision_keeps_the_newer_document(
    search_index: SearchIndex, make_record: RecordFactory, tag: Tag, garments: dict[str, Taxonomy]
) -> None:
    search_index.upsert(make_record("a.jpg", tag("hat"), revision=3), garments)

    search_index.upsert(make_record("a.jpg", tag("scarf"), revision=2), garments)  # redelivered late

    assert keys(search_index.search("acme", SearchQuery(text="hat"))) == ["acme/a.jpg"]
    assert keys(search_index.search("acme", SearchQuery(text="scarf"))) == []


def test_upsert_of_a_newer_revision_replaces_the_document(
    search_index: SearchIndex, make_record: RecordFactory, tag: Tag, garments: dict[str, Taxonomy]
) -> None:
    search_index.upsert(make_record("a.jpg", tag("hat"), revision=1), garments)

    search_index.upsert(make_record("a.jpg", tag("scarf"), revision=2), garments)

    assert keys(search_index.search("acme", SearchQuery(text="hat"))) == []
    assert keys(search_index.search("acme", SearchQuery(text="scarf"))) == ["acme/a.jpg"]


def test_revisions_list_every_document_with_its_record_revision(
    search_index: SearchIndex, make_record: RecordFactory, tag: Tag, garments: dict[str, Taxonomy]
) -> None:
    assert search_index.revisions("acme") is None  # no index at all: the healer rebuilds
    search_index.upsert(make_record("a.jpg", tag("hat"), revision=3), garments)
    search_index.upsert(make_record("b.jpg", tag("hat"), revision=1), garments)
    search_index.delete("acme", "acme/b.jpg")

    assert search_index.revisions("acme") == {"acme/a.jpg": 3}
    assert search_index.revisions("globex") is None


def test_review_and_rejected_tags_are_not_searchable(
    search_index: SearchIndex, make_record: RecordFactory, tag: Tag, garments: dict[str, Taxonomy]
) -> None:
    search_index.upsert(make_record("a.jpg", tag("scarf", TagState.REVIEW)), garments)
    search_index.upsert(make_record("b.jpg", tag("scarf", TagState.REJECTED)), garments)

    assert search_index.search("acme", SearchQuery(text="scarf")).total == 0
    assert search_index.search("acme", SearchQuery(tags=["garments/scarf"])).total == 0
    assert search_index.search("acme", SearchQuery()).total == 2


def test_review_tags_let_a_text_find_assets_waiting_for_review_on_those_tags(
    search_index: SearchIndex, make_record: RecordFactory, tag: Tag, garments: dict[str, Taxonomy]
) -> None:
    search_index.upsert(make_record("waiting.jpg", tag("scarf", TagState.REVIEW)), garments)
    search_index.upsert(make_record("rejected.jpg", tag("scarf", TagState.REJECTED)), garments)
    search_index.upsert(make_record("other-model.jpg", tag("scarf", TagState.REVIEW, model="shop")), garments)
    search_index.upsert(make_record("hat.jpg", tag("hat", TagState.REVIEW)), garments)
    search_index.upsert(make_record("seen.jpg", tag("scarf")), garments)

    plain = search_index.search("acme", SearchQuery(text="foulard"))
    wide = search_index.search("acme", SearchQuery(text="foulard", review_tags=["garments/scarf"]))
    browse = search_index.search("acme", SearchQuery(review_tags=["garments/scarf"]))

    assert keys(plain) == ["acme/seen.jpg"]
    assert keys(wide) == ["acme/seen.jpg", "acme/waiting.jpg"]  # visible matches rank first
    assert [h.score for h in wide.hits] == [1.0 + 4.0 + 2.0, 1.0]
    assert browse.total == 5  # without text it changes nothing


def test_delete_removes_the_asset_and_is_idempotent(
    search_index: SearchIndex, make_record: RecordFactory, tag: Tag, garments: dict[str, Taxonomy]
) -> None:
    search_index.upsert(make_record("a.jpg", tag("scarf")), garments)

    search_index.delete("acme", "acme/a.jpg")
    search_index.delete("acme", "acme/a.jpg")
    search_index.delete("nobody", "nobody/a.jpg")

    assert search_index.count("acme") == 0


def test_delete_refuses_another_tenants_key(search_index: SearchIndex) -> None:
    with pytest.raises(InvalidKeyError, match="does not belong"):
        search_index.delete("acme", "globex/a.jpg")


def test_search_never_returns_another_tenants_assets(
    search_index: SearchIndex, make_record: RecordFactory, tag: Tag, garments: dict[str, Taxonomy]
) -> None:
    search_index.upsert(make_record("a.jpg", tag("scarf"), tenant="acme"), garments)
    search_index.upsert(make_record("a.jpg", tag("scarf"), tenant="globex"), garments)
    search_index.upsert(make_record("b.jpg", tag("scarf"), tenant="acme-shoes"), garments)

    for query in (SearchQuery(text="scarf"), SearchQuery(), SearchQuery(tags=["garments/scarf"])):
        page = search_index.search("acme", query)
        assert keys(page) == ["acme/a.jpg"]
        assert page.facets["tag_ids"] == [("garments/scarf", 1)]
    assert search_index.count("acme") == 1


def test_bulk_upsert_reports_bad_items_and_keeps_the_rest(
    search_index: SearchIndex, make_record: RecordFactory, tag: Tag, garments: dict[str, Taxonomy]
) -> None:
    good = [make_record(f"{i}.jpg", tag("hat")) for i in range(5)]
    wrong_tenant = make_record("x.jpg", tag("hat"), tenant="globex")
    bad_date = make_record("y.jpg", tag("hat"), created_at="yesterday-ish")

    errors = search_index.bulk_upsert(
        [(r, garments) for r in (*good[:2], wrong_tenant, bad_date, *good[2:])], "acme"
    )

    assert sorted(e.asset_key for e in errors) == ["acme/y.jpg", "globex/x.jpg"]
    assert all(e.status == 400 and e.reason for e in errors)
    assert search_index.count("acme") == 5


def test_rebuild_replaces_the_tenants_content(
    search_index: SearchIndex, make_record: RecordFactory, tag: Tag, garments: dict[str, Taxonomy]
) -> None:
    search_index.upsert(make_record("old.jpg", tag("coat")), garments)
    search_index.upsert(make_record("other.jpg", tag("coat"), tenant="globex"), garments)

    report = search_index.rebuild("acme", [make_record(f"{i}.jpg", tag("glove")) for i in range(7)], garments)

    assert (report.tenant, report.indexed, report.errors) == ("acme", 7, [])
    assert report.index.startswith(f"tagsmith-assets-acme-v{MAPPING_VERSION}-")
    assert len(report.deleted_indices) == 1
    assert search_index.count("acme") == 7
    assert search_index.search("acme", SearchQuery(text="coat")).total == 0
    assert search_index.search("acme", SearchQuery(text="glove")).total == 7
    assert search_index.count("globex") == 1  # other tenants untouched
    json.dumps(report.to_dict())


def test_rebuild_of_a_new_tenant_creates_it(
    search_index: SearchIndex, make_record: RecordFactory, tag: Tag, garments: dict[str, Taxonomy]
) -> None:
    report = search_index.rebuild("acme", [make_record("a.jpg", tag("hat"))], garments)

    assert report.deleted_indices == []
    assert search_index.count("acme") == 1


def test_filters_combine_with_and(
    search_index: SearchIndex, make_record: RecordFactory, tag: Tag, garments: dict[str, Taxonomy]
) -> None:
    records = [
        make_record("1.jpg", tag("hat", confidence=0.95), tag("scarf", confidence=0.7)),
        make_record("2.png", tag("hat", confidence=0.5), media_type="image/png"),
        make_record("3.jpg", tag("hat", TagState.CONFIRMED, confidence=None)),
        make_record("4.jpg", tag("glove", TagState.REVIEW, confidence=0.99), tag("coat", model="coats")),
    ]
    search_index.bulk_upsert([(r, garments) for r in records], "acme")

    def find(**kw: object) -> list[str]:
        return sorted(keys(search_index.search("acme", SearchQuery(**kw))))  # type: ignore[arg-type]

    assert find(tags=["garments/hat"]) == ["acme/1.jpg", "acme/2.png", "acme/3.jpg"]
    assert find(tags=["garments/hat", "garments/scarf"]) == ["acme/1.jpg"]
    assert find(media_type="image/png") == ["acme/2.png"]
    assert find(review_state="pending") == ["acme/4.jpg"]
    assert find(review_state="clear") == ["acme/1.jpg", "acme/2.png", "acme/3.jpg"]
    assert find(source="human") == ["acme/3.jpg"]
    # min_confidence: the review tag (0.99) does not count; a human-confirmed tag always passes
    assert find(min_confidence=0.9) == ["acme/1.jpg", "acme/3.jpg"]
    # model + min_confidence hold for the same tag: 4.jpg's coat (0.6) is below 0.9
    assert find(model="coats") == ["acme/4.jpg"]
    assert find(model="coats", min_confidence=0.9) == []
    assert find(model="garments", source="ai", min_confidence=0.6) == ["acme/1.jpg"]
    assert find(text="hat", media_type="image/jpeg") == ["acme/1.jpg", "acme/3.jpg"]


def test_uploaded_date_filters_are_inclusive_and_a_bare_date_covers_its_day(
    search_index: SearchIndex, make_record: RecordFactory, tag: Tag, garments: dict[str, Taxonomy]
) -> None:
    days = {
        "jan": "2026-01-31T23:30:00.000Z",
        "feb": "2026-02-01T00:00:00.000Z",
        "mar": "2026-03-15T12:00:00.000Z",
    }
    search_index.bulk_upsert(
        [(make_record(f"{name}.jpg", tag("hat"), created_at=at), garments) for name, at in days.items()],
        "acme",
    )

    def find(**kw: str) -> list[str]:
        return sorted(keys(search_index.search("acme", SearchQuery(**kw))))

    assert find(uploaded_to="2026-01-31") == ["acme/jan.jpg"]
    assert find(uploaded_from="2026-02-01") == ["acme/feb.jpg", "acme/mar.jpg"]
    assert find(uploaded_from="2026-02-01", uploaded_to="2026-02-28") == ["acme/feb.jpg"]
    assert find(uploaded_from="2026-02-01T00:30:00+01:00") == ["acme/feb.jpg", "acme/jan.jpg", "acme/mar.jpg"]
    assert find(uploaded_from="2026-01-31T23:30:00.001Z", text="hat") == ["acme/feb.jpg", "acme/mar.jpg"]


def test_ranking_tiers_are_identical_on_every_backend(
    search_index: SearchIndex, make_record: RecordFactory, tag: Tag, garments: dict[str, Taxonomy]
) -> None:
    search_index.bulk_upsert(
        [
            (make_record("all-words.jpg", tag("scarf", confidence=0.6)), garments),  # "red scarf"
            (make_record("confident.jpg", tag("scarf", confidence=0.95)), garments),
            (make_record("human.jpg", tag("scarf", TagState.CONFIRMED, confidence=None)), garments),
            (make_record("red-car.jpg", tag("coat", confidence=0.6)), garments),  # "red" only in the path
        ],
        "acme",
    )

    page = search_index.search("acme", SearchQuery(text="red scarf"))

    assert [(h.asset_key, h.score) for h in page.hits] == [
        ("acme/human.jpg", 1 + 4 + 2),  # text tiers; equal scores fall to confidence (human: 1.0)
        ("acme/confident.jpg", 1 + 4 + 2),
        ("acme/all-words.jpg", 1 + 4 + 2),
        ("acme/red-car.jpg", 1),
    ]


def test_equal_scores_fall_to_confidence_then_confirmation_then_recency_never_file_name(
    search_index: SearchIndex, make_record: RecordFactory, tag: Tag, garments: dict[str, Taxonomy]
) -> None:
    # GIVEN five hats that match "hat" equally, named so that file-name order is the worst order
    search_index.bulk_upsert(
        [
            (make_record("a-unsure.jpg", tag("hat", confidence=0.55)), garments),
            (
                make_record("b-old.jpg", tag("hat", confidence=0.8), created_at="2025-01-01T00:00:00.000Z"),
                garments,
            ),
            (
                make_record("c-new.jpg", tag("hat", confidence=0.8), created_at="2026-12-01T00:00:00.000Z"),
                garments,
            ),
            (make_record("d-sure.jpg", tag("hat", confidence=0.97)), garments),
            (make_record("e-human.jpg", tag("hat", TagState.CONFIRMED, confidence=0.4)), garments),
        ],
        "acme",
    )

    hits = search_index.search("acme", SearchQuery(text="hat")).hits

    assert len({h.score for h in hits}) == 1
    assert [h.asset_key.removeprefix("acme/") for h in hits] == [
        "e-human.jpg",  # a human "yes" counts as confidence 1.0
        "d-sure.jpg",
        "c-new.jpg",  # equal confidence: the newer upload first
        "b-old.jpg",
        "a-unsure.jpg",
    ]


def test_search_after_pages_through_everything_once_in_order(
    search_index: SearchIndex, make_record: RecordFactory, tag: Tag, garments: dict[str, Taxonomy]
) -> None:
    # 23 assets in three score tiers, so pages cut through runs of equal scores
    confidences = [0.95, 0.8, 0.6]
    records = [make_record(f"{i:02d}.jpg", tag("hat", confidence=confidences[i % 3])) for i in range(23)]
    search_index.bulk_upsert([(r, garments) for r in records], "acme")

    seen: list[tuple[float, str]] = []
    cursor = None
    pages = 0
    while True:
        page = search_index.search("acme", SearchQuery(text="hat", size=5, search_after=cursor))
        pages += 1
        assert page.total == 23
        assert bool(page.facets) == (cursor is None)  # facets come with the first page only
        seen += [(h.score, h.asset_key) for h in page.hits]
        if page.next_search_after is None:
            break
        cursor = json.loads(json.dumps(page.next_search_after))  # it survives a JSON round trip
        assert pages < 10

    assert len(seen) == len({k for _, k in seen}) == 23
    # equal scores are ordered by confidence (0.95, 0.8, 0.6), then (same upload time) by key
    conf = {f"acme/{i:02d}.jpg": confidences[i % 3] for i in range(23)}
    assert seen == sorted(seen, key=lambda sk: (-sk[0], -conf[sk[1]], sk[1]))
    assert pages == 5


def test_none_of_finds_the_assets_a_model_found_none_of_its_tags_in(
    search_index: SearchIndex, make_record: RecordFactory, tag: Tag, garments: dict[str, Taxonomy]
) -> None:
    search_index.bulk_upsert(
        [
            (make_record("1.jpg", tag(NONE_TAG, TagState.REVIEW)), garments),  # proposed
            (make_record("2.jpg", tag(NONE_TAG, TagState.CONFIRMED)), garments),  # a human agreed
            (make_record("3.jpg", tag(NONE_TAG, TagState.REJECTED)), garments),  # a human overruled it
            (make_record("4.jpg", tag("hat")), garments),
        ],
        "acme",
    )

    page = search_index.search("acme", SearchQuery(none_of="garments"))

    assert sorted(h.asset_key for h in page.hits) == ["acme/1.jpg", "acme/2.jpg"]
    assert page.facets["none_of"] == [("garments", 2)]
    assert search_index.search("acme", SearchQuery(none_of="shoes")).hits == []


def test_facets_count_the_matching_assets(
    search_index: SearchIndex, make_record: RecordFactory, tag: Tag, garments: dict[str, Taxonomy]
) -> None:
    search_index.bulk_upsert(
        [
            (make_record("1.jpg", tag("hat"), tag("scarf")), garments),
            (make_record("2.jpg", tag("hat"), tag("glove", TagState.REVIEW)), garments),
            (make_record("3.png", tag("hat"), media_type="image/png"), garments),
            (make_record("4.jpg", tag("coat")), garments),
        ],
        "acme",
    )

    page = search_index.search("acme", SearchQuery(text="hat"))

    assert page.facets == {
        "tag_ids": [("garments/hat", 3), ("garments/scarf", 1)],
        "media_type": [("image/jpeg", 2), ("image/png", 1)],
        "review_state": [("clear", 2), ("pending", 1)],
        "none_of": [],  # no model found none of its tags here
    }


def test_highlights_mark_the_matched_words(
    search_index: SearchIndex, make_record: RecordFactory, tag: Tag, garments: dict[str, Taxonomy]
) -> None:
    search_index.upsert(make_record("a.jpg", tag("glove")), garments)

    hit = search_index.search("acme", SearchQuery(text="gant", languages=["fr"])).hits[0]

    assert hit.highlights["labels.fr"] == ["<em>gant</em>"]
    assert hit.highlights["labels.folded"] == ["<em>gant</em>"]


def test_search_page_is_json_serialisable(
    search_index: SearchIndex, make_record: RecordFactory, tag: Tag, garments: dict[str, Taxonomy]
) -> None:
    search_index.upsert(make_record("a.jpg", tag("scarf")), garments)

    out = json.loads(json.dumps(search_index.search("acme", SearchQuery(text="écharpe", size=1)).to_dict()))

    assert out["total"] == 1
    assert out["hits"][0]["asset_key"] == "acme/a.jpg"
    assert out["next_search_after"][0] == out["hits"][0]["score"]
    assert out["next_search_after"][-1] == "acme/a.jpg"
    assert len(out["next_search_after"]) == 5  # score, confidence, confirmed, uploaded_at, key
    assert set(out["facets"]) == {"tag_ids", "media_type", "review_state", "none_of"}
