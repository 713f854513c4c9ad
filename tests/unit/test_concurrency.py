"""Concurrent I/O in a batch (tagsmith.concurrency) and what the ingest path keeps under it."""

from __future__ import annotations

import contextvars
import threading
import time

import pytest
from tagsmith.concurrency import map_io
from tagsmith.keys import AssetKey
from tagsmith.wiring import Components

from tests.fakes import COLOURS, solid_jpeg
from tests.unit.test_ingest_service import train_colours, upload

running: contextvars.ContextVar[str] = contextvars.ContextVar("running", default="none")


def test_map_io_keeps_order_and_runs_calls_side_by_side() -> None:
    inside: set[int] = set()
    most = [0]
    lock = threading.Lock()

    def call(n: int) -> int:
        with lock:
            inside.add(n)
            most[0] = max(most[0], len(inside))
        time.sleep(0.05)
        with lock:
            inside.discard(n)
        return n * 10

    assert map_io(call, range(8)) == [n * 10 for n in range(8)]
    assert most[0] > 1  # one after another would never have two inside


def test_map_io_runs_each_call_in_the_callers_context() -> None:
    # which function's logger a library line goes to is a context variable (tagsmith.logs)
    token = running.set("tagsmith-ingest")
    try:
        assert map_io(lambda _: running.get(), range(4)) == ["tagsmith-ingest"] * 4
    finally:
        running.reset(token)


def test_map_io_raises_the_first_error_after_every_call_finished() -> None:
    done: list[int] = []

    def call(n: int) -> None:
        if n == 1:
            raise ValueError("boom")
        time.sleep(0.02)
        done.append(n)

    with pytest.raises(ValueError, match="boom"):
        map_io(call, range(4))
    assert sorted(done) == [0, 2, 3]


def test_the_same_object_twice_in_one_batch_gives_one_record_and_one_document(components: Components) -> None:
    # at-least-once delivery can put the same event twice in one batch: their commits now race,
    # and the record's compare-and-swap decides
    train_colours(components, threshold=0.999)  # every photo waits for review
    ref = upload(components, "acme/twice.jpg", solid_jpeg(COLOURS["red"], seed=5))
    outcomes = components.ingest.ingest([ref, ref, ref])
    assert all(not isinstance(o, Exception) for o in outcomes)
    record, _ = components.records.get(AssetKey("acme", "twice.jpg"))
    assert record.source.etag == ref.etag
    assert components.index.count("acme") == 1
    assert len(components.reviews.pending("acme")) == 1
