"""Tag models that read text: the fusion math, the fitting, and the model format (old and new)."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import numpy as np
import pytest
from tagsmith.errors import InvalidInputError
from tagsmith.tagmodels import ModelKind, TagModel, fit_linear_head
from tagsmith.tagmodels.model import MODEL_FORMAT, TEXT_MODEL_FORMAT, TextFeatures, TextHead
from tagsmith.tagmodels.text_head import FusedHead, _KernelRidge, fit_fused_head, fuse_scores

FEATURES = TextFeatures("fake-ocr-v1", dim=256, ngrams=(2, 3))


def ambiguous_set(per_tag: int = 8, seed: int = 0) -> tuple[np.ndarray, list[str], list[str]]:
    """Two tags whose images look alike (same centre plus noise) and whose print differs; a third
    tag that looks different and has no print at all."""
    rng = np.random.default_rng(seed)
    centre_ab, centre_c = np.eye(2, 32, dtype=np.float32)
    x = np.concatenate(
        [
            centre_ab + 0.3 * rng.standard_normal((2 * per_tag, 32)),
            centre_c + 0.3 * rng.standard_normal((per_tag, 32)),
        ]
    ).astype(np.float32)
    labels = ["oat"] * per_tag + ["soy"] * per_tag + ["apple"] * per_tag
    texts = ["OATLY havredryck"] * per_tag + ["ALPRO soja"] * per_tag + [""] * per_tag
    return x, labels, texts


def text_model(head: FusedHead) -> TagModel:
    return TagModel(
        tenant="acme",
        model_id="product",
        version="v2",
        kind=ModelKind.EXCLUSIVE,
        encoder_id="fake-hist-v1",
        tags=head.tags,
        coef=head.coef,
        intercept=head.intercept,
        thresholds=head.thresholds_or(0.8),
        text=head.text_head(threshold=None, default=0.8),
    )


# --- fusion math --------------------------------------------------------------------------------------
def test_fuse_scores_is_a_softmax_of_the_weighted_sum() -> None:
    image, text = np.array([[2.0, 1.0, 0.0]]), np.array([[0.0, 0.0, 3.0]])
    p = fuse_scores(image, text, 0.5, 2.0)
    z = 2.0 * (image + 0.5 * text)
    assert np.allclose(p, np.exp(z) / np.exp(z).sum())
    assert np.allclose(fuse_scores(image, text, 0.0, 2.0), fuse_scores(image, np.zeros_like(text), 1.0, 2.0))


def test_kernel_ridge_leave_rows_out_equals_a_fit_without_those_rows() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((30, 12))
    y = rng.integers(0, 3, 30)
    ridge = _KernelRidge(x @ x.T, y, 3, alpha=0.7)
    held = np.array([0, 4, 5, 17])
    rest = np.setdiff1d(np.arange(30), held)
    # the textbook primal ridge (unpenalised intercept) on the remaining rows
    targets = np.eye(3)[y[rest]]
    mx, my = x[rest].mean(axis=0), targets.mean(axis=0)
    xc = x[rest] - mx
    coef = np.linalg.solve(xc.T @ xc + 0.7 * np.eye(12), xc.T @ (targets - my)).T
    expected = (x[held] - mx) @ coef.T + my
    assert np.allclose(ridge.held_out(held), expected, atol=1e-9)
    w, b = ridge.primal(x)
    full_targets = np.eye(3)[y]
    xc_all = x - x.mean(axis=0)
    w_ref = np.linalg.solve(
        xc_all.T @ xc_all + 0.7 * np.eye(12), xc_all.T @ (full_targets - full_targets.mean(0))
    ).T
    assert np.allclose(w, w_ref, atol=1e-9)
    assert np.allclose(b, full_targets.mean(0) - w_ref @ x.mean(axis=0), atol=1e-9)


def test_the_stored_model_computes_exactly_the_fitted_fusion() -> None:
    x, labels, texts = ambiguous_set()
    head = fit_fused_head(x, texts, labels, features=FEATURES)
    model = text_model(head)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    s0 = head.calibration["image_temperature"]
    s, w = head.calibration["temperature"], head.text_weight
    # unscaled heads, recovered from what was stored
    image_scores = (xn @ head.coef.T + head.intercept) / s0
    text_scores = (FEATURES.vectors(texts) @ head.text_coef.T + head.text_intercept) / (s * w)
    assert np.allclose(model.predict(xn, texts), fuse_scores(image_scores, text_scores, w, s), atol=1e-4)


# --- fitting ------------------------------------------------------------------------------------------
def test_text_separates_look_alikes_and_its_weight_is_learnt() -> None:
    x, labels, texts = ambiguous_set()
    fused = fit_fused_head(x, texts, labels, features=FEATURES)
    image_only = fit_linear_head(x, labels, kind=ModelKind.EXCLUSIVE)
    assert fused.text_weight > 0
    assert fused.cv_accuracy == 1.0
    assert image_only.cv_accuracy is not None and image_only.cv_accuracy < 0.9
    # confidence stays honest: the calibration is on the fused scores, never-seen items included
    assert fused.calibration["cv_unknown_applied"] is not None
    assert fused.calibration["cv_precision"] == 1.0


def test_the_image_half_is_the_image_only_head_with_its_own_calibration() -> None:
    x, labels, texts = ambiguous_set(seed=3)
    fused = fit_fused_head(x, texts, labels, features=FEATURES)
    plain = fit_linear_head(x, labels, kind=ModelKind.EXCLUSIVE)
    assert fused.tags == plain.tags
    assert np.allclose(fused.coef, plain.coef, atol=1e-3)
    assert np.allclose(fused.intercept, plain.intercept, atol=1e-3)
    assert fused.image_thresholds is not None and plain.thresholds is not None
    assert np.allclose(fused.image_thresholds, plain.thresholds, atol=1e-4)


def test_text_that_carries_nothing_gets_no_weight() -> None:
    x, labels, _ = ambiguous_set()
    fused = fit_fused_head(x, [""] * len(labels), labels, features=FEATURES)
    assert fused.text_weight == 0.0
    assert not fused.text_coef.any()


def test_mismatched_inputs_are_refused_with_a_clear_message() -> None:
    x, labels, texts = ambiguous_set()
    with pytest.raises(InvalidInputError, match="one of each per example"):
        fit_fused_head(x, texts[:-1], labels, features=FEATURES)


# --- the model format ---------------------------------------------------------------------------------
def test_a_text_model_round_trips_as_format_2_and_predicts_the_same() -> None:
    x, labels, texts = ambiguous_set()
    model = text_model(fit_fused_head(x, texts, labels, features=FEATURES))
    model_json, weights = model.to_files()
    meta = json.loads(model_json)
    assert meta["format"] == TEXT_MODEL_FORMAT
    assert meta["features"]["image"] == "fake-hist-v1"
    assert meta["features"]["text"]["engine"] == "fake-ocr-v1"
    assert meta["features"]["text"]["dim"] == 256 and meta["features"]["text"]["ngrams"] == [2, 3]
    with np.load(io.BytesIO(weights), allow_pickle=False) as npz:
        assert set(npz.files) == {"coef", "intercept", "text_coef", "text_intercept"}
    loaded = TagModel.from_files(model_json, weights)
    assert loaded.text is not None and loaded.text.features == FEATURES
    assert np.allclose(loaded.predict(x, texts), model.predict(x, texts), atol=1e-6)
    assert np.allclose(loaded.image_only().thresholds, model.image_only().thresholds)


def test_an_image_only_model_is_still_written_as_format_1_without_features() -> None:
    model_json, weights = TagModel.example().to_files()
    meta = json.loads(model_json)
    assert meta["format"] == MODEL_FORMAT == 1
    assert "features" not in meta and "image_only_thresholds" not in meta
    with np.load(io.BytesIO(weights), allow_pickle=False) as npz:
        assert set(npz.files) == {"coef", "intercept"}


def test_a_model_written_before_text_features_loads_and_predicts_as_before() -> None:
    # model.json and weights exactly as format 1 wrote them (no features, no text arrays)
    meta = {
        "format": 1, "tenant": "demo", "model_id": "example", "version": "v0", "kind": "exclusive",
        "encoder_id": "identity-2", "tags": ["a", "b"], "thresholds": [0.9, 0.9], "review_floor": 0.2,
        "taxonomy": {"tags": []}, "created_at": "", "metrics": {}, "examples_per_tag": {},
    }  # fmt: skip
    buf = io.BytesIO()
    np.savez(buf, coef=np.array([[1.5, -1.5], [-1.5, 1.5]], np.float32), intercept=np.zeros(2, np.float32))
    model = TagModel.from_files(json.dumps(meta).encode(), buf.getvalue())
    assert model.text is None and model.image_only() is model
    assert np.allclose(model.predict(np.eye(2, dtype=np.float32)), TagModel.example().predict(np.eye(2)))
    with pytest.raises(InvalidInputError, match="does not read text"):
        model.predict(np.eye(2, dtype=np.float32), ["a", "b"])


def test_a_text_model_needs_text_or_its_image_only_view() -> None:
    x, labels, texts = ambiguous_set()
    model = text_model(fit_fused_head(x, texts, labels, features=FEATURES))
    with pytest.raises(InvalidInputError, match="reads text"):
        model.predict(x)
    image_only = model.image_only()
    assert image_only.text is None and image_only.version == model.version
    assert model.text is not None
    assert np.array_equal(image_only.thresholds, model.text.image_thresholds)
    assert image_only.predict(x).shape == (len(x), 3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: {**m, "format": 3}, "format 3 is not one this version reads"),
        (lambda m: {k: v for k, v in m.items() if k != "features"}, "format 2 needs features.text"),
        (lambda m: {**m, "format": 1}, "format 1 cannot have features.text"),
        (
            lambda m: {k: v for k, v in m.items() if k != "image_only_thresholds"},
            "not a valid Tagsmith model",
        ),
    ],
)
def test_broken_text_model_files_are_refused(change, message) -> None:  # type: ignore[no-untyped-def]
    x, labels, texts = ambiguous_set()
    model_json, weights = text_model(fit_fused_head(x, texts, labels, features=FEATURES)).to_files()
    with pytest.raises(InvalidInputError, match=message):
        TagModel.from_files(json.dumps(change(json.loads(model_json))).encode(), weights)


def test_text_weights_of_the_wrong_shape_are_refused() -> None:
    x, labels, texts = ambiguous_set()
    model = text_model(fit_fused_head(x, texts, labels, features=FEATURES))
    assert model.text is not None
    with pytest.raises(InvalidInputError, match="text weights do not match"):
        replace(model, text=replace(model.text, coef=model.text.coef[:, :10]))


def test_pickled_text_weights_are_never_loaded() -> None:
    x, labels, texts = ambiguous_set()
    model_json, _ = text_model(fit_fused_head(x, texts, labels, features=FEATURES)).to_files()
    buf = io.BytesIO()
    np.savez(
        buf,
        coef=np.zeros((3, 32), np.float32),
        intercept=np.zeros(3, np.float32),
        text_coef=np.array([object()] * 3, dtype=object),
        text_intercept=np.zeros(3, np.float32),
    )
    with pytest.raises(InvalidInputError):
        TagModel.from_files(model_json, buf.getvalue())


def test_text_head_is_data_only() -> None:
    head = TextHead(
        features=FEATURES,
        coef=np.zeros((2, 256), np.float32),
        intercept=np.zeros(2, np.float32),
        image_scale=1.0,
        image_thresholds=np.full(2, 0.9, np.float32),
    )
    model = replace(TagModel.example(), text=head)
    assert np.allclose(
        model.predict(np.eye(2, dtype=np.float32), ["", ""]), TagModel.example().predict(np.eye(2))
    )


# --- "none of these" answers --------------------------------------------------------------------------
def look_alike_of_apple(count: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Photos of a product the model has no tag for: it looks much like the apples (which carry
    no print) and has a little print of its own."""
    rng = np.random.default_rng(seed)
    centre = 0.9 * np.eye(2, 32)[1] + 0.45 * np.eye(32)[5]
    return (centre + 0.3 * rng.standard_normal((count, 32))).astype(np.float32), ["Granny Smith"] * count


