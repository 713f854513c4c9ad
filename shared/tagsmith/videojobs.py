"""Long videos as resumable jobs: time windows, checkpoints as data, continuation messages.

A video longer than :attr:`VideoJobPolicy.inline_seconds` (or of unknown length) is not tagged
inside the ingest invocation. Ingest writes a job status object and sends a first message to the
video-jobs queue; each message runs as many windows as the invocation's time allows::

    ingest ──job.json + message(step 0)──> video-jobs queue ──> video handler: window 0, 1, ...
                                              ^                     │ checkpoint per window (.npz)
                                              └── message(step n) ──┘ when the time budget is spent
    last step: join the windows -> models -> segments -> record (compare-and-swap) -> reviews -> index

* **Windows** are cut at keyframes (:meth:`VideoReader.frames` with ``until``): a window seeks to
  its keyframe (ranged reads, one block in memory) and carries the sampler's state from the one
  before, so the frames of all windows are exactly those of one pass.
* **Checkpoints** are data (formats, messages and keys: :mod:`tagsmith.video.jobstate`): per
  window an ``.npz`` (read with ``allow_pickle=False``) of sample times, keyframe flags,
  embeddings, thumbnails and the text OCR read, under ``tenants/<t>/video-jobs/<path>/<etag>/``. Tag models run only in the last step, over the joined
  embeddings: segments never split at a window boundary, and a model promoted while the job runs
  is simply the one applied.
* **Job status** ``tenants/<t>/video-jobs/<path>/job.json``: one per asset path, written with
  compare-and-swap. It names the object version (ETag) being processed, so a newer upload of the
  same key replaces it, and the old job's next step finds itself superseded and stops.
* **At-least-once**: a step claims a lease on the job (compare-and-swap) before working; a
  duplicate or stale message finds the lease held or the step already done and does nothing; a
  window done twice writes the same checkpoint. A crashed invocation's message comes back after
  the visibility timeout, when its lease has expired, and takes over from the last checkpoint.
* **Failures**: a window whose frames cannot be decoded ends the job with a ``failed`` record that
  says which part of the file is broken (human tags kept); a step that keeps failing for transient
  reasons ends the same way on its last delivery.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from tagsmith.assetwriter import failure_code
from tagsmith.config import Settings
from tagsmith.errors import (
    InvalidInputError,
    NotFoundError,
    TagsmithError,
    TransientError,
    UnsupportedMediaError,
)
from tagsmith.keys import AssetKey
from tagsmith.queues import Queue
from tagsmith.records import AssetRecord, Failure, SourceObject, utc_now
from tagsmith.storage.base import ObjectStore
from tagsmith.storage.cas import JsonDocument
from tagsmith.video import FrameScan, SamplingPolicy, ScanCursor, VideoInfo, VideoReader

if TYPE_CHECKING:
    from tagsmith.assetwriter import AssetWriter
    from tagsmith.ocr import OcrEngine
    from tagsmith.storage import RecordStore
    from tagsmith.tagging import Tagger
    from tagsmith.video import VideoTagger

from tagsmith.video.jobstate import (
    JobStatus,
    JobStep,
    VideoJobState,
    WindowDone,
    checkpoints_prefix,
    decode_window,
    encode_window,
    job_key,
    parse_job_message,
    read_job,
    window_key,
)

log = logging.getLogger(__name__)


class VideoJobGaveUpError(TagsmithError):
    """A job step failed on every delivery for reasons that were not the video's. Recorded on the
    asset like a bad file, but not final: the next upload event or backfill tries again."""

    code = "video_job_gave_up"


@dataclass(frozen=True)
class VideoJobPolicy:
    """``inline_seconds``: videos up to this long are tagged inside the ingest invocation;
    ``window_seconds``: video time per window (cut at the next keyframe); ``margin_seconds``: time
    kept back at the end of an invocation for the last writes and the continuation message."""

    inline_seconds: float = Settings.video_inline_seconds
    window_seconds: float = Settings.video_window_seconds
    margin_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not self.window_seconds > 0 or self.inline_seconds < 0 or self.margin_seconds < 0:
            raise ValueError(f"video job policy needs a positive window and non-negative bounds: {self}")

    def wants_job(self, info: VideoInfo) -> bool:
        """Too long to tag inline (a video that does not say its length is treated as long)."""
        return info.duration is None or info.duration > self.inline_seconds


# --- the service -------------------------------------------------------------------------------------
class VideoJobService:
    """Starts jobs (from ingest) and runs their steps (from the video-jobs queue).

    This class cuts the work into windows and keeps the job's state; what it is given does the
    rest: ``video`` scans windows and turns the joined scan into segments and tags, ``writer``
    commits the result (:meth:`AssetWriter.commit_video`: thumbnails, the record with
    compare-and-swap, review items, the index), and ``is_current`` is ingestion's rule for a record
    that already describes the object version (:meth:`tagsmith.ingest.IngestService.is_current`).
    """

    def __init__(
        self,
        *,
        store: ObjectStore,
        records: RecordStore,
        tagger: Tagger,
        video: VideoTagger,
        writer: AssetWriter,
        is_current: Callable[[AssetRecord, SourceObject, str], bool],
        queue: Queue,
        ocr: OcrEngine | None = None,
        policy: VideoJobPolicy = VideoJobPolicy(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.records = records
        self.tagger = tagger
        self.video = video
        self.writer = writer
        self.is_current = is_current
        self.queue = queue
        self.ocr = ocr  # None: no OCR, whatever the job asks for
        self.policy = policy
        self.clock = clock

    @property
    def bucket(self) -> str:
        return self.records.bucket

    # --- job status ---------------------------------------------------------------------------------
    def get(self, tenant: str, path: str) -> VideoJobState | None:
        return read_job(self.store, self.bucket, tenant, path)

    def _update(
        self,
        asset: AssetKey,
        change: Callable[[VideoJobState | None], VideoJobState | None],
        attempts: int = 5,
    ) -> tuple[VideoJobState | None, bool]:
        """Compare-and-swap on job.json; returns (the job as it now is, whether ``change`` wrote it)."""
        document = JsonDocument(
            self.store,
            self.bucket,
            job_key(asset.tenant, asset.path),
            decode=VideoJobState.from_json,
            encode=VideoJobState.to_json,
            what=f"video job for {asset.key}",
        )
        return document.update(
            change, stamp=lambda new, _old: replace(new, updated_at=utc_now()), attempts=attempts
        )

    # --- start (called by ingest) ---------------------------------------------------------------------
    def start(
        self,
        asset: AssetKey,
        source: SourceObject,
        info: VideoInfo,
        *,
        sampling: SamplingPolicy,
        ocr_engine: str | None,
    ) -> VideoJobState:
        """Start (or, for a redelivered event, keep) the job for this object version; a job for
        another version of the key is superseded. Sends the first message."""
        fresh = VideoJobState(
            tenant=asset.tenant,
            path=asset.path,
            source=source,
            status=JobStatus.RUNNING,
            info=asdict(info),
            sampling={"every": sampling.every, "keyframes": sampling.keyframes},
            encoder_id=self.tagger.encoder_key(asset.tenant),
            ocr_engine=ocr_engine,
            window_seconds=self.policy.window_seconds,
        )
        replaced: list[VideoJobState] = []

        def change(job: VideoJobState | None) -> VideoJobState | None:
            replaced.clear()
            if (
                job is not None
                and job.status is JobStatus.RUNNING
                and job.source == source
                and (job.encoder_id, job.sampling, job.ocr_engine)
                == (fresh.encoder_id, fresh.sampling, fresh.ocr_engine)
            ):
                return None  # the same job, already running: a redelivered upload event
            if job is not None:
                replaced.append(job)
            return fresh

        job, _ = self._update(asset, change)
        assert job is not None
        for old in replaced:
            if old.source.etag != source.etag:
                self._delete_checkpoints(old.tenant, old.path, old.source.etag)
        log.info(
            "video %s s long: tagged as a job in windows of %.0f s (%s)",
            "?" if info.duration is None else f"{info.duration:.0f}",
            self.policy.window_seconds,
            "superseding the job for an older upload" if replaced else "new job",
            extra={"tenant": asset.tenant, "key": asset.key},
        )
        self._continue(job)
        return job

    # --- steps (called by the video handler) ---------------------------------------------------------
    def handle(
        self,
        body: str | dict[str, Any],
        *,
        remaining: Callable[[], float],
        last_attempt: bool = False,
    ) -> str:
        """Run one video-jobs message: as many steps as ``remaining()`` seconds allow (always at
        least one). Returns what happened (``continued``, ``done``, ``failed``, ``superseded``,
        ``duplicate``); raises for transient trouble (the message is retried) unless this is its
        ``last_attempt``, when the job ends ``failed`` with the reason instead."""
        msg = parse_job_message(body)
        try:
            return self._handle(msg, remaining)
        except Exception as e:
            if not last_attempt or isinstance(e, InvalidInputError):
                raise
            log.exception(
                "video job step %d failed on its last delivery; the job ends failed",
                msg.step,
                extra={"tenant": msg.tenant, "key": f"{msg.tenant}/{msg.path}"},
            )
            self._fail(
                msg,
                f"step {msg.step} kept failing ({type(e).__name__}: {e}); it is tried again at the next "
                "upload event or backfill",
                gave_up=True,
            )
            return "failed"

    def _handle(self, msg: JobStep, remaining: Callable[[], float]) -> str:
        asset = AssetKey(msg.tenant, msg.path)
        extra = {"tenant": msg.tenant, "key": asset.key}
        started = time.monotonic()
        claimed: list[bool] = []

        def claim(job: VideoJobState | None) -> VideoJobState | None:
            claimed.clear()
            if job is None or job.source.etag != msg.etag or job.status is not JobStatus.RUNNING:
                return None
            if msg.step > job.step:
                return None  # cannot happen: steps are sent only after the job moved on
            if job.lease_until is not None and job.lease_until > self.clock():
                return None  # another invocation is working on it
            if msg.step < job.step and job.continuation_sent:
                return None  # a duplicate: the message for the job's next step is queued
            claimed.append(True)
            return replace(job, lease_until=self.clock() + max(remaining(), 1.0), continuation_sent=False)

        job, _ = self._update(asset, claim)
        if job is None or job.source.etag != msg.etag:
            # a newer upload replaced this job (or it was never started): drop its checkpoints
            self._delete_checkpoints(msg.tenant, msg.path, msg.etag)
            log.info("video job step %d: superseded by a newer upload", msg.step, extra=extra)
            return "superseded"
        if not claimed:
            log.info("video job step %d: nothing to do (%s)", msg.step, job.summary(), extra=extra)
            return "duplicate" if job.status is JobStatus.RUNNING else job.status.value
        if msg.step < job.step:
            log.info(
                "video job: taking over at step %d after an interrupted invocation", job.step, extra=extra
            )
        try:
            outcome = self._run(job, msg, remaining)
        except BaseException:
            # a failure (not a crash): let the retry take over at once instead of after the lease
            self._release(job)
            raise
        if outcome != "continued":
            return outcome
        # out of time: release the job, then queue its next step
        after = self._release(job)
        if after is not None and after.status is JobStatus.RUNNING:
            self._continue(after)
        log.info(
            "video job: %s after %.1f s in this invocation",
            after.summary() if after else "gone", time.monotonic() - started, extra=extra,
        )  # fmt: skip
        return "continued"

    def _run(self, job: VideoJobState, msg: JobStep, remaining: Callable[[], float]) -> str:
        """Windows (and the last step) while time allows; ``continued`` when time ran out first."""
        slowest = 0.0
        while True:
            head = self.store.head(job.source.bucket, job.source.key)
            if head is None or head.etag != job.source.etag:
                return self._supersede(job)
            encoder_id = self.tagger.encoder_key(job.tenant)
            if encoder_id != job.encoder_id:
                try:
                    # a deploy or a newly promoted model changed the encoders mid-job
                    job = self._restart(job, encoder_id)
                except _LostLease:
                    return "duplicate"
            if job.scanned:
                return self._finish(job)
            t0 = time.monotonic()
            try:
                job = self._window(job)
            except NotFoundError:
                return self._supersede(job)  # replaced while being read
            except InvalidInputError as e:
                return self._fail(msg, str(e))
            except _LostLease:
                now = self.get(job.tenant, job.path)
                if now is None or now.source.etag != job.source.etag:
                    # a newer upload took the key while this window ran: its checkpoint is litter
                    self._delete_checkpoints(job.tenant, job.path, job.source.etag)
                    return "superseded"
                return "duplicate"
            slowest = max(slowest, time.monotonic() - t0)
            if remaining() < self.policy.margin_seconds + 1.5 * slowest:
                return "continued"

    def _restart(self, job: VideoJobState, encoder_id: str) -> VideoJobState:
        """Embeddings of two encoders cannot be joined: scan again from the start with the new one."""
        log.warning(
            "the encoder changed from %s to %s while the job ran: starting its windows again",
            job.encoder_id, encoder_id, extra={"tenant": job.tenant, "key": job.asset.key},
        )  # fmt: skip

        def restart(j: VideoJobState | None) -> VideoJobState | None:
            if j is None or j.source != job.source or j.step != job.step or j.status is not JobStatus.RUNNING:
                raise _LostLease()
            return replace(j, encoder_id=encoder_id, step=0, cursor=None, scanned=False, windows=())

        new, _ = self._update(job.asset, restart)
        assert new is not None
        self._delete_checkpoints(job.tenant, job.path, job.source.etag)
        return new

    def _release(self, job: VideoJobState) -> VideoJobState | None:
        """Drop this invocation's lease (the job as it now is)."""

        def release(j: VideoJobState | None) -> VideoJobState | None:
            if j is None or j.source != job.source or j.lease_until is None:
                return None
            return replace(j, lease_until=None)

        return self._update(job.asset, release)[0]

    def _continue(self, job: VideoJobState) -> None:
        """Queue the message for the job's next step unless it is queued or being worked on."""
        if job.status is not JobStatus.RUNNING or job.continuation_sent:
            return
        if job.lease_until is not None and job.lease_until > self.clock():
            return
        self.queue.send(job.message(), group=f"{job.tenant}/{job.path}")

        def sent(j: VideoJobState | None) -> VideoJobState | None:
            if j is None or j.source != job.source or j.step != job.step or j.lease_until is not None:
                return None  # moved on already (the message was quick): nothing to note
            return replace(j, continuation_sent=True)

        self._update(job.asset, sent)

    def _window(self, job: VideoJobState) -> VideoJobState:
        """Scan, embed and checkpoint one window; returns the job moved to its next step."""
        sampling = replace(
            self.video.sampling, every=job.sampling["every"], keyframes=job.sampling["keyframes"]
        )
        ocr = self._ocr(job)
        cursor = ScanCursor.from_dict(job.cursor) if job.cursor else None
        start = cursor.resume_time if cursor else 0.0
        t0 = time.monotonic()
        with self.store.open(job.source.bucket, job.source.key) as f, VideoReader(f, sampling) as video:
            try:
                scan = self.video.scan(
                    video,
                    ocr=ocr,
                    cursor=cursor,
                    until=start + job.window_seconds,
                    encoders=job.encoder_id.split("+"),
                )
            except InvalidInputError as e:
                raise InvalidInputError(f"window {job.step} of the video: {e}") from e
            after = video.cursor
        self.store.put(
            self.bucket,
            window_key(job.tenant, job.path, job.source.etag, job.step),
            encode_window(scan),
            content_type="application/octet-stream",
        )
        done = WindowDone(
            step=job.step,
            start=round(start, 3),
            end=None if after is None else round(after.resume_time, 3),
            frames=len(scan.times),
            seconds=round(time.monotonic() - t0, 3),
        )
        log.info(
            "video job window %d: %.1f-%s s, %d frames in %.2f s",
            done.step, done.start, "end" if done.end is None else f"{done.end:.1f}", done.frames, done.seconds,
            extra={"tenant": job.tenant, "key": job.asset.key},
        )  # fmt: skip

        def advance(j: VideoJobState | None) -> VideoJobState | None:
            if j is None or j.source != job.source or j.step != job.step or j.status is not JobStatus.RUNNING:
                raise _LostLease()
            return replace(
                j,
                step=job.step + 1,
                cursor=None if after is None else after.to_dict(),
                scanned=after is None,
                windows=(*j.windows, done),
            )

        new, _ = self._update(job.asset, advance)
        assert new is not None
        return new

    def _finish(self, job: VideoJobState) -> str:
        """The last step: join the windows, tag, write the record, review items and index once."""
        asset, source = job.asset, job.source
        current = self.records.get(asset)
        if current is not None and self.is_current(current[0], source, asset.tenant):
            log.info("video job: the record is already written; cleaning up", extra={"tenant": asset.tenant})
            self.writer.publish(current[0])  # a step that died before publishing it
        else:
            keys = [window_key(job.tenant, job.path, source.etag, w.step) for w in job.windows]
            parts = [decode_window(self._get(k)) for k in keys]
            scan = FrameScan.join(parts)
            where = [(n, i) for n, p in enumerate(parts) for i in range(len(p.times))]
            cache: dict[int, list[bytes]] = {}

            def thumbnail(index: int) -> bytes:
                n, i = where[index]
                if n not in cache:
                    cache.clear()  # one window's thumbnails in memory at a time
                    cache[n] = decode_window(self._get(keys[n]), thumbnails=True).thumbnails
                return cache[n][i]

            info = VideoInfo(**job.info)
            models = self.tagger.active_models(asset.tenant)
            analysis = self.video.aggregate(
                asset.tenant, path=asset.path, etag=source.etag, info=info, scan=scan, models=models,
                thumbnail=thumbnail,
            )  # fmt: skip
            self.writer.commit_video(asset, source, current, analysis, job.ocr_engine)
        self._delete_checkpoints(job.tenant, job.path, source.etag)
        self._update(
            asset,
            lambda j: (
                replace(j, status=JobStatus.DONE, lease_until=None) if j and j.source == source else None
            ),
        )
        log.info(
            "video job done after %d windows",
            len(job.windows),
            extra={"tenant": asset.tenant, "key": asset.key},
        )
        return "done"

    def _supersede(self, job: VideoJobState) -> str:
        self._update(
            job.asset,
            lambda j: (
                replace(j, status=JobStatus.SUPERSEDED, lease_until=None)
                if j is not None and j.source == job.source and j.status is JobStatus.RUNNING
                else None
            ),
        )
        self._delete_checkpoints(job.tenant, job.path, job.source.etag)
        log.info("video job: the object was replaced or deleted; stopped", extra={"tenant": job.tenant})
        return "superseded"

    def _fail(self, msg: JobStep, reason: str, *, gave_up: bool = False) -> str:
        """End the job ``failed``: the reason on the record (human tags kept) and on the job."""
        asset = AssetKey(msg.tenant, msg.path)
        error = VideoJobGaveUpError(reason) if gave_up else UnsupportedMediaError(reason)
        failure = Failure(failure_code(error), reason)
        job, _ = self._update(
            asset,
            lambda j: (
                replace(j, status=JobStatus.FAILED, failure=failure, lease_until=None)
                if j is not None and j.source.etag == msg.etag and j.status is JobStatus.RUNNING
                else None
            ),
        )
        if job is not None and job.source.etag == msg.etag and job.status is JobStatus.FAILED:
            self.writer.fail_video(asset, job.source, error)
        self._delete_checkpoints(msg.tenant, msg.path, msg.etag)
        log.warning("video job failed: %s", reason, extra={"tenant": msg.tenant, "key": asset.key})
        return "failed"

    # --- helpers ----------------------------------------------------------------------------------------
    def _ocr(self, job: VideoJobState) -> OcrEngine | None:
        engine = self.ocr
        if job.ocr_engine is None or engine is None:
            return None
        return engine

    def _get(self, key: str) -> bytes:
        try:
            return self.store.get(self.bucket, key).body
        except NotFoundError as e:
            raise TransientError(f"video job checkpoint {key} is missing; the step is retried") from e

    def _delete_checkpoints(self, tenant: str, path: str, etag: str) -> None:
        for info in list(self._checkpoints(tenant, path, etag)):
            self.store.delete(self.bucket, info.key)

    def _checkpoints(self, tenant: str, path: str, etag: str) -> Iterator[Any]:
        prefix = checkpoints_prefix(tenant, path, etag)
        for info in self.store.list(self.bucket, prefix):
            if "/" not in info.key[len(prefix) :]:
                yield info


class _LostLease(Exception):
    """The job moved on under this invocation (a newer upload, or another invocation took over)."""
