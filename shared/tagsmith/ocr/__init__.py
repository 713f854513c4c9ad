"""OCR: printed text read from images and video frames, stored on the asset record and indexed.

Text is also evidence for tagging: tag models may declare text rules
(:mod:`tagsmith.tagmodels.text_rules`), and a model trained with ``--text`` learns from it:
:func:`text_features` turns text into the vector its text head reads
(:mod:`tagsmith.tagmodels.text_head`).

Example::

    >>> from PIL import Image  # doctest: +SKIP
    >>> from tagsmith.ocr import RapidOcrEngine  # doctest: +SKIP
    >>> lines = RapidOcrEngine().read(Image.open("carton.jpg").convert("RGB"))  # doctest: +SKIP
    >>> " ".join(line.text for line in lines)  # doctest: +SKIP
    'LAKTOSFRI MELLANMJÖLK 1,5%'
"""

from tagsmith.ocr.engine import RAPIDOCR_ENGINE_ID, OcrEngine, RapidOcrEngine, lines_from_result
from tagsmith.ocr.features import normalise_text, text_features

__all__ = [
    "RAPIDOCR_ENGINE_ID",
    "OcrEngine",
    "RapidOcrEngine",
    "lines_from_result",
    "normalise_text",
    "text_features",
]
