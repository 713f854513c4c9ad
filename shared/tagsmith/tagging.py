"""Tagging: bytes in, proposed tag assignments out. Shared by the ingest handler and ``tagsmith tag``.

decode (validated, size-limited) -> embed (cached by content hash) -> every active tag model of the
tenant -> route each prediction (applied / review / dropped).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tagsmith.errors import UnsupportedMediaError
from tagsmith.records import TagAssignment
from tagsmith.storage.embeddings import EmbeddingCache
from tagsmith.tagmodels import ActiveModels, TagModel, route_prediction

if TYPE_CHECKING:
    from tagsmith.encoder import DecodedImage, Encoder


@dataclass(frozen=True)
class Limits:
    max_object_bytes: int = 64 * 1024 * 1024
    max_pixels: int = 100_000_000  # 10,000 x 10,000; larger images are refused before decoding
    # JPEGs are decoded at 1/2, 1/4 or 1/8 scale while both sides stay >= this: several times
    # cheaper for big photos, and still above any input size the encoders use
    decode_draft_size: int | None = 448


@dataclass(frozen=True)
class PreparedImage:
    sha256: str
    decoded: DecodedImage


@dataclass(frozen=True)
class Proposal:
    """What the tenant's models say about one asset."""

    models: dict[str, str]  # model id -> version
    exclusive_models: set[str]
    assignments: list[TagAssignment]


class Tagger:
    def __init__(
        self,
        *,
        encoder: Encoder,
        models: ActiveModels,
        embeddings: EmbeddingCache | None = None,
        limits: Limits = Limits(),
    ) -> None:
        self.encoder = encoder
        self.models = models
        self.embeddings = embeddings
        self.limits = limits

    def prepare(self, data: bytes) -> PreparedImage:
        """Validate and decode; raises an :class:`~tagsmith.errors.InvalidInputError` saying what is wrong."""
        from tagsmith.encoder import decode_image

        if len(data) > self.limits.max_object_bytes:
            raise UnsupportedMediaError(
                f"object is {len(data):,} bytes, over the {self.limits.max_object_bytes:,}-byte limit for images"
            )
        decoded = decode_image(
            data, max_pixels=self.limits.max_pixels, draft_size=self.limits.decode_draft_size
        )
        return PreparedImage(hashlib.sha256(data).hexdigest(), decoded)

    def embed(self, tenant: str, images: Sequence[PreparedImage]) -> np.ndarray:
        """Embeddings (N, D), from the cache where possible; new ones are embedded in one batch."""
        enc_id = self.encoder.encoder_id
        out: list[np.ndarray | None] = [
            self.embeddings.get(tenant, enc_id, im.sha256) if self.embeddings else None for im in images
        ]
        missing = [i for i, v in enumerate(out) if v is None or v.shape != (self.encoder.dim,)]
        if missing:
            fresh = self.encoder.embed([images[i].decoded.image for i in missing])
            for i, vec in zip(missing, fresh, strict=True):
                out[i] = vec
                if self.embeddings:
                    self.embeddings.put(tenant, enc_id, images[i].sha256, vec)
        return (
            np.stack([v for v in out if v is not None])
            if out
            else np.zeros((0, self.encoder.dim), np.float32)
        )

    def active_models(self, tenant: str) -> list[TagModel]:
        return [m for m in self.models.for_tenant(tenant) if m.encoder_id == self.encoder.encoder_id]

    def propose(self, tenant: str, embeddings: np.ndarray) -> list[Proposal]:
        models = self.active_models(tenant)
        per_model = [(m, m.predict(embeddings)) for m in models]
        proposals = []
        for row in range(embeddings.shape[0]):
            assignments = [a for m, probs in per_model for a in route_prediction(m, probs[row])]
            proposals.append(
                Proposal(
                    models={m.model_id: m.version for m in models},
                    exclusive_models={m.model_id for m in models if m.kind.value == "exclusive"},
                    assignments=assignments,
                )
            )
        return proposals
