"""Video jobs as data: the job status object (``job.json``), the queue messages that drive a job,
and the window checkpoints (``.npz``, read with ``allow_pickle=False``).

Pure encoding and decoding plus the keys they live under; :mod:`tagsmith.videojobs` runs the jobs
(windows, leases, the last step) on top of it.
"""

from __future__ import annotations

import io
import itertools
import json
import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import numpy as np

from tagsmith.config import Settings
from tagsmith.errors import (
    InvalidInputError,
    InvalidKeyError,
    NotFoundError,
    TransientError,
)
from tagsmith.keys import AssetKey, tenant_prefix, validate_tenant
from tagsmith.records import Failure, SourceObject, TextLine, utc_now
from tagsmith.storage.base import ObjectStore

if TYPE_CHECKING:
    from tagsmith.video.analysis import FrameScan

JOB_SCHEMA = 1


class VideoJobMessageError(InvalidInputError):
    """A video-jobs queue message that is not a job step."""

    code = "video_job_message"


class JobStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SUPERSEDED = "superseded"  # a newer upload of the same key replaced the object


# --- keys -----------------------------------------------------------------------------------------
def job_key(tenant: str, path: str) -> str:
    """``tenants/<t>/video-jobs/<asset path>/job.json``

    >>> job_key("acme", "ads/spot.mp4")
    'tenants/acme/video-jobs/ads/spot.mp4/job.json'
    """
    return f"{tenant_prefix(tenant)}video-jobs/{path}/job.json"


def checkpoints_prefix(tenant: str, path: str, etag: str) -> str:
    return f"{tenant_prefix(tenant)}video-jobs/{path}/{etag}/"


def window_key(tenant: str, path: str, etag: str, step: int) -> str:
    """One window's checkpoint; the same key whoever computes it, so a window done twice is
    written twice with the same bytes.

    >>> window_key("acme", "spot.mp4", "e1", 3)
    'tenants/acme/video-jobs/spot.mp4/e1/w00003.npz'
    """
    return f"{checkpoints_prefix(tenant, path, etag)}w{step:05d}.npz"


# --- the job status object ---------------------------------------------------------------------------
@dataclass(frozen=True)
class WindowDone:
    step: int
    start: float  # seconds of video
    end: float | None  # None: to the end of the video
    frames: int
    seconds: float  # processing time


