"""Review queue page latency with a long backlog: the console's ``GET /api/queue`` before and after
the ordered queue entries (:mod:`tagsmith.review`).

10,000 pending items (and 2,000 decided ones) of one tenant in the in-memory object store, written
through ``ReviewStore.put`` as ingestion writes them. Each figure is the median (and p95) of
repeated requests through the console's own :func:`tagsmith.console.handle` with a reviewer token,
so authentication and JSON shaping are included:

* ``before``: what the console did until now: read every review item of the tenant (one GET
  each), filter, sort, slice (the old code, kept here as the baseline: ``select`` over
  ``iter_tenant``);
* ``first_page``: ``/api/queue`` now: one page of 50 items plus counts and backlog from the entry
  keys (no item reads for the counts);
* ``next_page``: the following page by ``cursor`` with ``counts=0`` (what "more" costs);
* ``filtered``: a model + tag + min_confidence filter, first page with counts;
* ``bulk_accept``: 100 items accepted one ``decide`` at a time against one ``bulk_accept``, on an
  object store that sleeps 5 ms per call (simulated S3 round trips; the in-memory store has none).

Object reads per request are counted too (GETs of review items). The in-memory store lists by
sorting every key of the bucket, so listing costs more here than an S3 LIST page would; on S3 the
``before`` path is 10,000 GETs per request, the page 50 GETs plus ~10 LISTs for the counts.

    python -m benchmarks.review_queue             # or: python -m benchmarks.run --only review_queue
    python -m benchmarks.review_queue --items 2000 --repeat 5
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

TENANT = "bench"
MODELS = {"sku": [f"sku-{i:03d}" for i in range(40)], "colour": ["red", "blue", "green", "black", "white"]}


def _populate(n_pending: int, n_decided: int, seed: int = 0) -> tuple[Any, Any, str]:
    from tagsmith.auth import TokenStore
    from tagsmith.records import Alternative
    from tagsmith.review import ReviewItem, ReviewStatus, ReviewStore
    from tagsmith.storage import MemoryObjectStore

    rng = random.Random(seed)
    store = MemoryObjectStore()
    reviews = ReviewStore(store=store, bucket="data")
    for i in range(n_pending + n_decided):
        model = rng.choice(list(MODELS))
        tags = rng.sample(MODELS[model], 3)
        confidence = round(rng.uniform(0.2, 0.95), 4)
        alternatives = tuple(Alternative(t, round(rng.uniform(0.0, confidence), 4)) for t in tags[1:])
        item = ReviewItem(
            id=f"{i:024x}",
            tenant=TENANT,
            asset_path=f"library/{i // 1000:03d}/{i:06d}.jpg",
            model=model,
            model_version="v1",
            suggestion=tags[0],
            confidence=confidence,
            threshold=0.9,
            alternatives=alternatives,
            asset_etag=f"etag{i}",
            created_at=f"2026-11-22T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}.000Z",
            status=ReviewStatus.PENDING if i < n_pending else ReviewStatus.DECIDED,
        )
        reviews.put(item)
    token = TokenStore(store=store, bucket="data").issue(TENANT, name="bench", role="reviewer")
    return store, reviews, token


class _CountingStore:
    """Counts GETs of review items on the way through (what each request reads)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.item_gets = 0

    def get(self, bucket: str, key: str) -> Any:
        if "/reviews/" in key:
            self.item_gets += 1
        return self.inner.get(bucket, key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _services(store: Any) -> Any:
    from tagsmith.auth import TokenStore
    from tagsmith.console import ConsoleServices
    from tagsmith.review import ReviewStore

    class _NoModels:
        def for_tenant(self, tenant: str) -> list[Any]:
            return []

        def invalidate(self, tenant: str | None = None) -> None:
            return None

    reviews = ReviewStore(store=store, bucket="data")
    return ConsoleServices(
        store=store,
        data_bucket="data",
        tokens=TokenStore(store=store, bucket="data"),
        records=None,  # type: ignore[arg-type]  # the queue route reads no records
        reviews=reviews,
        models=_NoModels(),  # type: ignore[arg-type]
        index=None,
        decisions=None,  # type: ignore[arg-type]
        corrections=None,  # type: ignore[arg-type]
    )


def _time(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    seconds = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - t0)
    seconds.sort()
    p95 = seconds[min(len(seconds) - 1, round(0.95 * (len(seconds) - 1)))]
    return {"median_ms": round(statistics.median(seconds) * 1000, 2), "p95_ms": round(p95 * 1000, 2)}


def run(n_pending: int = 10_000, n_decided: int = 2_000, repeat: int = 20) -> dict[str, Any]:
    from tagsmith.console import QueueFilter, Request, handle, select
    from tagsmith.review import ReviewStatus

    t0 = time.perf_counter()
    store, _, token = _populate(n_pending, n_decided)
    populate_s = time.perf_counter() - t0
    counting = _CountingStore(store)
    services = _services(counting)
    auth = {"authorization": f"Bearer {token}"}

    def api(target: str) -> dict[str, Any]:
        response = handle(Request.build("GET", target, auth), services)
        assert response.status == 200, response.body[:200]
        return dict(json.loads(response.body))

    def before() -> list[Any]:
        # the console's queue route until this change: every item read, filtered, sorted, sliced
        items = list(services.reviews.iter_tenant(TENANT))
        page = select(items, QueueFilter(), limit=50)
        sum(1 for i in items if i.status is ReviewStatus.PENDING)
        return page

    first = api("/api/queue?limit=50")  # the first request also marks the index built (reads each item once)
    assert first["total"] == n_pending and len(first["items"]) == 50
    assert [i["id"] for i in first["items"]] == [i.id for i in before()], "page differs from the old order"
    cursor = first["next_cursor"]
    results: dict[str, Any] = {"items_pending": n_pending, "items_decided": n_decided, "repeat": repeat}
    cases: dict[str, Callable[[], Any]] = {
        "before": before,
        "first_page": lambda: api("/api/queue?limit=50"),
        "next_page": lambda: api(f"/api/queue?limit=50&counts=0&cursor={cursor}"),
        "filtered": lambda: api("/api/queue?limit=50&model=sku&tag=sku-007&min_confidence=0.3"),
    }
    for name, fn in cases.items():
        counting.item_gets = 0
        fn()
        gets = counting.item_gets
        results[name] = {**_time(fn, repeat if name != "before" else max(3, repeat // 4)), "item_gets": gets}
    results["speedup_first_page"] = round(
        results["before"]["median_ms"] / results["first_page"]["median_ms"], 1
    )
    results["populate_seconds"] = round(populate_s, 1)
    results["bulk_accept"] = bulk_accept_run()
    return results


class _SlowStore:
    """Adds a fixed delay to every object-store call: S3's round trip, which bulk accept is bound by."""

    def __init__(self, inner: Any, seconds: float) -> None:
        self.inner, self.seconds = inner, seconds

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.inner, name)

        def slow(*args: Any, **kw: Any) -> Any:
            time.sleep(self.seconds)
            return call(*args, **kw)

        return slow


def bulk_accept_run(n: int = 100, latency_ms: float = 5.0) -> dict[str, Any]:
    """Accepting ``n`` items one request at a time (each its own ``decide``) against one bulk accept,
    on an object store with ``latency_ms`` per call (simulated; the in-memory store has none)."""
    from tagsmith.decisions import CorrectionTracker, DecisionService, RetrainPolicy
    from tagsmith.records import AssetRecord, AssetStatus, Source, SourceObject, TagAssignment, TagState
    from tagsmith.review import ReviewItem, ReviewStore
    from tagsmith.search import InMemorySearchIndex
    from tagsmith.storage import MemoryObjectStore, RecordStore

    class _NoModels:
        def for_tenant(self, tenant: str) -> list[Any]:
            return []

        def invalidate(self, tenant: str | None = None) -> None:
            return None

    out: dict[str, Any] = {"items": n, "simulated_store_latency_ms": latency_ms}
    for mode in ("one_by_one", "bulk"):
        memory = MemoryObjectStore()
        records = RecordStore(store=memory, bucket="data")
        reviews = ReviewStore(store=memory, bucket="data")
        ids = []
        for i in range(n):
            path = f"p/{i:05d}.jpg"
            tag = TagAssignment("sku", "milk", TagState.REVIEW, Source.AI, confidence=0.5, model_version="v1")
            record = AssetRecord(
                TENANT,
                path,
                SourceObject("assets", f"{TENANT}/{path}", "e", 1),
                AssetStatus.TAGGED,
                tags=(tag,),
            )
            records.update(_asset(TENANT, path), functools.partial(_replaced_by, record))
            item = ReviewItem(f"{i:024x}", TENANT, path, "sku", "v1", "milk", 0.5, 0.9)
            reviews.put(item)
            ids.append(item.id)
        slow = _SlowStore(memory, latency_ms / 1000)
        service = DecisionService(
            records=RecordStore(store=slow, bucket="data"),
            reviews=ReviewStore(store=slow, bucket="data"),
            models=_NoModels(),
            index=InMemorySearchIndex(),
            corrections=CorrectionTracker(
                store=slow, data_bucket="data", models=_NoModels(), policy=RetrainPolicy(0)
            ),
        )
        t0 = time.perf_counter()
        if mode == "bulk":
            results = service.bulk_accept(TENANT, ids, reviewer="bench")
        else:
            results = [service.decide(TENANT, i, "accept", reviewer="bench") for i in ids]
        seconds = time.perf_counter() - t0
        assert all(not isinstance(r, Exception) and r.changed for r in results)
        out[mode] = {"seconds": round(seconds, 2), "items_per_s": round(n / seconds, 1)}
    out["speedup"] = round(out["one_by_one"]["seconds"] / out["bulk"]["seconds"], 1)
    return out


def _replaced_by(record: Any, _old: Any) -> Any:
    """A record update that writes ``record`` whatever was there."""
    return record


def _asset(tenant: str, path: str) -> Any:
    from tagsmith.keys import AssetKey

    return AssetKey(tenant, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000, help="pending items (default 10000)")
    parser.add_argument("--decided", type=int, default=2_000, help="decided items besides (default 2000)")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.items, args.decided, args.repeat), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
