"""XMP sidecars: ``<path>.xmp`` beside the tenant's exports, with the asset's visible tags.

Written with exiv2 (through ``pyexiv2``, whose wheels bundle it), never from a string template:

* ``dc:subject`` (a Bag): each visible tag's label in every tenant language, which is what
  Lightroom, Bridge, digiKam and exiftool show as keywords;
* ``lr:hierarchicalSubject`` (a Bag): ``model|tag`` per visible tag (ids: stable across renames);
* ``tagsmith:Tags`` (a Seq of structs, namespace :data:`NS`): model, tag, state, source, confidence
  and the labels as an ``rdf:Alt`` with one ``xml:lang`` entry per language;
* ``tagsmith:Revision``, and ``tagsmith:OwnSubjects`` / ``tagsmith:OwnHierarchy``: the exact keywords we
  wrote, so the next write replaces ours and keeps every keyword someone else added.

Everything else in an existing sidecar is left as it is.

Example::

    >>> from tagsmith.records import AssetRecord, AssetStatus, Source, SourceObject, TagAssignment, TagState
    >>> r = AssetRecord("acme", "a.jpg", SourceObject("assets", "acme/a.jpg", "e1", 3), AssetStatus.TAGGED,
    ...     tags=(TagAssignment("sku", "oat-milk", TagState.APPLIED, Source.AI, confidence=0.99),))
    >>> read_keywords(sidecar_xmp(None, r, languages=["en"]))
    (['oat milk'], ['sku|oat-milk'])
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from tagsmith.errors import InvalidInputError
from tagsmith.keys import tenant_prefix
from tagsmith.outbound.changes import labels_for
from tagsmith.records import AssetRecord, TagAssignment
from tagsmith.taxonomy import Taxonomy

NS = "https://tagsmith.dev/xmp/1.0/"
PREFIX = "tagsmith"
#: An empty XMP document for exiv2 to open when there is no sidecar yet (exiv2 recognises a
#: sidecar by its XML declaration; every property is then written through its API).
EMPTY = b'<?xml version="1.0" encoding="UTF-8"?><x:xmpmeta xmlns:x="adobe:ns:meta/"></x:xmpmeta>'
# exiv2's XMP parser is initialised process-wide and not thread-safe: one sidecar at a time
_LOCK = threading.Lock()
_registered = False


def sidecar_key(tenant: str, path: str) -> str:
    """Where an asset's sidecar lives in the data bucket: ``tenants/<t>/sidecars/<path>.xmp``."""
    return f"{tenant_prefix(tenant)}sidecars/{path}.xmp"


def sidecars_prefix(tenant: str) -> str:
    return f"{tenant_prefix(tenant)}sidecars/"


def _exiv2() -> Any:
    global _registered
    try:
        import pyexiv2
    except ImportError as e:  # an optional extra: `pip install tagsmith[xmp]`
        raise InvalidInputError(
            "XMP sidecars need pyexiv2: install tagsmith with the 'xmp' extra (pip install 'tagsmith[xmp]')"
        ) from e
    if not _registered:
        pyexiv2.set_log_level(4)  # its warnings go to stderr; failures raise
        pyexiv2.registerNs(NS, PREFIX)
        _registered = True
    return pyexiv2


def _ordered_tags(record: AssetRecord) -> list[TagAssignment]:
    """Visible tags, human-confirmed first, then by confidence (the order keywords are listed in)."""
    visible = record.visible_tags()
    return sorted(visible, key=lambda t: (not t.is_human, -(t.confidence or 0.0), t.model, t.tag))


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


def _array(xmp: Mapping[str, Any], key: str) -> list[str]:
    value = xmp.get(key)
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str) and value and not value.startswith("type="):
        return [value]
    return []


def _bag(key: str, items: Sequence[str]) -> dict[str, Any]:
    """An rdf:Bag written item by item (pyexiv2 writes lists as rdf:Seq)."""
    if not items:
        return {}
    out: dict[str, Any] = {key: 'type="Bag"'}
    for i, item in enumerate(items, 1):
        out[f"{key}[{i}]"] = item
    return out


