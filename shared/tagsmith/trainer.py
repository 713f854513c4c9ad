"""Training a tenant's tag model from example images: checks, embedding (cached), fit, evaluation,
an immutable version, a report, and promotion only when the new version is not worse.

Examples, where they come from and the checks made before any fit are in :mod:`tagsmith.examples`
(a folder of folders, the same layout under an S3 prefix, a manifest, a reviewer's corrections).

What one training writes, beside the model (see :mod:`tagsmith.tagmodels.store`)::

    versions/<v>/model.json, weights.npz   the model (immutable)
    versions/<v>/examples.json             content hash and tags of every example it was trained on
    versions/<v>/report.json, report.html  the training report (:mod:`tagsmith.training_report`)
    active.json                            moved to <v> only if promoted

OCR text as a feature (``text=True``, ``tagsmith train --text``, ``"text": true`` in a training
request; by default a retrain keeps what the active version does): every example's printed text is
read with the OCR engine, through the per-tenant OCR cache (:class:`tagsmith.storage.texts.TextCache`,
keyed by content hash, so a retrain never reads a photo twice), and the head is an image + text
late fusion (:mod:`tagsmith.tagmodels.text_head`). An example without text is fine (no text
features); one whose OCR fails is trained as if it had none, with a warning.

Augmented examples (``augment=``, ``tagsmith train --augment N``, ``"augment": N`` in a training
request; default :data:`DEFAULT_AUGMENT_VIEWS`, 0 = off): each example photo, "none of these" answers
included, is also embedded as ``N`` randomly altered views (:mod:`tagsmith.encoder.augment`; the
same views for the same bytes), cached like the photo itself under its content hash, the view index
and :data:`AUGMENT_VERSION`, so a retrain embeds nothing twice. The views are extra training rows
of the head only: cross-validation leaves them out with their source and never scores them
(:func:`tagsmith.tagmodels.training.fit_linear_head`). Ingest is unchanged.

Recipe (``choose_recipe``): every candidate encoder of the deployment
(:data:`tagsmith.encoder.CANDIDATE_RECIPES`), with and without the augmented views, is fitted and
cross-validated on the same folds (series are near-twins by any candidate's embeddings); the first
candidate (the active version's encoder on a retrain) is kept unless another is better beyond half a
standard error, and the views only when they help. The model records the choice; ingest runs only
the chosen encoders.

Promotion rule: :mod:`tagsmith.promotion` (the new version is promoted unless it is measurably
worse than the active one on evidence neither was trained on); this module gathers that evidence.

Size: over 600 lines because the load-and-embed, the fits, the cross-validation and the recipe
choice all work on the loaded examples and their embeddings (``_Loaded``) inside one
:meth:`TrainingService.train`; the next split is that method's steps (it is still ~250 lines).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from tagsmith.encoder import ridge_alpha_for
from tagsmith.encoder.augment import augmented_views
from tagsmith.errors import (
    InvalidInputError,
    NotFoundError,
    TagsmithError,
    TrainingInputError,
)
from tagsmith.examples import (
    NEAR_DUPLICATE_SIMILARITY,
    Example,
    bullet_list,
    check_examples,
    near_duplicate_pairs,
)
from tagsmith.keys import validate_model_id, validate_tenant
from tagsmith.promotion import (
    CrossValidation,
    decide_promotion,
)
from tagsmith.records import TagState, utc_now
from tagsmith.tagging import Tagger
from tagsmith.tagmodels import (
    LinearHead,
    ModelKind,
    ModelStore,
    TagModel,
    fit_linear_head,
    l2_normalise,
    route_prediction,
)
from tagsmith.tagmodels.calibration import (
    DEFAULT_CALIBRATION,
    DEFAULT_TARGET_PRECISION,
    CalibrationSettings,
    novelty_level,
)
from tagsmith.tagmodels.model import DEFAULT_REVIEW_FLOOR, TextFeatures
from tagsmith.tagmodels.store import PromotionConflictError, new_version
from tagsmith.tagmodels.text_head import FusedHead, fit_fused_head
from tagsmith.tagmodels.training import CV_FOLDS, DEFAULT_RIDGE_ALPHA, cv_splits
from tagsmith.taxonomy import Taxonomy
from tagsmith.training_report import (
    ConfusedPair,
    TrainingReport,
    confused_pairs,
    multilabel_metrics,
    per_tag_metrics,
    render_html,
    thumbnail_data_uri,
)

if TYPE_CHECKING:
    from PIL import Image

    from tagsmith.encoder import Encoder
    from tagsmith.ocr import OcrEngine
    from tagsmith.storage.texts import TextCache

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.8  # only when a model has too few examples to calibrate its thresholds
LARGE_SET = 1000  # examples: from here on 3 folds estimate well enough, and each fold is a full fit
_LOAD_THREADS = 8  # reading from S3 is I/O-bound; decoding releases the GIL
_CHUNK = 64  # images decoded and embedded at a time: bounds memory on large example sets
#: Augmented views per example photo when training (0: none). +1.8 / +2.0 points top-1 at k = 5 / 10
#: on the grocery set with the zoomed default encoder (docs/benchmarks.md).
DEFAULT_AUGMENT_VIEWS = 2
MAX_AUGMENT_VIEWS = 8
#: Tags with at least this many example photos get no views: at 30 per tag they cost 1.5 points
#: (within one std) and tripled the fit's rows (a 100 x 30 retrain 1.2 s -> 5.4 s). Views are for the
#: tags a handful of photos cannot describe.
AUGMENT_BELOW = 20
#: Part of every cached view's key: bump it whenever :mod:`tagsmith.encoder.augment` changes the
#: views it draws (settings or code), so stale view embeddings are never reused.
AUGMENT_VERSION = 1


# --- the service ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingOptions:
    """How one training runs (what it trains on is given beside: tenant, model, examples).

    ``threshold``: a flat auto-apply threshold (None: calibrated per tag); ``review_floor``:
    confidence below which a tag is not even suggested; ``activate=False`` saves the version without
    promoting it; ``force`` promotes it even if it is worse; ``allow_near_duplicates`` keeps
    near-identical photos (a warning instead of an error); ``text``: also learn from the OCR text of
    the examples (None: as the active version does); ``augment``: augmented views per example photo
    (0: none; see the module docstring).
    """

    kind: ModelKind = ModelKind.EXCLUSIVE
    threshold: float | None = None
    review_floor: float = DEFAULT_REVIEW_FLOOR
    activate: bool = True
    force: bool = False
    allow_near_duplicates: bool = False
    text: bool | None = None
    augment: int = DEFAULT_AUGMENT_VIEWS


@dataclass
class _Loaded:
    """One example as the trainer holds it: its embedding and its views' by each encoder."""

    example: Example
    sha256: str = ""
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # encoder id -> embedding
    image: Image.Image | None = None  # decoded, waiting to be embedded
    views: dict[str, np.ndarray] = field(default_factory=dict)  # encoder id -> (n, d) view embeddings
    view_count: int = 0  # how many views it gets (see views_per_example)
    error: str | None = None
    data: bytes | None = None  # the bytes, while they may still have to be stored (examples copy)


