"""Training examples from manifests, and one entry point for every kind of example source.

Formats (chosen by the file's suffix, and for JSON lines by what the first line holds):

* CSV (``.csv``) with a header naming a path column (``path``, ``image``, ``file``, ``uri`` or
  ``source-ref``) and a tag column (``tag`` or ``tags``; several tags separated by ``;`` or ``|``)::

      path,tags
      oat-milk/IMG_0001.jpg,oat-milk
      s3://acme-photos/shoot/IMG_0002.jpg,outdoor;people

* JSON lines (``.jsonl``, ``.json``, ``.manifest``): ``{"path": "...", "tag": "..."}`` or
  ``{"path": "...", "tags": ["...", "..."]}``.
* SageMaker Ground Truth output manifests (JSON lines with ``source-ref``): image classification
  (``"<attribute>": 3, "<attribute>-metadata": {"class-name": "oat milk", ...}``) and its
  multi-label variant (``"<attribute>": [0, 2]`` with ``"class-map"``). Amazon Rekognition Custom
  Labels datasets use the same format, often with several classification attributes per line: each
  one adds a tag. Lines whose labelling failed (``failure-reason``) are skipped with a warning;
  object-detection attributes (bounding boxes) are not image tags and are ignored.

Class names that are not valid tag ids ("Golden Retriever") become ids ("golden-retriever") and the
original name becomes the tag's label in the taxonomy the manifest yields.

Paths are local paths or ``s3://`` URIs; relative paths resolve against the manifest's folder (or
its S3 "folder"). :func:`load_examples` accepts a folder, an ``s3://`` prefix or a manifest.

>>> rows = parse_manifest(b'path,tag\\na.jpg,red\\nb.jpg,blue\\n', name="x.csv")
>>> [(r.ref, r.tags) for r in rows.rows]
[('a.jpg', ('red',)), ('b.jpg', ('blue',))]
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagsmith.errors import NotFoundError, TrainingInputError
from tagsmith.examples import (
    IMAGE_SUFFIXES,
    Example,
    examples_from_folder,
    examples_from_prefix,
    object_loader,
)
from tagsmith.keys import TAG_ID
from tagsmith.storage import ObjectStore
from tagsmith.taxonomy import TagDefinition, Taxonomy

MANIFEST_SUFFIXES = (".csv", ".jsonl", ".json", ".manifest")
PATH_COLUMNS = ("path", "image", "file", "uri", "source-ref", "s3_uri")
TAG_COLUMNS = ("tags", "tag", "labels", "label")
_SPLIT = re.compile(r"[;|]")
GT_CLASSIFICATION = "groundtruth/image-classification"
GT_MULTILABEL = "groundtruth/image-classification-multilabel"


@dataclass(frozen=True)
class ManifestRow:
    line: int  # 1-based line of the manifest, for messages
    ref: str  # as written: relative path, absolute path or s3:// URI
    tags: tuple[str, ...]


@dataclass
class ParsedManifest:
    rows: list[ManifestRow]
    labels: dict[str, str] = field(default_factory=dict)  # tag id -> class name it came from
    warnings: list[str] = field(default_factory=list)


@dataclass
class ExampleSet:
    """Examples from one source, with the taxonomy and warnings the source yielded."""

    examples: list[Example]
    taxonomy: Taxonomy | None = None
    warnings: list[str] = field(default_factory=list)
    source: str = ""


def tag_id_for(name: str) -> str:
    """A valid tag id for a class name: kept as is when valid, otherwise slugged.

    >>> tag_id_for("Golden Retriever"), tag_id_for("oat-milk"), tag_id_for("Crème brûlée")
    ('golden-retriever', 'oat-milk', 'creme-brulee')
    """
    name = name.strip()
    if TAG_ID.match(name):
        return name
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9_.]+", "-", ascii_name.lower()).strip("-._")
    return slug[:128]


# --- parsing ----------------------------------------------------------------------------------------
def parse_manifest(data: bytes, *, name: str, label_attribute: str | None = None) -> ParsedManifest:
    """Rows of a manifest (CSV, JSON lines or Ground Truth); raises naming the line that is wrong."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise TrainingInputError(f"manifest {name} is not UTF-8 text: {e}") from e
    if name.lower().endswith(".csv"):
        return _parse_csv(text, name)
    stripped = text.lstrip()
    if stripped.startswith("["):  # a JSON array of rows
        try:
            items = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise TrainingInputError(f"manifest {name} is not valid JSON: {e}") from e
        lines = [(i + 1, item) for i, item in enumerate(items)]
    else:
        lines = []
        for number, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                lines.append((number, json.loads(raw)))
            except (ValueError, RecursionError) as e:
                raise TrainingInputError(f"manifest {name} line {number} is not valid JSON: {e}") from e
    if not lines:
        raise TrainingInputError(f"manifest {name} lists no examples")
    if any(isinstance(obj, dict) and "source-ref" in obj for _, obj in lines):
        return _parse_ground_truth(lines, name, label_attribute)
    return _parse_json_rows(lines, name)


