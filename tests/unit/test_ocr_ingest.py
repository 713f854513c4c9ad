"""OCR in image ingestion: off by default, on per tenant; text stored, indexed, fed to text rules;
an OCR crash never loses the tags."""

from __future__ import annotations

import json

from PIL import Image
from tagsmith.events import ObjectRef
from tagsmith.keys import AssetKey
from tagsmith.records import TagState, TextLine
from tagsmith.search import SearchQuery
from tagsmith.taxonomy import TagDefinition, Taxonomy
from tagsmith.wiring import Components

from tests.conftest import ASSETS, DATA
from tests.fakes import COLOURS, solid_jpeg
from tests.videoclips import install_colour_model


class FixedOcr:
    engine_id = "fixed-ocr"

    def __init__(self, *texts: str, fail: bool = False) -> None:
        self.texts, self.fail, self.calls = texts, fail, 0

    def read(self, image: Image.Image) -> list[TextLine]:
        self.calls += 1
        if self.fail:
            raise RuntimeError("the OCR model crashed")
        return [
            TextLine(t, 0.97, ((0, 10 * i), (5, 10 * i), (5, 10 * i + 8), (0, 10 * i + 8)))
            for i, t in enumerate(self.texts)
        ]


def upload(c: Components, key: str, body: bytes) -> ObjectRef:
    return ObjectRef(ASSETS, key, c.store.put(ASSETS, key, body), len(body))


def ocr_on(c: Components) -> None:
    c.store.put(DATA, "tenants/acme/tenant.json", json.dumps({"ocr": {"images": True}}).encode())


def test_ocr_is_off_unless_the_tenant_turns_it_on(components: Components) -> None:
    install_colour_model(components)
    components.ingest.ocr = ocr = FixedOcr("ROT")
    components.ingest.ingest([upload(components, "acme/a.jpg", solid_jpeg(COLOURS["red"]))])
    record = components.records.get(AssetKey("acme", "a.jpg"))[0]
    assert (ocr.calls, record.ocr_engine, record.text_lines) == (0, None, ())


def test_text_is_stored_with_positions_indexed_and_drives_text_rules(components: Components) -> None:
    taxonomy = Taxonomy(
        (TagDefinition("blue"), TagDefinition("green", text_patterns=("(?i)grön",)), TagDefinition("red"))
    )
    install_colour_model(components, taxonomy=taxonomy)
    ocr_on(components)
    components.ingest.ocr = FixedOcr("Ekologisk", "GRÖN TE")
    components.ingest.ingest([upload(components, "acme/tea.jpg", solid_jpeg(COLOURS["red"]))])
    record = components.records.get(AssetKey("acme", "tea.jpg"))[0]
    assert [(x.text, x.box[0]) for x in record.text_lines] == [("Ekologisk", (0, 0)), ("GRÖN TE", (0, 10))]
    [tag] = record.visible_tags()
    assert (tag.tag, tag.state, tag.matched_text) == ("green", TagState.APPLIED, "GRÖN")
    hits = components.index.search("acme", SearchQuery(text="ekologisk")).hits
    assert [h.asset_key for h in hits] == ["acme/tea.jpg"]


def test_an_image_with_no_text_simply_has_empty_ocr(components: Components) -> None:
    install_colour_model(components)
    ocr_on(components)
    components.ingest.ocr = FixedOcr()
    [outcome] = components.ingest.ingest([upload(components, "acme/plain.jpg", solid_jpeg(COLOURS["blue"]))])
    record = components.records.get(AssetKey("acme", "plain.jpg"))[0]
    assert (outcome.status, record.ocr_engine, record.text_lines) == ("tagged", "fixed-ocr", ())
    assert [t.tag for t in record.visible_tags()] == ["blue"]


def test_an_ocr_crash_keeps_the_tags_and_leaves_ocr_unrun(components: Components) -> None:
    install_colour_model(components)
    ocr_on(components)
    components.ingest.ocr = FixedOcr(fail=True)
    [outcome] = components.ingest.ingest([upload(components, "acme/b.jpg", solid_jpeg(COLOURS["blue"]))])
    record = components.records.get(AssetKey("acme", "b.jpg"))[0]
    assert (outcome.status, record.ocr_engine, [t.tag for t in record.visible_tags()]) == (
        "tagged",
        None,
        ["blue"],
    )


def test_turning_ocr_on_makes_a_redelivered_event_read_the_text(components: Components) -> None:
    install_colour_model(components)
    components.ingest.ocr = FixedOcr("ROT")
    ref = upload(components, "acme/c.jpg", solid_jpeg(COLOURS["red"]))
    components.ingest.ingest([ref])
    ocr_on(components)
    components.ingest.media_settings.invalidate()  # type: ignore[union-attr]
    [again] = components.ingest.ingest([ref])
    assert again.status == "tagged"
    assert components.records.get(AssetKey("acme", "c.jpg"))[0].ocr_text == "ROT"
