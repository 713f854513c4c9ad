"""Search requests and results, and the OpenSearch query body they translate to.

:class:`SearchQuery` is what the CLI and the HTTP API pass in; :class:`SearchPage` is what they
print. ``SearchPage.to_dict()`` is the documented, stable JSON output::

    {
      "total": 42,
      "hits": [
        {"asset_key": "acme/2026/IMG_1.jpg", "score": 7.5,
         "tags": [{"model": "garments", "tag": "scarf", "state": "applied", "source": "ai",
                   "confidence": 0.93, "model_version": "3"}],
         "highlights": {"labels.fr": ["<em>écharpe</em>"]}}
      ],
      "next_search_after": [7.5, 0.93, 0, 1795327800000, "acme/2026/IMG_1.jpg"],  # null on the last page
      "next_cursor": "WzcuNSwwLjkzLDAsMTc5NTMyNzgwMDAwMCwiYWNtZS8yMDI2L0lNR18xLmpwZyJd",  # opaque
      "facets": {                                          # first page only; {} after that"tag_ids": [{"value": "garments/scarf", "count": 12}],
                 "media_type": [{"value": "image/jpeg", "count": 40}],
                 "review_state": [{"value": "clear", "count": 39}]}
    }

Ranking is deliberately made of constant tiers rather than BM25 (see :data:`SCORE_TIERS`): label
texts are a few words long, so term statistics add little, while constant scores are identical on
every backend (OpenSearch, osmem, the in-memory fake) and exact in floating point, which
``search_after`` needs to page without gaps or duplicates. Equal scores fall to confidence, human
confirmation and recency (:data:`SORT`), never to file names. How text becomes tokens for the
Python-analysed languages: :mod:`tagsmith.search.analysis`.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tagsmith.errors import InvalidInputError
from tagsmith.records import Source, TagState
from tagsmith.search.analysis import (
    LEVELS,
    highlight,
    is_stop,
    loose_tokens,
    query_alternatives,
    words_of,
)
from tagsmith.search.documents import REVIEW_CLEAR, REVIEW_PENDING
from tagsmith.search.mapping import LANGUAGES, TERM_LANGUAGES

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# A query's cost grows with its words (every word is matched in every language's field): a
# 16,000-character query took 15 s. Labels are a few words long, so these caps lose nothing.
MAX_QUERY_CHARS = 512
MAX_QUERY_WORDS = 32
MAX_TAG_FILTERS = 20
VISIBLE_STATES = (TagState.APPLIED.value, TagState.CONFIRMED.value)
FACET_SIZES: Mapping[str, int] = {"tag_ids": 50, "media_type": 20, "review_state": 5, "none_of": 20}

# Score = sum of the text tiers an asset reaches. All are binary fractions, so sums are exact.
MATCH_ANY_WORD = 1.0  # some word of the text is in some searched field (required)
# +1 for each level at which every word is found in one chosen language (see LEVELS): whole
# words, else compound heads, else other compound parts, else bare endings/beginnings. An exact
# (stemmed) word match reaches all four; "Schuhe" inside "Handschuhe" found only as an ending, one.
LEVEL_BOOST = 1.0
ALL_WORDS_FOLDED = 2.0  # every word in the accent-insensitive label field, as typed
BROWSE_SCORE = 1.0  # no text: every filtered asset starts equal
SCORE_TIERS = {
    "match_any_word": MATCH_ANY_WORD,
    **{f"all_words_as_{level}": LEVEL_BOOST for level in LEVELS},
    "all_words_folded": ALL_WORDS_FOLDED,
}
# Equal scores fall to the surest tag (a human-confirmed tag counts 1.0), then human confirmation,
# then the newest upload; the asset key only makes the order total (paging needs that).
SORT: list[dict[str, Any]] = [
    {"_score": "desc"},
    {"max_confidence": {"order": "desc", "missing": 0}},
    {"human_confirmed_count": {"order": "desc", "missing": 0}},
    {"uploaded_at": {"order": "desc", "missing": 0}},
    {"asset_key": "asc"},
]


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """One search request; every filter is optional and they combine with AND.

    ``tags`` are ``"<model>/<tag>"`` ids an asset must all have (visibly). ``model``,
    ``min_confidence`` and ``source`` apply to one and the same visible tag (a human-confirmed
    tag passes any ``min_confidence``). ``search_after`` is the previous page's
    ``next_search_after``.

    >>> SearchQuery(text="écharpe", languages=["fr"], tags=["garments/scarf"], size=10).size
    10
    """

    text: str | None = None
    languages: Sequence[str] = LANGUAGES
    tags: Sequence[str] = ()
    model: str | None = None
    min_confidence: float | None = None
    source: str | None = None
    media_type: str | None = None
    review_state: str | None = None
    none_of: str | None = None  # a model id: assets it found none of its tags in
    uploaded_from: str | None = None  # ISO 8601 date or date-time, inclusive
    uploaded_to: str | None = None  # ISO 8601 date or date-time, inclusive (a date means its whole day)
    size: int = DEFAULT_PAGE_SIZE
    search_after: list[Any] | None = None
    #: ``"<model>/<tag>"`` ids: an asset whose tag waits for review on one of them also matches
    #: the text (see :mod:`tagsmith.search.waiting`); without text it changes nothing.
    review_tags: Sequence[str] = ()

    def __post_init__(self) -> None:
        if isinstance(self.languages, str):
            raise InvalidInputError("languages must be a list of language codes, not one string")
        unknown = sorted(set(self.languages) - set(LANGUAGES))
        if unknown:
            raise InvalidInputError(
                f"unsupported search language(s) {', '.join(unknown)}: choose from {', '.join(LANGUAGES)}"
            )
        if not self.languages:
            raise InvalidInputError("languages is empty: leave it out to search every language")
        if self.text is not None and len(self.text) > MAX_QUERY_CHARS:
            raise InvalidInputError(
                f"search text is {len(self.text):,} characters; use at most {MAX_QUERY_CHARS} (a few words)"
            )
        if self.text is not None and len(self.text.split()) > MAX_QUERY_WORDS:
            raise InvalidInputError(f"search text has more than {MAX_QUERY_WORDS} words; use fewer")
        if len(self.tags) + len(self.review_tags) > MAX_TAG_FILTERS:
            raise InvalidInputError(
                f"{len(self.tags) + len(self.review_tags)} tag filters; use at most {MAX_TAG_FILTERS}"
            )
        for t in (*self.tags, *self.review_tags):
            model, sep, tag = t.partition("/")
            if not (model and sep and tag):
                raise InvalidInputError(f"tag filter {t!r} must look like '<model>/<tag>'")
        if not 1 <= self.size <= MAX_PAGE_SIZE:
            raise InvalidInputError(f"page size {self.size} is out of range: use 1 to {MAX_PAGE_SIZE}")
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise InvalidInputError(f"min_confidence {self.min_confidence} must be between 0 and 1")
        if self.source is not None and self.source not in {s.value for s in Source}:
            raise InvalidInputError(f"source {self.source!r} must be 'ai' or 'human'")
        if self.review_state is not None and self.review_state not in (REVIEW_PENDING, REVIEW_CLEAR):
            raise InvalidInputError(f"review_state {self.review_state!r} must be 'pending' or 'clear'")
        for name in ("uploaded_from", "uploaded_to"):
            value = getattr(self, name)
            if value is not None and parse_instant(value) is None:
                raise InvalidInputError(
                    f"{name} {value!r} is not a date: use ISO 8601, e.g. 2026-11-22 or 2026-11-22T06:10:00Z"
                )
        if self.search_after is not None and not _valid_cursor(self.search_after):
            raise InvalidInputError(
                "search_after must be the next_search_after of a previous page: "
                "[score, max_confidence, human_confirmed_count, uploaded_at, asset_key]"
            )

    @property
    def words(self) -> str | None:
        """The free text, or None when it is blank."""
        return self.text.strip() or None if self.text else None


def parse_instant(value: str, *, end_of_day: bool = False) -> datetime | None:
    """An ISO 8601 date or date-time as an aware UTC datetime (None if it is not one).

    A bare date is its first instant, or with ``end_of_day`` its last millisecond, so a
    ``uploaded_to`` of ``2026-11-22`` includes the whole day.

    >>> parse_instant("2026-11-22", end_of_day=True).isoformat()
    '2026-11-22T23:59:59.999000+00:00'
    """
    try:
        if len(value) == 10:
            day = datetime.fromisoformat(value).replace(tzinfo=UTC)
            return day + timedelta(days=1, milliseconds=-1) if end_of_day else day
        instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return instant.astimezone(UTC) if instant.tzinfo else instant.replace(tzinfo=UTC)


def _iso(instant: datetime) -> str:
    return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _valid_cursor(cursor: Any) -> bool:
    """``[score, max_confidence, human_confirmed_count, uploaded_at (epoch ms), asset_key]``."""
    return (
        isinstance(cursor, list)
        and len(cursor) == len(SORT)
        and all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in cursor[:-1]
        )
        and isinstance(cursor[-1], str)
    )


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One asset in a result page; ``tags`` are all its assignments, including those in review;
    ``segments`` (videos only) say where in the clip each visible tag is seen:
    ``{"model", "tag", "start", "end", "confidence"}``, times in seconds."""

    asset_key: str
    score: float
    tags: list[dict[str, Any]] = field(default_factory=list)
    highlights: dict[str, list[str]] = field(default_factory=dict)
    segments: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "asset_key": self.asset_key,
            "score": self.score,
            "tags": [dict(t) for t in self.tags],
            "highlights": {k: list(v) for k, v in self.highlights.items()},
        }
        if self.segments:  # videos only: an image's JSON stays as it was
            d["segments"] = [dict(x) for x in self.segments]
        return d


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of results; pass ``next_search_after`` back for the next page (None: last page).

    ``facets`` (terms counts over all matching assets) come with the first page only; pages asked
    for with ``search_after`` carry ``{}``.

    >>> SearchPage(0, [], None, {"tag_ids": [("m/a", 2)]}).to_dict()["facets"]
    {'tag_ids': [{'value': 'm/a', 'count': 2}]}
    """

    total: int
    hits: list[SearchHit]
    next_search_after: list[Any] | None
    facets: dict[str, list[tuple[str, int]]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "hits": [h.to_dict() for h in self.hits],
            "next_search_after": list(self.next_search_after) if self.next_search_after else None,
            "next_cursor": encode_cursor(self.next_search_after) if self.next_search_after else None,
            "facets": {
                name: [{"value": value, "count": count} for value, count in buckets]
                for name, buckets in self.facets.items()
            },
        }


def language_fields(query: SearchQuery) -> list[str]:
    """The ``labels.<lang>`` fields searched with OpenSearch's own analyzers (en, fr, es, ja)."""
    return [f"labels.{lang}" for lang in query.languages if lang not in TERM_LANGUAGES]


