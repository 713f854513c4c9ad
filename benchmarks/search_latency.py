"""Search latency (median, p95) at 10,000 and 100,000 indexed assets on osmem.

Synthetic records (1-3 tags of the relevance suite's multilingual taxonomies, mixed states,
confidences, media types and upload dates) are shaped by ``document_from_record`` and bulk loaded
through ``OpenSearchIndex.bulk_upsert`` into one tenant; the index grows from one size to the next,
so 100k costs one 100k load, not 110k. Then a mixed query set runs against it, each query timed on
the client (what the HTTP handler would wait for):

* ``text``: free text in several languages (the relevance suite's queries), first page with facets;
* ``text_page2``: the same, second page via ``search_after`` (no facets);
* ``filters``: no text, tag / model / min_confidence / source / media type / date filters, with facets;
* ``filters_page2``: the same, second page (no facets);
* ``text_and_filters``: text plus a filter, with facets.

``python -m benchmarks.search_latency`` prints the figures as JSON (about 5 minutes on 2 cores,
mostly the 100k bulk load at ~400 documents/s). ``--sizes 2000`` for a quick look.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch
from osmem_server import OsmemServer
from tagsmith.records import AssetRecord, AssetStatus, Source, SourceObject, TagAssignment, TagState
from tagsmith.search import OpenSearchIndex, SearchQuery
from tagsmith.taxonomy import Taxonomy

SUITE = Path(__file__).resolve().parents[1] / "tests" / "data" / "relevance" / "outdoor-grocery.json"
TENANT = "bench"
MEDIA = ("image/jpeg", "image/jpeg", "image/jpeg", "image/png", "video/mp4")


def synthetic_records(
    taxonomies: dict[str, Taxonomy], start: int, stop: int, *, seed: int = 5
) -> Iterator[AssetRecord]:
    """Records ``start`` .. ``stop - 1`` of a reproducible synthetic catalogue."""
    tags = [(model, t.id) for model, tax in sorted(taxonomies.items()) for t in tax.tags]
    for n in range(start, stop):
        rng = random.Random(seed * 1_000_003 + n)
        assignments = []
        for model, tag in rng.sample(tags, rng.randint(1, 3)):
            roll = rng.random()
            state = TagState.CONFIRMED if roll < 0.2 else TagState.REVIEW if roll < 0.35 else TagState.APPLIED
            source = Source.HUMAN if state is TagState.CONFIRMED else Source.AI
            assignments.append(
                TagAssignment(model, tag, state, source, round(rng.uniform(0.3, 0.99), 2), model_version="3")
            )
        day = f"2026-{1 + n % 12:02d}-{1 + n % 28:02d}T{n % 24:02d}:00:00.000Z"
        path = f"shoots/{n // 1000:03d}/IMG_{n:07d}.jpg"
        yield AssetRecord(
            tenant=TENANT,
            path=path,
            source=SourceObject("assets", f"{TENANT}/{path}", f"e{n}", 100_000 + n),
            status=AssetStatus.TAGGED,
            media_type=rng.choice(MEDIA),
            width=4000,
            height=3000,
            models={m: "3" for m, _ in tags},
            tags=tuple(assignments),
            created_at=day,
            updated_at=day,
        )


def query_set(suite: dict[str, Any]) -> dict[str, list[SearchQuery]]:
    texts = [SearchQuery(text=q["text"], size=20) for q in suite["queries"][::3]]  # 35 queries, 9 languages
    filters = [
        SearchQuery(tags=["apparel/rain-jacket"], size=20),
        SearchQuery(model="grocery", min_confidence=0.8, size=20),
        SearchQuery(source="human", size=20),
        SearchQuery(media_type="video/mp4", size=20),
        SearchQuery(uploaded_from="2026-03-01", uploaded_to="2026-05-31", size=20),
        SearchQuery(review_state="pending", size=20),
        SearchQuery(tags=["apparel/backpack"], min_confidence=0.9, size=20),
    ]
    mixed = [
        SearchQuery(text="veste de pluie", min_confidence=0.8, size=20),
        SearchQuery(text="Jacke", media_type="image/jpeg", size=20),
        SearchQuery(text="苹果", uploaded_from="2026-06-01", size=20),
        SearchQuery(text="cheese", source="human", size=20),
    ]
    return {"text": texts, "filters": filters, "text_and_filters": mixed}


def _timed(index: OpenSearchIndex, query: SearchQuery) -> tuple[float, Any]:
    started = time.perf_counter()
    page = index.search(TENANT, query)
    return (time.perf_counter() - started) * 1000, page


def measure(index: OpenSearchIndex, queries: dict[str, list[SearchQuery]], *, rounds: int) -> dict[str, Any]:
    timings: dict[str, list[float]] = {}
    for _ in range(rounds):
        for kind, batch in queries.items():
            for query in batch:
                ms, page = _timed(index, query)
                timings.setdefault(kind, []).append(ms)
                if kind != "text_and_filters" and page.next_search_after is not None:
                    second = SearchQuery(**{**_fields(query), "search_after": page.next_search_after})
                    ms, _ = _timed(index, second)
                    timings.setdefault(f"{kind}_page2", []).append(ms)
    everything = [ms for values in timings.values() for ms in values]
    return {kind: _summary(values) for kind, values in {**timings, "all": everything}.items()}


def _fields(query: SearchQuery) -> dict[str, Any]:
    return {name: getattr(query, name) for name in query.__dataclass_fields__}


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
    }


def run(sizes: tuple[int, ...] = (10_000, 100_000), *, rounds: int = 3) -> dict[str, Any]:
    """Load up to each size in turn and time the query set; returns the figures per size."""
    suite = json.loads(SUITE.read_text("utf-8"))
    taxonomies = {model: Taxonomy.from_dict(t) for model, t in suite["taxonomies"].items()}
    queries = query_set(suite)
    results: dict[str, Any] = {"sizes": {}}
    with OsmemServer.start(freeze=False) as server:
        client = OpenSearch(hosts=[server.url], timeout=120)
        index = OpenSearchIndex(client=client)
        loaded = 0
        for size in sorted(sizes):
            started = time.perf_counter()
            errors = index.bulk_upsert(
                ((r, taxonomies) for r in synthetic_records(taxonomies, loaded, size)), TENANT
            )
            load_seconds = time.perf_counter() - started
            if errors:
                raise RuntimeError(f"{len(errors)} documents failed to index, first: {errors[0]}")
            added, loaded = size - loaded, size
            measure(index, queries, rounds=1)  # warm up
            results["sizes"][str(size)] = {
                "documents": index.count(TENANT),
                "bulk_docs_per_s": round(added / load_seconds),
                "latency": measure(index, queries, rounds=rounds),
            }
            # progress on stderr: a long run shows each size as soon as it is measured
            print(json.dumps({str(size): results["sizes"][str(size)]}), file=sys.stderr, flush=True)
        client.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(run(tuple(args.sizes), rounds=args.rounds), indent=1))


if __name__ == "__main__":
    main()
