"""OCR: the retry logic and box mapping with a fake backend, then the real rapidocr on two small
rendered images (one with text, one without)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from tagsmith.ocr import RapidOcrEngine, lines_from_result


class ScriptedBackend:
    """Answers each call with the next scripted result; records the images it saw."""

    def __init__(self, *results: SimpleNamespace) -> None:
        self.results = list(results)
        self.seen: list[Image.Image] = []

    def __call__(self, image: Image.Image) -> SimpleNamespace:
        self.seen.append(image)
        return self.results.pop(0)

    def factory(self) -> ScriptedBackend:
        return self


NOTHING = SimpleNamespace(txts=None, scores=None, boxes=None)


def found(text: str, box: list[list[float]], score: float = 0.95) -> SimpleNamespace:
    return SimpleNamespace(txts=(text,), scores=(score,), boxes=np.array([box], dtype=np.float32))


BOX = [[10, 10], [50, 10], [50, 20], [10, 20]]


def test_boxes_are_mapped_back_to_the_original_pixels() -> None:
    backend = ScriptedBackend(found("MJÖLK", BOX))
    engine = RapidOcrEngine(max_side=100, backend=backend.factory)
    [line] = engine.read(Image.new("RGB", (400, 200), "white"))
    assert backend.seen[0].size == (100, 50)  # the large image was read at 100 px
    assert (line.text, line.box) == ("MJÖLK", ((40, 40), (200, 40), (200, 80), (40, 80)))


def test_nothing_read_retries_inverted_then_downscaled() -> None:
    backend = ScriptedBackend(NOTHING, NOTHING, found("SALE", BOX))
    engine = RapidOcrEngine(backend=backend.factory)
    image = Image.new("RGB", (200, 100), (200, 20, 20))
    [line] = engine.read(image)
    assert [im.size for im in backend.seen] == [(200, 100), (200, 100), (100, 50)]
    assert backend.seen[1].getpixel((0, 0)) == (55, 235, 235)  # the inverted attempt
    assert line.box[1] == (100, 20)  # found on the half-size image, mapped back


def test_no_retry_when_the_first_read_finds_text_or_retry_is_off() -> None:
    backend = ScriptedBackend(NOTHING)
    assert RapidOcrEngine(retry=False, backend=backend.factory).read(Image.new("RGB", (20, 20))) == []
    assert len(backend.seen) == 1


def test_low_scores_and_blank_text_are_dropped_and_lines_come_in_reading_order() -> None:
    result = SimpleNamespace(
        txts=("second", "first", "  ", "noise"),
        scores=(0.9, 0.9, 0.9, 0.2),
        boxes=np.array([[[5, 60], [50, 60], [50, 70], [5, 70]], BOX, BOX, BOX], dtype=np.float32),
    )
    assert [x.text for x in lines_from_result(result)] == ["first", "second"]


@pytest.fixture(scope="module")
def engine() -> RapidOcrEngine:
    return RapidOcrEngine()


def card(text: str, *, size: int = 48, fg: str = "black", bg: object = "white") -> Image.Image:
    image = Image.new("RGB", (520, 140), bg)  # type: ignore[arg-type]
    ImageDraw.Draw(image).text((16, 40), text, font=ImageFont.load_default(size=size), fill=fg)
    return image


def test_rapidocr_reads_printed_text_with_positions(engine: RapidOcrEngine) -> None:
    lines = engine.read(card("LAKTOSFRI 1,5%"))
    text = " ".join(x.text for x in lines).replace(" ", "")
    assert "LAKTOSFRI" in text and "1,5%" in text
    x0, y0 = lines[0].box[0]
    assert 0 <= x0 < 60 and 20 <= y0 < 100 and lines[0].score > 0.8


def test_rapidocr_finds_nothing_on_an_image_without_text(engine: RapidOcrEngine) -> None:
    rng = np.random.default_rng(3)
    noise = rng.integers(90, 130, size=(120, 160, 3), dtype=np.uint8)
    assert engine.read(Image.fromarray(noise)) == []