def term_languages(query: SearchQuery) -> list[str]:
    """The query's languages analysed in Python (``terms.<lang>.<level>``)."""
    return [lang for lang in query.languages if lang in TERM_LANGUAGES]


@dataclass(frozen=True, slots=True)
class TextPlan:
    """What free text is matched as, worked out in Python once for every backend.

    ``readings[lang]``: the ways to read the text in a Python-analysed language, each a list of
    tokens that must all match (see :func:`~tagsmith.search.analysis.query_alternatives`);
    ``loose[lang]``: tokens any one of which is a weak match; ``folded``: the text for the
    accent-insensitive field, without the stop words of the query's languages.
    """

    text: str
    folded: str
    readings: dict[str, list[list[str]]]
    loose: dict[str, list[str]]

    def highlight_tokens(self, lang: str) -> set[str]:
        """Tokens whose words a result's ``labels.<lang>`` shows marked."""
        whole = {t for r in self.readings.get(lang, []) for t in r if len(t) > 1 or len(r) == 1}
        return whole | set(self.loose.get(lang, []))


def text_plan(query: SearchQuery) -> TextPlan | None:
    """The :class:`TextPlan` of ``query`` (None without text).

    >>> plan = text_plan(SearchQuery(text="giacca e sciarpa", languages=["it"]))
    >>> plan.readings, plan.folded
    ({'it': [['giacc', 'sciarp']]}, 'giacca sciarpa')
    """
    words = query.words
    if not words:
        return None
    content = [w for _, _, w in words_of(words) if not any(is_stop(lang, w) for lang in query.languages)]
    return TextPlan(
        text=words,
        folded=" ".join(content) or words,
        readings={lang: query_alternatives(lang, words) for lang in term_languages(query)},
        loose={lang: loose_tokens(lang, words) for lang in term_languages(query)},
    )


