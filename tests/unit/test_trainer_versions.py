"""Versions, promotion, incremental retraining and the training report, over in-memory adapters."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from tagsmith.examples import Example, examples_from_corrections
from tagsmith.records import AssetRecord, AssetStatus, Source, SourceObject, TagAssignment, TagState
from tagsmith.tagmodels import LinearHead, ModelKind
from tagsmith.trainer import TrainingOptions, TrainingService
from tagsmith.training_report import TrainingReport
from tagsmith.wiring import Components

from tests.conftest import ASSETS, DATA
from tests.fakes import COLOURS, FakeEncoder, solid_jpeg

PALETTE = {**COLOURS, "yellow": (230, 220, 40)}


def examples(n: int, *, seed: int = 0, tags: Sequence[str] = ("red", "green", "blue")) -> list[Example]:
    return [
        Example(t, f"{t}/{seed + i}.jpg", lambda t=t, i=i: solid_jpeg(PALETTE[t], noise=25, seed=seed + i))
        for t in tags
        for i in range(n)
    ]


class SabotagedService(TrainingService):
    """Fits normally, then swaps the first two tags' weights: a model that is reliably wrong."""

    def _fit(self, x: np.ndarray, labels: Sequence[object], kind: ModelKind, **kw: Any) -> LinearHead:  # type: ignore[override]
        head = super()._fit(x, labels, kind, **kw)  # type: ignore[arg-type]
        coef, intercept = head.coef.copy(), head.intercept.copy()
        coef[[0, 1]], intercept[[0, 1]] = coef[[1, 0]], intercept[[1, 0]]
        # The head's own out-of-fold predictions must be as wrong as its weights.
        oof = (
            None
            if head.oof_probabilities is None
            else head.oof_probabilities[:, [1, 0, *range(2, len(head.tags))]]
        )
        return replace(head, coef=coef, intercept=intercept, oof_probabilities=oof)


def test_first_training_is_promoted_and_writes_version_examples_and_reports(components: Components) -> None:
    report = components.trainer.train(tenant="acme", model_id="colour", examples=examples(5))
    assert report.promotion is not None and report.promotion.promoted
    assert report.promotion.reason == "first version of this model"
    assert components.models.active_version("acme", "colour") == report.version
    files = {
        i.key.rsplit("/", 1)[1]
        for i in components.store.list(DATA, f"tenants/acme/models/colour/versions/{report.version}/")
    }
    assert files == {"model.json", "weights.npz", "examples.json", "report.json", "report.html"}
    stored = json.loads(
        components.models.version_file("acme", "colour", report.version, "report.json") or b""
    )
    assert stored["per_tag"]["red"] == {"precision": 1.0, "recall": 1.0, "support": 5}
    assert stored["cv_folds"] == 5 and stored["examples"] == 15


def test_retraining_with_new_examples_hits_the_embedding_cache_and_reports_counts(
    components: Components,
) -> None:
    encoder: FakeEncoder = components.encoder
    components.trainer.train(tenant="acme", model_id="colour", examples=examples(5))
    assert encoder.images_embedded == 15 * 3  # each photo and its two augmented views (default)
    # WHEN two examples per tag are added
    report = components.trainer.train(
        tenant="acme", model_id="colour", examples=examples(5) + examples(2, seed=100)
    )
    # THEN only the six new images go through the encoder
    assert (report.embedded, report.cached) == (6, 15)
    assert encoder.images_embedded == 21 * 3
    assert report.changes["examples_added"] == 6 and report.changes["examples_removed"] == 0


def test_adding_a_tag_retrains_from_cache_and_is_promoted(components: Components) -> None:
    components.trainer.train(tenant="acme", model_id="colour", examples=examples(5))
    report = components.trainer.train(
        tenant="acme", model_id="colour", examples=examples(5) + examples(5, tags=["yellow"])
    )
    assert (report.embedded, report.cached) == (5, 15)
    assert report.changes["tags_added"] == ["yellow"]
    assert report.promotion is not None and report.promotion.promoted
    assert "adds tags yellow" in report.promotion.reason


def test_a_new_version_worse_on_unseen_examples_is_saved_but_not_promoted(components: Components) -> None:
    # GIVEN a good active version
    first = components.trainer.train(tenant="acme", model_id="colour", examples=examples(5))
    # WHEN a retraining produces a model that confuses red and blue, with new examples to compare on
    sabotaged = SabotagedService(tagger=components.tagger, models=components.models)
    second = sabotaged.train(tenant="acme", model_id="colour", examples=examples(5) + examples(3, seed=50))
    # THEN it is stored, not promoted, and the report says why
    assert second.promotion is not None and not second.promotion.promoted
    assert second.promotion.held_out == 9
    assert second.promotion.old_correct == 9 and (second.promotion.new_correct or 0) <= 3
    assert "worse than the active version" in second.promotion.reason and "--force" in second.promotion.reason
    assert components.models.active_version("acme", "colour") == first.version
    assert second.version in components.models.versions("acme", "colour")
    stored = json.loads(
        components.models.version_file("acme", "colour", second.version, "report.json") or b""
    )
    assert stored["promotion"]["promoted"] is False