class TrainingService:
    """Trains tag models; see the module docstring for what it writes and when it promotes.

    Example::

        report = service.train(tenant="acme", model_id="product", examples=examples)
        report.promotion.promoted, report.per_tag["oat-milk"]["recall"]  # (True, 0.9)
    """

    def __init__(
        self,
        *,
        tagger: Tagger,
        models: ModelStore,
        ocr: OcrEngine | None = None,
        texts: TextCache | None = None,
        calibration: CalibrationSettings = DEFAULT_CALIBRATION,
    ) -> None:
        self.tagger = tagger
        self.models = models
        self.calibration = calibration  # how thresholds are chosen from out-of-fold evidence
        self.ocr = ocr  # reads the examples' text for models that use it
        self.texts = texts  # OCR results by tenant, engine and content hash

    def train(
        self,
        *,
        tenant: str,
        model_id: str,
        examples: Sequence[Example],
        taxonomy: Taxonomy | None = None,
        options: TrainingOptions = TrainingOptions(),
        source: str = "",
        source_warnings: Sequence[str] = (),
    ) -> TrainingReport:
        """Check, embed, fit, evaluate and save a new version; promote it if it is not worse than
        the active one (or ``options.force``); see :class:`TrainingOptions`. ``source`` and
        ``source_warnings``: where the examples came from and what reading them found, for the
        report. Raises :class:`TrainingInputError` naming what to fix."""
        kind, threshold, review_floor = options.kind, options.threshold, options.review_floor
        activate, force, text, augment = options.activate, options.force, options.text, options.augment
        allow_near_duplicates = options.allow_near_duplicates
        started = time.perf_counter()
        timings: dict[str, float] = {}
        validate_tenant(tenant)
        validate_model_id(model_id)
        if threshold is not None and not 0.0 < threshold <= 1.0:
            raise TrainingInputError(f"auto-apply threshold must be in (0, 1], got {threshold}")
        validate_augment(augment)
        warnings = [*source_warnings, *check_examples(examples, kind)]
        active_pointer, active, active_examples = self._active(tenant, model_id)
        use_text = self._wants_text(text, active, kind)

        mark = time.perf_counter()
        if active is not None:
            examples = _with_recorded_hashes(
                examples, self.models.example_hashes(tenant, model_id, active.version)
            )
        candidates = self._candidate_encoders(active)
        encoders = list(candidates)
        if (
            active is not None
            and all(e.encoder_id != active.encoder_id for e in encoders)
            and self.tagger.encoders.available(active.encoder_id)
        ):
            # the promotion gate scores the active version on its own encoder's embeddings
            encoders.append(self.tagger.encoders.get(active.encoder_id))
        loaded, embedded, cached = self._load_and_embed(
            tenant, examples, views_per_example([ex.tags for ex in examples], augment), encoders
        )
        timings["load_and_embed"] = time.perf_counter() - mark
        mark = time.perf_counter()
        loaded, dup_warnings = _drop_exact_duplicates(loaded)
        if dup_warnings:
            warnings += dup_warnings
            warnings += [
                w for w in check_examples([item.example for item in loaded], kind) if w not in warnings
            ]
        negative_items: list[_Loaded] = []
        if kind is ModelKind.EXCLUSIVE and any(item.example.negative for item in loaded):
            # "None of these" answers: all-zero targets in the fit and always-wrong items in the
            # calibration (tagsmith.tagmodels.training, .text_head); not examples of any tag.
            negative_items = [item for item in loaded if item.example.negative]
        loaded = [item for item in loaded if not item.example.negative]
        default_id = candidates[0].encoder_id
        x = _rows(loaded, default_id)
        checked = (active_examples or {}) if active is not None and active.encoder_id == default_id else {}
        new_rows = [i for i, item in enumerate(loaded) if checked.get(item.sha256) != item.example.tags]
        warnings += self._check_near_duplicates(loaded, x, rows=new_rows, allow=allow_near_duplicates)
        timings["checks"] = time.perf_counter() - mark

        labels: list[str] | list[frozenset[str]]
        if kind is ModelKind.EXCLUSIVE:
            labels = [item.example.tag for item in loaded]
        else:
            labels = [frozenset(item.example.tags) for item in loaded]
        mark = time.perf_counter()
        target = active.target_precision if active is not None else DEFAULT_TARGET_PRECISION
        # The recipe: each candidate encoder's image head, with and without the augmented views,
        # cross-validated on the same folds; :func:`choose_recipe` picks (module docstring,
        # "Recipe"). The chosen one is the model (refitted with text below when it reads text).
        with_views = any(item.view_count for item in [*loaded, *negative_items])
        recipe_options = [
            (enc.encoder_id, v) for enc in candidates for v in ((True, False) if with_views else (False,))
        ]
        heads: dict[tuple[str, bool], LinearHead] = {}
        folds = (
            self._shared_folds(loaded, negative_items, labels, [e.encoder_id for e in candidates])
            if len(recipe_options) > 1 and kind is ModelKind.EXCLUSIVE
            else None
        )
        for option in recipe_options if len(recipe_options) > 1 or not use_text else ():
            extra = self._fit_extras(loaded, negative_items, option[0], target, views=option[1])
            if folds is not None:
                extra["folds"] = folds
            heads[option] = self._fit(_rows(loaded, option[0]), labels, kind, **extra)
        scores = {o: _cv_score(h, labels, kind) for o, h in heads.items()}
        chosen_option = (
            choose_recipe(
                {o: _oof_correct(h, labels, kind) for o, h in heads.items()},
                [e.encoder_id for e in candidates],
                margin=RETRAIN_RECIPE_MARGIN
                if active is not None and active.encoder_id == candidates[0].encoder_id
                else RECIPE_MARGIN,
                weights=_tag_balanced_weights(labels),
            )
            if heads
            else recipe_options[0]
        )
        chosen, chosen_views = chosen_option
        x = _rows(loaded, chosen)
        if len(recipe_options) > 1:
            log.info(
                "recipe %s%s chosen by cross-validation: %s",
                chosen, "" if chosen_views else " without views",
                ", ".join(f"{_option_name(o)} {v:.3f}" if v is not None else f"{_option_name(o)} n/a" for o, v in scores.items()),
                extra={"tenant": tenant},
            )  # fmt: skip
        timings["fit"] = time.perf_counter() - mark

        texts: list[str] | None = None
        negative_texts: list[str] = []
        if use_text:
            mark = time.perf_counter()
            texts, ocr_warnings = self._read_texts(tenant, loaded + negative_items)
            texts, negative_texts = texts[: len(loaded)], texts[len(loaded) :]
            warnings += ocr_warnings
            timings["ocr"] = time.perf_counter() - mark

        mark = time.perf_counter()
        version = new_version()
        stored_taxonomy = taxonomy or self.models.taxonomy(tenant, model_id) or Taxonomy(())
        head = heads.get(chosen_option)
        if texts is not None or head is None:
            extra = self._fit_extras(loaded, negative_items, chosen, target, views=chosen_views)
            if negative_items:
                extra["negative_texts"] = negative_texts
            head = self._fit(x, labels, kind, texts, **extra)
        model = self._assemble(
            tenant, model_id, version, kind, head, threshold, review_floor, stored_taxonomy,
            encoder_id=chosen, target=target, max_tags=active.max_tags if active is not None else None,
        )  # fmt: skip
        timings["fit"] += time.perf_counter() - mark

        mark = time.perf_counter()
        cv = _cv_from_head(head, model) or self._cross_validate(
            tenant, model_id, x, labels, kind, model.tags, threshold, review_floor, stored_taxonomy,
            encoder_id=chosen,
        )  # fmt: skip
        timings["cross_validation"] = time.perf_counter() - mark

        mark = time.perf_counter()
        shas = [item.sha256 for item in loaded]
        truth = [set(item.example.tags) for item in loaded]
        seen = set(active_examples) if active is not None and active_examples is not None else None
        x_active = (
            _rows(loaded, active.encoder_id)
            if active is not None and all(active.encoder_id in item.vectors for item in loaded)
            else None
        )
        new_cv = None
        if (
            cv is not None
            and seen is not None
            and texts is None
            and kind is ModelKind.EXCLUSIVE
            and activate
            and not force
        ):
            # the same examples the gate compares on (_decide: new, of tags the active version knows)
            known = set(active.tags) if active is not None else set()
            new = [
                i
                for i, (sha, tags) in enumerate(zip(shas, truth, strict=True))
                if sha not in seen and tags and tags <= known
            ]
            if new:
                new_cv = self._new_examples_cv(
                    model, loaded, negative_items, labels, kind, new,
                    encoder_id=chosen, target=target, views=chosen_views,
                )  # fmt: skip
        promotion, changes = decide_promotion(
            model, active, seen, x_active, shas, truth, cv, activate=activate, force=force, texts=texts,
            new_cv=new_cv, training_order=self.models.training_order,
        )  # fmt: skip
        timings["compare"] = time.perf_counter() - mark

        counts = dict(sorted(Counter(t for ts in truth for t in ts).items()))
        report = TrainingReport(
            tenant=tenant,
            model_id=model_id,
            version=version,
            kind=kind.value,
            tags=list(model.tags),
            examples_per_tag=counts,
            cv_accuracy=None,
            warnings=warnings,
            embedded=embedded,
            cached=cached,
            activated=False,
            encoder_id=model.encoder_id,
            created_at=model.created_at,
            source=source,
            examples=len(loaded),
            changes=changes,
            promotion=promotion,
            recipes={_option_name(o): (round(v, 4) if v is not None else None) for o, v in scores.items()},
            # what calibrated thresholds promise; a flat threshold the caller set promises nothing
            calibration={**head.calibration, "none_below": round(model.none_below, 4)}
            if head.calibration and threshold is None
            else {},
        )
        self._fill_quality(report, model, loaded, cv)
        model = _with_metrics(model, report, counts, head, augment=augment if chosen_views else 0)

        mark = time.perf_counter()
        if taxonomy is not None:
            self.models.save_taxonomy(tenant, model_id, taxonomy)
        self._keep_example_copies(tenant, [*loaded, *negative_items])
        self.models.save_version(model)
        self.models.save_version_file(
            tenant, model_id, version, "examples.json", _examples_json(model, loaded)
        )
        if promotion.promoted:
            try:
                self.models.activate(
                    tenant, model_id, version, reason=promotion.reason, expected=active_pointer
                )
            except PromotionConflictError as e:
                # Another training (or a rollback) promoted a version since this one was compared:
                # the comparison is stale, so this version stays saved but inactive.
                log.warning("trained %s/%s version %s, not activated: %s", tenant, model_id, version, e)
                promotion = replace(
                    promotion, promoted=False, reason=f"{promotion.reason}; not activated: {e}"
                )
                report.promotion = promotion
                report.warnings.append(str(e))
            else:
                self.tagger.models.invalidate(tenant)
        report.activated = promotion.promoted
        timings["save"] = time.perf_counter() - mark
        report.timings = {k: round(v, 3) for k, v in timings.items()}
        report.seconds = round(time.perf_counter() - started, 3)
        self.models.save_version_file(tenant, model_id, version, "report.json", report.to_json())
        self.models.save_version_file(
            tenant,
            model_id,
            version,
            "report.html",
            render_html(report).encode(),
            content_type="text/html; charset=utf-8",
        )
        log.info(
            "trained %s/%s version %s on %d examples (%d embedded, %d cached): %s, %s",
            tenant,
            model_id,
            version,
            len(loaded),
            embedded,
            cached,
            "promoted" if promotion.promoted else "not promoted",
            promotion.reason,
        )
        return report

    # --- stages -------------------------------------------------------------------------------------
    def _fit(
        self,
        x: np.ndarray,
        labels: Sequence[str] | Sequence[frozenset[str]],
        kind: ModelKind,
        texts: Sequence[str] | None = None,
        *,
        negatives: np.ndarray | None = None,
        negative_texts: Sequence[str] | None = None,
        views: np.ndarray | None = None,
        view_source: np.ndarray | None = None,
        encoder_id: str | None = None,
        target: float = DEFAULT_TARGET_PRECISION,
        folds: Sequence[np.ndarray] | None = None,
        calibrate: bool = True,
    ) -> LinearHead:
        """The one place a head is fitted: the final model and every cross-validation fold.
        ``negatives``: embeddings of "none of these" photos (exclusive models), and their OCR text
        in ``negative_texts`` when the model reads text; ``views`` / ``view_source``: augmented
        views and the row of each one's source (training rows only); ``encoder_id``: whose
        embeddings ``x`` holds (default: the default encoder's); ``target``: the precision the
        thresholds are calibrated for; ``folds``: the cross-validation folds to use (exclusive
        models; several recipes are compared on the same ones)."""
        # The penalty the encoder's features are fitted with (the head's default otherwise).
        penalty = ridge_alpha_for(encoder_id or self.tagger.encoder.encoder_id)
        alpha = DEFAULT_RIDGE_ALPHA if penalty is None else penalty
        if texts is not None:
            assert self.ocr is not None
            features = TextFeatures(engine=self.ocr.engine_id)
            return fit_fused_head(
                x,
                texts,
                [str(lab) for lab in labels],
                features=features,
                views=views,
                view_source=view_source,
                negatives=negatives,
                negative_texts=negative_texts,
                alpha=alpha,
                target_precision=target,
                settings=self.calibration,
            )
        return fit_linear_head(
            x,
            labels,
            kind=kind,
            negatives=negatives,
            views=views,
            view_source=view_source,
            alpha=alpha,
            target_precision=target,
            folds=folds,
            settings=self.calibration,
            calibrate=calibrate,
        )

    def _shared_folds(
        self,
        loaded: Sequence[_Loaded],
        negative_items: Sequence[_Loaded],
        labels: Sequence[Any],
        encoder_ids: Sequence[str],
    ) -> list[np.ndarray] | None:
        """Cross-validation folds of the examples (then the negatives) for every recipe compared to
        use: series are near-twins by any of their embeddings (a whole-photo embedding sees the
        shelf a series was shot on, which the zoom crops out; leaving such twins in the training
        folds flattered the whole photo's cross-validation on grocery). None when too few examples."""
        tags = sorted({str(lab) for lab in labels})
        y = np.array([tags.index(str(lab)) for lab in labels])
        n_folds = min(CV_FOLDS, int(np.bincount(y).min()) if len(y) else 0)
        if n_folds < 2:
            return None
        items = [*loaded, *negative_items]
        return cv_splits([_rows(items, e) for e in encoder_ids], y, n_folds, self.calibration)

    def _candidate_encoders(self, active: TagModel | None = None) -> list[Encoder]:
        """The encoders a new version may be trained for, the one it gets without evidence for
        another first: the active version's (a retrain keeps its recipe unless another is clearly
        better: switching re-embeds the library), else the deployment's first candidate."""
        ids = list(self.tagger.encoders.candidates)
        if active is not None and active.encoder_id in ids:
            ids.remove(active.encoder_id)
            ids.insert(0, active.encoder_id)
        return [self.tagger.encoders.get(e) for e in ids]

    def _fit_extras(
        self,
        loaded: Sequence[_Loaded],
        negative_items: Sequence[_Loaded],
        encoder_id: str,
        target: float,
        *,
        views: bool = True,
    ) -> dict[str, Any]:
        """``_fit``'s keyword arguments for the examples' embeddings by ``encoder_id``: negatives,
        augmented views (of the examples, then of the negatives: rows of ``[x; negatives]``)
        unless ``views`` is off."""
        extra: dict[str, Any] = {"encoder_id": encoder_id, "target": target}
        if negative_items:
            extra["negatives"] = l2_normalise(_rows(negative_items, encoder_id))
        sources = [*loaded, *negative_items]
        counts = [item.view_count for item in sources]
        if views and any(counts):
            extra["views"] = np.concatenate([item.views[encoder_id] for item in sources if item.view_count])
            extra["view_source"] = np.repeat(np.arange(len(sources)), counts)
        return extra

    def _wants_text(self, text: bool | None, active: TagModel | None, kind: ModelKind) -> bool:
        if text is None:
            text = active is not None and active.text is not None
        if not text:
            return False
        if kind is not ModelKind.EXCLUSIVE:
            raise TrainingInputError(
                "OCR text features are available for exclusive models only; train without --text"
            )
        if self.ocr is None:
            raise TrainingInputError("this deployment has no OCR engine: train without --text")
        return True

    def _read_texts(self, tenant: str, loaded: Sequence[_Loaded]) -> tuple[list[str], list[str]]:
        """Each example's OCR text (lines joined by newlines), from the tenant's OCR cache where
        possible; what is read now is cached. Examples whose OCR fails count as having no text."""
        assert self.ocr is not None
        engine = self.ocr.engine_id
        out, failed = [], []
        read = from_cache = 0
        for item in loaded:
            lines = self.texts.get(tenant, engine, item.sha256) if self.texts is not None else None
            if lines is not None:
                from_cache += 1
            else:
                try:
                    image = self.tagger.prepare(item.example.load()).decoded.image
                    lines = self.ocr.read(image)
                except Exception as e:  # one bad OCR run must not sink the training
                    log.warning("OCR failed on %s: %s", item.example.source, e, extra={"tenant": tenant})
                    failed.append(f"{item.example.source}: {e}")
                    out.append("")
                    continue
                read += 1
                if self.texts is not None:
                    self.texts.put(tenant, engine, item.sha256, lines)
            out.append("\n".join(line.text for line in lines))
        log.info(
            "OCR text of %d examples: %d read, %d from the cache, %d failed",
            len(loaded), read, from_cache, len(failed), extra={"tenant": tenant},
        )  # fmt: skip
        warnings = (
            [
                f"OCR failed on {len(failed)} example(s); they were trained as having no text:"
                + bullet_list(failed)
            ]
            if failed
            else []
        )
        return out, warnings

    def _assemble(
        self,
        tenant: str,
        model_id: str,
        version: str,
        kind: ModelKind,
        head: LinearHead,
        threshold: float | None,
        review_floor: float,
        taxonomy: Taxonomy,
        *,
        encoder_id: str | None = None,
        target: float = DEFAULT_TARGET_PRECISION,
        max_tags: int | None = None,
    ) -> TagModel:
        evidence = head.evidence if threshold is None else None  # a flat threshold was asked for
        text = (
            head.text_head(threshold=threshold, default=DEFAULT_THRESHOLD)
            if isinstance(head, FusedHead)
            else None
        )
        if (
            text is not None
            and isinstance(head, FusedHead)
            and evidence is not None
            and head.image_evidence is not None
        ):
            text = replace(
                text, image_evidence=head.image_evidence, image_none_below=novelty_level(head.image_evidence)
            )
        return TagModel(
            tenant=tenant,
            model_id=model_id,
            version=version,
            kind=kind,
            encoder_id=encoder_id or self.tagger.encoder.encoder_id,
            tags=head.tags,
            coef=head.coef,
            intercept=head.intercept,
            text=text,
            evidence=evidence,
            none_below=novelty_level(evidence)
            if evidence is not None and kind is ModelKind.EXCLUSIVE
            else 0.0,
            target_precision=target,
            max_tags=max_tags,
            # A threshold the caller sets applies to every tag; by default each tag's is calibrated
            # by cross-validation for the target precision (0.8 when there are too few examples).
            thresholds=(
                head.thresholds_or(DEFAULT_THRESHOLD)
                if threshold is None
                else np.full(len(head.tags), threshold, dtype=np.float32)
            ),
            review_floor=review_floor,
            taxonomy=taxonomy.with_tags(head.tags),
            created_at=utc_now(),
        )

    def _load_one(self, tenant: str, ex: Example, encoders: Sequence[Encoder]) -> _Loaded:
        """The example's cached embeddings where there are some; else its bytes, hash and decoded image."""
        cache = self.tagger.embeddings

        def from_cache(sha: str) -> dict[str, np.ndarray]:
            found = {}
            for enc in encoders:
                vec = cache.get(tenant, enc.encoder_id, sha) if cache is not None else None
                if vec is not None and vec.shape == (enc.dim,):
                    found[enc.encoder_id] = vec
            return found

        if ex.sha256:
            vectors = from_cache(ex.sha256)
            if len(vectors) == len(encoders):
                return _Loaded(ex, ex.sha256, vectors)
        try:
            data = ex.load()
        except (OSError, TagsmithError) as e:
            return _Loaded(ex, error=f"{ex.source}: cannot be read ({e})")
        sha = hashlib.sha256(data).hexdigest()
        vectors = from_cache(sha)
        if len(vectors) == len(encoders):
            return _Loaded(ex, sha, vectors, data=data)
        try:
            return _Loaded(ex, sha, vectors, image=self.tagger.prepare(data).decoded.image, data=data)
        except InvalidInputError as e:
            return _Loaded(ex, sha, error=f"{ex.source}: {e}")

    def _embed_views(
        self, tenant: str, chunk: Sequence[_Loaded], encoders: Sequence[Encoder]
    ) -> tuple[int, int]:
        """Fill each readable item's ``views`` with the embeddings of its ``view_count`` augmented
        views by every encoder (embedded, from the cache). View ``i`` of a photo is cached under
        :func:`view_cache_key`; a photo whose embeddings were cached is read and decoded again only
        when one of its views is missing."""
        cache = self.tagger.embeddings
        embedded = cached = 0
        drawn: dict[int, list[Image.Image]] = {}  # the same views for every encoder, drawn once
        for enc in encoders:
            todo: list[tuple[_Loaded, int, Image.Image]] = []
            for item in chunk:
                count = item.view_count
                if item.error is not None or not count:
                    continue
                views = item.views.setdefault(enc.encoder_id, np.zeros((count, enc.dim), dtype=np.float32))
                missing = []
                for i in range(count):
                    key = view_cache_key(item.sha256, i)
                    vec = cache.get(tenant, enc.encoder_id, key) if cache else None
                    if vec is not None and vec.shape == (enc.dim,):
                        views[i] = vec
                        cached += 1
                    else:
                        missing.append(i)
                if missing:
                    if id(item) not in drawn:
                        image = item.image if item.image is not None else self._decoded(item)
                        drawn[id(item)] = augmented_views(image, count=count, seed=view_seed(item.sha256))
                    todo += [(item, i, drawn[id(item)][i]) for i in missing]
            if todo:
                out = enc.embed([view for _, _, view in todo])
                for (item, i, _), vec in zip(todo, out, strict=True):
                    item.views[enc.encoder_id][i] = np.asarray(vec, dtype=np.float32)
                    if cache is not None:
                        key = view_cache_key(item.sha256, i)
                        cache.put(tenant, enc.encoder_id, key, item.views[enc.encoder_id][i])
                embedded += len(todo)
        return embedded, cached

    def _decoded(self, item: _Loaded) -> Image.Image:
        try:
            return self.tagger.prepare(
                item.data if item.data is not None else item.example.load()
            ).decoded.image
        except (OSError, TagsmithError) as e:
            raise TrainingInputError(f"{item.example.source}: cannot be read to augment it ({e})") from e

    def _load_and_embed(
        self,
        tenant: str,
        examples: Sequence[Example],
        view_counts: Sequence[int] | None = None,
        encoders: Sequence[Encoder] | None = None,
    ) -> tuple[list[_Loaded], int, int]:
        """Read, hash, look up the cache, decode and embed what is missing, chunk by chunk, by each
        of ``encoders`` (default: the tagger's default); with ``view_counts`` (one per example), the
        augmented views too (see :meth:`_embed_views`). Each photo is read and decoded at most once,
        whatever the number of encoders. (embedded, cached) count example photos."""
        counts = list(view_counts) if view_counts is not None else [0] * len(examples)
        encoders = list(encoders) if encoders else [self.tagger.encoder]
        cache = self.tagger.embeddings
        loaded: list[_Loaded] = []
        embedded = cached = 0
        views_total = (0, 0)
        with ThreadPoolExecutor(max_workers=_LOAD_THREADS) as pool:
            for start in range(0, len(examples), _CHUNK):
                chunk = list(
                    pool.map(
                        lambda ex: self._load_one(tenant, ex, encoders), examples[start : start + _CHUNK]
                    )
                )
                for item, n in zip(chunk, counts[start : start + _CHUNK], strict=True):
                    item.view_count = n
                fresh = [item for item in chunk if item.error is None and len(item.vectors) < len(encoders)]
                cached += sum(1 for item in chunk if item.error is None and item not in fresh)
                for enc in encoders:
                    todo = [item for item in fresh if enc.encoder_id not in item.vectors]
                    if not todo:
                        continue
                    vectors = enc.embed([item.image for item in todo if item.image is not None])
                    for item, vec in zip(todo, vectors, strict=True):
                        item.vectors[enc.encoder_id] = np.asarray(vec, dtype=np.float32)
                        if cache is not None:
                            cache.put(tenant, enc.encoder_id, item.sha256, item.vectors[enc.encoder_id])
                embedded += len(fresh)
                if any(item.view_count for item in chunk):
                    views_embedded, views_cached = self._embed_views(tenant, chunk, encoders)
                    views_total = (views_total[0] + views_embedded, views_total[1] + views_cached)
                for item in chunk:
                    item.image = None  # decoded photos are not kept past their chunk
                loaded += chunk
        if any(counts):
            log.info(
                "augmented views of %d photos: %d embedded, %d from the cache",
                sum(1 for n in counts if n), *views_total, extra={"tenant": tenant},
            )  # fmt: skip
        unreadable = [item.error for item in loaded if item.error]
        if unreadable:
            raise TrainingInputError(
                f"{len(unreadable)} example(s) cannot be read as images; fix or remove them:"
                + bullet_list(unreadable)
            )
        return loaded, embedded, cached

    def _keep_example_copies(self, tenant: str, items: Sequence[_Loaded]) -> None:
        """A copy of every example read for this training (content-addressed, written once), so a
        retrain can read them wherever they came from."""
        fresh = [item for item in items if item.data is not None]
        with ThreadPoolExecutor(max_workers=_LOAD_THREADS) as pool:
            list(pool.map(lambda item: self.models.save_example_copy(tenant, item.sha256, item.data), fresh))
        for item in items:
            item.data = None

    def _check_near_duplicates(
        self, loaded: list[_Loaded], x: np.ndarray, *, rows: Sequence[int], allow: bool
    ) -> list[str]:
        """Near-duplicates under different tags. Pairs of examples the active version was trained on
        with the same tags were checked then: only pairs involving ``rows`` are looked at."""
        tag_sets = [frozenset(item.example.tags) for item in loaded]
        ids = {s: i for i, s in enumerate(dict.fromkeys(tag_sets))}
        pairs = near_duplicate_pairs(x, [ids[s] for s in tag_sets], rows=rows)
        if not pairs:
            return []
        lines = [
            f"{loaded[i].example.source} ({', '.join(tag_sets[i]) or 'no tag'}) ~ "
            f"{loaded[j].example.source} ({', '.join(tag_sets[j]) or 'no tag'}): similarity {s:.3f}"
            for i, j, s in pairs
        ]
        what = (
            f"{len(pairs)} pair(s) of nearly identical images (cosine similarity >= {NEAR_DUPLICATE_SIMILARITY}) "
            "are examples of different tags"
        )
        if allow:
            return [f"{what}; kept because near-duplicates are allowed:" + bullet_list(lines)]
        raise TrainingInputError(
            f"{what}; keep each photo under one tag (or, if they really show different things, "
            "allow near-duplicates with --allow-near-duplicates):" + bullet_list(lines)
        )

    def _cross_validate(
        self,
        tenant: str,
        model_id: str,
        x: np.ndarray,
        labels: Sequence[Any],
        kind: ModelKind,
        tags: tuple[str, ...],
        threshold: float | None,
        review_floor: float,
        taxonomy: Taxonomy,
        *,
        encoder_id: str | None = None,
    ) -> CrossValidation | None:
        """Out-of-fold predictions by fitting every fold (for heads whose fit does not expose them)."""
        from sklearn.model_selection import KFold, StratifiedKFold

        n = len(labels)
        column = {t: i for i, t in enumerate(tags)}
        if kind is ModelKind.EXCLUSIVE:
            folds = min(CV_FOLDS if n < LARGE_SET else 3, min(Counter(labels).values()))
            splitter: Any = StratifiedKFold(folds, shuffle=True, random_state=0)
            split = splitter.split(x, np.asarray(labels))
        else:
            folds = min(CV_FOLDS if n < LARGE_SET else 3, n)
            split = KFold(folds, shuffle=True, random_state=0).split(x)
        if folds < 2:
            return None
        probs = np.zeros((n, len(tags)), dtype=np.float32)
        applied: list[set[int]] = [set() for _ in range(n)]
        for train_idx, test_idx in split:
            fold_labels = [labels[i] for i in train_idx]
            try:
                head = self._fit(x[train_idx], fold_labels, kind, encoder_id=encoder_id)
            except TrainingInputError:
                return None  # a fold without a tag's negatives (multi-label on tiny sets): no estimate
            fold = self._assemble(
                tenant, model_id, "cv", kind, head, threshold, review_floor, taxonomy, encoder_id=encoder_id
            )
            p = fold.predict(x[test_idx])
            cols = [column[t] for t in fold.tags]
            for row, i in enumerate(test_idx):
                probs[i, cols] = p[row]
                applied[i] = {
                    column[a.tag] for a in route_prediction(fold, p[row]) if a.state is TagState.APPLIED
                }
        predicted = (
            [set(np.nonzero(row >= 0.5)[0].tolist()) for row in probs] if kind is ModelKind.MULTILABEL else []
        )
        return CrossValidation(folds, probs, applied, predicted)

    def _active(
        self, tenant: str, model_id: str
    ) -> tuple[str | None, TagModel | None, dict[str, tuple[str, ...]] | None]:
        """The version ``active.json`` names (what a promotion will expect to replace), that
        version's model, and what it was trained on (sha256 -> tags), if it kept a record."""
        pointer = self.models.active_version(tenant, model_id)
        if pointer is None:
            return None, None, None
        try:
            active = self.models.load_version(tenant, model_id, pointer)
        except (InvalidInputError, NotFoundError) as e:
            log.warning("active version of %s/%s cannot be read (%s): replacing it", tenant, model_id, e)
            return pointer, None, None
        return pointer, active, self.models.training_examples(tenant, model_id, active.version)

    def _new_examples_cv(
        self,
        model: TagModel,
        loaded: Sequence[_Loaded],
        negative_items: Sequence[_Loaded],
        labels: Sequence[Any],
        kind: ModelKind,
        new: Sequence[int],
        *,
        encoder_id: str,
        target: float,
        views: bool,
    ) -> CrossValidation:
        """The new version's predictions of the examples new since the active version, each by a
        model trained on every other example (up to 5 folds of the new ones): scored as the active
        version scores them, having trained on all the old examples (their series twins included)
        and on none of the new ones."""
        n_folds = min(CV_FOLDS, len(new))
        order = np.random.default_rng(0).permutation(np.asarray(new))
        probs = np.zeros((len(loaded), len(model.tags)), dtype=np.float32)
        applied: list[set[int]] = [set() for _ in loaded]
        column = {t: i for i, t in enumerate(model.tags)}
        for f in range(n_folds):
            test = set(order[f::n_folds].tolist())
            keep = [i for i in range(len(loaded)) if i not in test]
            items = [loaded[i] for i in keep]
            extra = self._fit_extras(items, negative_items, encoder_id, target, views=views)
            # no calibration of its own: the fold model routes with the new version's thresholds
            head = self._fit(
                _rows(items, encoder_id), [labels[i] for i in keep], kind, **extra, calibrate=False
            )
            fold = replace(
                model, version="gate", tags=head.tags, coef=head.coef, intercept=head.intercept,
                thresholds=np.array([model.threshold_for(t) for t in head.tags], dtype=np.float32),
                evidence=None, text=None,
            )  # fmt: skip
            rows = sorted(test)
            p = fold.predict(_rows([loaded[i] for i in rows], encoder_id))
            cols = [column[t] for t in fold.tags]
            for r, i in enumerate(rows):
                probs[i, cols] = p[r]
                applied[i] = {
                    column[a.tag] for a in route_prediction(fold, p[r]) if a.state is TagState.APPLIED
                }
        return CrossValidation(n_folds, probs, applied, [])

    def _fill_quality(
        self, report: TrainingReport, model: TagModel, loaded: list[_Loaded], cv: CrossValidation | None
    ) -> None:
        if cv is None:
            report.warnings.append(
                "too few examples per tag to cross-validate: precision and recall are not estimated"
            )
            return
        report.cv_folds = cv.folds
        tags, index = model.tags, {t: i for i, t in enumerate(model.tags)}
        n = len(loaded)
        if model.kind is ModelKind.EXCLUSIVE:
            truth = [index[item.example.tag] for item in loaded]
            top = cv.probabilities.argmax(axis=1).tolist()
            report.per_tag = per_tag_metrics(tags, truth, top)
            report.cv_accuracy = round(sum(t == p for t, p in zip(truth, top, strict=True)) / n, 4)
            mistakes = [
                (t, p, float(cv.probabilities[i, p]), loaded[i].example.source)
                for i, (t, p) in enumerate(zip(truth, top, strict=True))
                if t != p
            ]
            applied_right = sum(1 for i in range(n) if cv.applied[i] == {truth[i]})
        else:
            truth_sets = [{index[t] for t in item.example.tags} for item in loaded]
            report.per_tag = multilabel_metrics(tags, truth_sets, cv.predicted)
            mistakes = [
                (t, p, float(cv.probabilities[i, p]), loaded[i].example.source)
                for i in range(n)
                for p in cv.predicted[i] - truth_sets[i]
                for t in truth_sets[i]
            ]
            report.cv_accuracy = round(sum(cv.predicted[i] == truth_sets[i] for i in range(n)) / n, 4)
            applied_right = sum(len(cv.applied[i] & truth_sets[i]) for i in range(n))
        applied_total = sum(len(a) for a in cv.applied)
        report.auto_applied = {
            "precision": round(applied_right / applied_total, 4) if applied_total else None,
            "coverage": round(sum(1 for a in cv.applied if a) / n, 4),
            "applied": applied_total,
        }
        report.confused = self._with_thumbnails(confused_pairs(tags, mistakes), loaded)
        for tag, m in report.per_tag.items():
            if m["support"] and (m["recall"] < 0.5 or m["precision"] < 0.5):
                report.warnings.append(
                    f"tag {tag!r} is often confused in cross-validation (precision {m['precision']:.0%}, recall "
                    f"{m['recall']:.0%}): add more varied examples, or check its examples are labelled right"
                )

    def _with_thumbnails(self, pairs: list[ConfusedPair], loaded: list[_Loaded]) -> list[ConfusedPair]:
        by_source = {item.example.source: item.example for item in loaded}
        out = []
        for pair in pairs:
            thumbs = []
            for src in pair.examples:
                try:
                    thumbs.append(
                        thumbnail_data_uri(self.tagger.prepare(by_source[src].load()).decoded.image)
                    )
                except (OSError, TagsmithError):
                    thumbs.append("")
            out.append(ConfusedPair(pair.tag, pair.predicted_as, pair.count, pair.examples, tuple(thumbs)))
        return out