def encode_cursor(search_after: Sequence[Any]) -> str:
    """``next_search_after`` as one opaque URL-safe string (the HTTP API's ``cursor``).

    >>> decode_cursor(encode_cursor([7.5, 0.93, 0, 1795327800000, "acme/a.jpg"]))
    [7.5, 0.93, 0, 1795327800000, 'acme/a.jpg']
    """
    raw = json.dumps(list(search_after), ensure_ascii=False, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    """The ``search_after`` inside a cursor; a cursor that is not one of ours is refused."""
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, RecursionError) as e:
        raise InvalidInputError("cursor is not valid: pass the next_cursor of the previous page") from e
    if not _valid_cursor(value):
        raise InvalidInputError("cursor is not valid: pass the next_cursor of the previous page")
    return list(value)


# The HTTP API's query parameters (lists are comma-separated) -> SearchQuery fields.
PARAMETERS = (
    "q",
    "lang",
    "tag",
    "model",
    "min_confidence",
    "source",
    "media_type",
    "review_state",
    "none_of",
    "uploaded_from",
    "uploaded_to",
    "size",
    "cursor",
)


def query_from_params(params: Mapping[str, str]) -> SearchQuery:
    """A :class:`SearchQuery` from HTTP query parameters (see ``docs/search.md``).

    >>> query_from_params({"q": "veste", "lang": "fr,de", "min_confidence": "0.8"}).languages
    ('fr', 'de')
    """
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise InvalidInputError(f"unknown parameter(s) {', '.join(unknown)}: use {', '.join(PARAMETERS)}")

    def number(name: str, kind: type[int] | type[float]) -> Any:
        try:
            return kind(params[name]) if params.get(name) not in (None, "") else None
        except ValueError as e:
            raise InvalidInputError(f"{name} must be a number, not {params[name]!r}") from e

    def listed(name: str) -> tuple[str, ...]:
        return tuple(v.strip() for v in (params.get(name) or "").split(",") if v.strip())

    size = number("size", int)
    cursor = params.get("cursor") or None
    return SearchQuery(
        text=params.get("q") or None,
        languages=listed("lang") or LANGUAGES,
        tags=listed("tag"),
        model=params.get("model") or None,
        min_confidence=number("min_confidence", float),
        source=params.get("source") or None,
        media_type=params.get("media_type") or None,
        review_state=params.get("review_state") or None,
        none_of=params.get("none_of") or None,
        uploaded_from=params.get("uploaded_from") or None,
        uploaded_to=params.get("uploaded_to") or None,
        size=DEFAULT_PAGE_SIZE if size is None else size,
        search_after=decode_cursor(cursor) if cursor else None,
    )


