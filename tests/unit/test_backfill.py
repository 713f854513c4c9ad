"""Backfill core: planning, rate limiting, resuming, fencing, progress; with in-memory adapters."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from tagsmith.assetwriter import IngestOutcome
from tagsmith.backfill import (
    BackfillError,
    BackfillOptions,
    BackfillProgress,
    BackfillService,
    BackfillStatus,
    MemoryDelayQueue,
    backfill_id_for,
    batch_key,
    next_plan_delay,
    parse_promotion_key,
    plan_delays,
    progress_key,
)
from tagsmith.errors import InvalidInputError, TransientError
from tagsmith.events import ObjectRef
from tagsmith.storage import MemoryObjectStore

MODELS = {"product": "20261122-061500-3f9a"}


class FakeIngest:
    """Records every ref it is given; outcome per key decided by ``script`` (default: tagged)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.script: dict[str, str | Exception] = {}

    def __call__(self, refs: Sequence[ObjectRef]) -> list[IngestOutcome | Exception]:
        out: list[IngestOutcome | Exception] = []
        for r in refs:
            self.seen.append(r.key)
            s = self.script.get(r.key, "tagged")
            out.append(s if isinstance(s, Exception) else IngestOutcome(r.key, s, "acme"))
        return out


@pytest.fixture
def store() -> MemoryObjectStore:
    s = MemoryObjectStore()
    for i in range(23):
        s.put("assets", f"acme/photos/{i:03d}.jpg", b"x")
    s.put("assets", "other/photos/000.jpg", b"x")  # another tenant: never listed
    return s


@pytest.fixture
def ingest() -> FakeIngest:
    return FakeIngest()


@pytest.fixture
def queue() -> MemoryDelayQueue:
    return MemoryDelayQueue()


def service(
    store: MemoryObjectStore, queue: MemoryDelayQueue, ingest: FakeIngest, **kw: object
) -> BackfillService:
    return BackfillService(
        store=store,
        data_bucket="data",
        assets_bucket="assets",
        queue=queue,
        ingest=ingest,
        active_models=lambda tenant: dict(MODELS),
        clock=lambda: "2026-11-22T00:00:00Z",
        **kw,
    )


def drain(svc: BackfillService, queue: MemoryDelayQueue, limit: int = 1000) -> list[str]:
    """Deliver every queued message (delays ignored) until the queue is empty."""
    results = []
    for _ in range(limit):
        batch = queue.take()
        if not batch:
            return results
        for m in batch:
            results.append(svc.handle(json.dumps(m)))
    raise AssertionError("backfill did not converge")


def test_backfill_requeues_every_asset_of_the_tenant_once(store, queue, ingest):
    svc = service(store, queue, ingest)
    svc.start("acme", options=BackfillOptions(keys_per_message=4, page_size=10))
    drain(svc, queue)
    assert sorted(ingest.seen) == [f"acme/photos/{i:03d}.jpg" for i in range(23)]
    status = svc.status("acme")
    assert status.complete
    assert (status.progress.listed, status.done, status.failed, status.pending) == (23, 23, 0, 0)
    assert status.progress.messages == 7  # pages of 10, 10, 3 -> 3 + 3 + 1 messages


def test_backfill_plan_spreads_messages_to_respect_the_rate(store, queue, ingest):
    svc = service(store, queue, ingest)
    svc.start("acme", options=BackfillOptions(rate=2.0, keys_per_message=2, page_size=10))
    plan = queue.take()
    svc.handle(plan[0])
    work = [(m, d) for m, d in queue.sent if m["kind"] == "work"]
    nxt = [(m, d) for m, d in queue.sent if m["kind"] == "plan"]
    assert [d for _, d in work] == [0, 1, 2, 3, 4]  # 2 keys per message at 2 assets/s
    assert nxt == [({"kind": "plan", "tenant": "acme", "backfill": svc.list_ids("acme")[0], "step": 1}, 5)]