# --- helpers ----------------------------------------------------------------------------------------
def _rows(items: Sequence[_Loaded], encoder_id: str) -> np.ndarray:
    """The items' embeddings by ``encoder_id``, L2-normalised rows (N, dim)."""
    return l2_normalise(np.stack([item.vectors[encoder_id] for item in items]).astype(np.float32))


#: How much better (in standard errors of the paired difference) another recipe's cross-validation
#: must be than the first candidate's to be chosen instead (see :func:`choose_recipe`) ...
RECIPE_MARGIN = 0.5
#: ... and than the active version's recipe, on a retrain: switching re-embeds the tenant's library,
#: and the examples reviewers add are the hardest photos of a few tags, not a fair sample. Measured
#: on grocery's review loop: with the first-training margin a retrain on 100 answers switched to
#: the whole photo on a one-point difference, and top-1 on new photos fell from 83% to 78%.
RETRAIN_RECIPE_MARGIN = 2.0
#: Augmented views are kept when they beat no views by this many standard errors: they gain 1.5-3.5
#: points on grocery at 5-10 examples per tag, where cross-validation shows it clearly, and cost
#: clothing about one (a margin of 0 kept them on clothing splits where they lost 0.4 on average).
VIEWS_MARGIN = 0.5


def choose_recipe(
    correct: Mapping[tuple[str, bool], np.ndarray],
    encoders: Sequence[str],
    *,
    margin: float = RECIPE_MARGIN,
    weights: np.ndarray | None = None,
) -> tuple[str, bool]:
    """The recipe to train a model with, from each option's out-of-fold correctness per example
    (the same folds for all): ``(encoder id, augmented views or not)``.

    1. **Encoder**: the first of ``encoders``, unless another beats it by more than ``margin``
       standard errors of the paired difference (weighted wins minus losses over the square root
       of the summed squared weights of the examples where they differ), compared with views on
       both (or off).
    2. **Views**: kept only when, on the chosen encoder, they got more examples right than no views
       beyond half a standard error (:data:`VIEWS_MARGIN`).

    ``weights`` (one per example; default 1) weigh each tag alike, as the head does: reviewers'
    answers pile up on a few confusable tags, and counting examples would let those tags decide.

    Why a margin (docs/benchmarks.md, "Recipe"): with 5-10 examples per tag the cross-validated
    accuracies of two recipes differ by noise as large as their real difference; taken at face
    value, they chose the full frame for two grocery splits where it lost 3-4 points on new photos.
    Why the zoom first: where the full frame wins (clothing) it wins clearly, while its
    out-of-fold evidence on shop photos is too kind (the background of a shelf is shared by a
    product's examples and not by the uploads): full-frame grocery models auto-applied at 93%
    precision for a 98% target at 5 examples per tag, zoomed ones at 98%.

    >>> right = {("zoom", False): np.array([1, 1, 0, 1], bool), ("full", False): np.array([1, 1, 1, 0], bool)}
    >>> choose_recipe(right, ["zoom", "full"])  # as many right: no evidence for the other
    ('zoom', False)
    >>> right[("full", False)] = np.array([1, 1, 1, 1], bool)
    >>> choose_recipe(right, ["zoom", "full"])
    ('full', False)
    """

    def better(a: np.ndarray, b: np.ndarray, z: float) -> bool:
        w = np.ones(len(a)) if weights is None else np.asarray(weights, dtype=np.float64)
        wins, losses = float(w[a & ~b].sum()), float(w[~a & b].sum())
        return wins - losses > z * np.sqrt(max(float((w[a != b] ** 2).sum()), 1.0))

    views_on = any(v for _, v in correct)
    encoder = encoders[0]
    for other in encoders[1:]:
        if (other, views_on) in correct and better(
            correct[(other, views_on)], correct[(encoder, views_on)], margin
        ):
            encoder = other
    if views_on and (encoder, False) in correct:
        return encoder, bool(better(correct[(encoder, True)], correct[(encoder, False)], VIEWS_MARGIN))
    return encoder, views_on


