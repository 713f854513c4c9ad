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
from tagsmith.taxonomy import Taxonomy

#: The format of image-only models (unchanged since the first release).
MODEL_FORMAT = 1
#: The format of models that also read text (``features.text`` in model.json).
TEXT_MODEL_FORMAT = 2
READABLE_FORMATS = (MODEL_FORMAT, TEXT_MODEL_FORMAT)


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
    review_floor: float = 0.2
    #: The precision the thresholds were calibrated for (model.json ``target_precision``).
    target_precision: float = 0.98
    taxonomy: Taxonomy = field(default_factory=lambda: Taxonomy(()))
    created_at: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    examples_per_tag: dict[str, int] = field(default_factory=dict)
    #: Set when the model also reads the asset's OCR text (see :class:`TextHead`).
    text: TextHead | None = None

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

    @property
    def uses_text(self) -> bool:
        return self.text is not None

    def image_only(self) -> TagModel:
        """This model without its text half, with the thresholds calibrated for the image head
        alone: what scores an asset whose text was not read (OCR failed, video frames)."""
        if self.text is None:
            return self
        return replace(self, text=None, thresholds=self.text.image_thresholds)

    def predict(self, embeddings: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
        """Probabilities (N, T) for L2-normalised embeddings (N, D) and, for a model that reads
        text, the OCR text of each asset (``""`` when OCR read nothing). A model that reads text
        refuses to guess without it: call :meth:`image_only` for assets whose text is unknown."""
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise InvalidInputError(f"model {self.model_id} expects {self.dim}-d embeddings, got {x.shape}")
        z = x @ self.coef.T + self.intercept
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
            "thresholds": [round(float(t), 6) for t in self.thresholds],
            "review_floor": self.review_floor,
            "target_precision": self.target_precision,
            "taxonomy": self.taxonomy.to_dict(),
            "created_at": self.created_at,
            "metrics": self.metrics,
            "examples_per_tag": self.examples_per_tag,
        }
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
            meta["image_only_thresholds"] = [round(float(t), 6) for t in th.image_thresholds]
        return meta

    def to_files(self) -> tuple[bytes, bytes]:
        """(model.json, weights.npz)"""
        buf = io.BytesIO()
        arrays = {"coef": self.coef.astype(np.float32), "intercept": self.intercept.astype(np.float32)}
        if self.text is not None:
            arrays["text_coef"] = self.text.coef.astype(np.float32)
            arrays["text_intercept"] = self.text.intercept.astype(np.float32)
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
                review_floor=float(meta.get("review_floor", 0.2)),
                # Models written before calibration carry no target: they used a flat threshold.
                target_precision=float(meta.get("target_precision", 0.98)),
                taxonomy=Taxonomy.from_dict(meta.get("taxonomy") or {"tags": []}),
                created_at=meta.get("created_at", ""),
                metrics=meta.get("metrics") or {},
                examples_per_tag=meta.get("examples_per_tag") or {},
                text=text,
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