def test_plan_delays_are_capped_at_the_sqs_maximum():
    assert max(plan_delays(10_000, 100, 1.0)) == 900
    assert next_plan_delay(10_000, 0.5) == 900


def test_backfill_resumes_from_the_cursor_after_the_chain_stopped(store, queue, ingest):
    svc = service(store, queue, ingest)
    p = svc.start("acme", backfill_id="bf1", options=BackfillOptions(keys_per_message=5, page_size=10))
    svc.handle(queue.take()[0])  # step 0: first page
    queue.take()  # the chain is lost: its next plan message and work vanish (e.g. dead-lettered)
    assert svc.progress("acme", "bf1").cursor == "acme/photos/009.jpg"
    svc.start("acme", backfill_id=p.id)  # an operator resumes
    drain(svc, queue)
    assert sorted(ingest.seen) == [f"acme/photos/{i:03d}.jpg" for i in range(10, 23)]  # nothing re-listed
    assert svc.progress("acme", "bf1").state == "listed"


def test_duplicate_plan_message_is_fenced_off_by_the_step(store, queue, ingest):
    svc = service(store, queue, ingest)
    svc.start("acme", options=BackfillOptions(keys_per_message=5, page_size=10))
    plan = queue.take()[0]
    assert svc.handle(plan) == "planned"
    assert svc.handle(plan) == "stale"  # redelivered after the step was saved
    assert len([m for m, _ in queue.sent if m["kind"] == "work"]) == 2


def test_promotion_event_starts_one_backfill_even_if_redelivered(store, queue, ingest):
    svc = service(store, queue, ingest)
    event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": "data"},
                    "object": {"key": "tenants/acme/models/product/active.json"},
                },
            }
        ]
    }
    assert svc.handle(json.dumps(event)) == "started"
    svc.handle(json.dumps(event))
    plans = [m for m, _ in queue.sent if m["kind"] == "plan"]
    assert len(plans) == 1
    assert svc.list_ids("acme") == ["product-20261122-061500-3f9a"]
    assert (
        svc.progress("acme", "product-20261122-061500-3f9a").reason
        == "product 20261122-061500-3f9a activated"
    )


def test_a_rollback_to_a_version_backfilled_before_re_tags_the_library(store, queue, ingest):
    # GIVEN version v2 was activated and its backfill ran
    svc = service(store, queue, ingest)
    key = "tenants/acme/models/product/active.json"

    def activate(at: str, reason: str) -> None:
        body = {"version": "20261122-061500-3f9a", "at": at, "reason": reason}
        store.put("data", key, json.dumps(body).encode())
        svc.on_promotion(key)

    activate("2026-11-22T06:15:01.000Z", "first version")
    # WHEN another version won meanwhile and v2 is made active again (a rollback writes active.json)
    activate("2026-12-07T09:00:00.000Z", "rolled back from 20261201-000000-000-aaaa")
    # THEN that activation starts its own backfill, so the library is re-tagged by v2 again
    ids = svc.list_ids("acme")
    assert len(ids) == 2 and all(i.startswith("product-20261122-061500-3f9a-at") for i in ids)
    assert "rolled back" in svc.progress("acme", sorted(ids)[-1]).reason
    assert len([m for m, _ in queue.sent if m["kind"] == "plan"]) == 2


def test_event_for_a_record_named_active_is_ignored(store, queue, ingest):
    svc = service(store, queue, ingest)
    event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "data"}, "object": {"key": "tenants/acme/records/x/active.json"}},
            }
        ]
    }
    assert svc.handle(event) == "ignored"
    assert queue.sent == []