def _tag_balanced_weights(labels: Sequence[Any]) -> np.ndarray:
    """One weight per example, ``n / (T * n_tag)`` by its (first) tag: every tag weighs alike."""
    keys = [str(lab) if isinstance(lab, str) else ",".join(sorted(lab)) for lab in labels]
    counts = Counter(keys)
    return np.array([len(keys) / (len(counts) * counts[k]) for k in keys], dtype=np.float64)


def _option_name(option: tuple[str, bool]) -> str:
    """How a recipe option reads in the report: ``<encoder>`` or ``<encoder> without views``."""
    return option[0] if option[1] else f"{option[0]} without views"


def _oof_correct(head: LinearHead, labels: Sequence[Any], kind: ModelKind) -> np.ndarray:
    """Per example, whether the head's out-of-fold prediction was right (exclusive: its top tag;
    multi-label: every tag decided right at 0.5)."""
    probs = head.oof_probabilities
    if probs is None:
        return np.zeros(len(labels), bool)
    if kind is ModelKind.EXCLUSIVE:
        return np.asarray(head.tags)[probs.argmax(axis=1)] == np.asarray([str(lab) for lab in labels])
    truth = np.array([[t in set(lab) for t in head.tags] for lab in labels], dtype=bool)
    return np.asarray(((probs >= 0.5) == truth).all(axis=1))


