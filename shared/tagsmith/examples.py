"""Training examples: where they come from and what is checked before a fit.

An :class:`Example` is one photo and its tag(s), read lazily (so a cached embedding means the photo
is never read). They come from a folder of folders (folder name = tag id; an optional
``taxonomy.json`` beside them), the same layout under an S3 prefix, a manifest
(:mod:`tagsmith.manifests`), a reviewer's corrections (:func:`examples_from_corrections`) or the
examples an earlier version was trained on (:func:`examples_from_version`). :func:`check_examples`
and :func:`near_duplicate_pairs` say what is wrong with a set before the trainer
(:mod:`tagsmith.trainer`) spends a fit on it.
"""

from __future__ import annotations

import stat
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tagsmith.errors import (
    InvalidKeyError,
    NotFoundError,
    TrainingInputError,
)
from tagsmith.keys import validate_tag_id
from tagsmith.records import NONE_TAG, AssetRecord, AssetStatus, TagState
from tagsmith.storage import ObjectStore
from tagsmith.tagmodels import (
    ModelKind,
    ModelStore,
    l2_normalise,
)
from tagsmith.tagmodels.training import one_blas_thread
from tagsmith.taxonomy import Taxonomy

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic"})
MIN_EXAMPLES = 3
RECOMMENDED_EXAMPLES = 5
IMBALANCE_RATIO = 10
# Cosine similarity at or above which two examples count as the same photo. Measured with
# EfficientNet-Lite0 on the grocery photos: a JPEG re-save at quality 60 scores 0.97-0.99, a 15%
# brightness change 0.98-1.0, while different photos never passed 0.90 and the closest packshots of
# two different SKUs (lactose-free vs medium-fat milk) reached 0.951. With an EfficientNet-Lite2
# recipe (40 photos; all 2,909 for the pairs): re-save at quality 60 0.975-0.99, brightness
# 0.986-1.0, halving the size 0.947-0.97 (not caught), photos of two different SKUs at most 0.952.
NEAR_DUPLICATE_SIMILARITY = 0.97


@dataclass(frozen=True)
class Example:
    """One training example: its tag(s), where it comes from (for messages) and how to read it.

    ``tag`` is the example's tag; a multi-label example lists its other tags in ``more_tags``
    (a multi-label example with no tag at all is a negative: ``tag=""``). ``sha256``, when known
    (e.g. from an asset record), lets a cached embedding skip reading the image. ``version`` is a
    cheap identity of the bytes at ``source`` (an S3 ETag from the listing, a file's size and
    modification time): a retraining that finds the same source and version in the active
    version's ``examples.json`` takes the content hash from there instead of reading the image.
    ``negative``: a photo a reviewer said shows none of the model's tags ("none of these"); it has
    no tag and teaches an exclusive model what is not any of its tags.
    """

    tag: str
    source: str
    load: Callable[[], bytes]
    more_tags: tuple[str, ...] = ()
    sha256: str | None = None
    version: str | None = None
    negative: bool = False

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(t for t in (self.tag, *self.more_tags) if t)

    @classmethod
    def of(
        cls, tags: Iterable[str], source: str, load: Callable[[], bytes], *, sha256: str | None = None
    ) -> Example:
        ordered = tuple(dict.fromkeys(tags))
        return cls(ordered[0] if ordered else "", source, load, ordered[1:], sha256)


# --- example sources --------------------------------------------------------------------------------
def object_loader(store: ObjectStore, bucket: str, key: str) -> Callable[[], bytes]:
    """Reads one object when called: examples are read lazily, in the trainer's thread pool."""

    def load() -> bytes:
        return store.get(bucket, key).body

    return load


def examples_from_folder(root: Path) -> tuple[list[Example], Taxonomy | None]:
    root = Path(root)
    if not root.is_dir():
        raise TrainingInputError(f"{root} is not a folder: expected one sub-folder per tag")
    examples = []
    for tag_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(tag_dir.rglob("*")):
            if f.suffix.lower() in IMAGE_SUFFIXES and stat.S_ISREG((st := f.stat()).st_mode):
                version = f"{st.st_size}-{st.st_mtime_ns}"  # changes whenever the file is rewritten
                examples.append(Example(tag_dir.name, str(f), f.read_bytes, version=version))
    tax_file = root / "taxonomy.json"
    taxonomy = Taxonomy.from_json(tax_file.read_bytes()) if tax_file.is_file() else None
    return examples, taxonomy


def examples_from_prefix(
    store: ObjectStore, bucket: str, prefix: str
) -> tuple[list[Example], Taxonomy | None]:
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
            examples.append(
                Example(tag, f"s3://{bucket}/{key}", object_loader(store, bucket, key), version=info.etag)
            )
    return examples, taxonomy