def _tags_from(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(t.strip() for t in _SPLIT.split(value) if t.strip())
    if isinstance(value, list) and all(isinstance(t, str) for t in value):
        return tuple(t.strip() for t in value if t.strip())
    raise ValueError(f"tags must be a string or a list of strings, got {value!r}")


def _parse_csv(text: str, name: str) -> ParsedManifest:
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    path_col = next((header.index(c) for c in PATH_COLUMNS if c in header), None)
    tag_col = next((header.index(c) for c in TAG_COLUMNS if c in header), None)
    if path_col is None or tag_col is None:
        raise TrainingInputError(
            f"manifest {name}: the first line must be a header naming a path column ({', '.join(PATH_COLUMNS)}) "
            f"and a tag column ({', '.join(TAG_COLUMNS)}); found: {', '.join(header) or 'nothing'}"
        )
    rows = []
    for number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) <= max(path_col, tag_col) or not cells[path_col].strip():
            raise TrainingInputError(
                f"manifest {name} line {number}: expected a path and tags, got {cells!r}"
            )
        rows.append(ManifestRow(number, cells[path_col].strip(), _tags_from(cells[tag_col])))
    if not rows:
        raise TrainingInputError(f"manifest {name} lists no examples")
    return ParsedManifest(rows)


def _parse_json_rows(lines: list[tuple[int, Any]], name: str) -> ParsedManifest:
    rows = []
    for number, obj in lines:
        ref = next((obj.get(c) for c in PATH_COLUMNS if isinstance(obj, dict) and obj.get(c)), None)
        if not isinstance(obj, dict) or not isinstance(ref, str):
            raise TrainingInputError(
                f'manifest {name} line {number}: expected {{"path": "...", "tags": [...]}}, got {str(obj)[:120]}'
            )
        try:
            tags = _tags_from(obj.get("tags", obj.get("tag", obj.get("labels", obj.get("label")))))
        except ValueError as e:
            raise TrainingInputError(f"manifest {name} line {number}: {e}") from e
        rows.append(ManifestRow(number, ref, tags))
    return ParsedManifest(rows)


def _classification_attributes(obj: dict[str, Any]) -> list[str]:
    """Label attributes of a Ground Truth line that are image classifications."""
    out = []
    for key, meta in obj.items():
        if not key.endswith("-metadata") or not isinstance(meta, dict):
            continue
        attr = key[: -len("-metadata")]
        kind = str(meta.get("type", ""))
        if kind in (GT_CLASSIFICATION, GT_MULTILABEL) or (
            not kind and ("class-name" in meta or "class-map" in meta)
        ):
            out.append(attr)
        elif "failure-reason" in meta and not kind:
            out.append(attr)  # a failed labelling of an unknown type: reported as failed
    return out


def _parse_ground_truth(
    lines: list[tuple[int, Any]], name: str, label_attribute: str | None
) -> ParsedManifest:
    parsed = ParsedManifest([])
    failed, unlabelled = [], []
    for number, obj in lines:
        if not isinstance(obj, dict) or not isinstance(obj.get("source-ref"), str):
            raise TrainingInputError(
                f"manifest {name} line {number}: a Ground Truth line needs a 'source-ref' string"
            )
        attrs = [label_attribute] if label_attribute else _classification_attributes(obj)
        names: list[str] = []
        labelled = line_failed = False
        for attr in attrs:
            meta = obj.get(f"{attr}-metadata")
            if not isinstance(meta, dict):
                found = ", ".join(_classification_attributes(obj)) or "none"
                raise TrainingInputError(
                    f"manifest {name} line {number} has no label attribute {attr!r} "
                    f"(classification attributes on that line: {found}); pick one with --label-attribute"
                )
            if "failure-reason" in meta:
                failed.append(f"line {number} ({obj['source-ref']}): {meta['failure-reason']}")
                line_failed = True
                continue
            labelled = True  # a multi-label answer may be an empty list: a negative example
            names += _class_names(obj.get(attr), meta, f"manifest {name} line {number}")
        if not labelled:
            if not line_failed:
                unlabelled.append(f"line {number} ({obj['source-ref']})")
            continue
        tags = []
        for class_name in names:
            tag = tag_id_for(class_name)
            if not tag:
                raise TrainingInputError(
                    f"manifest {name} line {number}: class name {class_name!r} gives no usable tag id"
                )
            if tag != class_name:
                parsed.labels.setdefault(tag, class_name)
            tags.append(tag)
        parsed.rows.append(ManifestRow(number, obj["source-ref"], tuple(dict.fromkeys(tags))))
    if failed:
        parsed.warnings.append(
            f"{len(failed)} manifest line(s) were skipped because labelling failed:" + _short(failed)
        )
    if unlabelled:
        parsed.warnings.append(
            f"{len(unlabelled)} manifest line(s) have no image-classification label (object-detection boxes are "
            "not image tags) and were skipped:" + _short(unlabelled)
        )
    if not parsed.rows:
        raise TrainingInputError(f"manifest {name} has no line with an image-classification label")
    return parsed