def _cv_score(head: LinearHead, labels: Sequence[Any], kind: ModelKind) -> float | None:
    """How well a head's out-of-fold predictions did, to compare recipes on the same examples:
    top-1 accuracy (exclusive), mean balanced accuracy of the per-tag decisions (multi-label)."""
    if kind is ModelKind.EXCLUSIVE:
        return head.cv_accuracy
    probs = head.oof_probabilities
    if probs is None:
        return None
    truth = np.array([[t in set(lab) for t in head.tags] for lab in labels], dtype=bool)
    said = probs >= 0.5
    scores = []
    for j in range(len(head.tags)):
        pos, neg = truth[:, j], ~truth[:, j]
        if pos.any() and neg.any():
            scores.append(0.5 * (said[pos, j].mean() + (~said[neg, j]).mean()))
    return float(np.mean(scores)) if scores else None


def _cv_from_head(head: LinearHead, model: TagModel) -> CrossValidation | None:
    """Out-of-fold predictions the fitting already made, if it exposes them.

    Fitting that calibrates thresholds by cross-validation computes exactly what the report and
    the promotion need; a head carrying ``oof_probabilities`` (N, T in ``head.tags`` order) and
    ``cv_folds`` saves the trainer from fitting every fold a second time.
    """
    probs = getattr(head, "oof_probabilities", None)
    if probs is None:
        return None
    probs = np.asarray(probs, dtype=np.float32)
    applied = [
        {model.tags.index(a.tag) for a in route_prediction(model, row) if a.state is TagState.APPLIED}
        for row in probs
    ]
    predicted = (
        [set(np.nonzero(row >= 0.5)[0].tolist()) for row in probs]
        if model.kind is ModelKind.MULTILABEL
        else []
    )
    return CrossValidation(int(getattr(head, "cv_folds", 0) or 0), probs, applied, predicted)


