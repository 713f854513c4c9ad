"""OCR text as a model feature through the services: training reads (and caches) the examples'
text, ingest reads an upload's text for a model that uses it, and an OCR failure falls back to the
image alone. The photos are built so that only the print tells two tags apart: the fake encoder
embeds colour histograms, and "oat" and "soy" cartons are the same two colours, mirrored."""

from __future__ import annotations

import dataclasses
import io
import json
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from PIL import Image
from tagsmith.errors import TrainingInputError
from tagsmith.events import ObjectRef
from tagsmith.examples import Example
from tagsmith.keys import AssetKey
from tagsmith.records import Source, TextLine
from tagsmith.tagmodels import ModelKind
from tagsmith.trainer import TrainingOptions
from tagsmith.training_report import TrainingReport
from tagsmith.trainjobs import TrainingRequest
from tagsmith.wiring import Components

from tests.conftest import ASSETS, DATA

RED, BLUE, GREEN = (210, 30, 30), (30, 40, 200), (40, 170, 50)
PRINT = {"oat": "OATLY havredryck", "soy": "ALPRO soja"}


def carton(tag: str, seed: int) -> bytes:
    """oat: red left half, blue right half; soy: mirrored (same histogram); apple: green, no print."""
    rng = np.random.default_rng(seed)
    a = np.empty((64, 64, 3), dtype=np.int16)
    left, right = {"oat": (RED, BLUE), "soy": (BLUE, RED), "apple": (GREEN, GREEN)}[tag]
    a[:, :32], a[:, 32:] = left, right
    a += rng.integers(-20, 21, size=a.shape, dtype=np.int16)
    buf = io.BytesIO()
    Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


class LayoutOcr:
    """Reads the print of a carton from its layout (red on the left: oat), nothing on an apple."""

    engine_id = "layout-ocr-v1"

    def __init__(self, *, fail: bool = False) -> None:
        self.calls, self.fail = 0, fail

    def read(self, image: Image.Image) -> list[TextLine]:
        self.calls += 1
        if self.fail:
            raise RuntimeError("the OCR model crashed")
        r, g, b = np.asarray(image.convert("RGB"))[:, :16].reshape(-1, 3).mean(axis=0)
        if g > r and g > b:
            return []
        return [TextLine(PRINT["oat" if r > b else "soy"], 0.95, ((0, 0), (10, 0), (10, 5), (0, 5)))]


def examples(n: int = 8, start: int = 0) -> list[Example]:
    return [
        Example(tag, f"{tag}/{i}.png", lambda tag=tag, i=i: carton(tag, i))
        for tag in ("apple", "oat", "soy")
        for i in range(start, start + n)
    ]


_OPTIONS = {f.name for f in dataclasses.fields(TrainingOptions)}


def train(c: Components, **kwargs: Any) -> TrainingReport:
    # mirrored cartons embed alike on purpose: only their print differs, as with look-alike SKUs
    options = TrainingOptions(
        allow_near_duplicates=True, **{k: v for k, v in kwargs.items() if k in _OPTIONS}
    )
    return c.trainer.train(options=options, **{k: v for k, v in kwargs.items() if k not in _OPTIONS})


@pytest.fixture
def ocr(components: Components) -> LayoutOcr:
    engine = LayoutOcr()
    components.trainer.ocr = engine
    components.ingest.ocr = engine
    return engine


def upload(c: Components, key: str, body: bytes) -> ObjectRef:
    return ObjectRef(ASSETS, key, c.store.put(ASSETS, key, body), len(body))


# --- training -----------------------------------------------------------------------------------------
def test_training_with_text_learns_what_the_image_cannot_tell(components: Components, ocr: LayoutOcr) -> None:
    without = train(components, tenant="acme", model_id="plain", examples=examples())
    with_text = train(components, tenant="acme", model_id="product", examples=examples(), text=True)
    assert without.cv_accuracy is not None and without.cv_accuracy < 0.9
    assert with_text.cv_accuracy == 1.0
    model = components.models.load_active("acme", "product")
    assert model is not None and model.text is not None
    assert model.text.features.engine == "layout-ocr-v1" and model.text.weight > 0
    meta = json.loads(components.models.version_file("acme", "product", model.version, "model.json") or b"")
    assert meta["format"] == 2 and meta["features"]["text"]["engine"] == "layout-ocr-v1"
    assert "ocr" in with_text.timings


