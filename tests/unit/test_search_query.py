"""Search requests: validation, the OpenSearch body they become, and the JSON results give."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tagsmith.errors import InvalidInputError
from tagsmith.search import SearchHit, SearchPage, SearchQuery, build_search_body
from tagsmith.search.query import decode_cursor, encode_cursor, query_from_params


def filters(body: dict[str, Any]) -> list[dict[str, Any]]:
    return body["query"]["bool"]["filter"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"languages": ["pt"]},
        {"languages": []},
        {"languages": "fr"},
        {"tags": ["scarf"]},
        {"tags": ["garments/"]},
        {"size": 0},
        {"size": 101},
        {"min_confidence": 1.5},
        {"source": "robot"},
        {"review_state": "maybe"},
        {"search_after": ["acme/a.jpg"]},
        {"search_after": [5.0, "acme/a.jpg"]},  # a cursor of the old [score, key] shape
        {"search_after": [float("nan"), 0.9, 0, 0, "acme/a.jpg"]},
        {"search_after": [True, 0.9, 0, 0, "acme/a.jpg"]},
        {"uploaded_from": "22/11/2026"},
        {"uploaded_to": "2026-13-01"},
    ],
)
def test_search_query_refuses_invalid_arguments_with_a_message(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match=r"\w"):
        SearchQuery(**kwargs)


def test_search_query_defaults() -> None:
    q = SearchQuery()

    assert (q.size, q.search_after, q.words) == (20, None, None)
    assert SearchQuery(text="   ").words is None


def test_build_search_body_always_filters_on_the_tenant() -> None:
    body = build_search_body("acme", SearchQuery())

    assert {"term": {"tenant": "acme"}} in filters(body)


def test_build_search_body_text_searches_chosen_languages_folded_ocr_and_path() -> None:
    body = build_search_body("acme", SearchQuery(text="écharpe", languages=["fr", "de"]))

    any_word, folded, german = body["query"]["bool"]["must"][0]["constant_score"]["filter"]["bool"]["should"]
    # German is analysed in Python (terms.de.*), French by OpenSearch's french analyzer
    assert any_word["multi_match"]["fields"] == ["labels.fr", "ocr_text", "path.text"]
    assert any_word["multi_match"]["operator"] == "or"
    # CJK bigrams of the folded field: one shared pair must not be enough
    assert folded == {"match": {"labels.folded": {"query": "écharpe", "minimum_should_match": "2<75%"}}}
    assert german == {"bool": {"should": [{"term": {"terms.de.affix": "echarp"}}], "minimum_should_match": 1}}
    assert set(body["highlight"]["fields"]) == {*any_word["multi_match"]["fields"], "labels.folded"}
    assert "labels" in body["_source"]  # German labels are highlighted in Python


def test_build_search_body_breaks_ties_by_confidence_confirmation_recency_then_key() -> None:
    cursor = [5.0, 0.93, 1, 1795327800000, "acme/b.jpg"]
    body = build_search_body("acme", SearchQuery(text="hat", search_after=cursor))

    assert body["sort"] == [
        {"_score": "desc"},
        {"max_confidence": {"order": "desc", "missing": 0}},
        {"human_confirmed_count": {"order": "desc", "missing": 0}},
        {"uploaded_at": {"order": "desc", "missing": 0}},
        {"asset_key": "asc"},
    ]
    assert body["search_after"] == cursor
    assert "aggs" not in body  # facets are computed for the first page only
    assert "aggs" in build_search_body("acme", SearchQuery(text="hat"))


def test_build_search_body_tag_conditions_apply_to_one_visible_tag() -> None:
    body = build_search_body(
        "acme", SearchQuery(tags=["garments/hat"], model="garments", min_confidence=0.8, source="ai")
    )

    nested = next(f["nested"] for f in filters(body) if "nested" in f)
    conditions = nested["query"]["bool"]["filter"]
    assert nested["path"] == "tags"
    assert {"terms": {"tags.state": ["applied", "confirmed"]}} in conditions
    assert {"term": {"tags.model": "garments"}} in conditions
    assert {"term": {"tags.source": "ai"}} in conditions
    assert {"term": {"tag_ids": "garments/hat"}} in filters(body)


def test_build_search_body_uses_no_scripts_or_function_score() -> None:
    # osmem (our test server) has no painless and no function_score scripts
    text = json.dumps(build_search_body("acme", SearchQuery(text="hat", min_confidence=0.5)))

    assert "script" not in text and "function_score" not in text and "rank_feature" not in text


def test_search_page_to_dict_is_the_documented_json() -> None:
    page = SearchPage(
        total=1,
        hits=[SearchHit("acme/a.jpg", 7.5, [{"model": "m", "tag": "t"}], {"labels.fr": ["<em>x</em>"]})],
        next_search_after=[7.5, 0.9, 0, 0, "acme/a.jpg"],
        facets={"tag_ids": [("m/t", 1)], "media_type": [], "review_state": [("clear", 1)]},
    )

    out = json.loads(json.dumps(page.to_dict()))

    assert out == {
        "total": 1,
        "hits": [
            {
                "asset_key": "acme/a.jpg",
                "score": 7.5,
                "tags": [{"model": "m", "tag": "t"}],
                "highlights": {"labels.fr": ["<em>x</em>"]},
            }
        ],
        "next_search_after": [7.5, 0.9, 0, 0, "acme/a.jpg"],
        "next_cursor": encode_cursor([7.5, 0.9, 0, 0, "acme/a.jpg"]),
        "facets": {
            "tag_ids": [{"value": "m/t", "count": 1}],
            "media_type": [],
            "review_state": [{"value": "clear", "count": 1}],
        },
    }


def test_cursor_round_trips_and_a_foreign_cursor_is_refused() -> None:
    cursor = encode_cursor([7.5, 0.9, 1, 1795327800000, "acme/é.jpg"])

    assert decode_cursor(cursor) == [7.5, 0.9, 1, 1795327800000, "acme/é.jpg"]
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor  # safe in a URL as is
    for bad in (
        "not base64!",
        encode_cursor(["x", "y"]),
        encode_cursor([7.5, "acme/a.jpg"]),
        "e30",
    ):  # e30 = "{}"
        with pytest.raises(InvalidInputError, match="cursor"):
            decode_cursor(bad)


def test_query_from_params_reads_every_documented_parameter() -> None:
    query = query_from_params(
        {
            "q": "veste bleu",
            "lang": "fr, de",
            "tag": "apparel/jacket,colour/blue",
            "model": "apparel",
            "min_confidence": "0.8",
            "source": "human",
            "media_type": "image/jpeg",
            "review_state": "clear",
            "uploaded_from": "2026-01-01",
            "uploaded_to": "2026-06-30",
            "size": "5",
            "cursor": encode_cursor([2.0, 0.5, 0, 0, "acme/a.jpg"]),
        }
    )

    assert query == SearchQuery(
        text="veste bleu",
        languages=("fr", "de"),
        tags=("apparel/jacket", "colour/blue"),
        model="apparel",
        min_confidence=0.8,
        source="human",
        media_type="image/jpeg",
        review_state="clear",
        uploaded_from="2026-01-01",
        uploaded_to="2026-06-30",
        size=5,
        search_after=[2.0, 0.5, 0, 0, "acme/a.jpg"],
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"size": "ten"}, "size must be a number"),
        ({"min_confidence": "high"}, "min_confidence must be a number"),
        ({"qq": "typo"}, "unknown parameter"),
        ({"lang": "xx"}, "unsupported search language"),
        ({"uploaded_from": "yesterday"}, "not a date"),
        ({"size": "1000"}, "out of range"),
    ],
)
def test_query_from_params_refuses_bad_parameters_with_a_message(
    params: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        query_from_params(params)


def test_build_search_body_uploaded_dates_are_inclusive_utc_bounds() -> None:
    body = build_search_body(
        "acme", SearchQuery(uploaded_from="2026-03-01", uploaded_to="2026-03-31T12:00:00+02:00")
    )

    assert {
        "range": {"uploaded_at": {"gte": "2026-03-01T00:00:00.000Z", "lte": "2026-03-31T10:00:00.000Z"}}
    } in (filters(body))
    day = build_search_body("acme", SearchQuery(uploaded_to="2026-03-31"))
    assert {"range": {"uploaded_at": {"lte": "2026-03-31T23:59:59.999Z"}}} in filters(day)