def views_per_example(
    tags: Sequence[Sequence[str]], augment: int, *, below: int = AUGMENT_BELOW
) -> list[int]:
    """Augmented views for each example, given each one's tags: ``augment`` when its tag (a
    multi-label example: its least-photographed tag; "none of these" answers, with no tag, count as
    one tag) has fewer than ``below`` examples, else none.

    >>> views_per_example([("milk",), ("milk",), ("milk",), ("oat",)], 2, below=3)
    [0, 0, 0, 2]
    """
    counts = Counter(t for ts in tags for t in (ts or ("",)))
    return [augment if min(counts[t] for t in (ts or ("",))) < below else 0 for ts in tags]


def validate_augment(augment: object) -> int:
    """``augment`` as a view count, or :class:`TrainingInputError` saying what is allowed."""
    if isinstance(augment, bool) or not isinstance(augment, int) or not 0 <= augment <= MAX_AUGMENT_VIEWS:
        raise TrainingInputError(
            f"augment must be a whole number of views per example from 0 (off) to {MAX_AUGMENT_VIEWS}, "
            f"got {augment!r}"
        )
    return augment


def view_cache_key(sha256: str, index: int) -> str:
    """The embedding cache key of view ``index`` of the photo with this content hash."""
    return f"{sha256}.aug{AUGMENT_VERSION}.{index}"