def examples_from_corrections(
    records: Iterable[AssetRecord], model_id: str, assets_store: ObjectStore, assets_bucket: str
) -> list[Example]:
    """Examples from what reviewers confirmed for ``model_id``: every human-confirmed tag of that
    model becomes a tag of the asset's example. An exclusive model's "none of these" (a confirmed
    :data:`NONE_TAG`) becomes a *negative* example (no tag, ``negative=True``); rejected tags are
    not examples of anything; assets without a confirmed tag of the model are skipped.

    The record's content hash travels with the example, so an asset embedded at ingest is not read
    again when its embedding is cached.

    >>> examples_from_corrections([], "product", None, "assets")
    []
    """
    out = []
    for record in records:
        if record.status is AssetStatus.DELETED:
            continue  # the object was deleted: its decisions are kept on the record, not trained on
        confirmed = {t.tag for t in record.tags if t.model == model_id and t.state is TagState.CONFIRMED}
        key = record.key
        source, load = f"s3://{assets_bucket}/{key}", object_loader(assets_store, assets_bucket, key)
        if confirmed - {NONE_TAG}:
            out.append(Example.of(sorted(confirmed - {NONE_TAG}), source, load, sha256=record.content_sha256))
        elif confirmed:  # "none of these": the model's tags all fit this photo badly
            out.append(Example("", source, load, sha256=record.content_sha256, negative=True))
    return out


def examples_from_version(
    models: ModelStore,
    tenant: str,
    model_id: str,
    version: str,
    *,
    source_loader: Callable[[str], Callable[[], bytes] | None] | None = None,
) -> list[Example]:
    """The examples ``version`` was trained on (its ``examples.json``), read from the copies the
    trainer keeps (:meth:`ModelStore.save_example_copy`), else from where they came from when
    ``source_loader`` can read that source. Their content hashes come along, so an example whose
    embeddings are cached is never read.

    >>> from tagsmith.storage import MemoryObjectStore
    >>> examples_from_version(ModelStore(store=MemoryObjectStore(), bucket="data"), "acme", "product", "v1")
    []
    """
    out = []
    for row in models.example_rows(tenant, model_id, version):
        sha, tags = str(row["sha256"]), [str(t) for t in row.get("tags", [])]
        source = str(row.get("source") or f"examples/{sha}")
        fallback = source_loader(source) if source_loader is not None else None

        def load(
            sha: str = sha, source: str = source, fallback: Callable[[], bytes] | None = fallback
        ) -> bytes:
            try:
                return models.load_example_copy(tenant, sha)
            except NotFoundError:
                if fallback is None:
                    raise NotFoundError(
                        f"{source}: no copy of this example is kept and its source cannot be read here"
                    ) from None
                return fallback()

        if tags:
            out.append(Example.of(tags, source, load, sha256=sha))
    return out


# --- checks that need no image --------------------------------------------------------------------
def bullet_list(items: Sequence[str], limit: int = 10) -> str:
    shown = "\n  ".join(items[:limit])
    more = f"\n  ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"\n  {shown}{more}"


def check_examples(examples: Sequence[Example], kind: ModelKind = ModelKind.EXCLUSIVE) -> list[str]:
    """Checks that need no decoding. Raises for what blocks training; returns warnings."""
    counts: Counter[str] = Counter()
    for ex in examples:
        counts.update(ex.tags)
    bad_ids = []
    for tag in sorted(counts):
        try:
            validate_tag_id(tag)
        except InvalidKeyError as e:
            bad_ids.append(str(e))
    if bad_ids:
        raise TrainingInputError(
            "some tag ids cannot be used; rename these folders or manifest tags:" + bullet_list(bad_ids)
        )
    if kind is ModelKind.EXCLUSIVE:
        several = [f"{ex.source}: {', '.join(ex.tags)}" for ex in examples if len(ex.tags) > 1]
        if several:
            raise TrainingInputError(
                f"{len(several)} example(s) have more than one tag, but an exclusive model gives each asset "
                "exactly one; keep one tag per example or train a multi-label model (--kind multilabel):"
                + bullet_list(several)
            )
        untagged = [ex.source for ex in examples if not ex.tags and not ex.negative]
        if untagged:
            raise TrainingInputError(
                f"{len(untagged)} example(s) have no tag; give each one a tag or remove it:"
                + bullet_list(untagged)
            )
    if len(counts) < 2:
        found = ", ".join(sorted(counts)) or "none"
        raise TrainingInputError(
            f"need examples of at least 2 tags (one sub-folder or manifest tag per tag); found: {found}. "
            "Add a second tag with its examples."
        )
    too_few = {t: n for t, n in counts.items() if n < MIN_EXAMPLES}
    if too_few:
        listed = ", ".join(f"{t} ({n})" for t, n in sorted(too_few.items()))
        raise TrainingInputError(f"each tag needs at least {MIN_EXAMPLES} examples; add more to: {listed}")
    warnings = [
        f"tag {t!r} has {n} examples; {RECOMMENDED_EXAMPLES} or more give better results"
        for t, n in sorted(counts.items())
        if n < RECOMMENDED_EXAMPLES
    ]
    (big, hi), (small, lo) = (
        max(counts.items(), key=lambda kv: kv[1]),
        min(counts.items(), key=lambda kv: kv[1]),
    )
    if hi >= IMBALANCE_RATIO * lo:
        warnings.append(
            f"examples are imbalanced: {hi} for {big!r} vs {lo} for {small!r}; the model will favour the larger "
            "tags: add examples to the small ones or remove some from the large ones"
        )
    return warnings


