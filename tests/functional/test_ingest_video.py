"""Video ingestion end to end: S3 on in-process moto (streamed with ranged GETs), the real ingest
service and an OpenSearch-compatible index (osmem): segments with timestamps are stored, indexed
and searchable; every kind of bad video fails alone with a reason on its record."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image
from tagsmith.config import Settings
from tagsmith.events import ObjectRef
from tagsmith.keys import AssetKey
from tagsmith.records import AssetStatus, TagState, TextLine
from tagsmith.search import OpenSearchIndex, SearchQuery
from tagsmith.search.mapping import alias_name
from tagsmith.storage import S3ObjectStore
from tagsmith.taxonomy import TagDefinition, Taxonomy
from tagsmith.wiring import Components, build

from tests.fakes import COLOURS, FakeEncoder, solid_jpeg
from tests.functional.conftest import HANDLER_ASSETS, HANDLER_DATA
from tests.videoclips import audio_only, colour_clip, corrupt_clip, install_colour_model, unknown_codec_clip

ASSETS, DATA = HANDLER_ASSETS, HANDLER_DATA


class FakeOcr:
    """Reads 'LAKTOSFRI' on anything blue; the real engine is tested in tests/unit/test_ocr_*."""

    engine_id = "fake-ocr-v1"

    def read(self, image: Image.Image) -> list[TextLine]:
        r, _g, b = image.convert("RGB").resize((1, 1)).getpixel((0, 0))
        return [TextLine("LAKTOSFRI", 0.98, ((1, 2), (30, 2), (30, 12), (1, 12)))] if b > r else []


@pytest.fixture
def stack(opensearch_index: OpenSearchIndex, moto_aws: dict[str, Any]) -> Iterator[Components]:
    s3 = moto_aws["s3"]
    c = build(
        Settings(data_bucket=DATA, assets_bucket=ASSETS),
        store=S3ObjectStore(client=s3),
        index=opensearch_index,
        encoder=FakeEncoder(),
    )
    c.ingest.ocr = FakeOcr()
    install_colour_model(c)
    c.index.ensure_tenant("acme")
    yield c


def upload(c: Components, key: str, body: bytes) -> ObjectRef:
    etag = c.store.put(ASSETS, key, body)
    return ObjectRef(ASSETS, key, etag, len(body))


def record(c: Components, path: str):
    found = c.records.get(AssetKey("acme", path))
    assert found is not None
    return found[0]


def test_a_batch_of_good_and_bad_videos_loses_nothing(stack: Components) -> None:
    c = stack
    refs = [
        upload(c, "acme/ads/spot.mp4", colour_clip()),
        upload(c, "acme/ads/spot.webm", colour_clip(codec="libvpx-vp9", container="webm")),
        upload(c, "acme/broken/corrupt.mp4", corrupt_clip()),
        upload(c, "acme/broken/voiceover.m4a", audio_only()),
        upload(c, "acme/broken/empty.mp4", b""),
        upload(c, "acme/broken/exotic.mkv", unknown_codec_clip()),
        upload(c, "acme/stills/red.jpg", solid_jpeg(COLOURS["red"], seed=5)),
    ]
    outcomes = c.ingest.ingest(refs)
    assert [getattr(o, "status", o) for o in outcomes] == [
        "tagged", "tagged", "failed", "failed", "failed", "failed", "tagged",
    ]  # fmt: skip
    reasons = {
        path: (record(c, path).status, record(c, path).failure.code, record(c, path).failure.message)  # type: ignore[union-attr]
        for path in ("broken/corrupt.mp4", "broken/voiceover.m4a", "broken/empty.mp4", "broken/exotic.mkv")
    }
    assert all(status is AssetStatus.FAILED for status, _, _ in reasons.values())
    assert "could be decoded" in reasons["broken/corrupt.mp4"][2]
    assert "no video stream" in reasons["broken/voiceover.m4a"][2]
    assert "0 bytes" in reasons["broken/empty.mp4"][2]
    assert "codec" in reasons["broken/exotic.mkv"][2]
    assert reasons["broken/corrupt.mp4"][1] == "unsupported_media"

    # the good ones: segments at the known cuts, tags from the segments, thumbnails in the data bucket
    for path, mime in (("ads/spot.mp4", "video/mp4"), ("ads/spot.webm", "video/webm")):
        r = record(c, path)
        assert (r.status, r.media_type, r.width, r.height) == (AssetStatus.TAGGED, mime, 160, 120)
        assert r.duration == pytest.approx(8.0, abs=0.15)
        assert [(s.tag, s.start) for s in r.segments] == [("blue", 3.0), ("red", 0.0), ("red", 5.0)]
        assert sorted(t.tag for t in r.visible_tags()) == ["blue", "red"]
        for s in r.segments:
            thumb = c.store.get(DATA, s.thumbnail_key or "")
            assert thumb.body[:3] == b"\xff\xd8\xff"
    assert [t.tag for t in record(c, "stills/red.jpg").visible_tags()] == ["red"]


def test_search_returns_the_clip_and_its_timestamps(
    stack: Components, opensearch_index: OpenSearchIndex
) -> None:
    c = stack
    c.ingest.ingest(
        [upload(c, "acme/ads/spot.mp4", colour_clip()), upload(c, "acme/red.jpg", solid_jpeg(COLOURS["red"]))]
    )
    page = c.index.search("acme", SearchQuery(tags=["colour/blue"]))
    assert [h.asset_key for h in page.hits] == ["acme/ads/spot.mp4"]
    clips = [(x["tag"], x["start"], x["end"]) for x in page.hits[0].to_dict()["segments"]]
    assert clips == [("blue", 3.0, 5.0), ("red", 0.0, 3.0), ("red", 5.0, pytest.approx(8.0, abs=0.15))]
    assert "segments" not in c.index.search("acme", SearchQuery(tags=["colour/red"])).hits[1].to_dict()
    # where in the clip: a nested query on the segments, as a player would ask it
    body = {
        "query": {"nested": {"path": "segments", "query": {"term": {"segments.tag": "blue"}}}},
        "_source": ["asset_key", "segments"],
    }
    response = opensearch_index._client.search(index=alias_name("acme"), body=body)
    [hit] = response["hits"]["hits"]
    clips = [(s["tag"], s["start"], s["end"]) for s in hit["_source"]["segments"]]
    assert ("blue", 3.0, 5.0) in clips and ("red", 0.0, 3.0) in clips


def test_ocr_on_video_frames_is_stored_indexed_and_feeds_text_rules(stack: Components) -> None:
    c = stack
    # GIVEN a tenant with OCR on, and a rule: "green" applies when LAKTOSFRI is read
    c.store.put(
        DATA, "tenants/acme/tenant.json", json.dumps({"ocr": True, "video": {"sample_every": 1}}).encode()
    )
    patterns = {"green": ("LAKTOSFRI|laktosfri",)}
    taxonomy = Taxonomy(
        tuple(TagDefinition(t, text_patterns=patterns.get(t, ())) for t in ("blue", "green", "red"))
    )
    install_colour_model(c, taxonomy=taxonomy, version="v2")
    c.ingest.ingest([upload(c, "acme/ads/spot.mp4", colour_clip())])
    r = record(c, "ads/spot.mp4")
    assert r.ocr_engine == "fake-ocr-v1"
    assert [(x.text, 3.0 <= (x.time or 0) < 5.0) for x in r.text_lines] == [("LAKTOSFRI", True)]
    green = next(t for t in r.tags if t.tag == "green")
    assert (green.state, green.matched_text) == (TagState.APPLIED, "LAKTOSFRI")
    page = c.index.search("acme", SearchQuery(text="laktosfri"))
    assert [h.asset_key for h in page.hits] == ["acme/ads/spot.mp4"]


def test_a_video_in_review_carries_its_timestamp_and_thumbnail(stack: Components) -> None:
    c = stack
    teal = (30, 110, 125)  # the colour model is unsure between blue and green (about 0.52 blue)
    c.ingest.ingest([upload(c, "acme/ads/teal.mp4", colour_clip(((COLOURS["red"], 2.0), (teal, 4.0))))])
    [item] = c.reviews.pending("acme")
    r = record(c, "ads/teal.mp4")
    # the item points at the most confident segment of the suggested tag: where to look
    best = max((x for x in r.segments if x.tag == item.suggestion), key=lambda x: x.peak_confidence)
    assert (item.asset_path, item.timestamp, item.thumbnail_key) == (
        "ads/teal.mp4",
        best.peak_time,
        best.thumbnail_key,
    )
    assert item.thumbnail_key and c.store.get(DATA, item.thumbnail_key).body[:2] == b"\xff\xd8"
