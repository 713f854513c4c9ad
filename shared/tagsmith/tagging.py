"""Tagging: bytes in, proposed tag assignments out. Shared by the ingest handler and ``tagsmith tag``.

decode (validated, size-limited) -> embed (cached by content hash) -> every active tag model of the
tenant -> route each prediction (applied / review / dropped).

A model that reads text (:attr:`TagModel.text`) is given the asset's OCR text when the caller read
it with that model's OCR engine; otherwise (no text passed, OCR failed, another engine) it scores
the image alone, with the thresholds calibrated for the image alone (:meth:`TagModel.image_only`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tagsmith.concurrency import map_io
from tagsmith.config import Settings
from tagsmith.encoder.registry import EncoderSet
from tagsmith.errors import UnsupportedMediaError
from tagsmith.records import TagAssignment
from tagsmith.storage.embeddings import EmbeddingCache
from tagsmith.tagmodels import ActiveModels, BrokenModel, ModelLoadError, TagModel, route_prediction

if TYPE_CHECKING:
    from tagsmith.encoder import DecodedImage, Encoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    max_object_bytes: int = Settings.max_object_bytes
    max_pixels: int = Settings.max_pixels
    # JPEGs are decoded at 1/2, 1/4 or 1/8 scale while both sides stay >= this: several times
    # cheaper for big photos, and still above any input size the encoders use
    decode_draft_size: int | None = 448


@dataclass(frozen=True)
class PreparedImage:
    sha256: str
    decoded: DecodedImage
    preview: bytes | None = None  # the bounded JPEG the console shows (ingestion makes it)


@dataclass(frozen=True)
class Proposal:
    """What the tenant's models say about one asset."""

    models: dict[str, str]  # model id -> version
    exclusive_models: set[str]
    assignments: list[TagAssignment]


#: Embeddings of some images by each encoder that ran (encoder id -> (N, dim) rows).
Embeddings = Mapping[str, np.ndarray]