def near_duplicate_pairs(
    embeddings: np.ndarray,
    groups: Sequence[int],
    *,
    similarity: float = NEAR_DUPLICATE_SIMILARITY,
    rows: Sequence[int] | None = None,
) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, cosine)``, ``i < j``, of near-identical rows whose ``groups`` differ, most
    similar first. ``rows``: only pairs involving one of these (e.g. the examples that are new since
    the last check); all pairs by default.

    >>> x = np.array([[1, 0], [0.999, 0.04], [0, 1]], dtype=np.float32)
    >>> [(i, j) for i, j, _ in near_duplicate_pairs(x, [0, 1, 1])]
    [(0, 1)]
    >>> near_duplicate_pairs(x, [0, 1, 1], rows=[2])
    []
    """
    x = l2_normalise(embeddings)
    g = np.asarray(groups)
    if len(x) < 2 or len(np.unique(g)) < 2:
        return []
    with one_blas_thread():  # spinning OpenBLAS threads made this 2-20x slower on a busy machine
        found = _near_duplicates(x, g, similarity, rows)
    pairs = [(i, j, s) for (i, j), s in found.items()]
    return sorted(pairs, key=lambda p: (-p[2], p[0], p[1]))


def _near_duplicates(
    x: np.ndarray, g: np.ndarray, similarity: float, rows: Sequence[int] | None
) -> dict[tuple[int, int], float]:
    found: dict[tuple[int, int], float] = {}
    n, block_rows = len(x), 512  # blocks bound memory at 512 x N
    # An exact pre-filter: for unit rows |a - b|^2 = 2 - 2 cos(a, b), and projecting onto
    # orthonormal directions never lengthens a vector, so a pair whose projections are already
    # farther apart than 2 - 2 * similarity cannot be a near-duplicate. The directions span the
    # groups' centres (what tells different tags apart): few pairs of different tags survive, and
    # only those are compared in full (~k / dim of the products of comparing all pairs).
    basis = _group_directions(x, g)
    p = x @ basis
    p_sq = np.einsum("ij,ij->i", p, p)
    limit = 2.0 - 2.0 * similarity + 1e-4  # slack for float32 rounding
    if rows is None:
        # Every pair once: each block of rows against itself and the rows after it.
        blocks = [(np.arange(start, min(start + block_rows, n)), start) for start in range(0, n, block_rows)]
    else:
        todo = np.asarray(sorted(set(rows)), dtype=int)
        blocks = [(todo[start : start + block_rows], 0) for start in range(0, len(todo), block_rows)]
    for idx, first_col in blocks:
        dist = p_sq[idx, None] + p_sq[None, first_col:] - 2.0 * (p[idx] @ p[first_col:].T)
        hit_rows, hit_cols = np.nonzero(dist <= limit)
        i, j = idx[hit_rows], hit_cols + first_col
        keep = (i != j) & (g[i] != g[j])
        i, j = i[keep], j[keep]
        if len(i) > 32 * len(idx):  # the filter let many through (a low threshold): one product
            sims = (x[idx] @ x[first_col:].T)[hit_rows[keep], hit_cols[keep]]
        else:
            sims = np.einsum("ij,ij->i", x[i], x[j])
        close = sims >= similarity
        for a, b, sim in zip(i[close].tolist(), j[close].tolist(), sims[close].tolist(), strict=True):
            found[(min(a, b), max(a, b))] = float(sim)
    return found


def _group_directions(x: np.ndarray, groups: np.ndarray, most: int = 256) -> np.ndarray:
    """Orthonormal columns (dim, k) spanning the mean rows of each group (a random mix of them when
    there are more than ``most`` groups)."""
    order = np.argsort(groups, kind="stable")
    ordered = groups[order]
    starts = np.nonzero(np.r_[True, ordered[1:] != ordered[:-1]])[0]
    centres = np.add.reduceat(x[order], starts, axis=0).astype(np.float64)  # sums: same span as means
    if len(centres) > most:
        centres = np.random.default_rng(0).standard_normal((most, len(centres))) @ centres
    q, _ = np.linalg.qr(centres.T)
    return q.astype(np.float32)