def test_work_counts_outcomes_and_retries_transient_errors(store, queue, ingest):
    svc = service(store, queue, ingest)
    ingest.script = {"acme/a.jpg": "failed", "acme/b.jpg": "unchanged", "acme/c.jpg": TransientError("slow")}
    msg = {
        "kind": "work",
        "tenant": "acme",
        "backfill": "bf",
        "seq": 3,
        "bucket": "assets",
        "keys": ["acme/a.jpg", "acme/b.jpg", "acme/c.jpg"],
        "models": MODELS,
    }
    with pytest.raises(TransientError, match="1 of 3 assets failed transiently"):
        svc.handle(msg)
    first = json.loads(store.get("data", batch_key("acme", "bf", 3)).body)
    assert first["counts"]["errors"] == 1
    ingest.script["acme/c.jpg"] = "tagged"
    svc.handle(msg)  # the redelivery overwrites the same result object: nothing counted twice
    counts = json.loads(store.get("data", batch_key("acme", "bf", 3)).body)["counts"]
    assert (counts["failed"], counts["unchanged"], counts["tagged"], counts["errors"]) == (1, 1, 1, 0)


def test_work_refreshes_models_cached_from_before_the_promotion(store, queue, ingest):
    refreshed: list[str] = []
    svc = service(
        store, queue, ingest, refresh_models=refreshed.append, cached_models=lambda t: {"product": "older"}
    )
    msg = {
        "kind": "work",
        "tenant": "acme",
        "backfill": "bf",
        "seq": 0,
        "bucket": "assets",
        "keys": ["acme/a.jpg"],
        "models": MODELS,
    }
    svc.handle(msg)
    assert refreshed == ["acme"]


def test_status_of_a_tenant_without_backfill_says_how_to_start(store, queue, ingest):
    with pytest.raises(BackfillError, match="tagsmith backfill start"):
        service(store, queue, ingest).status("acme")


def test_malformed_messages_are_poison_not_retried(store, queue, ingest):
    svc = service(store, queue, ingest)
    with pytest.raises(InvalidInputError):
        svc.handle("not json")
    with pytest.raises(InvalidInputError):
        svc.handle({"kind": "work", "tenant": "acme"})
    with pytest.raises(InvalidInputError):
        svc.handle({"kind": "plan", "tenant": "../x", "backfill": "a", "step": 0})


def test_backfill_ids_and_keys_are_validated():
    assert backfill_id_for(MODELS) == "product-20261122-061500-3f9a"
    assert progress_key("acme", "bf-1") == "tenants/acme/backfills/bf-1.json"
    with pytest.raises(BackfillError):
        progress_key("acme", "../../other")
    assert parse_promotion_key("tenants/acme/models/product/active.json") == ("acme", "product")
    assert parse_promotion_key("tenants/ACME/models/product/active.json") is None
    with pytest.raises(BackfillError):
        BackfillOptions(rate=0)


def test_restarting_a_finished_backfill_does_nothing(store, queue, ingest):
    svc = service(store, queue, ingest)
    svc.start("acme", backfill_id="bf")
    drain(svc, queue)
    n = len(ingest.seen)
    svc.start("acme", backfill_id="bf")
    assert queue.sent == []
    assert len(ingest.seen) == n


def test_start_uses_the_configured_default_rate(store, queue, ingest):
    svc = service(store, queue, ingest, default_options=BackfillOptions(rate=7.0))
    assert svc.start("acme").options.rate == 7.0
    assert svc.start("acme", backfill_id="other", options=BackfillOptions(rate=3.0)).options.rate == 3.0


def test_a_long_video_handed_to_its_job_counts_as_done() -> None:
    # ingestion answers "queued" for a video that became a resumable job: the backfill must finish
    progress = BackfillProgress(
        id="b1",
        tenant="acme",
        assets_bucket="assets",
        models={},
        options=BackfillOptions(),
        state="listed",
        listed=3,
    )
    status = BackfillStatus(progress, counts={"tagged": 1, "queued": 1, "failed": 1})
    assert (status.done, status.failed, status.pending, status.complete) == (2, 1, 0, True)
