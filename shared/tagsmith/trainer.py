"""Training a tenant's tag model from example images: checks, embedding (cached), fit, versioned save.

Examples come from a folder of folders (folder name = tag id) or the same layout under an S3
prefix. An optional ``taxonomy.json`` beside the tag folders gives labels per language.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tagsmith.errors import InvalidInputError, InvalidKeyError, TrainingInputError
from tagsmith.keys import validate_model_id, validate_tag_id, validate_tenant
from tagsmith.records import utc_now
from tagsmith.storage import ObjectStore
from tagsmith.tagging import PreparedImage, Tagger
from tagsmith.tagmodels import ModelKind, ModelStore, TagModel, fit_linear_head
from tagsmith.taxonomy import Taxonomy

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic"})
MIN_EXAMPLES = 3
RECOMMENDED_EXAMPLES = 5


@dataclass(frozen=True)
class Example:
    tag: str
    source: str  # a path or s3:// URI, for messages
    load: Callable[[], bytes]


@dataclass
class TrainingReport:
    tenant: str
    model_id: str
    version: str
    kind: str
    tags: list[str]
    examples_per_tag: dict[str, int]
    cv_accuracy: float | None
    warnings: list[str] = field(default_factory=list)
    embedded: int = 0
    cached: int = 0
    seconds: float = 0.0
    activated: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def examples_from_folder(root: Path) -> tuple[list[Example], Taxonomy | None]:
    root = Path(root)
    if not root.is_dir():
        raise TrainingInputError(f"{root} is not a folder: expected one sub-folder per tag")
    examples = []
    for tag_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(tag_dir.rglob("*")):
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                examples.append(Example(tag_dir.name, str(f), f.read_bytes))
    tax_file = root / "taxonomy.json"
    taxonomy = Taxonomy.from_json(tax_file.read_bytes()) if tax_file.is_file() else None
    return examples, taxonomy


def examples_from_prefix(store: ObjectStore, bucket: str, prefix: str) -> tuple[list[Example], Taxonomy | None]:
    prefix = prefix if prefix.endswith("/") or not prefix else prefix + "/"
    examples, taxonomy = [], None
    for info in store.list(bucket, prefix):
        rest = info.key[len(prefix) :]
        if rest == "taxonomy.json":
            taxonomy = Taxonomy.from_json(store.get(bucket, info.key).body)
            continue
        tag, sep, name = rest.partition("/")
        if sep and Path(name).suffix.lower() in IMAGE_SUFFIXES:
            key = info.key
            examples.append(Example(tag, f"s3://{bucket}/{key}", lambda key=key: store.get(bucket, key).body))
    return examples, taxonomy


def new_version(now: datetime | None = None) -> str:
    """Sortable, unique version ids: ``20261122-061500-3f9a``."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