def text_fields(query: SearchQuery) -> list[str]:
    """The fields OpenSearch matches and highlights free text on (the ``terms`` fields aside)."""
    return [*language_fields(query), FOLDED, "ocr_text", "path.text"]


def build_search_body(tenant: str, query: SearchQuery) -> dict[str, Any]:
    """The OpenSearch request body of ``query`` (pure; the adapter adds the index).

    >>> body = build_search_body("acme", SearchQuery(text="scarf", size=5))
    >>> body["size"], body["sort"][0], body["sort"][-1]
    (5, {'_score': 'desc'}, {'asset_key': 'asc'})
    """
    plan = text_plan(query)
    must: list[dict[str, Any]]
    should: list[dict[str, Any]] = []
    if plan is not None:
        builtin = language_fields(query)
        loose: list[dict[str, Any]] = [_multi_match(plan.text, [*builtin, "ocr_text", "path.text"], "or")]
        # most words, not any, in the accent-folded field: its CJK bigrams would make one shared
        # pair ("トー" in both トートバッグ and ストームブルー) a hit
        loose.append({"match": {FOLDED: {"query": plan.folded, "minimum_should_match": MOST_WORDS}}})
        loose += [_any_term(lang, plan.loose[lang]) for lang in plan.loose if plan.loose[lang]]
        if query.review_tags:
            loose.append(_waiting_for_review(query.review_tags))
        must = [_constant({"bool": {"should": loose, "minimum_should_match": 1}}, MATCH_ANY_WORD)]
        for depth in range(1, len(LEVELS) + 1):
            in_one_language = [_multi_match(plan.text, builtin, "and")] if builtin else []
            in_one_language += [_every_token(lang, plan.readings[lang], depth) for lang in plan.readings]
            should.append(_constant(_any_of(in_one_language), LEVEL_BOOST))
        should.append(
            _constant({"match": {FOLDED: {"query": plan.folded, "operator": "and"}}}, ALL_WORDS_FOLDED)
        )
    else:
        must = [_constant({"match_all": {}}, BROWSE_SCORE)]

    body: dict[str, Any] = {
        "query": {"bool": {"must": must, "should": should, "filter": _filters(tenant, query)}},
        "sort": SORT,
        "size": query.size,
        "track_total_hits": True,
        "_source": ["asset_key", "tags", "segments", "labels"],
    }
    if query.search_after is None:
        # Facets describe the whole result set, so later pages would only repeat them; terms
        # aggregations are also the costliest part of a search (most of the time on osmem).
        body["aggs"] = {name: {"terms": {"field": name, "size": size}} for name, size in FACET_SIZES.items()}
    if plan is not None:
        # labels of the Python-analysed languages are highlighted in Python (page_from_response)
        body["highlight"] = {"fields": {f: {} for f in text_fields(query)}}
    if query.search_after is not None:
        body["search_after"] = list(query.search_after)
    return body


