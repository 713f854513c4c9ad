"""An in-memory :class:`~tagsmith.search.SearchIndex` for tests and offline tools.

It stores the very documents :func:`~tagsmith.search.document_from_record` makes and applies the same
filters, score tiers, ordering, ``search_after`` paging and facets as the OpenSearch adapter. The
Python-analysed languages (``terms.<lang>.<level>``, see :mod:`tagsmith.search.analysis`) match
exactly as on OpenSearch, since their tokens are made in Python either way. The other fields are
matched crudely: lower-cased, accent-folded words, a trailing plural ``s`` dropped, French/Italian
elisions split off, CJK split into characters; test their stemming against the real adapter
(``tests/functional/test_search_opensearch.py``). The shared contract suite
(``tests/functional/test_search_contract.py``) runs against both so this fake cannot drift.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tagsmith.keys import validate_tenant
from tagsmith.records import AssetRecord, TagState
from tagsmith.search.documents import doc_id, doc_id_for_key, document_from_record
from tagsmith.search.index import (
    BulkItemError,
    RebuildReport,
    RecordWithTaxonomies,
    bulk_document,
    check_asset_key,
    searchable,
)
from tagsmith.search.mapping import MAPPING_VERSION, new_index_name
from tagsmith.search.query import (
    ALL_WORDS_FOLDED,
    BROWSE_SCORE,
    FACET_SIZES,
    LEVEL_BOOST,
    LEVELS,
    MATCH_ANY_WORD,
    VISIBLE_STATES,
    SearchHit,
    SearchPage,
    SearchQuery,
    TextPlan,
    label_highlights,
    language_fields,
    parse_instant,
    text_fields,
    text_plan,
    uploaded_range,
)
from tagsmith.taxonomy import Taxonomy

_WORD = re.compile(r"[^\W_]+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_ELIDED = frozenset({"l", "d", "j", "m", "n", "s", "t", "c", "qu", "dell", "dall", "nell", "sull", "all"})


@dataclass
class _Tenant:
    index: str
    mapping_version: int = MAPPING_VERSION
    docs: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)  # id -> (revision, doc)
    deleted: dict[str, int] = field(default_factory=dict)  # id -> revision of its versioned delete


class InMemorySearchIndex:
    """:class:`~tagsmith.search.SearchIndex` held in a dict; same contract as the OpenSearch adapter.

    >>> index = InMemorySearchIndex()
    >>> index.ensure_tenant("acme")
    >>> index.count("acme")
    0
    """

    def __init__(self) -> None:
        self._tenants: dict[str, _Tenant] = {}

    def ensure_tenant(self, tenant: str) -> None:
        if validate_tenant(tenant) not in self._tenants:
            # setdefault: atomic, so two ingest workers creating it at once keep one index
            self._tenants.setdefault(tenant, _Tenant(new_index_name(tenant)))

    def upsert(self, record: AssetRecord, taxonomies: Mapping[str, Taxonomy]) -> None:
        if not searchable(record):
            self.delete(record.tenant, record.key, revision=record.revision)
            return
        doc = document_from_record(record, taxonomies)
        self.ensure_tenant(record.tenant)
        self._put(self._tenants[record.tenant], record, doc)

    def delete(self, tenant: str, asset_key: str, *, revision: int | None = None) -> None:
        check_asset_key(tenant, asset_key)
        state = self._tenants.get(tenant)
        if state is None:
            return
        doc_key = doc_id_for_key(asset_key)
        current = state.docs.get(doc_key)
        if revision is not None and current is not None and current[0] > revision:
            return  # external_gte, as OpenSearch: a later revision's document is kept
        state.docs.pop(doc_key, None)
        if revision is not None:
            state.deleted[doc_key] = revision  # an older write arriving late is refused

    def bulk_upsert(
        self, records_with_taxonomies: Iterable[RecordWithTaxonomies], tenant: str
    ) -> list[BulkItemError]:
        self.ensure_tenant(tenant)
        return self._load(self._tenants[tenant], records_with_taxonomies, tenant)

    def rebuild(
        self, tenant: str, records: Iterable[AssetRecord], taxonomies: Mapping[str, Taxonomy]
    ) -> RebuildReport:
        started = time.perf_counter()
        validate_tenant(tenant)
        fresh = _Tenant(new_index_name(tenant))
        items = [(r, taxonomies) for r in records if searchable(r)]  # tombstones have no document
        errors = self._load(fresh, items, tenant)
        old = self._tenants.get(tenant)
        self._tenants[tenant] = fresh  # one assignment: readers see old or new, never neither
        return RebuildReport(
            tenant=tenant,
            index=fresh.index,
            indexed=len(items) - len(errors),
            errors=errors,
            deleted_indices=[old.index] if old and old.index != fresh.index else [],
            seconds=time.perf_counter() - started,
        )

    def search(self, tenant: str, query: SearchQuery) -> SearchPage:
        validate_tenant(tenant)
        state = self._tenants.get(tenant)
        if state is None:
            return SearchPage(total=0, hits=[], next_search_after=None, facets={})
        plan = text_plan(query)
        scored: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        for _, doc in state.docs.values():
            if doc["tenant"] != tenant or not _passes_filters(doc, query):
                continue
            score = _score(doc, query, plan)
            if score is not None:
                scored.append((_sort_values(score, doc), doc))
        scored.sort(key=lambda sd: _order(sd[0]))
        total = len(scored)
        facets = _facets([doc for _, doc in scored]) if query.search_after is None else {}
        if query.search_after is not None:
            after = _order(tuple(query.search_after))
            scored = [(v, d) for v, d in scored if _order(v) > after]
        hits = [
            SearchHit(
                asset_key=d["asset_key"],
                score=v[0],
                tags=[dict(t) for t in d.get("tags", [])],
                highlights={**_highlights(d, query, plan), **label_highlights(d.get("labels", {}), plan)},
                segments=[dict(x) for x in d.get("segments", [])],
            )
            for v, d in scored[: query.size]
        ]
        next_after = list(scored[query.size - 1][0]) if hits and len(hits) == query.size else None
        return SearchPage(total=total, hits=hits, next_search_after=next_after, facets=facets)

    def count(self, tenant: str) -> int:
        state = self._tenants.get(validate_tenant(tenant))
        return len(state.docs) if state else 0

    def mapping_version(self, tenant: str) -> int | None:
        state = self._tenants.get(validate_tenant(tenant))
        return state.mapping_version if state else None

    def revisions(self, tenant: str) -> dict[str, int] | None:
        state = self._tenants.get(validate_tenant(tenant))
        if state is None:
            return None
        return {doc["asset_key"]: revision for revision, doc in state.docs.values()}

    def _load(
        self, state: _Tenant, items: Iterable[RecordWithTaxonomies], tenant: str
    ) -> list[BulkItemError]:
        errors: list[BulkItemError] = []
        for record, taxonomies in items:
            if not searchable(record):
                continue  # a tombstone has no document
            doc = bulk_document(record, taxonomies, tenant)
            if isinstance(doc, BulkItemError):
                errors.append(doc)
                continue
            bad_date = next(
                (f for f in ("uploaded_at", "updated_at") if f in doc and not _is_date(doc[f])), None
            )
            if bad_date:
                # what OpenSearch answers for a value the mapping cannot parse
                errors.append(
                    BulkItemError(
                        record.key, 400, "mapper_parsing_exception", f"failed to parse [{bad_date}]"
                    )
                )
                continue
            self._put(state, record, doc)
        return errors

    @staticmethod
    def _put(state: _Tenant, record: AssetRecord, doc: dict[str, Any]) -> None:
        current = state.docs.get(doc_id(record))
        if current is not None and current[0] > record.revision:
            return  # external_gte versioning: a stale revision never replaces a newer one
        if state.deleted.get(doc_id(record), -1) > record.revision:
            return  # deleted at a later revision (OpenSearch keeps a deleted version for a while)
        state.docs[doc_id(record)] = (record.revision, doc)


def _tokens(text: str) -> list[str]:
    """Crude analysis shared by documents and queries (see the module docstring)."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))
    words: list[str] = []
    for word in _WORD.findall(folded.replace("'", " ").replace("\u2019", " ")):
        if _CJK.search(word):
            words += list(word)
        elif word not in _ELIDED:
            words.append(word[:-1] if len(word) > 3 and word.endswith("s") else word)
    return words


