"""Augmented views as training rows: leak-free cross-validation, never scored, deterministic and
cached views, the ``augment`` option, and models left behind by an encoder change."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tagsmith.cli import app
from tagsmith.cli.common import Session
from tagsmith.config import Settings
from tagsmith.encoder import DEFAULT_RECIPE
from tagsmith.encoder.augment import augmented_views
from tagsmith.errors import InvalidInputError, TrainingInputError
from tagsmith.examples import Example
from tagsmith.search import InMemorySearchIndex
from tagsmith.storage import FileObjectStore
from tagsmith.tagmodels import ModelKind, fit_linear_head
from tagsmith.tagmodels.model import TextFeatures
from tagsmith.tagmodels.text_head import fit_fused_head
from tagsmith.tagmodels.training import DEFAULT_RIDGE_ALPHA, cv_splits, l2_normalise
from tagsmith.trainer import (
    AUGMENT_BELOW,
    AUGMENT_VERSION,
    DEFAULT_AUGMENT_VIEWS,
    TrainingOptions,
    view_cache_key,
    view_seed,
    views_per_example,
)
from tagsmith.trainjobs import TrainingRequest
from tagsmith.wiring import Components, build
from typer.testing import CliRunner

from tests.fakes import COLOURS, FakeEncoder, solid_jpeg

TAGS, PER_TAG, DIM = 4, 10, 64


def noise_with_copies(views_per_example: int = 2) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Random embeddings with random labels (nothing to learn), and views that are near-copies of
    their source: a fold that trained on the views of its held-out examples would predict them
    almost perfectly, one that did not is at chance."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((TAGS * PER_TAG, DIM)).astype(np.float32)
    labels = [f"t{i % TAGS}" for i in range(len(x))]
    source = np.repeat(np.arange(len(x)), views_per_example)
    views = x[source] + 0.01 * rng.standard_normal((len(source), DIM)).astype(np.float32)
    return x, labels, views, source


def test_exclusive_fit_never_trains_a_fold_on_views_of_its_held_out_examples() -> None:
    x, labels, views, source = noise_with_copies()

    head = fit_linear_head(x, labels, kind=ModelKind.EXCLUSIVE, views=views, view_source=source)

    # THEN out-of-fold accuracy stays near chance (1/4): no held-out example met its own copy
    assert head.cv_accuracy is not None and head.cv_accuracy < 0.5
    # AND each out-of-fold prediction is exactly that of a fit on the other folds and their views
    y = np.array([int(lab[1:]) for lab in labels])
    assert head.oof_probabilities is not None
    for test in cv_splits(l2_normalise(x), y, 5):  # the product's folds
        train = np.setdiff1d(np.arange(len(x)), test)
        keep = np.isin(source, train)
        remap = {old: new for new, old in enumerate(train)}
        fold = fit_linear_head(
            x[train],
            [labels[i] for i in train],
            kind=ModelKind.EXCLUSIVE,
            calibrate=False,
            views=views[keep],
            view_source=np.array([remap[s] for s in source[keep]]),
        )
        xt = x[test] / np.linalg.norm(x[test], axis=1, keepdims=True)
        expected = (xt @ fold.coef.T + fold.intercept).argmax(axis=1)
        np.testing.assert_array_equal(head.oof_probabilities[test].argmax(axis=1), expected)


def test_views_are_training_rows_never_scored() -> None:
    x, labels, views, source = noise_with_copies()

    plain = fit_linear_head(x, labels, kind=ModelKind.EXCLUSIVE)
    augmented = fit_linear_head(x, labels, kind=ModelKind.EXCLUSIVE, views=views, view_source=source)

    # THEN the views change the weights but out-of-fold predictions and calibration are per example
    assert not np.allclose(plain.coef, augmented.coef)
    assert augmented.oof_probabilities is not None
    assert augmented.oof_probabilities.shape == (len(x), TAGS)
    assert augmented.cv_accuracy is not None and round(augmented.cv_accuracy * len(x)) == pytest.approx(
        augmented.cv_accuracy * len(x)
    )


def test_views_of_negatives_are_left_out_with_them() -> None:
    x, labels, _, _ = noise_with_copies()
    rng = np.random.default_rng(3)
    negatives = rng.standard_normal((8, DIM)).astype(np.float32)
    source = np.arange(len(x), len(x) + len(negatives))  # one view of each negative
    views = negatives + 0.01 * rng.standard_normal(negatives.shape).astype(np.float32)

    head = fit_linear_head(
        x, labels, kind=ModelKind.EXCLUSIVE, negatives=negatives, views=views, view_source=source
    )

    assert head.oof_probabilities is not None and head.oof_probabilities.shape == (len(x), TAGS)


def test_fused_head_never_trains_a_fold_on_views_of_its_held_out_examples() -> None:
    x, labels, views, source = noise_with_copies()
    texts = [""] * len(x)  # no text: the image head decides

    head = fit_fused_head(
        x, texts, labels, features=TextFeatures("demo-ocr", dim=64), views=views, view_source=source
    )

    assert head.cv_accuracy is not None and head.cv_accuracy < 0.5
    assert head.oof_probabilities is not None and head.oof_probabilities.shape == (len(x), TAGS)


def test_multilabel_folds_leave_views_of_held_out_examples_out() -> None:
    x, labels, views, source = noise_with_copies(1)
    sets = [frozenset([lab]) for lab in labels]

    head = fit_linear_head(x, sets, kind=ModelKind.MULTILABEL, views=views, view_source=source)

    assert head.oof_probabilities is not None and head.oof_probabilities.shape == (len(x), TAGS)
    # with leakage every example's own tag would score near 1 out of fold
    own = head.oof_probabilities[np.arange(len(x)), [int(lab[1:]) for lab in labels]]
    assert float(own.mean()) < 0.6


@pytest.mark.parametrize(
    ("views", "source", "message"),
    [
        (np.zeros((2, DIM), np.float32), None, "need view_source"),
        (np.zeros((2, DIM), np.float32), np.array([0]), "one integer row per view"),
        (np.zeros((2, DIM), np.float32), np.array([0, 99]), "must be in 0..39"),
        (np.zeros((2, 3), np.float32), np.array([0, 1]), "must be \\(M, 64\\)"),
    ],
)
def test_views_that_do_not_fit_the_examples_are_refused(
    views: np.ndarray, source: np.ndarray | None, message: str
) -> None:
    x, labels, _, _ = noise_with_copies()
    with pytest.raises(TrainingInputError, match=message):
        fit_linear_head(x, labels, kind=ModelKind.EXCLUSIVE, views=views, view_source=source)


# --- the trainer ---------------------------------------------------------------------------------------
def colour_examples(per_tag: int = 5) -> list[Example]:
    return [
        Example(t, f"{t}/{i}.jpg", lambda t=t, i=i: solid_jpeg(COLOURS[t], noise=25, seed=i))
        for t in COLOURS
        for i in range(per_tag)
    ]


def test_trainer_caches_deterministic_views_and_a_retrain_embeds_nothing(components: Components) -> None:
    encoder: FakeEncoder = components.encoder
    report = components.trainer.train(tenant="acme", model_id="colour", examples=colour_examples())
    assert encoder.images_embedded == 15 * (1 + DEFAULT_AUGMENT_VIEWS)
    # THEN each view is cached under the photo's hash, its index and the augmentation version, and
    # is exactly the view drawn from the photo's bytes
    body = solid_jpeg(COLOURS["red"], noise=25, seed=0)
    sha = hashlib.sha256(body).hexdigest()
    assert view_cache_key(sha, 1) == f"{sha}.aug{AUGMENT_VERSION}.1"
    image = components.tagger.prepare(body).decoded.image
    expected = FakeEncoder().embed(augmented_views(image, count=2, seed=view_seed(sha)))
    cache = components.tagger.embeddings
    assert cache is not None
    for i in range(2):
        stored = cache.get("acme", encoder.encoder_id, view_cache_key(sha, i))
        assert stored is not None
        np.testing.assert_allclose(stored, expected[i], atol=1e-6)
    assert not np.allclose(expected[0], expected[1])
    # AND the model records whether it kept them: both were compared by cross-validation
    model = components.models.load_active("acme", "colour")
    assert model is not None and model.version == report.version
    assert set(report.recipes) == {"fake-hist-v1", "fake-hist-v1 without views"}
    kept = model.metrics["augmented_views"] == 2
    assert model.metrics["augment_version"] == (AUGMENT_VERSION if kept else None)
    # WHEN retrained on the same photos: nothing goes through the encoder again
    before = encoder.images_embedded
    components.trainer.train(
        tenant="acme", model_id="colour", examples=colour_examples(), options=TrainingOptions(force=True)
    )
    assert encoder.images_embedded == before


def test_trainer_without_augmentation_embeds_only_the_photos(components: Components) -> None:
    encoder: FakeEncoder = components.encoder
    components.trainer.train(
        tenant="acme", model_id="colour", examples=colour_examples(), options=TrainingOptions(augment=0)
    )
    assert encoder.images_embedded == 15
    model = components.models.load_active("acme", "colour")
    assert model is not None and model.metrics["augmented_views"] == 0


@pytest.mark.parametrize("bad", [-1, 9, 1.5, True, "2"])
def test_augment_option_is_validated(components: Components, bad: object) -> None:
    with pytest.raises(TrainingInputError, match="augment must be a whole number of views"):
        components.trainer.train(
            tenant="acme",
            model_id="colour",
            examples=colour_examples(),
            options=TrainingOptions(augment=bad),  # type: ignore[arg-type]
        )


def test_training_request_carries_augment_and_refuses_a_bad_one() -> None:
    req = TrainingRequest.from_dict("acme", {"model": "m", "examples": "s3://b/p/", "augment": 4}, where="k")
    assert req.augment == 4 and req.to_dict()["augment"] == 4
    with pytest.raises(InvalidInputError, match="augment must be"):
        TrainingRequest.from_dict("acme", {"model": "m", "examples": "s3://b/p/", "augment": 40}, where="k")


# --- models trained for another encoder ---------------------------------------------------------------
def file_components(tmp_path: Path, encoder: FakeEncoder) -> Components:
    """The services over a file-backed store, with ``encoder``."""
    return build(
        Settings(data_bucket="data", assets_bucket="assets"),
        store=FileObjectStore(root=tmp_path / "s3"),
        index=InMemorySearchIndex(),
        encoder=encoder,
    )


@pytest.fixture
def session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Session:
    s = Session(file_components(tmp_path, FakeEncoder()), "test store")
    monkeypatch.setattr("tagsmith.cli.training.open_session", lambda target: s)
    return s


class OtherEncoder(FakeEncoder):
    encoder_id = "fake-hist-v2"


def test_a_model_of_another_encoder_is_warned_about_once_and_listed_for_retraining(
    session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    c = session.components
    c.trainer.train(
        tenant="acme", model_id="colour", examples=colour_examples(), options=TrainingOptions(augment=0)
    )
    # WHEN the deployment's encoder changes
    c.encoder_override = OtherEncoder()
    c.__dict__.pop("encoders", None)
    c.__dict__.pop("tagger", None)
    with caplog.at_level(logging.WARNING, logger="tagsmith.tagging"):
        assert c.tagger.active_models("acme") == []
        assert c.tagger.active_models("acme") == []
    # THEN one warning names the model, its encoder and what to do
    warned = [r.getMessage() for r in caplog.records if "trained for encoder" in r.getMessage()]
    assert len(warned) == 1
    assert "acme/colour" in warned[0] and "fake-hist-v1" in warned[0] and "retrained" in warned[0]
    # AND the model listing marks it
    result = CliRunner().invoke(app, ["models", "-t", "acme", "--json"])
    [row] = [json.loads(line) for line in result.output.splitlines()]
    assert row["needs_retrain"] is True and row["encoder_id"] == "fake-hist-v1"
    assert row["status"].startswith("trained for encoder fake-hist-v1: retrain")
    result = CliRunner().invoke(app, ["models", "-t", "acme"])
    assert "retrain" in " ".join(result.output.split())


def test_cli_refuses_a_bad_augment_option(session: Session, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["train", "-t", "acme", "-m", "colour", "-e", str(tmp_path), "--augment", "12"]
    )
    assert result.exit_code != 0
    assert "augment must be a whole number of views" in " ".join(result.output.split())


def test_only_tags_with_few_examples_get_views(components: Components) -> None:
    # GIVEN one colour with AUGMENT_BELOW photos and the others with 5
    encoder: FakeEncoder = components.encoder
    big = next(iter(COLOURS))
    examples = [
        Example(t, f"{t}/{i}.jpg", lambda t=t, i=i: solid_jpeg(COLOURS[t], noise=25, seed=i))
        for t in COLOURS
        for i in range(AUGMENT_BELOW if t == big else 5)
    ]
    components.trainer.train(tenant="acme", model_id="colour", examples=examples)
    # THEN only the small tags' photos were embedded with their views
    small_photos = 5 * (len(COLOURS) - 1)
    assert encoder.images_embedded == AUGMENT_BELOW + small_photos * (1 + DEFAULT_AUGMENT_VIEWS)
    model = components.models.load_active("acme", "colour")
    assert model is not None
    kept = model.metrics["augmented_views"] == DEFAULT_AUGMENT_VIEWS  # chosen by cross-validation
    assert model.metrics["augment_below"] == (AUGMENT_BELOW if kept else None)


def test_views_per_example_follows_the_least_photographed_tag() -> None:
    tags = [("a",)] * 3 + [("b",), ("a", "b"), ()]
    assert views_per_example(tags, 2, below=3) == [0, 0, 0, 2, 2, 2]  # a: 4, b: 2, none: 1
    assert views_per_example(tags, 0, below=3) == [0] * 6


# --- the encoder's ridge penalty ----------------------------------------------------------------------
class PosingAsDefaultRecipe(FakeEncoder):
    """The fake's features under the default recipe's id, whose recipe sets a ridge penalty."""

    encoder_id = DEFAULT_RECIPE.id


@pytest.mark.parametrize(
    ("encoder", "expected"),
    [(PosingAsDefaultRecipe(), DEFAULT_RECIPE.ridge_alpha), (FakeEncoder(), DEFAULT_RIDGE_ALPHA)],
)
def test_the_trainer_fits_with_the_penalty_of_its_encoders_recipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoder: FakeEncoder, expected: float
) -> None:
    import tagsmith.trainer

    seen: list[object] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("alpha"))
        return fit_linear_head(*args, **kwargs)

    monkeypatch.setattr(tagsmith.trainer, "fit_linear_head", spy)
    c = file_components(tmp_path, encoder)

    c.trainer.train(
        tenant="acme", model_id="colour", examples=colour_examples(), options=TrainingOptions(augment=0)
    )

    assert seen and set(seen) == {expected}
