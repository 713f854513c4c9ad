"""A trained tag model as plain data: ``model.json`` (metadata, tags, thresholds) plus
``weights.npz`` (a linear head over the encoder's embeddings), read with ``allow_pickle=False``.

Nothing a bucket holds is ever unpickled: a model is numbers and JSON, applied with NumPy.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from tagsmith.errors import InvalidInputError
from tagsmith.taxonomy import Taxonomy

MODEL_FORMAT = 1


class ModelKind(StrEnum):
    EXCLUSIVE = "exclusive"  # exactly one tag (or none of them): SKU, shot type
    MULTILABEL = "multilabel"  # independent tags: logo present, outdoor, ...


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

    @property
    def dim(self) -> int:
        return int(self.coef.shape[1])

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        """Probabilities (N, T) for L2-normalised embeddings (N, D)."""
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise InvalidInputError(f"model {self.model_id} expects {self.dim}-d embeddings, got {x.shape}")
        z = x @ self.coef.T + self.intercept
        if self.kind is ModelKind.EXCLUSIVE:
            z = z - z.max(axis=1, keepdims=True)
            e = np.exp(z)
            return e / e.sum(axis=1, keepdims=True)
        return 1.0 / (1.0 + np.exp(-z))

    def threshold_for(self, tag: str) -> float:
        return float(self.thresholds[self.tags.index(tag)])

    # --- serialisation -------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
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

    def to_files(self) -> tuple[bytes, bytes]:
        """(model.json, weights.npz)"""
        buf = io.BytesIO()
        np.savez(buf, coef=self.coef.astype(np.float32), intercept=self.intercept.astype(np.float32))
        return json.dumps(self.metadata(), ensure_ascii=False, indent=1).encode(), buf.getvalue()

    @classmethod
    def from_files(cls, model_json: bytes, weights_npz: bytes) -> TagModel:
        try:
            meta = json.loads(model_json)
            if meta.get("format") != MODEL_FORMAT:
                raise InvalidInputError(f"model format {meta.get('format')!r} is not {MODEL_FORMAT}")
            with np.load(io.BytesIO(weights_npz), allow_pickle=False) as npz:
                coef, intercept = npz["coef"], npz["intercept"]
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
