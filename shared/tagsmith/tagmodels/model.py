"""A trained tag model as plain data: ``model.json`` (metadata, tags, thresholds) plus
``weights.npz`` (a linear head over the encoder's embeddings), read with ``allow_pickle=False``.

Nothing a bucket holds is ever unpickled: a model is numbers and JSON, applied with NumPy.

A model may also read the text printed on the asset (OCR). ``model.json`` then declares both
feature kinds::

    "format": 2,
    "features": {"image": "effnet-lite2-260-s7-v1",
                 "text": {"engine": "rapidocr-3.10-ppocrv6-small", "dim": 4096, "ngrams": [2, 3, 4],
                          "weight": 0.5, "image_scale": 1.1}},
    "image_only_thresholds": [...]

and ``weights.npz`` holds ``text_coef`` (T, dim) and ``text_intercept`` (T,) beside the image head
(see :class:`TextHead`). Image-only models are still written as format 1, byte for byte as before,
so a deployment that predates text features keeps reading them; it refuses a format-2 model with a
clear error instead of silently ignoring its text.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np

from tagsmith.errors import InvalidInputError
from tagsmith.ocr.features import DEFAULT_DIM, DEFAULT_NGRAMS, text_features
from tagsmith.tagmodels.calibration import (
    DEFAULT_CALIBRATION,
    DEFAULT_TARGET_PRECISION,
    CalibrationSettings,
    OutOfFold,
    calibrate_thresholds,
)
from tagsmith.taxonomy import Taxonomy

#: The format of image-only models (unchanged since the first release).
MODEL_FORMAT = 1
#: The format of models that also read text (``features.text`` in model.json).
TEXT_MODEL_FORMAT = 2
READABLE_FORMATS = (MODEL_FORMAT, TEXT_MODEL_FORMAT)
#: Below this confidence a model's proposal is not even suggested for review (unless it is the
#: "none of the trained tags" outcome, see :attr:`TagModel.none_below`).
DEFAULT_REVIEW_FLOOR = 0.2


#: Up to this many rows, :meth:`TagModel.predict` multiplies without BLAS (see :func:`_scores`).
FEW_ROWS = 64


def _scores(x: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """``x @ coef.T``. For an ingest batch (a few rows against a few thousand weights) without
    BLAS: right after an encoder run, OpenBLAS's threads fought onnxruntime's still-spinning ones
    on 2 cores and a (10, 3136) x (3136, 81) product took 80-240 ms instead of 0.2 ms, 14% of the
    in-process ingest's time (benchmarks/ingest.py --profile); ``einsum``'s own loop takes 0.6 ms
    and needs neither threads nor the process-wide limit that training holds. Larger inputs
    (training's folds) keep BLAS."""
    if x.shape[0] <= FEW_ROWS:
        return np.einsum("ij,kj->ik", x, coef)
    return x @ coef.T


class _Keep:
    """``max_tags=KEEP``: leave the setting as it is."""


KEEP = _Keep()


class ModelKind(StrEnum):
    EXCLUSIVE = "exclusive"  # exactly one tag (or none of them): SKU, shot type
    MULTILABEL = "multilabel"  # independent tags: logo present, outdoor, ...


@dataclass(frozen=True)
class TextFeatures:
    """How a model turns OCR text into features: which engine read it, and the hashed character
    n-grams of :func:`tagsmith.ocr.text_features`."""

    engine: str
    dim: int = DEFAULT_DIM
    ngrams: tuple[int, ...] = DEFAULT_NGRAMS

    def __post_init__(self) -> None:
        if not self.engine or self.dim < 1 or not self.ngrams or min(self.ngrams) < 1:
            raise InvalidInputError(
                f"text features need an OCR engine id, dim >= 1 and n-gram sizes >= 1, got {self!r}"
            )

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) features of ``texts`` (an empty text gives a zero row)."""
        return text_features(texts, dim=self.dim, ngrams=self.ngrams)


@dataclass(frozen=True)
class TextHead:
    """The text half of a model that reads text: late fusion of two linear heads.

    ``fused scores = image_scale * (coef @ x + intercept) + self.coef @ f(text) + self.intercept``,
    where ``coef``/``intercept`` are the model's image head (scaled for image-only use) and ``f`` is
    :meth:`TextFeatures.vectors`. The model's ``thresholds`` are calibrated on the fused scores;
    ``image_thresholds`` on the image head alone, for assets whose text could not be read (see
    :meth:`TagModel.image_only`).
    """

    features: TextFeatures
    coef: np.ndarray  # (T, dim) float32
    intercept: np.ndarray  # (T,) float32
    image_scale: float
    image_thresholds: np.ndarray  # (T,) float32
    weight: float = 1.0  # the text/image weight chosen by cross-validation (informative)
    #: the image head's own calibration evidence (see :attr:`TagModel.evidence`)
    image_evidence: OutOfFold | None = None
    image_none_below: float = 0.0


@dataclass(frozen=True)
class TagModel:
    """A linear head: ``scores = normalise(x) @ coef.T + intercept`` then softmax (exclusive) or
    sigmoid (multi-label). ``thresholds[i]`` is the confidence at or above which tag ``i`` is applied
    without review; below ``review_floor`` a tag is not even suggested.

    >>> m = TagModel.example()
    >>> p = m.predict(np.eye(2, dtype=np.float32))
    >>> p.argmax(axis=1).tolist(), bool(p[0, 0] > 0.9)
    ([0, 1], True)
    """

    tenant: str
    model_id: str
    version: str
    kind: ModelKind
    encoder_id: str
    tags: tuple[str, ...]
    coef: np.ndarray  # (T, D) float32
    intercept: np.ndarray  # (T,) float32
    thresholds: np.ndarray  # (T,) float32
    review_floor: float = DEFAULT_REVIEW_FLOOR
    #: The precision the thresholds were calibrated for (model.json ``target_precision``).
    target_precision: float = DEFAULT_TARGET_PRECISION
    taxonomy: Taxonomy = field(default_factory=lambda: Taxonomy(()))
    created_at: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    examples_per_tag: dict[str, int] = field(default_factory=dict)
    #: Set when the model also reads the asset's OCR text (see :class:`TextHead`).
    text: TextHead | None = None
    #: What the thresholds were chosen from (out-of-fold and simulated never-seen predictions,
    #: :mod:`tagsmith.tagmodels.calibration`), kept so that a new target recalibrates without a
    #: fit (:meth:`recalibrated`); None for models trained without cross-validation.
    evidence: OutOfFold | None = None
    #: Exclusive models: a top confidence below this proposes "none of the trained tags" for review
    #: (the photo looks more like a product the model never saw than like any of its tags); 0: never.
    none_below: float = 0.0
    #: Multi-label models: at most this many tags per asset are proposed, most confident first
    #: (None: no limit).
    max_tags: int | None = None

    def __post_init__(self) -> None:
        t = len(self.tags)
        if self.coef.ndim != 2 or self.coef.shape[0] != t or self.intercept.shape != (t,):
            raise InvalidInputError(
                f"model {self.model_id} {self.version}: weights do not match its {t} tags "
                f"(coef {self.coef.shape}, intercept {self.intercept.shape})"
            )
        if self.thresholds.shape != (t,):
            raise InvalidInputError(
                f"model {self.model_id} {self.version}: {t} tags but thresholds {self.thresholds.shape}"
            )
        if self.max_tags is not None and self.max_tags < 1:
            raise InvalidInputError(
                f"model {self.model_id}: max_tags must be at least 1, got {self.max_tags}"
            )
        for ev in (self.evidence, self.text.image_evidence if self.text else None):
            if ev is not None and len(ev) and (ev.tag.min() < 0 or ev.tag.max() >= t):
                raise InvalidInputError(
                    f"model {self.model_id} {self.version}: calibration evidence names tags outside its {t}"
                )
        if self.text is not None:
            th = self.text
            if (
                th.coef.shape != (t, th.features.dim)
                or th.intercept.shape != (t,)
                or th.image_thresholds.shape != (t,)
            ):
                raise InvalidInputError(
                    f"model {self.model_id} {self.version}: text weights do not match its {t} tags and "
                    f"{th.features.dim}-d text features (text_coef {th.coef.shape}, text_intercept "
                    f"{th.intercept.shape}, image_only_thresholds {th.image_thresholds.shape})"
                )

    @property
    def dim(self) -> int:
        return int(self.coef.shape[1])

    def image_only(self) -> TagModel:
        """This model without its text half, with the thresholds calibrated for the image head
        alone: what scores an asset whose text was not read (OCR failed, video frames)."""
        if self.text is None:
            return self
        return replace(
            self,
            text=None,
            thresholds=self.text.image_thresholds,
            evidence=self.text.image_evidence,
            none_below=self.text.image_none_below,
        )

    def recalibrated(
        self,
        *,
        target: float | None = None,
        max_tags: int | _Keep | None = KEEP,
        settings: CalibrationSettings = DEFAULT_CALIBRATION,
    ) -> TagModel:
        """This model with thresholds chosen again from its stored evidence for ``target`` precision
        (default: its own), and ``max_tags`` set (multi-label; ``KEEP``: unchanged). No fit: the
        weights stay the same. Raises :class:`InvalidInputError` for a model without evidence.

        >>> m = TagModel.example()
        >>> m.recalibrated(target=0.95)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        tagsmith.errors.InvalidInputError: model example v0 keeps no calibration evidence...
        """
        target = self.target_precision if target is None else target
        model = self
        if target != self.target_precision or self.evidence is not None:
            if self.evidence is None:
                raise InvalidInputError(
                    f"model {self.model_id} {self.version} keeps no calibration evidence (trained before "
                    "it was stored, or with too few examples to cross-validate): retrain it to change "
                    "its precision target"
                )
            cal = calibrate_thresholds(self.evidence, len(self.tags), target=target, settings=settings)
            text = self.text
            if text is not None and text.image_evidence is not None:
                image_cal = calibrate_thresholds(
                    text.image_evidence, len(self.tags), target=target, settings=settings
                )
                text = replace(text, image_thresholds=image_cal.thresholds)
            metrics = {**self.metrics, "calibration": cal.metrics()}
            model = replace(
                model, thresholds=cal.thresholds, target_precision=target, text=text, metrics=metrics
            )
        if not isinstance(max_tags, _Keep):
            if max_tags is not None and self.kind is not ModelKind.MULTILABEL:
                raise InvalidInputError("max tags per asset is a setting of multi-label models only")
            model = replace(model, max_tags=max_tags)
        return model

    def predict(self, embeddings: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
        """Probabilities (N, T) for L2-normalised embeddings (N, D) and, for a model that reads
        text, the OCR text of each asset (``""`` when OCR read nothing). A model that reads text
        refuses to guess without it: call :meth:`image_only` for assets whose text is unknown."""
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise InvalidInputError(f"model {self.model_id} expects {self.dim}-d embeddings, got {x.shape}")
        z = _scores(x, self.coef) + self.intercept
        if self.text is not None:
            if texts is None or len(texts) != x.shape[0]:
                raise InvalidInputError(
                    f"model {self.model_id} {self.version} reads text: pass one text per embedding "
                    f"(got {'none' if texts is None else len(texts)} for {x.shape[0]}), or use image_only()"
                )
            f = self.text.features.vectors(texts)
            z = self.text.image_scale * z + f @ self.text.coef.T + self.text.intercept
        elif texts is not None:
            raise InvalidInputError(f"model {self.model_id} {self.version} does not read text")
        if self.kind is ModelKind.EXCLUSIVE:
            z = z - z.max(axis=1, keepdims=True)
            e = np.exp(z)
            return e / e.sum(axis=1, keepdims=True)
        return 1.0 / (1.0 + np.exp(-z))

    def threshold_for(self, tag: str) -> float:
        return float(self.thresholds[self.tags.index(tag)])

    # --- serialisation -------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "format": MODEL_FORMAT if self.text is None else TEXT_MODEL_FORMAT,
            "tenant": self.tenant,
            "model_id": self.model_id,
            "version": self.version,
            "kind": self.kind.value,
            "encoder_id": self.encoder_id,
            "tags": list(self.tags),
            # float32 -> float is exact, and so is its JSON repr: a rounded threshold could let
            # through the prediction it was chosen to stop
            "thresholds": [float(t) for t in self.thresholds],
            "review_floor": self.review_floor,
            "target_precision": self.target_precision,
            "taxonomy": self.taxonomy.to_dict(),
            "created_at": self.created_at,
            "metrics": self.metrics,
            "examples_per_tag": self.examples_per_tag,
        }
        if self.none_below:
            meta["none_below"] = round(float(self.none_below), 6)
        if self.max_tags is not None:
            meta["max_tags"] = self.max_tags
        if self.text is not None:
            th = self.text
            meta["features"] = {
                "image": self.encoder_id,
                "text": {
                    "engine": th.features.engine,
                    "dim": th.features.dim,
                    "ngrams": list(th.features.ngrams),
                    "weight": round(float(th.weight), 6),
                    "image_scale": float(th.image_scale),
                },
            }
            meta["image_only_thresholds"] = [float(t) for t in th.image_thresholds]
            if th.image_none_below:
                meta["image_none_below"] = round(float(th.image_none_below), 6)
        return meta

    def to_files(self) -> tuple[bytes, bytes]:
        """(model.json, weights.npz)"""
        buf = io.BytesIO()
        arrays = {"coef": self.coef.astype(np.float32), "intercept": self.intercept.astype(np.float32)}
        if self.text is not None:
            arrays["text_coef"] = self.text.coef.astype(np.float32)
            arrays["text_intercept"] = self.text.intercept.astype(np.float32)
            if self.text.image_evidence is not None:
                arrays.update(self.text.image_evidence.arrays("image_evidence_"))
        if self.evidence is not None:
            arrays.update(self.evidence.arrays())
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        return json.dumps(self.metadata(), ensure_ascii=False, indent=1).encode(), buf.getvalue()

    @classmethod
    def from_files(cls, model_json: bytes, weights_npz: bytes) -> TagModel:
        try:
            meta = json.loads(model_json)
            fmt = meta.get("format")
            if fmt not in READABLE_FORMATS:
                raise InvalidInputError(
                    f"model format {fmt!r} is not one this version reads ({', '.join(map(str, READABLE_FORMATS))})"
                )
            text_meta = (meta.get("features") or {}).get("text")
            if (fmt == TEXT_MODEL_FORMAT) != (text_meta is not None):
                raise InvalidInputError(
                    f"model format {fmt} {'needs' if fmt == TEXT_MODEL_FORMAT else 'cannot have'} features.text"
                )
            with np.load(io.BytesIO(weights_npz), allow_pickle=False) as npz:
                coef, intercept = npz["coef"], npz["intercept"]
                stored = {name: npz[name] for name in npz.files if "evidence_" in name}
                text = None
                if text_meta is not None:
                    text = TextHead(
                        features=TextFeatures(
                            engine=str(text_meta["engine"]),
                            dim=int(text_meta["dim"]),
                            ngrams=tuple(int(n) for n in text_meta["ngrams"]),
                        ),
                        coef=np.asarray(npz["text_coef"], dtype=np.float32),
                        intercept=np.asarray(npz["text_intercept"], dtype=np.float32),
                        image_scale=float(text_meta["image_scale"]),
                        image_thresholds=np.asarray(meta["image_only_thresholds"], dtype=np.float32),
                        weight=float(text_meta.get("weight", 1.0)),
                        image_evidence=OutOfFold.from_arrays(stored, "image_evidence_"),
                        image_none_below=float(meta.get("image_none_below", 0.0)),
                    )
            return cls(
                tenant=meta["tenant"],
                model_id=meta["model_id"],
                version=meta["version"],
                kind=ModelKind(meta["kind"]),
                encoder_id=meta["encoder_id"],
                tags=tuple(meta["tags"]),
                coef=np.asarray(coef, dtype=np.float32),
                intercept=np.asarray(intercept, dtype=np.float32),
                thresholds=np.asarray(meta["thresholds"], dtype=np.float32),
                review_floor=float(meta.get("review_floor", DEFAULT_REVIEW_FLOOR)),
                # Models written before calibration carry no target: they used a flat threshold.
                target_precision=float(meta.get("target_precision", DEFAULT_TARGET_PRECISION)),
                taxonomy=Taxonomy.from_dict(meta.get("taxonomy") or {"tags": []}),
                created_at=meta.get("created_at", ""),
                metrics=meta.get("metrics") or {},
                examples_per_tag=meta.get("examples_per_tag") or {},
                text=text,
                evidence=OutOfFold.from_arrays(stored),
                none_below=float(meta.get("none_below", 0.0)),
                max_tags=int(meta["max_tags"]) if meta.get("max_tags") is not None else None,
            )
        except (KeyError, ValueError, TypeError, OSError) as e:
            raise InvalidInputError(f"model files are not a valid Tagsmith model: {e}") from e

    @classmethod
    def example(cls) -> TagModel:
        """A tiny two-tag model for docs and tests."""
        return cls(
            tenant="demo",
            model_id="example",
            version="v0",
            kind=ModelKind.EXCLUSIVE,
            encoder_id="identity-2",
            tags=("a", "b"),
            coef=np.array([[1.5, -1.5], [-1.5, 1.5]], dtype=np.float32),
            intercept=np.zeros(2, dtype=np.float32),
            thresholds=np.full(2, 0.9, dtype=np.float32),
        )