class Tagger:
    """Decode, embed (with the encoders the tenant's models need), score and route.

    ``encoders``: every encoder this deployment runs (:class:`~tagsmith.encoder.registry.EncoderSet`);
    ``encoder`` alone is a set of one. Each active model scores the embeddings of the encoder it
    was trained for.
    """

    def __init__(
        self,
        *,
        models: ActiveModels,
        encoder: Encoder | None = None,
        encoders: EncoderSet | None = None,
        embeddings: EmbeddingCache | None = None,
        limits: Limits = Limits(),
    ) -> None:
        if encoders is None:
            if encoder is None:
                raise ValueError("a Tagger needs an encoder (or a set of them)")
            encoders = EncoderSet.of(encoder)
        self.encoders = encoders
        self.models = models
        self.embeddings = embeddings
        self.limits = limits
        self._warned_stale: set[tuple[str, str, str, str]] = set()

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

    @property
    def encoder(self) -> Encoder:
        """The deployment's default encoder (what trains a model when there is no choice to make)."""
        return self.encoders.default

    def embed(
        self, tenant: str, images: Sequence[PreparedImage], encoder_id: str | None = None
    ) -> np.ndarray:
        """Embeddings (N, D) by one encoder (default: the default one), from the cache where
        possible; new ones are embedded in one batch."""
        encoder = self.encoders.get(encoder_id) if encoder_id else self.encoder
        enc_id = encoder.encoder_id
        cache = self.embeddings
        # the cache's reads and writes are one request per image: side by side, not in a row
        out: list[np.ndarray | None] = (
            map_io(lambda im: cache.get(tenant, enc_id, im.sha256), images) if cache else [None] * len(images)
        )
        missing = [i for i, v in enumerate(out) if v is None or v.shape != (encoder.dim,)]
        if missing:
            fresh = encoder.embed([images[i].decoded.image for i in missing])
            for i, vec in zip(missing, fresh, strict=True):
                out[i] = vec
            if cache:
                map_io(
                    lambda pair: cache.put(tenant, enc_id, images[pair[0]].sha256, pair[1]),
                    list(zip(missing, fresh, strict=True)),
                )
        return np.stack([v for v in out if v is not None]) if out else np.zeros((0, encoder.dim), np.float32)

    def encoders_for(self, tenant: str) -> tuple[str, ...]:
        """The encoders the tenant's active models were trained for (the default when it has none:
        what a first training would most likely use, so the upload's embedding is ready)."""
        needed = sorted({m.encoder_id for m in self.models_with_text(tenant)})
        return tuple(needed) or (self.encoder.encoder_id,)

    def encoder_key(self, tenant: str) -> str:
        """What an asset record stores as its ``encoder_id``: the encoders its tags came from."""
        return "+".join(self.encoders_for(tenant))

    def embed_for_models(self, tenant: str, images: Sequence[PreparedImage]) -> dict[str, np.ndarray]:
        """Embeddings by every encoder the tenant's active models need (one network pass each)."""
        return {enc_id: self.embed(tenant, images, enc_id) for enc_id in self.encoders_for(tenant)}

    def active_models(self, tenant: str) -> list[TagModel]:
        """The tenant's active models for this encoder, as they score an image *alone*: a model
        that reads text comes as its :meth:`~TagModel.image_only` view (same id, version and
        taxonomy), so a caller without text (video frames) routes with the matching thresholds.
        :meth:`propose` gives the text models their text."""
        return [m.image_only() for m in self.models_with_text(tenant)]

    def models_with_text(self, tenant: str) -> list[TagModel]:
        """The tenant's active models this deployment can run, as stored (text halves included).

        A model trained for an encoder this deployment does not run is left out, with a warning
        (once per model version) saying to retrain it (docs/training.md)."""
        current = self.encoder.encoder_id
        usable = []
        for m in self.models.require(tenant):  # one unloadable version fails this tenant only
            if self.encoders.available(m.encoder_id):
                width = self.encoders.get(m.encoder_id).dim
                if m.dim != width:
                    raise ModelLoadError(
                        [
                            BrokenModel(
                                tenant,
                                m.model_id,
                                m.version,
                                f"weights are {m.dim}-d but encoder {m.encoder_id} gives {width}-d",
                            )
                        ]
                    )
                usable.append(m)
                continue
            key = (tenant, m.model_id, m.version, m.encoder_id)
            if key not in self._warned_stale:
                self._warned_stale.add(key)
                log.warning(
                    "model %s/%s version %s was trained for encoder %s, not this deployment's %s: "
                    "it tags nothing until retrained (tagsmith train --tenant %s --model %s "
                    "--corrections, or from its examples; docs/training.md)",
                    tenant, m.model_id, m.version, m.encoder_id, current, tenant, m.model_id,
                    extra={"tenant": tenant},
                )  # fmt: skip
        return usable

    def reads_text(self, tenant: str) -> bool:
        """Whether any active model of the tenant uses OCR text as a feature."""
        return any(m.text is not None for m in self.models_with_text(tenant))

    def propose(
        self,
        tenant: str,
        embeddings: Embeddings | np.ndarray,
        texts: Sequence[str | None] | None = None,
        *,
        ocr_engine: str | None = None,
    ) -> list[Proposal]:
        """One proposal per image. ``embeddings``: the images' rows by each encoder
        (:meth:`embed_for_models`), or one array by the default encoder. ``texts[i]``: the OCR
        text of image ``i`` as read by ``ocr_engine`` (``""``: nothing printed), or None when it
        was not read."""
        models = self.models_with_text(tenant)
        by_encoder = (
            {self.encoder.encoder_id: embeddings} if isinstance(embeddings, np.ndarray) else dict(embeddings)
        )
        n = next(iter(by_encoder.values())).shape[0] if by_encoder else 0
        if texts is not None and len(texts) != n:
            raise ValueError(f"{len(texts)} texts for {n} embeddings")
        missing = sorted({m.encoder_id for m in models} - set(by_encoder))
        if missing:
            raise ValueError(f"no embeddings by {', '.join(missing)}, which the tenant's models need")
        per_model = [_score(m, by_encoder[m.encoder_id], texts, ocr_engine) for m in models]
        proposals = []
        for row in range(n):
            assignments = [a for scored in per_model for a in route_prediction(*scored[row])]
            proposals.append(
                Proposal(
                    models={m.model_id: m.version for m in models},
                    exclusive_models={m.model_id for m in models if m.kind.value == "exclusive"},
                    assignments=assignments,
                )
            )
        return proposals


def _score(
    model: TagModel, embeddings: np.ndarray, texts: Sequence[str | None] | None, ocr_engine: str | None
) -> list[tuple[TagModel, np.ndarray]]:
    """Per row, the model to route with and its probabilities: a text model gets the rows whose
    text its engine read; the other rows are scored by its image half alone."""
    if model.text is None:
        return [(model, p) for p in model.predict(embeddings)]
    usable = (
        [i for i, t in enumerate(texts) if t is not None]
        if texts is not None and ocr_engine == model.text.features.engine
        else []
    )
    if texts is not None and ocr_engine != model.text.features.engine:
        log.warning(
            "model %s %s reads text from %s, not %s: scored on the image alone",
            model.model_id, model.version, model.text.features.engine, ocr_engine,
            extra={"tenant": model.tenant},
        )  # fmt: skip
    image_model = model.image_only()
    out: list[tuple[TagModel, np.ndarray]] = [(image_model, p) for p in image_model.predict(embeddings)]
    if usable:
        fused = model.predict(embeddings[usable], [texts[i] or "" for i in usable])  # type: ignore[index]
        for i, p in zip(usable, fused, strict=True):
            out[i] = (model, p)
    return out
