"""Multilingual relevance suites: precision@5 per language and per kind of query, on osmem.

Two tenants, each a file in ``tests/data/relevance/`` with its taxonomies (labels and synonyms in
nine languages), assets with their tags (some awaiting review or rejected, so invisible) and
queries, each with the assets a person would expect (those whose visible tags satisfy the query's
``relevant_if``):

- ``outdoor-grocery.json``: 118 assets, 103 general queries (plurals, accents, elision, synonyms,
  compounds, Japanese, Chinese);
- ``home-garden.json`` (written by ``make_home_garden.py``): 201 assets, 101 queries in seven kinds
  (``kind``): Dutch plurals, compound heads and parts, heads shared by unrelated compounds,
  multi-word queries with stop words, Chinese typed without spaces, collisions between languages
  when every language is searched (``"languages": "all"``), and ties, whose expected assets are the
  five a person should see first (surest, human-confirmed, newest).

precision@5 of a query = relevant assets among the first five hits / min(5, relevant assets), so a
query with two relevant assets scores 1.0 when both come first. A language's figure is the mean
over its queries in both suites, measured in one run. Print the tables with::

    .venv/bin/pytest tests/functional/test_search_relevance.py -q -s
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from statistics import mean
from typing import Any

import pytest
from opensearchpy import OpenSearch
from osmem_server import OsmemServer
from tagsmith.records import AssetRecord, AssetStatus, Failure, Source, SourceObject, TagAssignment, TagState
from tagsmith.search import LANGUAGES, OpenSearchIndex, SearchIndex, SearchQuery
from tagsmith.taxonomy import Taxonomy

DATA = Path(__file__).resolve().parents[1] / "data" / "relevance"
SUITE = DATA / "outdoor-grocery.json"
KINDS_SUITE = DATA / "home-garden.json"
TOP = 5

# The bar of issue 19: every language at least this, both suites, one run.
FLOORS = dict.fromkeys(LANGUAGES, 0.97)
KIND_FLOOR = 0.97
KINDS = ("nl_plural", "compound", "shared_head", "stop_words", "zh_unspaced", "collision", "ties")
OVERALL_FLOOR = 0.97
EVERY_LANGUAGE_FLOOR = 0.97


@dataclass(frozen=True)
class Suite:
    tenant: str
    taxonomies: dict[str, Taxonomy]
    records: list[AssetRecord]
    queries: list[dict[str, Any]]


def load_suite(path: Path) -> Suite:
    data = json.loads(path.read_text("utf-8"))
    tenant = data["tenant"]
    taxonomies = {model: Taxonomy.from_dict(t) for model, t in data["taxonomies"].items()}
    return Suite(tenant, taxonomies, [_record(tenant, a) for a in data["assets"]], data["queries"])


def _record(tenant: str, asset: dict[str, Any]) -> AssetRecord:
    tags = tuple(
        TagAssignment(
            t["model"],
            t["tag"],
            TagState(t["state"]),
            Source.HUMAN if t["state"] in ("confirmed", "rejected") else Source.AI,
            confidence=t.get("confidence"),
            model_version="1",
        )
        for t in asset["tags"]
    )
    failed = asset["status"] == "failed"
    return AssetRecord(
        tenant=tenant,
        path=asset["path"],
        source=SourceObject("assets", f"{tenant}/{asset['path']}", "etag", 250_000),
        status=AssetStatus(asset["status"]),
        media_type=asset["media_type"],
        width=None if failed else 4000,
        height=None if failed else 3000,
        models={t.model: "1" for t in tags},
        tags=tags,
        failure=Failure("unsupported_media", "could not decode") if failed else None,
        created_at=asset["uploaded_at"],
        updated_at=asset["uploaded_at"],
    )


@dataclass(frozen=True)
class QueryResult:
    lang: str
    text: str
    precision: float
    top: list[str]
    missed: list[str]
    kind: str = "general"


def precision_at(top: list[str], expected: set[str], k: int = TOP) -> float:
    """Relevant among the first ``k`` hits / min(k, number of relevant assets)."""
    return len(set(top[:k]) & expected) / min(k, len(expected))


def evaluate(index: SearchIndex, suite: Suite, *, own_language: bool = True) -> list[QueryResult]:
    """Run every query; ``own_language``: search the query's language only (as a UI in that locale
    would) unless the query says ``"languages": "all"``, else every language (the API's default)."""
    results = []
    for q in suite.queries:
        own = own_language and q.get("languages", "own") == "own"
        languages = [q["lang"]] if own else list(LANGUAGES)
        page = index.search(suite.tenant, SearchQuery(text=q["text"], languages=languages, size=TOP))
        top = [h.asset_key for h in page.hits]
        expected = set(q["expected"])
        results.append(
            QueryResult(
                q["lang"],
                q["text"],
                precision_at(top, expected),
                top,
                sorted(expected - set(top))[: TOP - len(set(top) & expected)],
                q.get("kind", "general"),
            )
        )
    return results


def by_language(results: list[QueryResult]) -> dict[str, float]:
    langs = dict.fromkeys(r.lang for r in results)
    return {lang: mean(r.precision for r in results if r.lang == lang) for lang in langs}


def by_kind(results: list[QueryResult]) -> dict[str, float]:
    kinds = dict.fromkeys(r.kind for r in results)
    return {kind: mean(r.precision for r in results if r.kind == kind) for kind in kinds}


def report(results: list[QueryResult]) -> str:
    per = by_language(results)
    lines = ["language  queries  precision@5"]
    lines += [f"{lang:8}  {sum(r.lang == lang for r in results):7}  {p:11.3f}" for lang, p in per.items()]
    lines.append(f"{'overall':8}  {len(results):7}  {mean(r.precision for r in results):11.3f}")
    lines.append("kind          queries  precision@5")
    lines += [
        f"{kind:12}  {sum(r.kind == kind for r in results):7}  {p:11.3f}"
        for kind, p in by_kind(results).items()
    ]
    lines.append("imperfect queries:")
    lines += [f"  [{r.lang}] {r.text!r}: {r.precision:.2f}" for r in results if r.precision < 1.0]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def suite() -> Suite:
    return load_suite(SUITE)


@pytest.fixture(scope="module")
def kinds_suite() -> Suite:
    return load_suite(KINDS_SUITE)


@pytest.fixture(scope="module")
def loaded(osmem_server: OsmemServer, suite: Suite, kinds_suite: Suite) -> Iterator[OpenSearchIndex]:
    """Both suites' tenants loaded once into an osmem clone (module scope)."""
    clone = osmem_server.clone()
    client = OpenSearch(hosts=[clone.url], timeout=30)
    try:
        index = OpenSearchIndex(client=client)
        for s in (suite, kinds_suite):
            errors = index.bulk_upsert(((r, s.taxonomies) for r in s.records), s.tenant)
            assert errors == []
        yield index
    finally:
        client.close()
        clone.close()


@pytest.fixture(scope="module")
def results(loaded: OpenSearchIndex, suite: Suite, kinds_suite: Suite) -> list[QueryResult]:
    results = evaluate(loaded, suite) + evaluate(loaded, kinds_suite)
    print("\nboth suites, each query in its own language (collisions: every language)\n" + report(results))
    return results


@pytest.fixture(scope="module")
def results_every_language(loaded: OpenSearchIndex, suite: Suite, kinds_suite: Suite) -> list[QueryResult]:
    results = evaluate(loaded, suite, own_language=False) + evaluate(loaded, kinds_suite, own_language=False)
    print("\nboth suites, every query searching every language (the API default)\n" + report(results))
    return results


# -- the suite itself -------------------------------------------------------------------------


@pytest.mark.parametrize("path", [SUITE, KINDS_SUITE], ids=lambda p: p.stem)
def test_relevance_suite_is_big_enough_and_consistent(path: Path) -> None:
    suite = load_suite(path)
    langs = {q["lang"] for q in suite.queries}
    keys = {r.key for r in suite.records}

    assert 60 <= len(suite.records) <= 250
    assert len(suite.queries) >= 50 and len(langs) >= 5
    if path == SUITE:  # the kinds suite is balanced by kind instead
        assert all(sum(q["lang"] == lang for q in suite.queries) >= 8 for lang in langs)
    for q in suite.queries:
        assert q["expected"] and set(q["expected"]) <= keys, q["text"]


@pytest.mark.parametrize("path", [SUITE, KINDS_SUITE], ids=lambda p: p.stem)
def test_relevance_expected_assets_follow_from_visible_tags(path: Path) -> None:
    # The judgements are frozen in the data file; re-derive them so an edited asset cannot leave a
    # stale expectation behind.
    suite = load_suite(path)
    visible = {r.key: {f"{t.model}/{t.tag}" for t in r.visible_tags()} for r in suite.records}

    def holds(expr: Any, tags: set[str]) -> bool:
        if isinstance(expr, str):
            return expr in tags
        op, *rest = expr
        return (all if op == "all" else any)(holds(e, tags) for e in rest)

    for q in suite.queries:
        derived = sorted(k for k, tags in visible.items() if holds(q["relevant_if"], tags))
        if q.get("kind") == "ties":  # the five a person should see first, among equal matches
            records = {r.key: r for r in suite.records}
            derived = sorted(sorted(derived, key=lambda k: tie_order(records[k]))[:TOP])
        assert derived == q["expected"], q["text"]


def tie_order(record: AssetRecord) -> tuple[float, int, float]:
    """Surest visible tag first (a human "yes" counts 1.0), then human-confirmed, then newest."""
    visible = record.visible_tags()
    confidence = max(1.0 if t.state is TagState.CONFIRMED else t.confidence or 0.0 for t in visible)
    confirmed = sum(t.state is TagState.CONFIRMED for t in visible)
    return (-confidence, -confirmed, -datetime.fromisoformat(str(record.created_at)).timestamp())


def test_kinds_suite_has_ten_queries_of_every_kind(kinds_suite: Suite) -> None:
    counts = {kind: sum(q["kind"] == kind for q in kinds_suite.queries) for kind in KINDS}

    assert min(counts.values()) >= 10, counts
    assert {q["kind"] for q in kinds_suite.queries} == set(KINDS)


def test_precision_at_counts_relevant_hits_in_the_first_five() -> None:
    assert precision_at(["a", "x", "b", "y", "z", "c"], {"a", "b", "c"}) == pytest.approx(2 / 3)
    assert precision_at(["a"], {"a"}) == 1.0
    assert precision_at(["x", "y", "z", "w", "v"], {"a", "b", "c", "d", "e", "f"}) == 0.0


# -- the floors -------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", sorted(FLOORS))
def test_relevance_precision_at_5_per_language_meets_its_floor(results: list[QueryResult], lang: str) -> None:
    per = by_language(results)

    assert per[lang] >= FLOORS[lang], report([r for r in results if r.lang == lang])


def test_relevance_precision_at_5_overall_meets_its_floor(results: list[QueryResult]) -> None:
    assert mean(r.precision for r in results) >= OVERALL_FLOOR, report(results)


@pytest.mark.parametrize("kind", KINDS)
def test_relevance_precision_at_5_per_kind_of_query_meets_the_bar(
    results: list[QueryResult], kind: str
) -> None:
    of_kind = [r for r in results if r.kind == kind]

    assert of_kind and mean(r.precision for r in of_kind) >= KIND_FLOOR, report(of_kind)


def test_relevance_precision_at_5_searching_every_language_meets_its_floor(
    results_every_language: list[QueryResult],
) -> None:
    # Words shared across languages ("pan", "tent", "pile", it "vaso" / es "vaso") may pull in
    # other assets here.
    precision = mean(r.precision for r in results_every_language)

    assert precision >= EVERY_LANGUAGE_FLOOR, report(results_every_language)


def test_relevance_review_and_rejected_tags_never_surface(
    results: list[QueryResult], suite: Suite, kinds_suite: Suite
) -> None:
    invisible_only = {
        r.key
        for r in (*suite.records, *kinds_suite.records)
        if (r.tags and not r.visible_tags()) or r.status is AssetStatus.FAILED
    }

    assert not any(set(r.top) & invisible_only for r in results)


# -- Italian highlights: marks on the characters as written ----------------------------------


@pytest.mark.parametrize(
    ("query", "marked"),
    [
        ("tazze", "<em>tazza</em>"),
        ("candele", "<em>candela</em>"),
        ("sedie da giardino", "<em>sedia</em> da <em>giardino</em>"),
        ("vasi", "<em>vaso</em>"),
        ("lampade", "<em>lampada</em> da tavolo"),
        ("cuscini", "<em>cuscino</em>"),
        ("piatti", "<em>piatto</em>"),
        ("funghi", "<em>fungo</em>"),
        ("cappelli", "<em>cappello</em> da sole"),
        ("borse della spesa", "<em>borsa</em> della <em>spesa</em>"),
        ("l'annaffiatoio", "<em>annaffiatoio</em>"),
        ("cucchiaini", "<em>cucchiaino</em>"),
        ("tovaglie", "<em>tovaglia</em>"),
    ],
)
def test_italian_highlights_mark_the_words_as_written(
    loaded: OpenSearchIndex, kinds_suite: Suite, query: str, marked: str
) -> None:
    page = loaded.search(kinds_suite.tenant, SearchQuery(text=query, languages=["it"], size=3))

    assert page.hits, query
    assert marked in page.hits[0].highlights["labels.it"], page.hits[0].highlights