def _waiting_for_review(tag_ids: Sequence[str]) -> dict[str, Any]:
    """Assets with one of these ``model/tag`` tags in state ``review``."""
    pairs = [t.partition("/") for t in tag_ids]
    one_of = [
        {"bool": {"filter": [{"term": {"tags.model": model}}, {"term": {"tags.tag": tag}}]}}
        for model, _, tag in pairs
    ]
    return {
        "nested": {
            "path": "tags",
            "query": {
                "bool": {
                    "filter": [{"term": {"tags.state": TagState.REVIEW.value}}],
                    "should": one_of,
                    "minimum_should_match": 1,
                }
            },
        }
    }


def _constant(query: dict[str, Any], boost: float) -> dict[str, Any]:
    return {"constant_score": {"filter": query, "boost": boost}}


FOLDED = "labels.folded"
MOST_WORDS = "2<75%"  # up to 2 tokens: all of them; more: three quarters


def _multi_match(words: str, fields: list[str], operator: str) -> dict[str, Any]:
    return {"multi_match": {"query": words, "fields": fields, "type": "best_fields", "operator": operator}}


def _any_of(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    return clauses[0] if len(clauses) == 1 else {"bool": {"should": clauses, "minimum_should_match": 1}}


def level_field(lang: str, depth: int = len(LEVELS)) -> str:
    """``terms.<lang>.<level>``: tokens found at the first ``depth`` levels (1: whole words only);
    the levels are cumulative in the document."""
    return f"terms.{lang}.{LEVELS[depth - 1]}"


def _token(lang: str, token: str, depth: int) -> dict[str, Any]:
    return {"term": {level_field(lang, depth): token}}


def _every_token(lang: str, readings: list[list[str]], depth: int) -> dict[str, Any]:
    """Some reading of the text has every token at one of the first ``depth`` levels."""
    return _any_of([{"bool": {"filter": [_token(lang, t, depth) for t in r]}} for r in readings])


def _any_term(lang: str, tokens: list[str]) -> dict[str, Any]:
    return {"bool": {"should": [_token(lang, t, len(LEVELS)) for t in tokens], "minimum_should_match": 1}}


def _filters(tenant: str, query: SearchQuery) -> list[dict[str, Any]]:
    # The tenant term is defence in depth: the alias already confines the search to one tenant.
    filters: list[dict[str, Any]] = [{"term": {"tenant": tenant}}]
    filters += [{"term": {"tag_ids": t}} for t in query.tags]
    if query.media_type is not None:
        filters.append({"term": {"media_type": query.media_type}})
    if query.review_state is not None:
        filters.append({"term": {"review_state": query.review_state}})
    if query.none_of is not None:
        filters.append({"term": {"none_of": query.none_of}})
    uploaded = uploaded_range(query)
    if uploaded:
        filters.append({"range": {"uploaded_at": uploaded}})
    if query.model is not None or query.min_confidence is not None or query.source is not None:
        filters.append({"nested": {"path": "tags", "query": {"bool": {"filter": _tag_conditions(query)}}}})
    return filters


def uploaded_range(query: SearchQuery) -> dict[str, str]:
    """The ``uploaded_at`` bounds of ``query`` as UTC ISO strings (``gte`` / ``lte``), if any."""
    bounds = {}
    if query.uploaded_from is not None and (start := parse_instant(query.uploaded_from)):
        bounds["gte"] = _iso(start)
    if query.uploaded_to is not None and (end := parse_instant(query.uploaded_to, end_of_day=True)):
        bounds["lte"] = _iso(end)
    return bounds


def _tag_conditions(query: SearchQuery) -> list[dict[str, Any]]:
    conditions: list[dict[str, Any]] = [{"terms": {"tags.state": list(VISIBLE_STATES)}}]
    if query.model is not None:
        conditions.append({"term": {"tags.model": query.model}})
    if query.source is not None:
        conditions.append({"term": {"tags.source": query.source}})
    if query.min_confidence is not None:
        conditions.append(
            {
                "bool": {
                    "should": [
                        {"range": {"tags.confidence": {"gte": query.min_confidence}}},
                        {"term": {"tags.state": TagState.CONFIRMED.value}},
                    ],
                    "minimum_should_match": 1,
                }
            }
        )
    return conditions


def page_from_response(response: Mapping[str, Any], query: SearchQuery) -> SearchPage:
    """Turn an OpenSearch search response into a :class:`SearchPage`."""
    raw_hits = response["hits"]["hits"]
    plan = text_plan(query)
    hits = [
        SearchHit(
            asset_key=h["_source"]["asset_key"],
            score=float(h["sort"][0]),
            tags=list(h["_source"].get("tags", [])),
            highlights={
                **{k: list(v) for k, v in (h.get("highlight") or {}).items()},
                **label_highlights(h["_source"].get("labels") or {}, plan),
            },
            segments=list(h["_source"].get("segments", [])),
        )
        for h in raw_hits
    ]
    total = response["hits"]["total"]
    aggs = response.get("aggregations")
    facets = (
        {
            name: [(str(b["key"]), int(b["doc_count"])) for b in aggs.get(name, {}).get("buckets", [])]
            for name in FACET_SIZES
        }
        if aggs is not None
        else {}
    )
    # A full page may be followed by more; a short page is the last one.
    next_after = list(raw_hits[-1]["sort"]) if hits and len(hits) == query.size else None
    return SearchPage(
        total=int(total["value"] if isinstance(total, Mapping) else total),
        hits=hits,
        next_search_after=next_after,
        facets=facets,
    )


def label_highlights(labels: Mapping[str, list[str]], plan: TextPlan | None) -> dict[str, list[str]]:
    """``labels.<lang>`` -> the label values with matched words in ``<em>``, for the
    Python-analysed languages (marks on the characters as written, whatever the stemming did)."""
    if plan is None:
        return {}
    out: dict[str, list[str]] = {}
    for lang in plan.readings:
        tokens = plan.highlight_tokens(lang)
        fragments = [m for v in labels.get(lang, []) if (m := highlight(lang, v, tokens)) is not None]
        if fragments:
            out[f"labels.{lang}"] = fragments
    return out