def sidecar_xmp(
    existing: bytes | None,
    record: AssetRecord,
    *,
    taxonomies: Mapping[str, Taxonomy] | None = None,
    languages: Sequence[str] = (),
) -> bytes:
    """The sidecar after writing ``record``'s visible tags into ``existing`` (None: a new one).
    Keywords we did not write, and every other property, are kept."""
    taxonomies = taxonomies or {}
    tags = _ordered_tags(record)
    labelled = [(t, labels_for(taxonomies.get(t.model), t.tag, languages)) for t in tags]
    keywords = _unique([label for _, labels in labelled for label in labels.values()])
    hierarchy = _unique([f"{t.model}|{t.tag}" for t in tags])
    with _LOCK:
        pyexiv2 = _exiv2()
        try:
            image = pyexiv2.ImageData(existing or EMPTY)
        except RuntimeError as e:
            raise InvalidInputError(f"the existing sidecar is not XMP exiv2 can read: {e}") from e
        try:
            # exiv2 mirrors a sidecar's XMP into IPTC/Exif when it reads one and copies those back
            # over the XMP when it writes: drop the mirror so that our writes are what is written
            image.clear_iptc()
            image.clear_exif()
            xmp = image.read_xmp()
            ours_before = set(_array(xmp, f"Xmp.{PREFIX}.OwnSubjects"))
            hierarchy_before = set(_array(xmp, f"Xmp.{PREFIX}.OwnHierarchy"))
            subjects = [k for k in _array(xmp, "Xmp.dc.subject") if k not in ours_before]
            paths = [k for k in _array(xmp, "Xmp.lr.hierarchicalSubject") if k not in hierarchy_before]
            changes: dict[str, Any] = {}
            changes.update(_bag("Xmp.dc.subject", _unique(subjects + keywords)))
            changes.update(_bag("Xmp.lr.hierarchicalSubject", _unique(paths + hierarchy)))
            changes.update(_bag(f"Xmp.{PREFIX}.OwnSubjects", keywords))
            changes.update(_bag(f"Xmp.{PREFIX}.OwnHierarchy", hierarchy))
            changes[f"Xmp.{PREFIX}.Revision"] = str(record.revision)
            if labelled:
                changes[f"Xmp.{PREFIX}.Tags"] = 'type="Seq"'
            for i, (t, labels) in enumerate(labelled, 1):
                item = f"Xmp.{PREFIX}.Tags[{i}]/{PREFIX}:"
                changes[item + "Model"] = t.model
                changes[item + "Tag"] = t.tag
                changes[item + "State"] = t.state.value
                changes[item + "Source"] = t.source.value
                if t.confidence is not None:
                    changes[item + "Confidence"] = f"{t.confidence:.4f}"
                first = next(iter(labels.values()))
                changes[item + "Label"] = {
                    'lang="x-default"': first,
                    **{f'lang="{lang}"': label for lang, label in labels.items()},
                }
            # what we wrote before and do not write again is deleted in the same call
            stale = [k for k in xmp if k.startswith(f"Xmp.{PREFIX}.") and k not in changes]
            stale += [k for k in ("Xmp.dc.subject", "Xmp.lr.hierarchicalSubject") if k not in changes]
            image.modify_xmp({**dict.fromkeys(stale), **changes})
            return bytes(image.get_bytes())
        finally:
            image.close()


def _read(xmp_bytes: bytes) -> dict[str, Any]:
    with _LOCK:
        image = _exiv2().ImageData(xmp_bytes)
        try:
            return dict(image.read_xmp())
        finally:
            image.close()


def read_keywords(xmp_bytes: bytes) -> tuple[list[str], list[str]]:
    """(dc:subject, lr:hierarchicalSubject) of a sidecar."""
    xmp = _read(xmp_bytes)
    return _array(xmp, "Xmp.dc.subject"), _array(xmp, "Xmp.lr.hierarchicalSubject")


def written_by_us_only(xmp_bytes: bytes) -> bool:
    """Whether a sidecar holds nothing but what Tagsmith wrote (it can then be deleted whole)."""
    xmp = _read(xmp_bytes)
    ours = set(_array(xmp, f"Xmp.{PREFIX}.OwnSubjects"))
    hierarchy = set(_array(xmp, f"Xmp.{PREFIX}.OwnHierarchy"))
    foreign = [
        k
        for k in xmp
        if not k.startswith(f"Xmp.{PREFIX}.") and k not in ("Xmp.dc.subject", "Xmp.lr.hierarchicalSubject")
    ]
    return (
        not foreign
        and set(_array(xmp, "Xmp.dc.subject")) <= ours
        and set(_array(xmp, "Xmp.lr.hierarchicalSubject")) <= hierarchy
    )
