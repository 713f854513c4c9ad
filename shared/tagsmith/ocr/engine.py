"""Reading printed text with rapidocr (PP-OCR detection + recognition, ONNX models inside the wheel).

One engine per process: the three ONNX sessions take about two seconds to load and some hundred MB,
so every :class:`RapidOcrEngine` shares them, and nothing loads until the first image is read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
from PIL import Image

from tagsmith.ocr.transforms import downscale, inverted, limit_size
from tagsmith.records import TextLine

log = logging.getLogger(__name__)

RAPIDOCR_ENGINE_ID = "rapidocr-3.10-ppocrv6-small"

# Detection runs with the short side at 480 px (rapidocr's default upscales it to 736, which costs
# about twice the time and finds little more on product photos); images are first brought down to
# MAX_SIDE so a 24-megapixel photo costs the same as a small one.
_RAPIDOCR_PARAMS: dict[str, Any] = {
    "Global.log_level": "error",
    "Det.limit_type": "min",
    "Det.limit_side_len": 480,
}
MAX_SIDE = 1280
MIN_SCORE = 0.5


class OcrEngine(Protocol):
    """Reads text lines from an RGB image; boxes are in the given image's pixels."""

    engine_id: str

    def read(self, image: Image.Image) -> list[TextLine]: ...


_shared_lock = threading.Lock()
_shared: dict[str, Any] = {}


def _rapidocr() -> Any:
    """The process-wide rapidocr engine, created on first use."""
    with _shared_lock:
        engine = _shared.get("rapidocr")
        if engine is None:
            from rapidocr import RapidOCR

            engine = RapidOCR(params=dict(_RAPIDOCR_PARAMS))
            _shared["rapidocr"] = engine
        return engine


class RapidOcrEngine:
    """rapidocr with a retry: when nothing is read, the image is read again inverted and then
    downscaled, which recovers the very large white-on-coloured text the detector misses.

    Example::

        >>> engine = RapidOcrEngine()  # doctest: +SKIP
        >>> [line.text for line in engine.read(Image.open("carton.jpg").convert("RGB"))]  # doctest: +SKIP
        ['LAKTOSFRI', 'MELLANMJÖLK', '1,5%']
    """

    engine_id = RAPIDOCR_ENGINE_ID

    def __init__(
        self,
        *,
        max_side: int = MAX_SIDE,
        min_score: float = MIN_SCORE,
        retry: bool = True,
        backend: Callable[[], Any] = _rapidocr,
    ) -> None:
        self.max_side = max_side
        self.min_score = min_score
        self.retry = retry
        self._backend = backend
        self._lock = threading.Lock()  # one ONNX run at a time: it already uses every core

    def read(self, image: Image.Image) -> list[TextLine]:
        rgb = image.convert("RGB") if image.mode != "RGB" else image
        small, scale = limit_size(rgb, self.max_side)
        lines = self._read_once(small, scale)
        if lines or not self.retry:
            return lines
        attempts: Sequence[tuple[str, Callable[[Image.Image], tuple[Image.Image, float]]]] = (
            ("inverted", lambda im: (inverted(im), 1.0)),
            ("downscaled", lambda im: downscale(im, 0.5)),
        )
        for name, variant in attempts:
            candidate, factor = variant(small)
            lines = self._read_once(candidate, scale * factor)
            if lines:
                log.debug("OCR found text only on the %s image", name)
                return lines
        return []

    def _read_once(self, image: Image.Image, scale: float) -> list[TextLine]:
        """``scale``: original pixels per pixel of ``image`` (boxes are mapped back)."""
        engine = self._backend()
        with self._lock:
            result = engine(image)
        return lines_from_result(result, scale=scale, min_score=self.min_score)


def lines_from_result(result: Any, *, scale: float = 1.0, min_score: float = MIN_SCORE) -> list[TextLine]:
    """rapidocr's output (``txts``, ``scores``, ``boxes`` of 4 corners) -> text lines in reading
    order (top to bottom, then left to right), boxes scaled back by ``scale``."""
    texts = getattr(result, "txts", None) or ()
    scores = getattr(result, "scores", None) or ()
    boxes = getattr(result, "boxes", None)
    if boxes is None:
        boxes = np.zeros((len(texts), 4, 2))
    lines = []
    for text, score, box in zip(texts, scores, boxes, strict=False):
        text = str(text).strip()
        if not text or float(score) < min_score:
            continue
        corners = tuple((round(float(x) * scale), round(float(y) * scale)) for x, y in np.asarray(box)[:, :2])
        lines.append(TextLine(text=text, score=round(float(score), 4), box=corners))
    return sorted(lines, key=_reading_order)


def _reading_order(line: TextLine) -> tuple[int, int]:
    if not line.box:
        return (0, 0)
    top = min(y for _, y in line.box)
    left = min(x for x, _ in line.box)
    height = max(y for _, y in line.box) - top
    # lines whose tops are within half a line height read as one row
    return (top // max(height // 2, 1), left)