def _class_names(value: Any, meta: dict[str, Any], where: str) -> list[str]:
    if "class-name" in meta:
        return [str(meta["class-name"])]
    class_map = meta.get("class-map")
    if isinstance(class_map, dict):
        ids = value if isinstance(value, list) else [value]
        try:
            return [str(class_map[str(i)]) for i in ids]
        except KeyError as e:
            raise TrainingInputError(f"{where}: label {e} is not in its class-map {class_map}") from e
    raise TrainingInputError(f"{where}: the label metadata has neither 'class-name' nor 'class-map'")


def _short(items: list[str], limit: int = 5) -> str:
    more = f"\n  ... and {len(items) - limit} more" if len(items) > limit else ""
    return "\n  " + "\n  ".join(items[:limit]) + more


# --- resolving and loading ---------------------------------------------------------------------------
S3Check = Callable[[str, str], bool]


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``("bucket", "key")``.

    >>> split_s3_uri("s3://acme-photos/shoot/a b.jpg")
    ('acme-photos', 'shoot/a b.jpg')
    """
    if not uri.startswith("s3://"):
        raise TrainingInputError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise TrainingInputError(f"{uri!r} names no bucket")
    return bucket, key


def examples_from_manifest(
    location: str,
    *,
    store: ObjectStore | None = None,
    label_attribute: str | None = None,
    label_language: str = "en",
    s3_allowed: S3Check | None = None,
    local_allowed: bool = True,
) -> ExampleSet:
    """Examples listed by the manifest at ``location`` (a local path or an ``s3://`` URI).

    ``s3_allowed(bucket, key)`` vets every S3 object the manifest names (a handler restricts a
    tenant to its own objects); ``local_allowed=False`` refuses local paths.
    """
    if location.startswith("s3://"):
        if store is None:
            raise TrainingInputError(f"cannot read {location}: no object store configured")
        bucket, key = split_s3_uri(location)
        if s3_allowed is not None and not s3_allowed(bucket, key):
            raise TrainingInputError(f"manifest {location} is outside this tenant's objects")
        try:
            data = store.get(bucket, key).body
        except NotFoundError as e:
            raise TrainingInputError(f"manifest {location} does not exist") from e
        base_uri = f"s3://{bucket}/{posixpath.dirname(key)}"
        base_dir = None
    else:
        if not local_allowed:
            raise TrainingInputError(f"manifest {location!r} must be an s3:// URI here")
        path = Path(location)
        if not path.is_file():
            raise TrainingInputError(f"manifest {location} does not exist")
        data = path.read_bytes()
        base_uri, base_dir = None, path.resolve().parent
    parsed = parse_manifest(data, name=location, label_attribute=label_attribute)
    examples, outside = [], []
    for row in parsed.rows:
        ref = row.ref
        if not ref.startswith("s3://") and base_uri is not None:
            if ref.startswith("/"):
                raise TrainingInputError(
                    f"manifest {location} line {row.line}: {ref!r} is a local path; use a path relative to the manifest or an s3:// URI"
                )
            bucket, key = split_s3_uri(base_uri)
            joined = posixpath.normpath(posixpath.join(key, ref))
            if joined.startswith("../") or joined == "..":
                raise TrainingInputError(f"manifest {location} line {row.line}: {ref!r} leaves the bucket")
            ref = f"s3://{bucket}/{joined}"
        if ref.startswith("s3://"):
            bucket, key = split_s3_uri(ref)
            if s3_allowed is not None and not s3_allowed(bucket, key):
                outside.append(f"line {row.line}: {ref}")
                continue
            if store is None:
                raise TrainingInputError(
                    f"manifest {location} line {row.line} names {ref}, but no object store is configured"
                )
            examples.append(Example.of(row.tags, ref, object_loader(store, bucket, key)))
        else:
            if not local_allowed:
                raise TrainingInputError(
                    f"manifest {location} line {row.line}: {ref!r} must be an s3:// URI here"
                )
            assert base_dir is not None
            file = (base_dir / ref) if not Path(ref).is_absolute() else Path(ref)
            examples.append(Example.of(row.tags, str(file), file.read_bytes))
    if outside:
        raise TrainingInputError(
            f"manifest {location} names {len(outside)} object(s) outside this tenant's objects; training may only "
            "read the tenant's own images:" + _short(outside)
        )
    taxonomy = None
    if parsed.labels:
        taxonomy = Taxonomy(
            tuple(
                TagDefinition(tag, labels={label_language: label})
                for tag, label in sorted(parsed.labels.items())
            )
        )
    return ExampleSet(examples, taxonomy, parsed.warnings, location)


def is_manifest(location: str) -> bool:
    return location.lower().endswith(MANIFEST_SUFFIXES)


def load_examples(
    location: str,
    *,
    store: ObjectStore | None = None,
    label_attribute: str | None = None,
    label_language: str = "en",
    s3_allowed: S3Check | None = None,
    local_allowed: bool = True,
) -> ExampleSet:
    """Examples from a folder of tag folders, an ``s3://`` prefix of tag folders, or a manifest.

    >>> load_examples("/no/such/folder")
    Traceback (most recent call last):
    ...
    tagsmith.errors.TrainingInputError: /no/such/folder does not exist: give a folder with one sub-folder of example photos per tag, or a manifest (.csv, .jsonl, .json, .manifest)
    """
    if is_manifest(location):
        return examples_from_manifest(
            location,
            store=store,
            label_attribute=label_attribute,
            label_language=label_language,
            s3_allowed=s3_allowed,
            local_allowed=local_allowed,
        )
    if location.startswith("s3://"):
        if store is None:
            raise TrainingInputError(f"cannot read {location}: no object store configured")
        bucket, prefix = split_s3_uri(location)
        if s3_allowed is not None and not s3_allowed(bucket, prefix.rstrip("/") + "/"):
            raise TrainingInputError(f"examples {location} are outside this tenant's objects")
        examples, taxonomy = examples_from_prefix(store, bucket, prefix)
        if not examples:
            raise TrainingInputError(
                f"no images under {location}: expected one sub-folder per tag, e.g. {location.rstrip('/')}/<tag>/photo.jpg"
            )
        return ExampleSet(examples, taxonomy, [], location)
    if not local_allowed:
        raise TrainingInputError(f"examples {location!r} must be an s3:// prefix or manifest here")
    folder = Path(location)
    if not folder.exists():
        raise TrainingInputError(
            f"{location} does not exist: give a folder with one sub-folder of example photos per tag, "
            f"or a manifest ({', '.join(MANIFEST_SUFFIXES)})"
        )
    if not folder.is_dir():
        raise TrainingInputError(
            f"{location} is a file, not a folder of tag folders nor a manifest "
            f"({', '.join(MANIFEST_SUFFIXES)})"
        )
    examples, taxonomy = examples_from_folder(folder)
    if not examples:
        raise TrainingInputError(_why_no_examples(folder))
    return ExampleSet(examples, taxonomy, [], location)


def _why_no_examples(folder: Path) -> str:
    """What is wrong with a local folder that yielded no example: empty, photos not in tag
    folders, or tag folders without photos."""
    layout = f"expected one sub-folder per tag, e.g. {folder / 'hat' / 'photo1.jpg'}"
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if not entries:
        return f"the folder {folder} is empty: {layout}"
    loose = [p.name for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if loose:
        return (
            f"the photos in {folder} ({len(loose)}) are not in tag folders: {layout} "
            "(the sub-folder's name is the tag)"
        )
    tags = sorted(p.name for p in entries if p.is_dir())
    if tags:
        return (
            f"the tag folders in {folder} ({', '.join(tags[:5])}{', ...' if len(tags) > 5 else ''}) hold no "
            f"photos ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return f"{folder} holds no photos and no tag folders: {layout}"


def combine(sets: Iterable[ExampleSet]) -> ExampleSet:
    """Several sources as one (e.g. a folder plus reviewers' corrections); later taxonomies add labels."""
    examples: list[Example] = []
    warnings: list[str] = []
    taxonomy: Taxonomy | None = None
    sources = []
    for s in sets:
        examples += s.examples
        warnings += s.warnings
        sources.append(s.source)
        if s.taxonomy is not None:
            merged = {t.id: t for t in (taxonomy.tags if taxonomy else ())}
            merged.update({t.id: t for t in s.taxonomy.tags})
            taxonomy = Taxonomy(tuple(merged.values()))
    return ExampleSet(examples, taxonomy, warnings, " + ".join(s for s in sources if s))