@dataclass(frozen=True)
class VideoJobState:
    tenant: str
    path: str
    source: SourceObject
    status: JobStatus
    info: dict[str, Any]  # VideoInfo fields
    sampling: dict[str, Any]  # every, keyframes: pinned at the start so every window samples alike
    encoder_id: str
    ocr_engine: str | None = None
    window_seconds: float = Settings.video_window_seconds
    step: int = 0  # the next step to run: a window, or (once scanned) the last step
    cursor: dict[str, Any] | None = None  # where the next window starts (None: at the beginning)
    scanned: bool = False  # every window is checkpointed; the next step aggregates
    windows: tuple[WindowDone, ...] = ()
    lease_until: float | None = None  # epoch seconds: an invocation is working on the job until then
    continuation_sent: bool = False  # the message for ``step`` is in the queue
    failure: Failure | None = None
    created_at: str = field(default_factory=utc_now)
    updated_at: str = field(default_factory=utc_now)
    schema: int = JOB_SCHEMA

    @property
    def asset(self) -> AssetKey:
        return AssetKey(self.tenant, self.path)

    @property
    def duration(self) -> float | None:
        d = self.info.get("duration")
        return None if d is None else float(d)

    @property
    def windows_estimate(self) -> int | None:
        d = self.duration
        return None if d is None else max(1, math.ceil(d / self.window_seconds))

    @property
    def progress(self) -> float:
        """Share of the video scanned, 0..1."""
        if self.scanned or self.status is JobStatus.DONE:
            return 1.0
        d = self.duration
        if not d or self.cursor is None:
            return 0.0
        return min(1.0, float(self.cursor["resume_time"]) / d)

    def summary(self) -> str:
        """One line for humans, e.g. ``running: 3 of about 8 windows (37%), next step 3``."""
        if self.status is JobStatus.FAILED and self.failure:
            return f"failed: {self.failure.message}"
        if self.status is not JobStatus.RUNNING:
            return f"{self.status.value} after {len(self.windows)} windows"
        about = f" of about {self.windows_estimate}" if self.windows_estimate else ""
        what = "aggregating" if self.scanned else f"{len(self.windows)}{about} windows"
        return f"running: {what} ({self.progress:.0%}), next step {self.step}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status.value
        d["windows"] = [asdict(w) for w in self.windows]
        d["failure"] = asdict(self.failure) if self.failure else None
        d["progress"] = round(self.progress, 3)
        d["summary"] = self.summary()
        return d

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> VideoJobState:
        try:
            d = json.loads(data)
            return cls(
                tenant=d["tenant"],
                path=d["path"],
                source=SourceObject(**d["source"]),
                status=JobStatus(d["status"]),
                info=dict(d["info"]),
                sampling=dict(d["sampling"]),
                encoder_id=d["encoder_id"],
                ocr_engine=d.get("ocr_engine"),
                window_seconds=float(d.get("window_seconds", Settings.video_window_seconds)),
                step=int(d.get("step", 0)),
                cursor=d.get("cursor"),
                scanned=bool(d.get("scanned", False)),
                windows=tuple(WindowDone(**w) for w in d.get("windows", ())),
                lease_until=d.get("lease_until"),
                continuation_sent=bool(d.get("continuation_sent", False)),
                failure=Failure(**d["failure"]) if d.get("failure") else None,
                created_at=d["created_at"],
                updated_at=d.get("updated_at", d["created_at"]),
                schema=int(d.get("schema", JOB_SCHEMA)),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise InvalidInputError(f"video job status is not valid JSON of schema {JOB_SCHEMA}: {e}") from e

    def message(self) -> dict[str, Any]:
        """The continuation message for the job's next step."""
        return {
            "video_job": {
                "tenant": self.tenant,
                "path": self.path,
                "etag": self.source.etag,
                "step": self.step,
            }
        }


@dataclass(frozen=True)
class JobStep:
    """A parsed video-jobs message."""

    tenant: str
    path: str
    etag: str
    step: int


def parse_job_message(body: str | dict[str, Any]) -> JobStep:
    """
    >>> parse_job_message('{"video_job": {"tenant": "acme", "path": "a.mp4", "etag": "e", "step": 2}}')
    JobStep(tenant='acme', path='a.mp4', etag='e', step=2)
    """
    try:
        d = json.loads(body) if isinstance(body, str) else body
        m = d["video_job"]
        step = JobStep(validate_tenant(str(m["tenant"])), str(m["path"]), str(m["etag"]), int(m["step"]))
    except (ValueError, KeyError, TypeError, InvalidKeyError, RecursionError) as e:
        raise VideoJobMessageError(f"not a video job message ({e}): expected {{'video_job': {{...}}}}") from e
    if step.step < 0 or not step.path or not step.etag:
        raise VideoJobMessageError(f"video job message with an empty path or etag, or a negative step: {m}")
    return step


def read_job(store: ObjectStore, bucket: str, tenant: str, path: str) -> VideoJobState | None:
    """The video job status of an asset (the last one started for its key), or None."""
    try:
        return VideoJobState.from_json(store.get(bucket, job_key(tenant, path)).body)
    except NotFoundError:
        return None


# --- checkpoints -----------------------------------------------------------------------------------
def encode_window(scan: FrameScan) -> bytes:
    """A window's frames as an ``.npz`` of plain arrays (no pickles): thumbnails are one byte
    array cut by offsets, OCR lines a UTF-8 JSON byte array."""
    offsets = np.cumsum([0, *(len(t) for t in scan.thumbnails)]).astype(np.int64)
    text = (
        b"null"
        if scan.text_lines is None
        else json.dumps([x.to_dict() for x in scan.text_lines], ensure_ascii=False).encode()
    )
    buf = io.BytesIO()
    np.savez(
        buf,
        times=scan.times.astype(np.float64),
        keyframes=scan.keyframes.astype(bool),
        **{f"embeddings:{k}": v.astype(np.float32) for k, v in scan.embeddings.items()},  # type: ignore[arg-type]
        thumbnails=np.frombuffer(b"".join(scan.thumbnails), dtype=np.uint8),
        thumbnail_offsets=offsets,
        text_lines=np.frombuffer(text, dtype=np.uint8),
        seconds=np.asarray([scan.seconds.get(k, 0.0) for k in ("decode", "embed", "ocr")], np.float64),
    )
    return buf.getvalue()


def decode_window(data: bytes, *, thumbnails: bool = False) -> FrameScan:
    """Inverse of :func:`encode_window`; thumbnails only when asked (the last step reads them for
    the few frames that become a segment's picture)."""
    from tagsmith.video.analysis import FrameScan

    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            thumbs: list[bytes] = []
            if thumbnails:
                raw, off = z["thumbnails"].tobytes(), z["thumbnail_offsets"]
                thumbs = [raw[int(a) : int(b)] for a, b in itertools.pairwise(off)]
            text = json.loads(z["text_lines"].tobytes())
            secs = z["seconds"]
            return FrameScan(
                times=z["times"],
                keyframes=z["keyframes"],
                embeddings={
                    name.split(":", 1)[1]: z[name] for name in z.files if name.startswith("embeddings:")
                },
                thumbnails=thumbs,
                text_lines=None if text is None else tuple(TextLine.from_dict(x) for x in text),
                seconds={"decode": float(secs[0]), "embed": float(secs[1]), "ocr": float(secs[2])},
            )
    except (ValueError, KeyError, OSError) as e:
        raise TransientError(f"a video job checkpoint is unreadable ({e}); the step will be redone") from e