class TrainingService:
    def __init__(self, *, tagger: Tagger, models: ModelStore) -> None:
        self.tagger = tagger
        self.models = models

    def train(
        self,
        *,
        tenant: str,
        model_id: str,
        examples: Sequence[Example],
        taxonomy: Taxonomy | None = None,
        kind: ModelKind = ModelKind.EXCLUSIVE,
        threshold: float = 0.8,
        review_floor: float = 0.2,
        activate: bool = True,
    ) -> TrainingReport:
        started = time.perf_counter()
        validate_tenant(tenant)
        validate_model_id(model_id)
        if not 0.0 < threshold <= 1.0:
            raise TrainingInputError(f"auto-apply threshold must be in (0, 1], got {threshold}")
        warnings = check_examples(examples)
        prepared, labels = self._prepare(examples)
        embeddings = self.tagger.embed(tenant, prepared)
        head = fit_linear_head(embeddings, labels, kind=kind)
        counts = {t: labels.count(t) for t in head.tags}
        stored_taxonomy = taxonomy or self.models.taxonomy(tenant, model_id) or Taxonomy(())
        if taxonomy is not None:
            self.models.save_taxonomy(tenant, model_id, taxonomy)
        model = TagModel(
            tenant=tenant,
            model_id=model_id,
            version=new_version(),
            kind=kind,
            encoder_id=self.tagger.encoder.encoder_id,
            tags=head.tags,
            coef=head.coef,
            intercept=head.intercept,
            thresholds=np.full(len(head.tags), threshold, dtype=np.float32),
            review_floor=review_floor,
            taxonomy=stored_taxonomy.with_tags(head.tags),
            created_at=utc_now(),
            metrics={"cv_accuracy": head.cv_accuracy},
            examples_per_tag=counts,
        )
        self.models.save_version(model)
        if activate:
            self.models.activate(tenant, model_id, model.version)
            self.tagger.models.invalidate(tenant)
        report = TrainingReport(
            tenant=tenant, model_id=model_id, version=model.version, kind=kind.value, tags=list(head.tags),
            examples_per_tag=counts, cv_accuracy=head.cv_accuracy, warnings=warnings,
            embedded=len(prepared), seconds=round(time.perf_counter() - started, 3), activated=activate,
        )
        log.info("trained %s/%s version %s on %d examples", tenant, model_id, model.version, len(prepared))
        return report

    def _prepare(self, examples: Sequence[Example]) -> tuple[list[PreparedImage], list[str]]:
        prepared, labels, unreadable = [], [], []
        by_hash: dict[str, list[Example]] = defaultdict(list)
        for ex in examples:
            try:
                p = self.tagger.prepare(ex.load())
            except (InvalidInputError, OSError) as e:
                unreadable.append(f"{ex.source}: {e}")
                continue
            by_hash[p.sha256].append(ex)
            prepared.append(p)
            labels.append(ex.tag)
        if unreadable:
            shown = "\n  ".join(unreadable[:10])
            more = f"\n  ... and {len(unreadable) - 10} more" if len(unreadable) > 10 else ""
            raise TrainingInputError(f"{len(unreadable)} example(s) cannot be read; fix or remove them:\n  {shown}{more}")
        clashes = [exs for exs in by_hash.values() if len({e.tag for e in exs}) > 1]
        if clashes:
            lines = "\n  ".join(" == ".join(f"{e.source} ({e.tag})" for e in exs) for exs in clashes[:10])
            raise TrainingInputError(f"the same image is an example of different tags; keep it under one:\n  {lines}")
        return prepared, labels


def check_examples(examples: Sequence[Example]) -> list[str]:
    """Checks that need no decoding. Raises for what blocks training; returns warnings."""
    counts: dict[str, int] = defaultdict(int)
    bad_ids = []
    for ex in examples:
        counts[ex.tag] += 1
    for tag in counts:
        try:
            validate_tag_id(tag)
        except InvalidKeyError as e:
            bad_ids.append(str(e))
    if bad_ids:
        raise TrainingInputError("; ".join(bad_ids))
    if len(counts) < 2:
        found = ", ".join(sorted(counts)) or "none"
        raise TrainingInputError(f"need examples of at least 2 tags (one sub-folder per tag); found: {found}")
    too_few = {t: n for t, n in counts.items() if n < MIN_EXAMPLES}
    if too_few:
        listed = ", ".join(f"{t} ({n})" for t, n in sorted(too_few.items()))
        raise TrainingInputError(f"each tag needs at least {MIN_EXAMPLES} examples; add more to: {listed}")
    warnings = [
        f"tag {t!r} has {n} examples; {RECOMMENDED_EXAMPLES} or more give better results"
        for t, n in sorted(counts.items())
        if n < RECOMMENDED_EXAMPLES
    ]
    lo, hi = min(counts.values()), max(counts.values())
    if hi >= 10 * lo:
        warnings.append(f"examples are imbalanced: {hi} for the largest tag vs {lo} for the smallest")
    return warnings