def view_seed(sha256: str) -> int:
    """The views' seed: :func:`tagsmith.encoder.augment.seed_for_bytes` of the photo, from its hash."""
    return int.from_bytes(bytes.fromhex(sha256)[:8], "little") >> 1


def _with_recorded_hashes(examples: Sequence[Example], recorded: dict[tuple[str, str], str]) -> list[Example]:
    """``examples`` with the content hash an earlier training recorded for the same source and
    version (see :class:`Example`), so that an example whose embedding is cached is not read."""
    return [
        replace(ex, sha256=recorded[(ex.source, ex.version)])
        if ex.sha256 is None and ex.version is not None and (ex.source, ex.version) in recorded
        else ex
        for ex in examples
    ]


def _drop_exact_duplicates(loaded: list[_Loaded]) -> tuple[list[_Loaded], list[str]]:
    by_hash: dict[str, list[_Loaded]] = defaultdict(list)
    for item in loaded:
        by_hash[item.sha256].append(item)
    clashes = [items for items in by_hash.values() if len({frozenset(i.example.tags) for i in items}) > 1]
    if clashes:
        lines = [
            " == ".join(f"{i.example.source} ({', '.join(i.example.tags) or 'no tag'})" for i in items)
            for items in clashes
        ]
        raise TrainingInputError(
            "the same image is an example of different tags; keep it under one:" + bullet_list(lines)
        )
    repeated = [items for items in by_hash.values() if len(items) > 1]
    if not repeated:
        return loaded, []
    lines = [" == ".join(i.example.source for i in items) for items in repeated]
    keep = {id(items[0]) for items in by_hash.values()}
    return [i for i in loaded if id(i) in keep], [
        f"{len(repeated)} image(s) appear more than once under the same tag; each is used once:"
        + bullet_list(lines)
    ]


