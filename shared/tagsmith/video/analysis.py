"""A video in, segments and asset-level proposals out.

sampled frames -> embedded in batches (the tagger's encoder) -> every active tag model of the
tenant per frame -> per tag, frame scores -> segments (hysteresis, :mod:`tagsmith.video.segments`)
-> each segment and the asset routed with the model's own rules (:func:`route_prediction`) -> text
rules on what OCR read in a few frames.

Routing a video differs from routing an image in one way: a video can show several products in
turn, so each tag of an exclusive model is judged on its own (its best segment's peak against the
tag's threshold), as multi-label models are.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import IO

import numpy as np
from PIL import Image

from tagsmith.keys import thumbnails_prefix
from tagsmith.ocr import OcrEngine
from tagsmith.records import Segment, TagAssignment, TextLine
from tagsmith.tagging import Proposal, Tagger
from tagsmith.tagmodels import ModelKind, TagModel, route_prediction
from tagsmith.tagmodels.routing import decide
from tagsmith.tagmodels.text_rules import apply_text_rules
from tagsmith.video.decode import SampledFrame, SamplingPolicy, ScanCursor, VideoInfo, VideoReader
from tagsmith.video.segments import SegmentPolicy, find_spans

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = 320
DEFAULT_SAMPLING = SamplingPolicy()
DEFAULT_SEGMENTING = SegmentPolicy()


@dataclass(frozen=True)
class VideoAnalysis:
    info: VideoInfo
    duration: float
    segments: tuple[Segment, ...]
    proposal: Proposal
    text_lines: tuple[TextLine, ...] | None  # None: OCR did not run
    thumbnails: dict[str, bytes]  # data-bucket key -> JPEG, one per segment
    frames: int
    seconds: dict[str, float] = field(default_factory=dict)  # decode / embed / ocr, for logs and benchmarks


@dataclass(frozen=True)
class FrameScan:
    """The sampled frames of a video (or of one window of it), before any tag model: what a video
    job checkpoints. Frame ``i`` is at ``times[i]`` s, a keyframe or not, with its embedding row and
    the JPEG thumbnail a segment peaking there would show."""

    times: np.ndarray  # (F,) float64, ascending
    keyframes: np.ndarray  # (F,) bool
    embeddings: dict[str, np.ndarray]  # encoder id -> (F, D) float32: by each encoder a model needs
    thumbnails: list[bytes]
    text_lines: tuple[TextLine, ...] | None  # None: OCR did not run
    seconds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def join(cls, parts: Sequence[FrameScan]) -> FrameScan:
        """Windows end to end, as one scan (thumbnails are left out: read them per window)."""
        lines: dict[str, TextLine] | None = None
        for p in parts:
            if p.text_lines is not None:
                lines = lines if lines is not None else {}
                for line in p.text_lines:
                    lines.setdefault(line.text, line)  # first seen wins, as in one pass
        encoders = list(dict.fromkeys(k for p in parts for k in p.embeddings))
        seconds: dict[str, float] = {}
        for p in parts:
            for k, v in p.seconds.items():
                seconds[k] = round(seconds.get(k, 0.0) + v, 3)
        return cls(
            times=np.concatenate([p.times for p in parts]) if parts else np.zeros(0),
            keyframes=np.concatenate([p.keyframes for p in parts]) if parts else np.zeros(0, bool),
            embeddings={
                k: np.concatenate([p.embeddings[k] for p in parts if k in p.embeddings]) for k in encoders
            },
            thumbnails=[],
            text_lines=None if lines is None else tuple(sorted(lines.values(), key=lambda x: x.time or 0.0)),
            seconds=seconds,
        )


def thumbnail_key(tenant: str, path: str, etag: str, time_s: float) -> str:
    """``tenants/<t>/thumbnails/<asset path>/<etag>/<milliseconds>.jpg``: one object version's
    frame, so reprocessing writes the same keys.

    >>> thumbnail_key("acme", "ads/spot.mp4", "abc", 12.5)
    'tenants/acme/thumbnails/ads/spot.mp4/abc/00012500.jpg'
    """
    return f"{thumbnails_prefix(tenant, path)}{etag}/{round(time_s * 1000):08d}.jpg"


class VideoTagger:
    """Samples, tags and segments one video at a time; the image :class:`Tagger` supplies the
    encoder and the tenant's active models."""

    def __init__(
        self,
        *,
        tagger: Tagger,
        sampling: SamplingPolicy = DEFAULT_SAMPLING,
        segmenting: SegmentPolicy = DEFAULT_SEGMENTING,
        batch_size: int = 32,
        ocr_frames: int = 6,
    ) -> None:
        self.tagger = tagger
        self.sampling = sampling
        self.segmenting = segmenting
        self.batch_size = batch_size
        self.ocr_frames = ocr_frames

    def analyse(
        self,
        tenant: str,
        file: IO[bytes],
        *,
        path: str,
        etag: str,
        ocr: OcrEngine | None = None,
        sampling: SamplingPolicy | None = None,
    ) -> VideoAnalysis:
        """The whole video in one pass: :meth:`scan` then :meth:`aggregate`. Raises
        :class:`~tagsmith.errors.UnsupportedMediaError` for a file that is not a decodable video."""
        models = self.tagger.active_models(tenant)
        with VideoReader(file, sampling or self.sampling) as video:
            scan = self.scan(video, ocr=ocr, encoders=self.tagger.encoders_for(tenant))
        return self.aggregate(
            tenant, path=path, etag=etag, info=video.info, scan=scan, models=models,
            thumbnail=scan.thumbnails.__getitem__,
        )  # fmt: skip

    def scan(
        self,
        video: VideoReader,
        *,
        ocr: OcrEngine | None = None,
        cursor: ScanCursor | None = None,
        until: float | None = None,
        encoders: Sequence[str] | None = None,
    ) -> FrameScan:
        """Sample, embed (by each of ``encoders``, default: the tagger's default encoder) and
        thumbnail the frames of ``video`` (all of them, or the window from ``cursor`` to the first
        keyframe at or after ``until``; ``video.cursor`` then says where the next window starts),
        and read text in the few frames OCR looks at."""
        encoder_ids = tuple(encoders) if encoders else (self.tagger.encoder.encoder_id,)
        info = video.info
        seconds = {"decode": 0.0, "embed": 0.0, "ocr": 0.0}
        times: list[float] = []
        keyframes: list[bool] = []
        thumbs: list[bytes] = []
        embeddings: dict[str, list[np.ndarray]] = {k: [] for k in encoder_ids}
        ocr_candidates: list[SampledFrame] = []
        # OCR reads a few frames spread over the video (those after the frames already read, when
        # resuming); only those are kept in memory
        ocr_times = list(np.linspace(0.0, (info.duration or 0.0) * 0.9, self.ocr_frames)) if ocr else []
        if cursor is not None and cursor.last_time is not None:
            ocr_times = [t for t in ocr_times if t > cursor.last_time + 1e-6]
        batch: list[SampledFrame] = []
        started = time.perf_counter()
        for frame in video.frames(cursor=cursor, until=until):
            batch.append(frame)
            keyframes.append(frame.keyframe)
            if ocr_times and frame.time + 1e-6 >= ocr_times[0]:
                ocr_candidates.append(frame)
                while ocr_times and ocr_times[0] <= frame.time + 1e-6:
                    ocr_times.pop(0)
            if len(batch) >= self.batch_size:
                seconds["decode"] += time.perf_counter() - started
                self._embed(batch, embeddings, times, thumbs, seconds)
                batch = []
                started = time.perf_counter()
        seconds["decode"] += time.perf_counter() - started
        if batch:
            self._embed(batch, embeddings, times, thumbs, seconds)
        text_lines: list[TextLine] | None = None
        if ocr is not None:
            started = time.perf_counter()
            text_lines = self._read_text(ocr, ocr_candidates)
            seconds["ocr"] = time.perf_counter() - started
        return FrameScan(
            times=np.asarray(times, dtype=np.float64),
            keyframes=np.asarray(keyframes, dtype=bool),
            embeddings={
                k: np.concatenate(rows)
                if rows
                else np.zeros((0, self.tagger.encoders.get(k).dim), np.float32)
                for k, rows in embeddings.items()
            },
            thumbnails=thumbs,
            text_lines=None if text_lines is None else tuple(text_lines),
            seconds={k: round(v, 3) for k, v in seconds.items()},
        )

    def aggregate(
        self,
        tenant: str,
        *,
        path: str,
        etag: str,
        info: VideoInfo,
        scan: FrameScan,
        models: Sequence[TagModel],
        thumbnail: Callable[[int], bytes],
    ) -> VideoAnalysis:
        """Frame embeddings of the whole video -> every model per frame -> segments, thumbnails of
        their peak frames (``thumbnail(i)``: the JPEG of frame ``i``) and asset-level proposals.
        The same for a single pass and for windows joined end to end: segments never split at a
        window boundary, since there is none here."""
        t, cuts = scan.times, scan.keyframes
        duration = info.duration or (float(t[-1]) if len(t) else 0.0)
        text_lines = scan.text_lines
        segments: list[Segment] = []
        thumbnails: dict[str, bytes] = {}
        assignments: list[TagAssignment] = []
        for model in models:
            probs = (
                model.predict(scan.embeddings[model.encoder_id])
                if len(t)
                else np.zeros((0, len(model.tags)), np.float32)
            )
            judged = _as_multilabel(model)
            peaks = np.zeros(len(model.tags))
            for j, tag in enumerate(model.tags):
                enter = max(model.review_floor, min(self.segmenting.enter, model.threshold_for(tag)))
                stay = min(self.segmenting.stay, enter)
                tag_policy = replace(self.segmenting, enter=enter, stay=stay)
                for span in find_spans(t, probs[:, j], end_time=duration, policy=tag_policy, keyframes=cuts):
                    state = decide(judged, j, span.peak)
                    if state is None:
                        continue
                    peaks[j] = max(peaks[j], span.peak)
                    peak_time = float(t[span.peak_index])
                    key = thumbnail_key(tenant, path, etag, peak_time)
                    thumbnails[key] = thumbnail(span.peak_index)
                    segments.append(
                        Segment(
                            model=model.model_id,
                            tag=tag,
                            start=round(span.start, 3),
                            end=round(span.end, 3),
                            peak_confidence=round(span.peak, 4),
                            mean_confidence=round(span.mean, 4),
                            peak_time=round(peak_time, 3),
                            state=state,
                            thumbnail_key=key,
                        )
                    )
            routed_asset = [a for a in route_prediction(judged, peaks) if peaks[model.tags.index(a.tag)] > 0]
            if text_lines:
                frame_max = probs.max(axis=0) if len(probs) else None
                routed_asset = apply_text_rules(
                    model, routed_asset, "\n".join(x.text for x in text_lines), frame_max
                )
            assignments += routed_asset
        segments.sort(key=lambda s: (s.model, s.tag, s.start))
        proposal = Proposal(
            models={m.model_id: m.version for m in models},
            exclusive_models=set(),  # several tags of one exclusive model may each have segments
            assignments=assignments,
        )
        return VideoAnalysis(
            info=info,
            duration=round(float(duration), 3),
            segments=tuple(segments),
            proposal=proposal,
            text_lines=text_lines,
            thumbnails=thumbnails,
            frames=len(t),
            seconds=dict(scan.seconds),
        )

    def _embed(
        self,
        batch: Sequence[SampledFrame],
        embeddings: dict[str, list[np.ndarray]],
        times: list[float],
        thumbs: list[bytes],
        seconds: dict[str, float],
    ) -> None:
        started = time.perf_counter()
        images = [f.image for f in batch]
        for encoder_id, rows in embeddings.items():
            rows.append(np.asarray(self.tagger.encoders.get(encoder_id).embed(images), dtype=np.float32))
        seconds["embed"] += time.perf_counter() - started
        times.extend(f.time for f in batch)
        thumbs.extend(_jpeg_thumbnail(f.image) for f in batch)

    def _read_text(self, ocr: OcrEngine, frames: Sequence[SampledFrame]) -> list[TextLine]:
        """OCR on the chosen frames; a line read in several frames is kept once, at its first time."""
        seen: dict[str, TextLine] = {}
        for frame in frames[: max(self.ocr_frames, 0)]:
            for line in ocr.read(frame.image):
                if line.text not in seen:
                    seen[line.text] = replace(line, time=round(frame.time, 3))
        return sorted(seen.values(), key=lambda x: x.time or 0.0)


def _as_multilabel(model: TagModel) -> TagModel:
    return model if model.kind is ModelKind.MULTILABEL else replace(model, kind=ModelKind.MULTILABEL)


def _jpeg_thumbnail(image: Image.Image) -> bytes:
    small = image.copy()
    small.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=80)
    return buf.getvalue()
