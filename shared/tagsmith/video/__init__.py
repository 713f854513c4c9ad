"""Video: decode (PyAV), sample keyframes plus every N seconds, tag every frame with the tenant's
models, and aggregate frame scores into segments with timestamps.

The file is streamed (:meth:`tagsmith.storage.ObjectStore.open`), never loaded whole.

Example::

    >>> from tagsmith.video import VideoTagger  # doctest: +SKIP
    >>> analysis = VideoTagger(tagger=tagger).analyse("acme", open("spot.mp4", "rb"), path="spot.mp4", etag="e")  # doctest: +SKIP
    >>> [(s.tag, s.start, s.end) for s in analysis.segments]  # doctest: +SKIP
    [('oat-milk', 0.0, 3.0), ('juice', 3.0, 5.0)]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tagsmith.video.decode import SampledFrame, SamplingPolicy, ScanCursor, VideoInfo, VideoReader
from tagsmith.video.segments import SegmentPolicy, Span, find_spans, hysteresis
from tagsmith.video.settings import MediaSettings, TenantMediaSettings
from tagsmith.video.sniff import SNIFF_BYTES, MediaKind, sniff_media

if TYPE_CHECKING:
    from tagsmith.video.analysis import FrameScan, VideoAnalysis, VideoTagger, thumbnail_key

# Tagging frames brings the tagger and the tag models: loaded on first use, so what reads a video
# job's state or a file's media kind (`tagsmith record`, the console) does not pay for it.
_ANALYSIS = ("FrameScan", "VideoAnalysis", "VideoTagger", "thumbnail_key")


def __getattr__(name: str) -> Any:
    if name in _ANALYSIS:
        from tagsmith.video import analysis

        return getattr(analysis, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SNIFF_BYTES",
    "FrameScan",
    "MediaKind",
    "MediaSettings",
    "SampledFrame",
    "SamplingPolicy",
    "ScanCursor",
    "SegmentPolicy",
    "Span",
    "TenantMediaSettings",
    "VideoAnalysis",
    "VideoInfo",
    "VideoReader",
    "VideoTagger",
    "find_spans",
    "hysteresis",
    "sniff_media",
    "thumbnail_key",
]
