"""Long videos as resumable jobs (issue 6): S3 on in-process moto (ranged reads, compare-and-swap),
the real ingest service, the video-jobs queue as a MemoryQueue drained by hand so every delivery,
duplicate, crash and supersede can be staged. Windows are forced tiny (4 s of a 20 s clip, one
window per invocation), so a clip takes several continuations."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import av
import numpy as np
import pytest
from tagsmith.config import Settings
from tagsmith.encoder import EncoderSet
from tagsmith.events import ObjectRef
from tagsmith.keys import AssetKey
from tagsmith.queues import MemoryQueue
from tagsmith.records import AssetStatus, Source, TagAssignment, TagState
from tagsmith.search import InMemorySearchIndex
from tagsmith.storage import S3ObjectStore
from tagsmith.video.analysis import thumbnails_prefix
from tagsmith.video.jobstate import JobStatus, checkpoints_prefix
from tagsmith.videojobs import VideoJobPolicy
from tagsmith.wiring import Components, build

from tests.fakes import FakeEncoder
from tests.functional.conftest import HANDLER_ASSETS, HANDLER_DATA
from tests.videoclips import colour_clip, install_colour_model

ASSETS, DATA = HANDLER_ASSETS, HANDLER_DATA
# 20 s, cuts at 4, 7, 12 and 16 s; keyframes every 2.5 s besides (gop 25 at 10 fps)
SHOTS = (("red", 4.0), ("blue", 3.0), ("red", 5.0), ("green", 4.0), ("blue", 4.0))
CLIP = colour_clip(SHOTS, gop=25)
ONE_WINDOW = lambda: 0.0  # noqa: E731  (no time left after a window: one window per invocation)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stack(moto_aws: dict[str, Any]) -> Iterator[tuple[Components, MemoryQueue, Clock]]:
    s3 = moto_aws["s3"]
    c = build(
        Settings(data_bucket=DATA, assets_bucket=ASSETS),
        store=S3ObjectStore(client=s3),
        index=InMemorySearchIndex(),
        encoder=FakeEncoder(),
    )
    install_colour_model(c)
    queue, clock = MemoryQueue(), Clock()
    c.ingest.video_jobs = c.video_job_service(
        queue, VideoJobPolicy(inline_seconds=10.0, window_seconds=4.0, margin_seconds=0.0), clock=clock
    )
    yield c, queue, clock


def upload(c: Components, key: str, body: bytes) -> ObjectRef:
    etag = c.store.put(ASSETS, key, body)
    return ObjectRef(ASSETS, key, etag, len(body))


def record(c: Components, path: str):
    found = c.records.get(AssetKey("acme", path))
    assert found is not None
    return found[0]


def drain(c: Components, queue: MemoryQueue, *, remaining: Any = ONE_WINDOW, limit: int = 50) -> list[str]:
    """Deliver queued messages (in order, as they come) until the queue is empty."""
    outcomes = []
    while queue.messages:
        assert len(outcomes) < limit, "the job never finished"
        body = queue.messages.pop(0)
        assert c.ingest.video_jobs is not None
        outcomes.append(c.ingest.video_jobs.handle(json.dumps(body), remaining=remaining))
    return outcomes


def segments(r) -> list[tuple[Any, ...]]:
    return [
        (s.tag, s.start, s.end, s.peak_confidence, s.mean_confidence, s.peak_time, s.state)
        for s in r.segments
    ]


def keys_under(c: Components, prefix: str) -> list[str]:
    return [i.key for i in c.store.list(DATA, prefix)]


def test_a_long_video_runs_as_windows_and_equals_the_single_pass(stack) -> None:
    c, queue, _clock = stack
    # GIVEN the single-pass result for the same bytes (jobs off)
    jobs, c.ingest.video_jobs = c.ingest.video_jobs, None
    c.ingest.ingest([upload(c, "acme/inline.mp4", CLIP)])
    c.ingest.video_jobs = jobs
    single = record(c, "inline.mp4")
    assert [(s.tag, s.start) for s in single.segments] == [
        ("blue", 4.0), ("blue", 16.0), ("green", 12.0), ("red", 0.0), ("red", 7.0),
    ]  # fmt: skip

    # WHEN the same clip is uploaded under another key: longer than the inline bound -> a job
    [outcome] = c.ingest.ingest([upload(c, "acme/long.mp4", CLIP)])
    assert outcome.status == "queued" and "running" in outcome.message
    assert c.records.get(AssetKey("acme", "long.mp4")) is None  # no record until the last step
    job = c.ingest.video_jobs.get("acme", "long.mp4")
    assert job is not None and (job.status, job.step, job.windows_estimate) == (JobStatus.RUNNING, 0, 5)
    outcomes = drain(c, queue)

    # THEN several continuations, then one record whose segments are the single pass's exactly
    assert outcomes[-1] == "done" and outcomes.count("continued") >= 4
    r = record(c, "long.mp4")
    assert segments(r) == segments(single)
    assert (r.status, r.duration, r.revision) == (AssetStatus.TAGGED, single.duration, 1)
    assert [(t.tag, t.state) for t in r.tags] == [(t.tag, t.state) for t in single.tags]
    job = c.ingest.video_jobs.get("acme", "long.mp4")
    assert job is not None and job.status is JobStatus.DONE and job.progress == 1.0
    assert len(job.windows) >= 5 and job.windows[0].start == 0.0 and job.windows[-1].end is None
    # windows are cut at keyframes, end to end
    assert all(a.end == b.start for a, b in zip(job.windows, job.windows[1:], strict=False))
    assert keys_under(c, checkpoints_prefix("acme", "long.mp4", r.source.etag)) == []
    for s in r.segments:  # the thumbnails of the peaks were written, from the checkpoints
        assert c.store.get(DATA, s.thumbnail_key or "").body[:3] == b"\xff\xd8\xff"


def test_redelivered_and_duplicate_messages_change_nothing(stack) -> None:
    c, queue, clock = stack
    ref = upload(c, "acme/long.mp4", CLIP)
    c.ingest.ingest([ref])
    c.ingest.ingest([ref])  # the upload event redelivered: the running job is kept, no second chain
    assert len(queue.messages) == 1
    outcomes = []
    while queue.messages:
        body = json.dumps(queue.messages.pop(0))
        outcomes.append(c.ingest.video_jobs.handle(body, remaining=ONE_WINDOW))
        # every message delivered twice (SQS at-least-once): the copy finds the step done
        outcomes.append(c.ingest.video_jobs.handle(body, remaining=ONE_WINDOW))
        clock.now += 1
    # each copy finds its step done (the last one finds the job done)
    assert outcomes[-2:] == ["done", "done"] and outcomes[1:-2:2] == ["duplicate"] * (len(outcomes) // 2 - 1)
    assert outcomes[0:-2:2] == ["continued"] * (len(outcomes) // 2 - 1)
    r = record(c, "long.mp4")
    assert r.revision == 1  # written once
    # a late copy of the last message, and the upload event again: nothing moves
    assert c.ingest.video_jobs.handle(body, remaining=ONE_WINDOW) == "done"
    [again] = c.ingest.ingest([ref])
    assert again.status == "unchanged" and record(c, "long.mp4").revision == 1 and not queue.messages


def test_a_crashed_step_is_taken_over_from_its_checkpoint(stack, monkeypatch: pytest.MonkeyPatch) -> None:
    c, queue, clock = stack
    c.ingest.ingest([upload(c, "acme/long.mp4", CLIP)])
    jobs = c.ingest.video_jobs
    first = json.dumps(queue.messages.pop(0))
    assert jobs.handle(first, remaining=ONE_WINDOW) == "continued"
    second = json.dumps(queue.messages.pop(0))
    # GIVEN an invocation that dies (no exception handling: the process is gone) after its window
    # was checkpointed, before it queued the next step
    monkeypatch.setattr(jobs, "_continue", lambda job: (_ for _ in ()).throw(SystemExit("killed")))
    monkeypatch.setattr(jobs, "_release", lambda job: job)
    with pytest.raises(SystemExit):
        jobs.handle(second, remaining=ONE_WINDOW)
    monkeypatch.undo()
    assert not queue.messages
    # WHEN its message comes back while the lease still runs: it waits for the lease
    assert jobs.handle(second, remaining=ONE_WINDOW) == "duplicate"
    # ... and after the visibility timeout (longer than any lease) it takes over at the next window
    clock.now += 1000
    before = jobs.get("acme", "long.mp4")
    assert before is not None and before.step == 2
    assert jobs.handle(second, remaining=ONE_WINDOW) == "continued"
    assert drain(c, queue)[-1] == "done"
    job = jobs.get("acme", "long.mp4")
    assert job is not None and [w.step for w in job.windows] == list(range(len(job.windows)))
    assert [(s.tag, s.start) for s in record(c, "long.mp4").segments][:2] == [("blue", 4.0), ("blue", 16.0)]


def test_a_newer_upload_supersedes_a_running_job(stack) -> None:
    c, queue, _clock = stack
    old = upload(c, "acme/long.mp4", CLIP)
    c.ingest.ingest([old])
    drain_two = [
        c.ingest.video_jobs.handle(json.dumps(queue.messages.pop(0)), remaining=ONE_WINDOW) for _ in range(2)
    ]
    assert drain_two == ["continued", "continued"]
    assert keys_under(c, checkpoints_prefix("acme", "long.mp4", old.etag or ""))
    # WHEN the key is overwritten by another 20 s clip, all green
    new = upload(c, "acme/long.mp4", colour_clip((("green", 20.0),), gop=25))
    assert new.etag != old.etag
    c.ingest.ingest([new])
    # THEN the old job's pending message stops it, the new job runs, and the record is the new one's
    outcomes = drain(c, queue)
    assert outcomes[0] == "superseded" and outcomes[-1] == "done"
    r = record(c, "long.mp4")
    assert r.source.etag == new.etag and [(s.tag, s.start) for s in r.segments] == [("green", 0.0)]
    assert keys_under(c, checkpoints_prefix("acme", "long.mp4", old.etag or "")) == []
    job = c.ingest.video_jobs.get("acme", "long.mp4")
    assert job is not None and job.source.etag == new.etag and job.status is JobStatus.DONE


def test_the_object_replaced_between_steps_stops_the_job_at_its_next_step(stack) -> None:
    c, queue, _clock = stack
    c.ingest.ingest([upload(c, "acme/long.mp4", CLIP)])
    assert c.ingest.video_jobs.handle(json.dumps(queue.messages.pop(0)), remaining=ONE_WINDOW) == "continued"
    upload(c, "acme/long.mp4", b"not a video any more")  # its own event has not arrived yet
    assert drain(c, queue) == ["superseded"]
    job = c.ingest.video_jobs.get("acme", "long.mp4")
    assert job is not None and job.status is JobStatus.SUPERSEDED
    assert c.records.get(AssetKey("acme", "long.mp4")) is None


def _corrupt_between(data: bytes, start: float, end: float) -> bytes:
    """Overwrite every video packet presented in [start, end) s with garbage (the index survives)."""
    out = bytearray(data)
    rng = np.random.default_rng(3)
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.pts is None or packet.pos is None or packet.size == 0:
                continue
            t = float(packet.pts * stream.time_base)
            if start <= t < end:
                out[packet.pos : packet.pos + packet.size] = rng.integers(
                    0, 256, packet.size, np.uint8
                ).tobytes()
    return bytes(out)


def test_a_corrupt_window_fails_the_job_with_its_reason_and_keeps_human_tags(stack) -> None:
    c, queue, _clock = stack
    # GIVEN an earlier version of the asset with a human decision on it
    ref = upload(c, "acme/long.mp4", CLIP)
    human = TagAssignment("colour", "blue", TagState.CONFIRMED, Source.HUMAN, decided_by="ana")
    c.ingest.ingest([ref])
    drain(c, queue)
    c.records.update(
        AssetKey("acme", "long.mp4"), lambda r: r and type(r)(**{**_fields(r), "tags": (*r.tags, human)})
    )
    clean = c.ingest.video_jobs.get("acme", "long.mp4")
    assert clean is not None and len(clean.windows) >= 4
    # WHEN a re-upload is garbage from the third window on (the same bytes cut into the same windows)
    broken_from = clean.windows[2].start
    c.ingest.ingest([upload(c, "acme/long.mp4", _corrupt_between(CLIP, broken_from, 60.0))])
    outcomes = drain(c, queue)
    # THEN the job ends failed at that window, and the record says where the file is broken
    assert outcomes[-1] == "failed" and outcomes[:-1] == ["continued"] * (len(outcomes) - 1)
    r = record(c, "long.mp4")
    assert r.status is AssetStatus.FAILED and r.failure is not None
    # its keyframes gone, the broken part joins window 1, most of whose samples are lost
    start = clean.windows[1].start
    assert (
        f"window 1 of the video: 5 of the 9 frames sampled from {start:.1f} s to the end could not be decoded"
        in (r.failure.message)
    )
    assert "that part of the file is corrupt" in r.failure.message
    assert human in r.tags  # human decisions are never lost
    job = c.ingest.video_jobs.get("acme", "long.mp4")
    assert job is not None and job.status is JobStatus.FAILED and job.failure == r.failure
    assert keys_under(c, checkpoints_prefix("acme", "long.mp4", r.source.etag)) == []
    # the old version's thumbnails went with the failed record that replaced it
    assert keys_under(c, thumbnails_prefix("acme", "long.mp4")) == []


def _fields(r) -> dict[str, Any]:
    return {f: getattr(r, f) for f in r.__slots__}


def test_a_step_that_keeps_failing_ends_the_job_on_its_last_delivery(stack, monkeypatch) -> None:
    c, queue, _clock = stack
    c.ingest.ingest([upload(c, "acme/long.mp4", CLIP)])
    body = json.dumps(queue.messages.pop(0))
    jobs = c.ingest.video_jobs

    def down(*a: Any, **k: Any) -> Any:
        raise ConnectionError("S3 is down")

    monkeypatch.setattr(jobs, "_window", down)
    with pytest.raises(ConnectionError):  # an early delivery: retried
        jobs.handle(body, remaining=ONE_WINDOW)
    assert jobs.handle(body, remaining=ONE_WINDOW, last_attempt=True) == "failed"
    r = record(c, "long.mp4")
    assert r.status is AssetStatus.FAILED and r.failure is not None
    assert (
        r.failure.code == "video_job_gave_up"
        and "kept failing (ConnectionError: S3 is down)" in r.failure.message
    )
    # not final: the next upload event of those bytes tries again (a bad file would be "unchanged")
    monkeypatch.undo()
    [again] = c.ingest.ingest([ObjectRef(ASSETS, "acme/long.mp4", r.source.etag, r.source.size)])
    assert again.status == "queued"
    assert drain(c, queue)[-1] == "done" and record(c, "long.mp4").status is AssetStatus.TAGGED


def test_reupload_deletes_the_old_thumbnails_after_the_new_record(stack, monkeypatch) -> None:
    c, _queue, _clock = stack
    c.ingest.video_jobs = None  # short clips, inline
    c.ingest.ingest([upload(c, "acme/spot.mp4", colour_clip())])
    c.ingest.ingest([upload(c, "acme/spot.mp4/inner.mp4", colour_clip())])  # a path below: not ours
    old = record(c, "spot.mp4")
    old_thumbs = {s.thumbnail_key for s in old.segments}
    assert len(old_thumbs) == 3 and all(c.store.head(DATA, k) for k in old_thumbs)
    # GIVEN a log of writes, to see the order
    order: list[str] = []
    put, delete = c.store.put, c.store.delete
    monkeypatch.setattr(
        c.store, "put", lambda b, k, *a, **kw: order.append(f"put {k}") or put(b, k, *a, **kw)
    )
    monkeypatch.setattr(c.store, "delete", lambda b, k: order.append(f"delete {k}") or delete(b, k))
    # WHEN the video is replaced by one that is all green
    c.ingest.ingest([upload(c, "acme/spot.mp4", colour_clip((("green", 4.0),)))])
    new = record(c, "spot.mp4")
    # THEN only the new thumbnails remain, and they were deleted after the record was written
    remaining = set(keys_under(c, thumbnails_prefix("acme", "spot.mp4")))
    inner = {s.thumbnail_key for s in record(c, "spot.mp4/inner.mp4").segments}
    assert remaining == {s.thumbnail_key for s in new.segments} | inner
    record_write = order.index("put tenants/acme/records/spot.mp4.json")
    deletes = [i for i, op in enumerate(order) if op.startswith("delete ")]
    assert len(deletes) == 3 and min(deletes) > record_write
    assert c.writer.delete_stale_thumbnails(new) == 0  # idempotent


def test_stale_thumbnails_spare_the_version_being_processed(stack) -> None:
    c, _queue, _clock = stack
    c.ingest.video_jobs = None
    c.ingest.ingest([upload(c, "acme/spot.mp4", colour_clip())])
    r = record(c, "spot.mp4")
    # GIVEN a newer upload whose ingest has written its thumbnails but not yet its record
    newer = upload(c, "acme/spot.mp4", colour_clip((("green", 4.0),)))
    early = f"{thumbnails_prefix('acme', 'spot.mp4')}{newer.etag}/00000000.jpg"
    c.store.put(DATA, early, b"\xff\xd8\xff", content_type="image/jpeg")
    stale = f"{thumbnails_prefix('acme', 'spot.mp4')}an-old-etag/00001000.jpg"
    c.store.put(DATA, stale, b"\xff\xd8\xff", content_type="image/jpeg")
    # WHEN the older record's cleanup runs (a late redelivery)
    assert c.writer.delete_stale_thumbnails(r) == 1
    assert c.store.head(DATA, early) is not None and c.store.head(DATA, stale) is None
    assert all(c.store.head(DATA, s.thumbnail_key or "") for s in r.segments)


def test_tagsmith_record_shows_a_running_job(tmp_path, monkeypatch) -> None:
    from tagsmith.cli import app
    from tagsmith.cli.common import Session
    from tagsmith.storage import FileObjectStore
    from typer.testing import CliRunner

    # GIVEN a folder store (no AWS at all) and a job half done
    c = build(
        Settings(data_bucket=DATA, assets_bucket=ASSETS),
        store=FileObjectStore(root=tmp_path / "s3"),
        index=InMemorySearchIndex(),
        encoder=FakeEncoder(),
    )
    install_colour_model(c)
    queue = MemoryQueue()
    c.ingest.video_jobs = c.video_job_service(queue, VideoJobPolicy(inline_seconds=10.0, window_seconds=4.0))
    c.ingest.ingest([upload(c, "acme/long.mp4", CLIP)])
    c.ingest.video_jobs.handle(json.dumps(queue.messages.pop(0)), remaining=ONE_WINDOW)
    monkeypatch.setattr("tagsmith.cli.assets.open_session", lambda target: Session(c, "test store"))
    runner = CliRunner()
    # WHEN the record is asked for before the job's last step: the job's progress is printed
    result = runner.invoke(app, ["record", "--tenant", "acme", "long.mp4"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert (shown["status"], shown["step"], len(shown["windows"])) == ("running", 1, 1)
    assert shown["summary"].startswith("running: 1 of about 5 windows")
    # THEN, once done, the record itself
    drain(c, queue)
    result = runner.invoke(app, ["record", "--tenant", "acme", "long.mp4"])
    assert json.loads(result.stdout)["status"] == "tagged" and json.loads(result.stdout)["segments"]


def test_an_encoder_changed_mid_job_restarts_its_windows(stack) -> None:
    c, queue, _clock = stack
    c.ingest.ingest([upload(c, "acme/long.mp4", CLIP)])
    for _ in range(2):
        c.ingest.video_jobs.handle(json.dumps(queue.messages.pop(0)), remaining=ONE_WINDOW)

    class NewEncoder(FakeEncoder):
        encoder_id = "fake-hist-v2"

    # WHEN a deploy brings another encoder (embeddings of two encoders cannot be joined)
    c.ingest.tagger.encoders = EncoderSet.of(NewEncoder())
    outcomes = drain(c, queue)
    # THEN the job scans again from the start with it, and the record says which encoder tagged it
    job = c.ingest.video_jobs.get("acme", "long.mp4")
    assert outcomes[-1] == "done" and job is not None and job.encoder_id == "fake-hist-v2"
    assert [w.step for w in job.windows] == list(range(len(job.windows))) and job.windows[0].start == 0.0
    assert len(outcomes) == len(job.windows) + 1  # every window again (one per message), then the last step
    assert record(c, "long.mp4").encoder_id == "fake-hist-v2"


def test_a_newer_upload_during_a_window_leaves_no_checkpoint_behind(stack, monkeypatch) -> None:
    c, queue, _clock = stack
    old = upload(c, "acme/long.mp4", CLIP)
    c.ingest.ingest([old])
    jobs = c.ingest.video_jobs
    scan = c.ingest.video.scan

    def scan_then_new_upload(*a: Any, **k: Any) -> Any:
        result = scan(*a, **k)
        monkeypatch.setattr(c.ingest.video, "scan", scan)
        # the key is overwritten and ingested while this window is being computed
        c.ingest.ingest([upload(c, "acme/long.mp4", colour_clip((("green", 20.0),), gop=25))])
        return result

    monkeypatch.setattr(c.ingest.video, "scan", scan_then_new_upload)
    assert jobs.handle(json.dumps(queue.messages.pop(0)), remaining=ONE_WINDOW) == "superseded"
    assert keys_under(c, checkpoints_prefix("acme", "long.mp4", old.etag or "")) == []
    assert drain(c, queue)[-1] == "done"
    assert [(s.tag, s.start) for s in record(c, "long.mp4").segments] == [("green", 0.0)]


def test_a_video_within_the_inline_bound_is_tagged_at_once(stack) -> None:
    c, queue, _clock = stack
    [outcome] = c.ingest.ingest([upload(c, "acme/short.mp4", colour_clip())])  # 8 s, the bound is 10 s
    assert outcome.status == "tagged" and not queue.messages
    assert c.ingest.video_jobs.get("acme", "short.mp4") is None


def test_text_read_in_the_windows_equals_the_single_pass(stack) -> None:
    from tests.functional.test_ingest_video import FakeOcr

    c, queue, _clock = stack
    assert c.ingest.video_jobs is not None
    # the same engine for inline ingestion and the job's windows, as the wiring gives them
    c.ingest.ocr = c.ingest.video_jobs.ocr = FakeOcr()  # reads LAKTOSFRI on blue frames
    c.store.put(DATA, "tenants/acme/tenant.json", json.dumps({"ocr": True}).encode())
    jobs, c.ingest.video_jobs = c.ingest.video_jobs, None
    c.ingest.ingest([upload(c, "acme/inline.mp4", CLIP)])
    c.ingest.video_jobs = jobs
    c.ingest.ingest([upload(c, "acme/long.mp4", CLIP)])
    drain(c, queue)
    single, windowed = record(c, "inline.mp4"), record(c, "long.mp4")
    assert single.text_lines and [x.text for x in single.text_lines] == ["LAKTOSFRI"]
    assert (windowed.text_lines, windowed.ocr_engine) == (single.text_lines, "fake-ocr-v1")
