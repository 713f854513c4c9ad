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
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import IO

import numpy as np
from PIL import Image

from tagsmith.ocr import OcrEngine
from tagsmith.records import Segment, TagAssignment, TagState, TextLine
from tagsmith.tagging import Proposal, Tagger
from tagsmith.tagmodels import ModelKind, TagModel, route_prediction
from tagsmith.tagmodels.text_rules import apply_text_rules
from tagsmith.video.decode import SampledFrame, SamplingPolicy, VideoInfo, VideoReader
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


def thumbnail_key(tenant: str, path: str, etag: str, time_s: float) -> str:
    """``tenants/<t>/thumbnails/<asset path>/<etag>/<milliseconds>.jpg``: one object version's
    frame, so reprocessing writes the same keys.

    >>> thumbnail_key("acme", "ads/spot.mp4", "abc", 12.5)
    'tenants/acme/thumbnails/ads/spot.mp4/abc/00012500.jpg'
    """
    return f"tenants/{tenant}/thumbnails/{path}/{etag}/{round(time_s * 1000):08d}.jpg"


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
        """Raises :class:`~tagsmith.errors.UnsupportedMediaError` for a file that is not a decodable video."""
        policy = sampling or self.sampling
        models = self.tagger.active_models(tenant)
        seconds = {"decode": 0.0, "embed": 0.0, "ocr": 0.0}
        times: list[float] = []
        keyframes: list[bool] = []
        thumbs: list[bytes] = []
        scores: list[list[np.ndarray]] = [[] for _ in models]
        ocr_candidates: list[SampledFrame] = []
        with VideoReader(file, policy) as video:
            info = video.info
            # OCR reads a few frames spread over the video; only those are kept in memory
            ocr_times = list(np.linspace(0.0, (info.duration or 0.0) * 0.9, self.ocr_frames)) if ocr else []
            batch: list[SampledFrame] = []
            started = time.perf_counter()
            for frame in video.frames():
                batch.append(frame)
                keyframes.append(frame.keyframe)
                if ocr_times and frame.time + 1e-6 >= ocr_times[0]:
                    ocr_candidates.append(frame)
                    while ocr_times and ocr_times[0] <= frame.time + 1e-6:
                        ocr_times.pop(0)
                if len(batch) >= self.batch_size:
                    seconds["decode"] += time.perf_counter() - started
                    self._score(batch, models, scores, times, thumbs, seconds)
                    batch = []
                    started = time.perf_counter()
            seconds["decode"] += time.perf_counter() - started
            if batch:
                self._score(batch, models, scores, times, thumbs, seconds)
            duration = info.duration or (times[-1] if times else 0.0)
        t = np.asarray(times)
        cuts = np.asarray(keyframes, dtype=bool)
        text_lines: tuple[TextLine, ...] | None = None
        if ocr is not None:
            started = time.perf_counter()
            text_lines = tuple(self._read_text(ocr, ocr_candidates))
            seconds["ocr"] = time.perf_counter() - started

        segments: list[Segment] = []
        thumbnails: dict[str, bytes] = {}
        assignments: list[TagAssignment] = []
        for model, per_batch in zip(models, scores, strict=True):
            probs = np.concatenate(per_batch) if per_batch else np.zeros((0, len(model.tags)), np.float32)
            judged = _as_multilabel(model)
            peaks = np.zeros(len(model.tags))
            for j, tag in enumerate(model.tags):
                enter = max(model.review_floor, min(self.segmenting.enter, model.threshold_for(tag)))
                stay = min(self.segmenting.stay, enter)
                tag_policy = replace(self.segmenting, enter=enter, stay=stay)
                for span in find_spans(t, probs[:, j], end_time=duration, policy=tag_policy, keyframes=cuts):
                    routed = _route_one(judged, j, span.peak)
                    if routed is None:
                        continue
                    peaks[j] = max(peaks[j], span.peak)
                    peak_time = float(t[span.peak_index])
                    key = thumbnail_key(tenant, path, etag, peak_time)
                    thumbnails[key] = thumbs[span.peak_index]
                    segments.append(
                        Segment(
                            model=model.model_id,
                            tag=tag,
                            start=round(span.start, 3),
                            end=round(span.end, 3),
                            peak_confidence=round(span.peak, 4),
                            mean_confidence=round(span.mean, 4),
                            peak_time=round(peak_time, 3),
                            state=routed.state,
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
            frames=len(times),
            seconds={k: round(v, 3) for k, v in seconds.items()},
        )

    def _score(
        self,
        batch: Sequence[SampledFrame],
        models: Sequence[TagModel],
        scores: list[list[np.ndarray]],
        times: list[float],
        thumbs: list[bytes],
        seconds: dict[str, float],
    ) -> None:
        started = time.perf_counter()
        embeddings = self.tagger.encoder.embed([f.image for f in batch])
        for model, out in zip(models, scores, strict=True):
            out.append(model.predict(embeddings))
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


def _route_one(model: TagModel, index: int, confidence: float) -> TagAssignment | None:
    """The model's routing rule for one tag at ``confidence``: applied, review, or None (dropped)."""
    p = np.zeros(len(model.tags))
    p[index] = confidence
    for a in route_prediction(model, p):
        if a.tag == model.tags[index]:
            return a if a.state in (TagState.APPLIED, TagState.REVIEW) else None
    return None


def _jpeg_thumbnail(image: Image.Image) -> bytes:
    small = image.copy()
    small.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=80)
    return buf.getvalue()