def _field_values(doc: Mapping[str, Any], name: str) -> list[str]:
    if name == "path.text":
        return [doc["path"]]
    if name.startswith("labels."):
        return list(doc.get("labels", {}).get(name.removeprefix("labels."), []))
    value = doc.get(name)
    return [value] if isinstance(value, str) else list(value or [])


def _field_tokens(doc: Mapping[str, Any], name: str) -> set[str]:
    return {t for value in _field_values(doc, name) for t in _tokens(value)}


def _score(doc: Mapping[str, Any], query: SearchQuery, plan: TextPlan | None) -> float | None:
    """The tiered score of :mod:`tagsmith.search.query`, or None when the text does not match."""
    if plan is None:
        return BROWSE_SCORE
    words = _tokens(plan.text)
    folded = _tokens(plan.folded)
    builtin = {name: _field_tokens(doc, name) for name in language_fields(query)}
    loose_fields = [*builtin.values(), _field_tokens(doc, "ocr_text"), _field_tokens(doc, "path.text")]
    terms = doc.get("terms", {})

    def levels(lang: str, depth: int) -> set[str]:  # cumulative in the document, as in OpenSearch
        return set(terms.get(lang, {}).get(LEVELS[depth - 1], "").split())

    folded_doc = _field_tokens(doc, "labels.folded")
    needed = len(folded) if len(folded) <= 2 else int(len(folded) * 0.75)  # MOST_WORDS: "2<75%"
    matched = (
        any(set(words) & tokens for tokens in loose_fields)
        or (bool(folded) and sum(w in folded_doc for w in folded) >= needed)
        or any(set(plan.loose[lang]) & levels(lang, len(LEVELS)) for lang in plan.loose)
    )
    if not matched and not _waiting_for_review(doc, query.review_tags):
        return None
    score = MATCH_ANY_WORD
    for depth in range(1, len(LEVELS) + 1):
        if any(set(words) <= tokens for tokens in builtin.values()) or any(
            any(set(r) <= levels(lang, depth) for r in readings) for lang, readings in plan.readings.items()
        ):
            score += LEVEL_BOOST
    if folded and set(folded) <= folded_doc:
        score += ALL_WORDS_FOLDED
    return score