def auto_applied(model: TagModel, x: np.ndarray, texts: list[str]) -> np.ndarray:
    p = model.predict(x, texts)
    return np.asarray(p.max(axis=1) >= model.thresholds[p.argmax(axis=1)])


def test_none_of_these_answers_send_a_look_alike_to_review_in_a_text_model() -> None:
    # GIVEN a text model that auto-applies "apple" to most photos of a look-alike
    x, labels, texts = ambiguous_set(per_tag=10)
    uploads, upload_texts = look_alike_of_apple(20, seed=7)
    before = text_model(fit_fused_head(x, texts, labels, features=FEATURES))
    applied_before = auto_applied(before, uploads, upload_texts).mean()
    assert applied_before >= 0.6
    # WHEN reviewers answered "none of these" for eight of its photos and the model is retrained
    answered, answered_texts = look_alike_of_apple(8, seed=8)
    head = fit_fused_head(
        x, texts, labels, features=FEATURES, negatives=answered, negative_texts=answered_texts
    )
    after = text_model(head)
    # THEN most new photos of the look-alike go to review (it spreads wider than eight answers
    # cover: the rest waits for more), while the tags' own photos still auto-apply
    assert auto_applied(after, uploads, upload_texts).mean() <= min(0.3, applied_before / 2)
    assert auto_applied(after, x, texts).mean() >= 0.8
    # the negatives are scored in the calibration, not in the examples' out-of-fold figures
    assert head.oof_probabilities is not None and head.oof_probabilities.shape == (len(x), 3)


def test_with_negatives_the_image_half_is_still_the_image_only_head() -> None:
    x, labels, texts = ambiguous_set(seed=3)
    negatives, negative_texts = look_alike_of_apple(5, seed=4)
    fused = fit_fused_head(
        x, texts, labels, features=FEATURES, negatives=negatives, negative_texts=negative_texts
    )
    plain = fit_linear_head(x, labels, kind=ModelKind.EXCLUSIVE, negatives=negatives)
    assert np.allclose(fused.coef, plain.coef, atol=1e-3)
    assert np.allclose(fused.intercept, plain.intercept, atol=1e-3)
    assert fused.image_thresholds is not None and plain.thresholds is not None
    assert np.allclose(fused.image_thresholds, plain.thresholds, atol=1e-4)


def test_negatives_without_their_texts_are_refused() -> None:
    x, labels, texts = ambiguous_set()
    with pytest.raises(InvalidInputError, match="3 negatives need as many texts, got 2"):
        fit_fused_head(
            x, texts, labels, features=FEATURES, negatives=np.eye(3, 32), negative_texts=["a", "b"]
        )
