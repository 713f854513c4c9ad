"""Decoding videos with PyAV and sampling frames: every keyframe plus one frame every N seconds.

The file is read through a file-like object (an :meth:`ObjectStore.open` stream), never loaded
whole. Packets are demuxed one GOP (keyframe to keyframe) at a time, and each GOP is decoded only as
far as it must be:

* when no sample time falls inside the GOP (keyframes at least every N seconds, as encoders and
  shot cuts usually give), the decoder runs with ``skip_frame="NONKEY"`` and gets the keyframe
  packet alone: intra-only decoding, the rest of the GOP is never decoded;
* otherwise it decodes the GOP from its keyframe up to the last sample time inside it.

Keyframes matter beyond speed: encoders put one at each shot cut, so sampling them pins segment
boundaries to the cut.

Long videos are read in windows (:mod:`tagsmith.videojobs`): ``frames(until=t)`` stops at the first
keyframe at or after ``t`` and leaves a :class:`ScanCursor` in ``reader.cursor``; a later reader
(another invocation) given that cursor seeks straight to that keyframe (``container.seek``, ranged
reads of the bytes it needs) and carries on. The cursor holds the sampler's whole state, so the
frames of all windows are exactly the frames of one pass.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import IO, Any, BinaryIO

from PIL import Image

from tagsmith.errors import UnsupportedMediaError

log = logging.getLogger(__name__)

#: container format names (as FFmpeg reports them) -> MIME type
_MIME = {"mp4": "video/mp4", "mov": "video/quicktime", "matroska": "video/x-matroska", "webm": "video/webm"}
#: containers we accept; FFmpeg knows many more, but each one is parser surface for tenant bytes
SUPPORTED_CONTAINERS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"})
MAX_GOP_PACKETS = 600


@dataclass(frozen=True)
class SamplingPolicy:
    """How frames are chosen. ``every``: seconds between regular samples (None: keyframes only);
    ``keyframes``: also sample every keyframe (at most one sample per ``min_gap`` seconds);
    ``max_frames``: beyond it ``every`` widens so a long video costs a bounded amount;
    ``frame_size``: longer side of the sampled images, in pixels."""

    every: float | None = 2.0
    keyframes: bool = True
    min_gap: float = 0.5
    max_frames: int = 1_800
    frame_size: int = 768
    max_duration: float = 6 * 3600.0
    max_pixels: int = 8_192 * 4_320  # 8K

    def interval_for(self, duration: float | None) -> float | None:
        if self.every is None:
            return None
        if duration and duration / self.every > self.max_frames / 2:
            return duration / (self.max_frames / 2)  # keep half the budget for keyframes
        return self.every


@dataclass(frozen=True)
class ScanCursor:
    """Where a windowed scan stopped, and the sampler state to carry on with: JSON-able data.

    ``resume_pts``: the keyframe (stream ticks) the next window starts at, ``resume_time`` the same
    in seconds; ``origin``: the stream's first timestamp; ``next_grid``/``last_sample``: the sample planner; ``last_time``: the last
    frame emitted; ``emitted``: frames so far; ``wanted``: planned sample times still waiting."""

    resume_pts: int
    resume_time: float
    origin: int | None = None
    next_grid: float = 0.0
    last_sample: float | None = None
    last_time: float | None = None
    emitted: int = 0
    wanted: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "resume_pts": self.resume_pts,
            "resume_time": self.resume_time,
            "origin": self.origin,
            "next_grid": self.next_grid,
            "last_sample": self.last_sample,
            "last_time": self.last_time,
            "emitted": self.emitted,
            "wanted": list(self.wanted),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScanCursor:
        return cls(
            resume_pts=int(d["resume_pts"]),
            resume_time=float(d["resume_time"]),
            origin=None if d.get("origin") is None else int(d["origin"]),
            next_grid=float(d.get("next_grid", 0.0)),
            last_sample=None if d.get("last_sample") is None else float(d["last_sample"]),
            last_time=None if d.get("last_time") is None else float(d["last_time"]),
            emitted=int(d.get("emitted", 0)),
            wanted=tuple(float(t) for t in d.get("wanted", ())),
        )


@dataclass(frozen=True)
class VideoInfo:
    mime: str
    codec: str
    width: int
    height: int
    duration: float | None  # seconds, when the container says
    fps: float | None


@dataclass(frozen=True)
class SampledFrame:
    time: float  # seconds from the start of the stream
    image: Image.Image  # RGB, longer side at most SamplingPolicy.frame_size
    keyframe: bool


class VideoReader:
    """An open video stream. Use as a context manager; :meth:`frames` yields the samples.

    Raises :class:`UnsupportedMediaError` (with what was wrong) for bytes that are not a supported
    container, a file without a video stream, a codec we cannot decode, or a stream of which no
    frame decodes.

    Example::

        >>> with VideoReader(open("clip.mp4", "rb"), SamplingPolicy(every=1.0)) as video:  # doctest: +SKIP
        ...     [round(f.time, 1) for f in video.frames()][:4]
        [0.0, 1.0, 2.0, 3.0]
    """

    def __init__(self, file: IO[bytes], policy: SamplingPolicy = SamplingPolicy()) -> None:
        import av

        self.policy = policy
        try:
            self._container = av.open(file, mode="r", metadata_errors="ignore")
        except (av.error.FFmpegError, ValueError, EOFError) as e:
            raise UnsupportedMediaError(
                f"not a readable video file ({_reason(e)}); upload the complete file again"
            ) from e
        try:
            self.info = self._probe()
        except BaseException:
            self._container.close()
            raise
        self.frames_decoded = 0
        self.decode_errors = 0
        self.planned = 0  # sample times planned so far

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def _probe(self) -> VideoInfo:
        import av

        container = self._container
        fmt = container.format.name
        if fmt not in SUPPORTED_CONTAINERS:
            raise UnsupportedMediaError(
                f"{container.format.long_name} files are not supported; upload MP4, MOV, WebM or MKV"
            )
        if not container.streams.video:
            kinds: list[str] = sorted({str(s.type) for s in container.streams}) or ["no"]
            raise UnsupportedMediaError(
                f"the file has no video stream (it holds {', '.join(kinds)} streams only); upload a video"
            )
        stream = container.streams.video[0]
        ctx = stream.codec_context
        codec = ctx.name if ctx is not None else None
        if ctx is None or not codec or codec == "none" or not _decodable(codec):
            named = codec if codec and codec != "none" else "one FFmpeg does not know"
            raise UnsupportedMediaError(
                f"the video codec ({named}) cannot be decoded; re-encode it as H.264, VP9 or AV1"
            )
        width, height = int(ctx.width or 0), int(ctx.height or 0)
        if width <= 0 or height <= 0:
            raise UnsupportedMediaError("the video stream declares no frame size; the file is corrupt")
        if width * height > self.policy.max_pixels:
            raise UnsupportedMediaError(
                f"video frames are {width}x{height}, more than the {self.policy.max_pixels:,}-pixel limit; downscale it"
            )
        duration = None
        if stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        if duration is not None and duration > self.policy.max_duration:
            raise UnsupportedMediaError(
                f"video is {duration / 3600:.1f} h long, over the {self.policy.max_duration / 3600:.0f} h limit; split it"
            )
        rate = stream.average_rate or stream.guessed_rate
        mime = next((m for name, m in _MIME.items() if name in fmt.split(",")), "video/unknown")
        if fmt.startswith("matroska") and codec in ("vp8", "vp9", "av1"):
            mime = "video/webm"
        return VideoInfo(mime, codec, width, height, duration, float(rate) if rate else None)

    def frames(
        self, *, cursor: ScanCursor | None = None, until: float | None = None
    ) -> Iterator[SampledFrame]:
        """The sampled frames in time order: all of them, or one window.

        ``cursor``: resume where an earlier window stopped (None: from the start). ``until``: stop
        at the first keyframe at or after this many seconds; :attr:`cursor` then says where to
        resume (it is None once the stream has ended). Raises :class:`UnsupportedMediaError` when
        nothing decodes: the whole file, or (windowed) this window while packets failed to decode.
        """
        import av

        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = stream.time_base or Fraction(1, 90_000)
        if cursor is not None:
            origin: int | None = cursor.origin
        else:
            origin = stream.start_time if stream.start_time is not None else None
        every = self.policy.interval_for(self.info.duration)
        planner = _Planner(every, self.policy)
        wanted: list[float] = []  # sample times still waiting for their frame, ascending
        emitted = 0
        last_time = -math.inf
        skip_until: int | None = None  # after a seek: drop packets before the resume keyframe
        if cursor is not None:
            planner.next_grid = cursor.next_grid
            planner.last_sample = -math.inf if cursor.last_sample is None else cursor.last_sample
            wanted = list(cursor.wanted)
            emitted = cursor.emitted
            last_time = -math.inf if cursor.last_time is None else cursor.last_time
            skip_until = cursor.resume_pts
            # backward: the keyframe at or before the resume point, which is the resume keyframe
            self._container.seek(cursor.resume_pts, stream=stream, backward=True, any_frame=False)
        self.cursor: ScanCursor | None = None
        emitted_before = emitted
        errors_before = self.decode_errors
        planned_before = self.planned - len(wanted)  # samples carried over count in this window

        def seconds(pts: int) -> float:
            return float((pts - (origin or 0)) * tb)

        def take(decoded: list[Any]) -> Iterator[SampledFrame]:
            nonlocal emitted, last_time
            for frame in decoded:
                self.frames_decoded += 1
                if frame.pts is None or not wanted:
                    continue
                t = seconds(frame.pts)
                if t + 1e-6 < wanted[0] or t <= last_time:
                    continue
                while wanted and wanted[0] <= t + 1e-6:
                    wanted.pop(0)
                last_time = t
                emitted += 1
                yield SampledFrame(t, self._to_image(frame), bool(frame.key_frame))

        gop: list[Any] = []
        try:
            for packet in self._container.demux(stream):
                if packet.pts is None and packet.dts is None:
                    continue  # the demuxer's final empty packet
                if skip_until is not None:
                    if not (packet.is_keyframe and _ts(packet) >= skip_until):
                        continue
                    skip_until = None
                if origin is None:
                    origin = packet.pts if packet.pts is not None else packet.dts
                # a GOP ends at the next keyframe; a stream without keyframe flags is cut into chunks
                # so its packets never pile up in memory (a chunk is decoded whole if it holds samples)
                if gop and (packet.is_keyframe or len(gop) >= MAX_GOP_PACKETS):
                    # a chunk cut short, or one that does not start at a keyframe, is decoded whole:
                    # the packets after it refer to its frames
                    whole = not packet.is_keyframe or not gop[0].is_keyframe
                    end = seconds(_ts(packet))
                    yield from self._decode_gop(gop, planner, wanted, seconds, take, end=end, whole=whole)
                    gop = []
                    if emitted >= self.policy.max_frames:
                        break
                    if until is not None and packet.is_keyframe and end >= until:
                        # the window is over: drain the decoder (frames it still holds belong to
                        # this window) and say where the next one starts
                        yield from take(self._decode(stream, None))
                        self.cursor = ScanCursor(
                            resume_pts=_ts(packet),
                            resume_time=end,
                            origin=origin,
                            next_grid=planner.next_grid,
                            last_sample=None if planner.last_sample == -math.inf else planner.last_sample,
                            last_time=None if last_time == -math.inf else last_time,
                            emitted=emitted,
                            wanted=tuple(wanted),
                        )
                        break
                gop.append(packet)
            else:
                if gop:
                    # the last GOP ends after its last frame in presentation order
                    tail = seconds(max(_ts(p) for p in gop)) + 1e-3
                    yield from self._decode_gop(gop, planner, wanted, seconds, take, end=tail)
                yield from take(self._decode(stream, None))
        except av.error.FFmpegError as e:
            # a broken tail (a truncated upload) still leaves the frames before it
            log.warning("video demuxing stopped early: %s", _reason(e))
            self.decode_errors += 1
            self.cursor = None
        windowed = cursor is not None or until is not None
        if emitted == 0 and (not windowed or self.cursor is None):
            raise UnsupportedMediaError(
                f"no frame of the {self.info.codec} video could be decoded "
                f"({self.decode_errors} decoding errors); the file is corrupt or truncated"
            )
        planned = self.planned - planned_before
        if windowed and self.decode_errors > errors_before and (emitted - emitted_before) * 2 < planned:
            # most of this window is unreadable: tagging the rest would pass off a hole as a scene
            start = cursor.resume_time if cursor is not None else 0.0
            stop = f"{self.cursor.resume_time:.1f} s" if self.cursor is not None else "the end"
            raise UnsupportedMediaError(
                f"{planned - emitted + emitted_before} of the {planned} frames sampled from {start:.1f} s to "
                f"{stop} could not be decoded ({self.decode_errors - errors_before} decoding errors); that part "
                "of the file is corrupt: re-encode it or upload it again"
            )

    def _decode_gop(
        self,
        gop: list[Any],
        planner: _Planner,
        wanted: list[float],
        seconds: Any,
        take: Any,
        *,
        end: float,
        whole: bool = False,
    ) -> Iterator[SampledFrame]:
        stream = self._container.streams.video[0]
        start = seconds(_ts(gop[0]))
        times = planner.plan(start, end, keyframe=gop[0].is_keyframe)
        if not times and not whole:
            return
        wanted.extend(times)
        wanted.sort()
        self.planned += len(times)
        need_all = whole or any(t > start + 1e-6 for t in times)
        stream.codec_context.skip_frame = "DEFAULT" if need_all else "NONKEY"
        packets = gop if need_all else gop[:1]
        last = max(times, default=-math.inf)
        for packet in packets:
            yield from take(self._decode(stream, packet))
            if not whole and (not wanted or wanted[0] > last):
                break  # every sample of this GOP is out: the rest of it is never decoded

    def _decode(self, stream: Any, packet: Any) -> list[Any]:
        import av

        try:
            return list(stream.codec_context.decode(packet))
        except av.error.FFmpegError as e:
            self.decode_errors += 1
            if self.decode_errors <= 3:
                log.warning("skipping an undecodable video packet: %s", _reason(e))
            return []

    def _to_image(self, frame: Any) -> Image.Image:
        w, h = frame.width, frame.height
        scale = min(1.0, self.policy.frame_size / max(w, h))
        size = (max(2, round(w * scale)), max(2, round(h * scale)))
        image: Image.Image = frame.to_image(width=size[0], height=size[1])
        return image


class _Planner:
    """Which sample times fall in a GOP ``[start, end)``: its keyframe, and the regular grid times
    that no keyframe sample already covers (within half an interval)."""

    def __init__(self, every: float | None, policy: SamplingPolicy) -> None:
        self.every = every
        self.policy = policy
        self.next_grid = 0.0
        self.last_sample = -math.inf

    def plan(self, start: float, end: float, *, keyframe: bool) -> list[float]:
        times: list[float] = []
        take_key = (
            keyframe
            and (self.policy.keyframes or self.every is None)
            and start - self.last_sample >= self.policy.min_gap
        )
        if take_key:
            times.append(start)
            self.last_sample = start
        if self.every is not None:
            half = self.every / 2
            while self.next_grid < end:
                t = max(self.next_grid, start)
                covered = abs(t - self.last_sample) < half or (self.policy.keyframes and end - t < half)
                if not covered:
                    times.append(t)
                    self.last_sample = t
                self.next_grid += self.every
        return sorted(set(times))


def _ts(packet: Any) -> int:
    return int(packet.pts if packet.pts is not None else packet.dts)


def _decodable(codec: str) -> bool:
    import av

    try:
        av.codec.Codec(codec, "r")
    except (av.error.FFmpegError, ValueError):
        return False
    return True


def _reason(error: BaseException) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return str(text).strip() or type(error).__name__


def video_frame_from(source: BinaryIO) -> Image.Image:
    """The first keyframe of a video read from a seekable stream (only what it needs is read)."""
    try:
        import av
    except ImportError as e:  # pragma: no cover - PyAV is optional
        raise UnsupportedMediaError("video previews need PyAV: pip install av") from e
    try:
        with av.open(source, mode="r") as container:
            stream = container.streams.video[0]
            stream.codec_context.skip_frame = "NONKEY"
            for frame in container.decode(stream):
                return frame.to_image()
    except (av.error.FFmpegError, IndexError) as e:  # type: ignore[attr-defined]
        raise UnsupportedMediaError(f"the video cannot be decoded for a preview: {e}") from e
    raise UnsupportedMediaError("the video has no keyframe to preview")
