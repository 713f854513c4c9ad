"""The record's optional video/OCR fields: round trip, old JSON still reads, and search documents."""

from __future__ import annotations

import json

from tagsmith.records import (
    AssetRecord,
    AssetStatus,
    Segment,
    Source,
    SourceObject,
    TagAssignment,
    TagState,
    TextLine,
)
from tagsmith.review import ReviewItem
from tagsmith.search.documents import document_from_record

SOURCE = SourceObject("assets", "acme/ads/spot.mp4", "e1", 1234)


def video_record() -> AssetRecord:
    return AssetRecord(
        "acme", "ads/spot.mp4", SOURCE, AssetStatus.TAGGED, media_type="video/mp4",
        tags=(
            TagAssignment("colour", "blue", TagState.APPLIED, Source.AI, 0.95),
            TagAssignment("colour", "green", TagState.REVIEW, Source.AI, 0.5),
            TagAssignment("colour", "red", TagState.CONFIRMED, Source.HUMAN, matched_text="ROT"),
        ),
        duration=8.0,
        segments=(
            Segment("colour", "blue", 3.0, 5.0, 0.95, 0.9, 4.0, TagState.APPLIED, "tenants/acme/thumbnails/x.jpg"),
            Segment("colour", "green", 6.0, 7.0, 0.5, 0.45, 6.0, TagState.REVIEW),
            Segment("colour", "red", 0.0, 3.0, 0.7, 0.6, 1.0, TagState.REVIEW),
        ),
        text_lines=(TextLine("LAKTOSFRI", 0.98, ((1, 2), (30, 2), (30, 12), (1, 12)), time=3.0), TextLine("1,5%", 0.9)),
        ocr_engine="rapidocr",
    )  # fmt: skip


def test_segments_and_text_survive_a_round_trip() -> None:
    record = video_record()
    assert AssetRecord.from_json(record.to_json()) == record
    assert record.ocr_text == "LAKTOSFRI\n1,5%"


def test_an_old_record_without_the_new_fields_still_reads_and_writes_the_same_json() -> None:
    old = AssetRecord("acme", "a.jpg", SOURCE, AssetStatus.TAGGED, media_type="image/jpeg")
    d = json.loads(old.to_json())
    assert not {"duration", "segments", "text_lines", "ocr_engine"} & set(d)
    back = AssetRecord.from_json(json.dumps(d))
    assert (back.segments, back.text_lines, back.duration, back.ocr_engine) == ((), (), None, None)


def test_ocr_that_read_nothing_is_recorded_as_having_run() -> None:
    record = AssetRecord("acme", "a.jpg", SOURCE, AssetStatus.TAGGED, ocr_engine="rapidocr")
    back = AssetRecord.from_json(record.to_json())
    assert (back.ocr_engine, back.text_lines, back.ocr_text) == ("rapidocr", (), "")


def test_documents_carry_ocr_text_and_the_segments_of_visible_tags_only() -> None:
    doc = document_from_record(video_record(), {})
    assert doc["ocr_text"] == "LAKTOSFRI\n1,5%"
    # blue: applied segment; red: its segment was in review but a human confirmed the tag;
    # green: still in review, not searchable as "in the clip"
    assert doc["segments"] == [
        {"model": "colour", "tag": "blue", "start": 3.0, "end": 5.0, "confidence": 0.95},
        {"model": "colour", "tag": "red", "start": 0.0, "end": 3.0, "confidence": 0.7},
    ]
    image = document_from_record(AssetRecord("acme", "a.jpg", SOURCE, AssetStatus.TAGGED), {})
    assert "segments" not in image and "ocr_text" not in image


def test_review_items_keep_old_json_and_carry_a_timestamp_for_videos() -> None:
    plain = ReviewItem("i", "acme", "a.jpg", "colour", "v1", "red", 0.5, 0.8)
    assert "timestamp" not in json.loads(plain.to_json())
    timed = ReviewItem(
        "i", "acme", "a.mp4", "colour", "v1", "red", 0.5, 0.8, timestamp=12.5, thumbnail_key="k.jpg"
    )
    assert ReviewItem.from_json(timed.to_json()) == timed
    assert ReviewItem.from_json(plain.to_json()) == plain