def test_a_retrain_never_reads_a_photo_twice(components: Components, ocr: LayoutOcr) -> None:
    train(components, tenant="acme", model_id="product", examples=examples(), text=True)
    assert ocr.calls == 24
    cached = [i.key for i in components.store.list(DATA, "tenants/acme/ocr/layout-ocr-v1/")]
    assert len(cached) == 24
    # a retrain with two more photos per tag reads only those, and keeps text on by default
    report = train(components, tenant="acme", model_id="product", examples=examples(10))
    assert ocr.calls == 24 + 6
    model = components.models.load_version("acme", "product", report.version)
    assert model.text is not None


def test_none_answers_reach_a_text_models_fit_with_their_text(
    components: Components, ocr: LayoutOcr, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN two photos a reviewer answered "none of these" for, beside the tagged examples
    fitted: list[tuple[int, list[str]]] = []
    fit = components.trainer._fit

    def spy(x: Any, labels: Any, kind: Any, texts: Any = None, **kw: Any) -> Any:
        fitted.append((len(kw.get("negatives", ())), list(kw.get("negative_texts", ()))))
        return fit(x, labels, kind, texts, **kw)

    monkeypatch.setattr(components.trainer, "_fit", spy)
    nones = [Example("", f"none/{i}.png", lambda i=i: carton("soy", 50 + i), negative=True) for i in range(2)]
    # WHEN a model that reads text is trained
    report = train(components, tenant="acme", model_id="product", examples=examples() + nones, text=True)
    # THEN its fit gets them as negatives with the print read off them, and nothing is dropped
    assert fitted[-1] == (2, [PRINT["soy"]] * 2)
    assert report.examples == 24 and not [w for w in report.warnings if "none of these" in w]
    assert ocr.calls == 26


def test_text_can_be_switched_off_on_retrain(components: Components, ocr: LayoutOcr) -> None:
    train(components, tenant="acme", model_id="product", examples=examples(), text=True)
    report = train(components, tenant="acme", model_id="product", examples=examples(), text=False, force=True)
    assert components.models.load_version("acme", "product", report.version).text is None


def test_an_ocr_failure_in_training_counts_as_no_text_with_a_warning(components: Components) -> None:
    components.trainer.ocr = LayoutOcr(fail=True)
    report = train(components, tenant="acme", model_id="product", examples=examples(), text=True)
    assert any("OCR failed on 24 example(s)" in w for w in report.warnings)
    assert not list(components.store.list(DATA, "tenants/acme/ocr/"))  # failures are not cached


def test_text_is_refused_where_it_cannot_work(components: Components, ocr: LayoutOcr) -> None:
    with pytest.raises(TrainingInputError, match="exclusive models only"):
        train(
            components,
            tenant="acme",
            model_id="labels",
            examples=examples(),
            kind=ModelKind.MULTILABEL,
            text=True,
        )
    components.trainer.ocr = None
    with pytest.raises(TrainingInputError, match="no OCR engine"):
        train(components, tenant="acme", model_id="product", examples=examples(), text=True)


def test_training_requests_carry_the_text_option() -> None:
    req = TrainingRequest.from_dict(
        "acme", {"model": "product", "examples": "s3://b/p/", "text": True}, where="t"
    )
    assert req.text is True and req.to_dict()["text"] is True
    assert (
        TrainingRequest.from_dict("acme", {"model": "product", "examples": "s3://b/p/"}, where="t").text
        is None
    )
    with pytest.raises(Exception, match="'text' must be true, false or absent"):
        TrainingRequest.from_dict(
            "acme", {"model": "product", "examples": "s3://b/p/", "text": "yes"}, where="t"
        )


# --- ingest -------------------------------------------------------------------------------------------
def train_text_model(c: Components) -> None:
    report = train(c, tenant="acme", model_id="product", examples=examples(), text=True)
    assert report.promotion is not None and report.promotion.promoted


def test_ingest_reads_the_text_a_model_needs_even_with_ocr_off_for_search(
    components: Components, ocr: LayoutOcr
) -> None:
    train_text_model(components)
    calls = ocr.calls
    components.ingest.ingest([upload(components, "acme/soy.png", carton("soy", 99))])
    record = components.records.get(AssetKey("acme", "soy.png"))[0]
    assert ocr.calls == calls + 1
    assert record.ocr_engine == "layout-ocr-v1" and record.ocr_text == "ALPRO soja"
    [tag] = [t for t in record.tags if t.model == "product"]
    assert tag.tag == "soy" and (tag.confidence or 0) > 0.8
    model = components.models.load_active("acme", "product")
    assert model is not None and tag.threshold == round(float(model.threshold_for("soy")), 4)


def test_ocr_failure_at_ingest_keeps_tags_from_the_image_alone(
    components: Components, ocr: LayoutOcr
) -> None:
    train_text_model(components)
    ocr.fail = True
    [outcome] = components.ingest.ingest([upload(components, "acme/oat.png", carton("oat", 77))])
    assert outcome.status == "tagged"
    record = components.records.get(AssetKey("acme", "oat.png"))[0]
    assert record.ocr_engine is None  # so a reprocessing reads the text again
    [tag] = [t for t in record.tags if t.model == "product" and t.source is Source.AI]
    assert tag.tag in ("oat", "soy")  # the image alone cannot tell; it is not lost either
    model = components.models.load_active("acme", "product")
    assert model is not None and model.text is not None
    image_threshold = float(model.text.image_thresholds[model.tags.index(tag.tag)])
    assert tag.threshold == round(image_threshold, 4)
    # the next delivery is not "unchanged": the text is still missing, so it is read again
    ocr.fail = False
    [again] = components.ingest.ingest([ObjectRef(ASSETS, "acme/oat.png")])
    assert (
        again.status == "tagged" and again.record is not None and again.record.ocr_text == "OATLY havredryck"
    )


def test_ingest_reuses_text_already_read_for_the_same_content(components: Components, ocr: LayoutOcr) -> None:
    train_text_model(components)
    body = carton("oat", 5)  # a training example: its text is in the tenant's OCR cache
    calls = ocr.calls
    components.ingest.ingest([upload(components, "acme/a.png", body), upload(components, "acme/b.png", body)])
    assert ocr.calls == calls
    fresh = carton("oat", 1234)
    components.ingest.ingest([upload(components, "acme/c.png", fresh)])
    assert ocr.calls == calls + 1
    # retraining changes the model version: the record is reprocessed and its own text reused
    train(components, tenant="acme", model_id="product", examples=examples(9), force=True)
    calls = ocr.calls
    components.ingest.ingest([ObjectRef(ASSETS, "acme/c.png")])
    assert ocr.calls == calls


def test_video_and_other_image_only_callers_see_the_image_half(
    components: Components, ocr: LayoutOcr
) -> None:
    train_text_model(components)
    [model] = components.tagger.active_models("acme")
    [stored] = components.tagger.models_with_text("acme")
    assert model.text is None and stored.text is not None
    assert model.version == stored.version
    assert np.array_equal(model.thresholds, stored.text.image_thresholds)
    assert components.tagger.reads_text("acme")


def test_a_video_is_tagged_by_the_image_half_of_a_text_model(components: Components, ocr: LayoutOcr) -> None:
    from tagsmith.records import TagState
    from tagsmith.tagmodels.model import TextFeatures, TextHead

    from tests.videoclips import colour_clip, install_colour_model

    base = install_colour_model(components)  # image thresholds 0.6
    text = TextHead(
        features=TextFeatures("layout-ocr-v1", dim=64),
        coef=np.zeros((3, 64), np.float32),
        intercept=np.zeros(3, np.float32),
        image_scale=1.0,
        image_thresholds=base.thresholds,
    )
    # fused thresholds above 1: were the frames scored as if they had text, nothing would apply
    model = replace(base, version="v2", text=text, thresholds=np.full(3, 1.000001, np.float32))
    components.models.save_version(model)
    components.models.activate("acme", "colour", "v2")
    components.active_models.invalidate("acme")
    [outcome] = components.ingest.ingest([upload(components, "acme/spot.mp4", colour_clip())])
    assert outcome.status == "tagged" and outcome.record is not None
    assert outcome.record.models == {"colour": "v2"}
    applied = {t.tag for t in outcome.record.tags if t.state is TagState.APPLIED}
    assert applied == {"blue", "red"}
    assert ocr.calls == 0  # frames are not read for the model; the tenant's OCR setting is off
