"""VideoTagger: generated clips with known shots through a colour model (fake encoder)."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from tagsmith.events import ObjectRef
from tagsmith.keys import AssetKey
from tagsmith.records import TagState, TextLine
from tagsmith.video import SamplingPolicy, SegmentPolicy, VideoTagger
from tagsmith.wiring import Components

from tests.conftest import ASSETS
from tests.videoclips import colour_clip, install_colour_model


def analyse(c: Components, data: bytes, **kwargs: object):
    # one sample a second; an absence of one sample (1 s) is bridged, the 2 s blue shot is not
    tagger = VideoTagger(
        tagger=c.tagger, sampling=SamplingPolicy(every=1.0), segmenting=SegmentPolicy(max_gap=1.0)
    )
    return tagger.analyse("acme", io.BytesIO(data), path="ads/spot.mp4", etag="e1", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("codec", "container"), [("libx264", "mp4"), ("libvpx-vp9", "webm")])
def test_segments_match_the_known_shot_boundaries(components: Components, codec: str, container: str) -> None:
    install_colour_model(components)
    result = analyse(components, colour_clip(codec=codec, container=container))
    got = [(s.tag, s.start, s.end, s.state) for s in result.segments]
    assert got == [
        ("blue", 3.0, 5.0, TagState.APPLIED),
        ("red", 0.0, 3.0, TagState.APPLIED),
        ("red", 5.0, pytest.approx(8.0, abs=0.15), TagState.APPLIED),
    ]
    # an exclusive model may still give a video several tags: one per product shown
    assert sorted((a.tag, a.state) for a in result.proposal.assignments) == [
        ("blue", TagState.APPLIED), ("red", TagState.APPLIED),
    ]  # fmt: skip
    assert result.proposal.exclusive_models == set()
    assert result.duration == pytest.approx(8.0, abs=0.15)


def test_flicker_does_not_fragment_a_segment(components: Components) -> None:
    install_colour_model(components)
    result = analyse(components, colour_clip((("red", 6.0),), flicker=(2.0, 4.0)))
    assert [(s.tag, s.start, s.end) for s in result.segments] == [("red", 0.0, pytest.approx(6.0, abs=0.15))]


def test_each_segment_has_a_thumbnail_of_its_peak_frame(components: Components) -> None:
    install_colour_model(components)
    result = analyse(components, colour_clip())
    assert set(result.thumbnails) == {s.thumbnail_key for s in result.segments}
    blue = next(s for s in result.segments if s.tag == "blue")
    assert (
        blue.thumbnail_key
        == f"tenants/acme/thumbnails/ads/spot.mp4/e1/{round(blue.peak_time * 1000):08d}.jpg"
    )
    assert 3.0 <= blue.peak_time < 5.0
    thumb = Image.open(io.BytesIO(result.thumbnails[blue.thumbnail_key]))
    r, _g, b = thumb.convert("RGB").resize((1, 1)).getpixel((0, 0))
    assert (thumb.format, b > r, max(thumb.size) <= 320) == ("JPEG", True, True)


def test_a_segment_below_the_tag_threshold_goes_to_review(components: Components) -> None:
    install_colour_model(components, threshold=0.6)
    teal = (30, 110, 125)  # between blue and green: the model is unsure (about 0.52 blue)
    result = analyse(components, colour_clip(((teal, 4.0),)))
    assert result.segments and all(s.state is TagState.REVIEW for s in result.segments)
    assert {a.state for a in result.proposal.assignments} == {TagState.REVIEW}


def test_no_models_means_no_segments_but_a_valid_analysis(components: Components) -> None:
    result = analyse(components, colour_clip())
    assert (result.segments, result.proposal.assignments, result.frames) == ((), [], 8)


class ReadsTextOnBlue:
    engine_id = "fake-ocr"

    def __init__(self) -> None:
        self.calls = 0

    def read(self, image: Image.Image) -> list[TextLine]:
        self.calls += 1
        r, _g, b = image.resize((1, 1)).getpixel((0, 0))
        return [TextLine("BLUE 500ML", 0.99, ((0, 0), (9, 0), (9, 9), (0, 9)))] if b > r else []


def test_ocr_reads_a_few_frames_and_keeps_each_line_once_with_its_time(components: Components) -> None:
    ocr = ReadsTextOnBlue()
    result = VideoTagger(tagger=components.tagger, sampling=SamplingPolicy(every=0.5), ocr_frames=5).analyse(
        "acme", io.BytesIO(colour_clip()), path="a.mp4", etag="e", ocr=ocr
    )
    assert ocr.calls == 5
    [line] = result.text_lines
    assert line.text == "BLUE 500ML" and 3.0 <= line.time < 5.0


def test_ingest_sends_a_video_named_like_an_image_to_the_video_path(components: Components) -> None:
    install_colour_model(components)
    body = colour_clip()
    key = "acme/not-really.jpg"
    ref = ObjectRef(ASSETS, key, components.store.put(ASSETS, key, body), len(body))
    [outcome] = components.ingest.ingest([ref])
    record = components.records.get(AssetKey("acme", "not-really.jpg"))[0]
    assert (outcome.status, record.media_type) == ("tagged", "video/mp4")
    assert [s.tag for s in record.segments] == ["blue", "red", "red"]


def test_ingest_streams_a_named_video_and_never_reads_it_whole(
    components: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_colour_model(components)
    body = colour_clip()
    key = "acme/ads/spot.mp4"
    ref = ObjectRef(ASSETS, key, components.store.put(ASSETS, key, body), len(body))
    whole_reads: list[str] = []
    real_get = components.store.get
    monkeypatch.setattr(components.store, "get", lambda b, k: whole_reads.append(k) or real_get(b, k))
    [outcome] = components.ingest.ingest([ref])
    assert outcome.status == "tagged"
    assert key not in whole_reads  # only ObjectStore.open streams touched the video