def _with_metrics(
    model: TagModel, report: TrainingReport, counts: dict[str, int], head: LinearHead, *, augment: int = 0
) -> TagModel:
    from dataclasses import replace

    metrics = {
        "cv_accuracy": report.cv_accuracy if report.cv_accuracy is not None else head.cv_accuracy,
        "auto_applied_precision": report.auto_applied.get("precision"),
        "auto_applied_coverage": report.auto_applied.get("coverage"),
        # training settings: augmented views per example photo of the tags with fewer than
        # augment_below examples (and the views' version), 0 = none
        "augmented_views": augment,
        "augment_below": AUGMENT_BELOW if augment else None,
        "augment_version": AUGMENT_VERSION if augment else None,
        # what the thresholds promise (see TrainingReport.calibration) and the recipes compared
        "calibration": report.calibration,
        "recipes": report.recipes,
    }
    return replace(model, metrics=metrics, examples_per_tag=counts)


def _examples_json(model: TagModel, loaded: list[_Loaded]) -> bytes:
    rows = [
        {
            "sha256": item.sha256,
            "tags": list(item.example.tags),
            "source": item.example.source,
            "version": item.example.version,
        }
        for item in loaded
    ]
    return json.dumps({"encoder_id": model.encoder_id, "examples": rows}, ensure_ascii=False).encode()