def _sort_values(score: float, doc: Mapping[str, Any]) -> tuple[Any, ...]:
    """The values of :data:`~tagsmith.search.query.SORT` (as OpenSearch returns them)."""
    uploaded = parse_instant(str(doc.get("uploaded_at", ""))) if doc.get("uploaded_at") else None
    return (
        score,
        doc.get("max_confidence") or 0,
        doc.get("human_confirmed_count") or 0,
        int(uploaded.timestamp() * 1000) if uploaded else 0,
        doc["asset_key"],
    )


def _order(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return (-float(values[0]), -float(values[1]), -float(values[2]), -float(values[3]), str(values[4]))


def _waiting_for_review(doc: Mapping[str, Any], tag_ids: Iterable[str]) -> bool:
    wanted = set(tag_ids)
    return any(
        t["state"] == TagState.REVIEW.value and f"{t['model']}/{t['tag']}" in wanted
        for t in doc.get("tags", [])
    )


def _passes_filters(doc: Mapping[str, Any], query: SearchQuery) -> bool:
    if not set(query.tags) <= set(doc.get("tag_ids", [])):
        return False
    if query.media_type is not None and doc.get("media_type") != query.media_type:
        return False
    if query.none_of is not None and query.none_of not in doc.get("none_of", ()):
        return False
    if query.review_state is not None and doc.get("review_state") != query.review_state:
        return False
    bounds = uploaded_range(query)
    if bounds:
        uploaded = parse_instant(str(doc.get("uploaded_at", "")))
        if uploaded is None:
            return False
        if "gte" in bounds and uploaded < parse_instant(bounds["gte"]):  # type: ignore[operator]
            return False
        if "lte" in bounds and uploaded > parse_instant(bounds["lte"]):  # type: ignore[operator]
            return False
    if query.model is None and query.min_confidence is None and query.source is None:
        return True
    return any(_tag_passes(t, query) for t in doc.get("tags", []))


def _tag_passes(tag: Mapping[str, Any], query: SearchQuery) -> bool:
    if tag["state"] not in VISIBLE_STATES:
        return False
    if query.model is not None and tag["model"] != query.model:
        return False
    if query.source is not None and tag["source"] != query.source:
        return False
    if query.min_confidence is not None and tag["state"] != TagState.CONFIRMED.value:
        return tag.get("confidence") is not None and tag["confidence"] >= query.min_confidence
    return True


def _facets(docs: list[dict[str, Any]]) -> dict[str, list[tuple[str, int]]]:
    facets: dict[str, list[tuple[str, int]]] = {}
    for name, size in FACET_SIZES.items():
        counts: Counter[str] = Counter()
        for doc in docs:
            value = doc.get(name)
            counts.update(set(value) if isinstance(value, list) else [] if value is None else [value])
        # the terms aggregation's order: count descending, then key ascending
        facets[name] = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]
    return facets


def _highlights(doc: Mapping[str, Any], query: SearchQuery, plan: TextPlan | None) -> dict[str, list[str]]:
    if plan is None:
        return {}
    wanted = set(_tokens(plan.text))
    out: dict[str, list[str]] = {}
    for name in text_fields(query):
        fragments = [
            _WORD.sub(lambda m: f"<em>{m[0]}</em>" if set(_tokens(m[0])) & wanted else m[0], value)
            for value in _field_values(doc, name)
            if set(_tokens(value)) & wanted
        ]
        if fragments:
            out[name] = fragments
    return out


def _is_date(value: Any) -> bool:
    try:
        datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