def test_force_promotes_a_worse_version_and_records_it(components: Components) -> None:
    components.trainer.train(tenant="acme", model_id="colour", examples=examples(5))
    sabotaged = SabotagedService(tagger=components.tagger, models=components.models)
    forced = sabotaged.train(
        tenant="acme",
        model_id="colour",
        examples=examples(5) + examples(3, seed=50),
        options=TrainingOptions(force=True),
    )
    assert forced.promotion is not None and forced.promotion.promoted and forced.promotion.forced
    assert components.models.active_version("acme", "colour") == forced.version


def test_rollback_makes_an_earlier_version_active_and_remembers_the_previous(components: Components) -> None:
    first = components.trainer.train(tenant="acme", model_id="colour", examples=examples(5))
    second = components.trainer.train(
        tenant="acme", model_id="colour", examples=examples(5) + examples(2, seed=9)
    )
    components.models.activate("acme", "colour", first.version, reason="rollback")
    active = json.loads(components.store.get(DATA, "tenants/acme/models/colour/active.json").body)
    assert (active["version"], active["previous"], active["reason"]) == (
        first.version,
        second.version,
        "rollback",
    )
    summaries = components.models.version_summaries("acme", "colour")
    assert [s["active"] for s in summaries] == [True, False]


def test_report_lists_confused_pairs_with_inline_thumbnails(components: Components) -> None:
    # GIVEN "orange" examples that look like red ones half of the time
    orange = [
        Example(
            "orange",
            f"orange/{i}.jpg",
            lambda i=i: solid_jpeg(PALETTE["red"] if i % 2 else (230, 130, 20), noise=25, seed=200 + i),
        )
        for i in range(6)
    ]
    report = components.trainer.train(
        tenant="acme",
        model_id="colour",
        examples=examples(6) + orange,
        options=TrainingOptions(allow_near_duplicates=True),
    )
    assert report.confused, "expected confusion between red and orange"
    pair = report.confused[0]
    assert {pair.tag, pair.predicted_as} == {"red", "orange"}
    assert pair.thumbnails and all(t.startswith("data:image/jpeg;base64,") for t in pair.thumbnails)
    html = (components.models.version_file("acme", "colour", report.version, "report.html") or b"").decode()
    assert "Most confused" in html and "data:image/jpeg;base64," in html and "<script" not in html
    assert f"<code>{report.version}</code>" in html


def test_report_shows_what_calibrated_thresholds_promise_and_a_flat_threshold_promises_nothing(
    components: Components,
) -> None:
    calibrated = components.trainer.train(tenant="acme", model_id="colour", examples=examples(12))
    flat = components.trainer.train(
        tenant="acme", model_id="flat", examples=examples(12), options=TrainingOptions(threshold=0.9)
    )

    assert calibrated.calibration["cv_coverage"] is not None
    html = (
        components.models.version_file("acme", "colour", calibrated.version, "report.html") or b""
    ).decode()
    assert "precision, 95% lower bound" in html and "precision target" in html
    assert flat.calibration == {}
    html = (components.models.version_file("acme", "flat", flat.version, "report.html") or b"").decode()
    assert "lower bound" not in html and "auto-applied share" in html


def test_report_round_trips_through_json(components: Components) -> None:
    report = components.trainer.train(tenant="acme", model_id="colour", examples=examples(5))
    again = TrainingReport.from_dict(json.loads(report.to_json()))
    assert again.to_dict() == report.to_dict()


def record(path: str, *tags: TagAssignment, sha: str | None = None) -> AssetRecord:
    return AssetRecord(
        tenant="acme",
        path=path,
        source=SourceObject(ASSETS, f"acme/{path}", "e", 1),
        status=AssetStatus.TAGGED,
        content_sha256=sha,
        tags=tags,
    )


def human(model: str, tag: str, state: TagState = TagState.CONFIRMED) -> TagAssignment:
    return TagAssignment(model, tag, state, Source.HUMAN)


def test_examples_from_corrections_keeps_confirmed_tags_of_the_model_and_none_answers() -> None:
    records = [
        record("a.jpg", human("colour", "red"), human("colour", "blue", TagState.REJECTED)),
        record("b.jpg", human("colour", "__none__")),
        record("c.jpg", human("shape", "round")),
        record("d.jpg", TagAssignment("colour", "green", TagState.APPLIED, Source.AI, confidence=0.99)),
        record("e.jpg", human("colour", "green"), human("colour", "blue"), sha="ab" * 32),
    ]
    got = examples_from_corrections(records, "colour", None, ASSETS)  # type: ignore[arg-type]
    assert [(e.source, e.tags, e.sha256, e.negative) for e in got] == [
        (f"s3://{ASSETS}/acme/a.jpg", ("red",), None, False),
        (f"s3://{ASSETS}/acme/b.jpg", (), None, True),  # "none of these": a negative example
        (f"s3://{ASSETS}/acme/e.jpg", ("blue", "green"), "ab" * 32, False),
    ]


def test_none_answers_reach_the_exclusive_fit_as_negatives(components: Components) -> None:
    # GIVEN colour examples plus two photos a reviewer answered "none of these" for
    seen: list[int] = []

    class Spy(TrainingService):
        def _fit(self, x, labels, kind, texts=None, *, negatives=None, **kw):  # type: ignore[no-untyped-def, override]
            seen.append(0 if negatives is None else len(negatives))
            return super()._fit(x, labels, kind, texts, negatives=negatives, **kw)

    nones = [
        Example(
            "", f"none/{i}.jpg", lambda i=i: solid_jpeg(PALETTE["yellow"], noise=25, seed=i), negative=True
        )
        for i in range(2)
    ]
    service = Spy(tagger=components.tagger, models=components.models)
    report = service.train(tenant="acme", model_id="colour", examples=examples(5) + nones)
    # THEN every fit gets them as negatives (one per recipe compared); they are examples of no tag
    assert seen and set(seen) == {2}
    assert report.examples == 15 and report.tags == ["blue", "green", "red"]


def test_corrections_train_a_model_and_reuse_embeddings_cached_at_ingest(components: Components) -> None:
    # GIVEN assets whose embeddings the ingest path already cached, confirmed by a reviewer
    import hashlib

    records = []
    for tag in ("red", "green", "blue"):
        for i in range(4):
            body = solid_jpeg(PALETTE[tag], noise=25, seed=300 + i)
            components.store.put(ASSETS, f"acme/{tag}-{i}.jpg", body)
            sha = hashlib.sha256(body).hexdigest()
            prepared = components.tagger.prepare(body)
            components.tagger.embed("acme", [prepared])  # what ingest does
            records.append(record(f"{tag}-{i}.jpg", human("colour", tag), sha=sha))
    embedded_before = components.encoder.images_embedded
    # WHEN training from the corrections
    exs = examples_from_corrections(records, "colour", components.store, ASSETS)
    report = components.trainer.train(tenant="acme", model_id="colour", examples=exs)
    # THEN no photo is embedded again (only each one's two augmented views, new to the cache)
    # and the model knows the confirmed tags
    assert (report.embedded, report.cached) == (0, 12)
    assert components.encoder.images_embedded == embedded_before + 12 * 2
    assert report.tags == ["blue", "green", "red"]


def test_out_of_fold_predictions_from_the_fitting_are_reused_instead_of_refitting_folds(
    components: Components,
) -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class HeadWithOof(LinearHead):
        oof_probabilities: np.ndarray | None = None
        cv_folds: int = 0

    class CountingService(TrainingService):
        fits = 0

        def _fit(self, x: np.ndarray, labels: Sequence[object], kind: ModelKind, **kw: Any) -> LinearHead:  # type: ignore[override]
            CountingService.fits += 1
            head = super()._fit(x, labels, kind, **kw)  # type: ignore[arg-type]
            # GIVEN fitting that reports out-of-fold predictions: every example taken for "blue"
            oof = np.tile(np.array([[0.9, 0.05, 0.05]], np.float32), (len(labels), 1))
            return HeadWithOof(
                head.tags, head.coef, head.intercept, head.cv_accuracy, oof_probabilities=oof, cv_folds=4
            )

    service = CountingService(tagger=components.tagger, models=components.models)
    report = service.train(
        tenant="acme", model_id="colour", examples=examples(5), options=TrainingOptions(threshold=0.8)
    )
    # THEN no fold is fitted again (one fit per recipe compared: with and without the augmented
    # views), and the report is built from those predictions
    assert CountingService.fits == 2 and set(report.recipes) == {"fake-hist-v1", "fake-hist-v1 without views"}
    assert report.cv_folds == 4
    assert report.per_tag["blue"] == {"precision": 0.333, "recall": 1.0, "support": 5}
    assert report.per_tag["red"]["recall"] == 0.0
    assert report.auto_applied == {"precision": 0.3333, "coverage": 1.0, "applied": 15}
