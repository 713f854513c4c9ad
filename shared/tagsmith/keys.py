"""Object key layout: which tenant owns an object, and where its records, models and reviews live.

Assets bucket: ``<tenant>/<any path>`` (the first path segment is the tenant id).
Data bucket (records, models, review items, caches), always under ``tenants/<tenant>/``::

    tenants/<t>/tenant.json                                  tenant settings (languages)
    tenants/<t>/records/<asset path>.json                    asset record (source of truth)
    tenants/<t>/models/<m>/active.json                       pointer to the active version
    tenants/<t>/models/<m>/versions/<v>/model.json|weights.npz
    tenants/<t>/reviews/<item id>.json                       durable review items
    tenants/<t>/embeddings/<encoder id>/<sha256>.npy         embedding cache
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tagsmith.errors import InvalidKeyError

TENANT_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
MODEL_ID = TENANT_ID
TAG_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
ITEM_ID = re.compile(r"^[0-9a-f]{1,64}$")
RESERVED_TENANTS = frozenset({"tenants", "system", "_tagsmith"})


def validate_tenant(tenant: str) -> str:
    """Return ``tenant`` if it is a valid tenant id, else raise :class:`InvalidKeyError`.

    >>> validate_tenant("acme-shoes")
    'acme-shoes'
    """
    if not TENANT_ID.match(tenant) or tenant in RESERVED_TENANTS:
        raise InvalidKeyError(
            f"invalid tenant id {tenant!r}: use 1-63 lower-case letters, digits and inner hyphens"
        )
    return tenant


def validate_model_id(model: str) -> str:
    if not MODEL_ID.match(model):
        raise InvalidKeyError(
            f"invalid model id {model!r}: use 1-63 lower-case letters, digits and inner hyphens"
        )
    return model


def validate_tag_id(tag: str) -> str:
    if not TAG_ID.match(tag):
        raise InvalidKeyError(
            f"invalid tag id {tag!r}: start with a letter or digit, then letters, digits, '_', '.', '-'"
        )
    return tag


@dataclass(frozen=True, slots=True)
class AssetKey:
    """An object in the assets bucket, split into its tenant and its path inside the tenant."""

    tenant: str
    path: str

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.path}"


def has_plain_segments(key: str) -> bool:
    """Whether every ``/``-separated segment of ``key`` is a name: not empty, ``.`` or ``..``.

    S3 keeps such segments literally, but a folder, a URL or a later ``startswith`` check may not:
    every entry point refuses them, so no check holds only because S3 happens not to resolve them.

    >>> has_plain_segments("acme/shoot/a.jpg"), has_plain_segments("acme/../beta/a.jpg")
    (True, False)
    """
    return all(part not in ("", ".", "..") for part in key.split("/"))


def is_under(key: str, prefix: str) -> bool:
    """Whether ``key`` lies under ``prefix`` (which ends with ``/``) with only plain segments.

    >>> is_under("tenants/acme/x.jpg", "tenants/acme/"), is_under("tenants/acme/../beta/x.jpg", "tenants/acme/")
    (True, False)
    """
    return key.startswith(prefix) and len(key) > len(prefix) and has_plain_segments(key)


def validate_item_id(item_id: str) -> str:
    """A review item id: hex digits (see :func:`tagsmith.review.review_item_id`)."""
    if not ITEM_ID.match(item_id):
        raise InvalidKeyError(f"invalid review item id {item_id!r}: expected 1-64 hex digits")
    return item_id


def parse_asset_key(key: str) -> AssetKey:
    """Split an assets-bucket key into tenant and path, validating both.

    >>> parse_asset_key("acme/2026/shoot-1/IMG_001.jpg")
    AssetKey(tenant='acme', path='2026/shoot-1/IMG_001.jpg')
    """
    tenant, sep, path = key.partition("/")
    if not sep or not path or path.endswith("/"):
        raise InvalidKeyError(f"key {key!r} is outside any tenant prefix: expected '<tenant>/<path>'")
    validate_tenant(tenant)
    if not has_plain_segments(path):
        raise InvalidKeyError(f"key {key!r} has an empty, '.' or '..' path segment")
    return AssetKey(tenant, path)


def asset_named(tenant: str, name: str, *, assets_bucket: str) -> AssetKey:
    """The asset of ``tenant`` that ``name`` names, in any of its three spellings:

    * ``s3://<assets bucket>/<tenant>/<path>`` (what a bucket listing or the AWS console shows),
    * ``<tenant>/<path>``, the asset key (what search, the console and the API print: the one
      canonical form, :attr:`AssetKey.key`),
    * ``<path>``, the path inside the tenant.

    A name that starts with ``<tenant>/`` is taken for a full key; spell a path that itself starts
    with the tenant id as ``<tenant>/<tenant>/...`` (or with ``s3://``). Another tenant's key or
    another bucket is refused, never looked up.

    >>> asset_named("shop", "s3://assets/shop/uploads/hat.jpg", assets_bucket="assets").key
    'shop/uploads/hat.jpg'
    >>> asset_named("shop", "shop/uploads/hat.jpg", assets_bucket="assets").path
    'uploads/hat.jpg'
    >>> asset_named("shop", "uploads/hat.jpg", assets_bucket="assets").key
    'shop/uploads/hat.jpg'
    """
    validate_tenant(tenant)
    given = name.strip()
    if given.startswith("s3://"):
        bucket, _, key = given.removeprefix("s3://").partition("/")
        if bucket != assets_bucket:
            raise InvalidKeyError(
                f"{given} is in bucket {bucket!r}, not in the assets bucket {assets_bucket!r}: "
                f"name the asset as {tenant}/<path>"
            )
        owner = key.partition("/")[0]
        if owner != tenant:
            raise InvalidKeyError(f"{given} belongs to tenant {owner!r}, not to {tenant!r}")
        return parse_asset_key(key)
    path = given.removeprefix(f"{tenant}/").lstrip("/")
    if not path:
        raise InvalidKeyError(
            f"{name!r} names no asset: give {tenant}/<path>, e.g. {tenant}/uploads/photo.jpg"
        )
    return parse_asset_key(f"{tenant}/{path}")


def tenant_prefix(tenant: str) -> str:
    return f"tenants/{validate_tenant(tenant)}/"


def tenant_settings_key(tenant: str) -> str:
    return tenant_prefix(tenant) + "tenant.json"


def record_key(asset: AssetKey) -> str:
    return f"{tenant_prefix(asset.tenant)}records/{asset.path}.json"


def records_prefix(tenant: str) -> str:
    return tenant_prefix(tenant) + "records/"


def asset_from_record_key(key: str) -> AssetKey:
    """Invert :func:`record_key`."""
    head, _, rest = key.partition("/")
    tenant, _, rest = rest.partition("/")
    kind, _, path = rest.partition("/")
    if head != "tenants" or kind != "records" or not path.endswith(".json"):
        raise InvalidKeyError(f"{key!r} is not a record key")
    return AssetKey(validate_tenant(tenant), path[: -len(".json")])


def model_prefix(tenant: str, model: str) -> str:
    return f"{tenant_prefix(tenant)}models/{validate_model_id(model)}/"


def models_prefix(tenant: str) -> str:
    return tenant_prefix(tenant) + "models/"


def thumbnails_prefix(tenant: str, path: str) -> str:
    """Where every version's thumbnails and preview of one asset live
    (:func:`tagsmith.video.analysis.thumbnail_key`, :func:`tagsmith.previews.preview_key`)."""
    return f"tenants/{tenant}/thumbnails/{path}/"


def review_item_key(tenant: str, item_id: str) -> str:
    return f"{tenant_prefix(tenant)}reviews/{validate_item_id(item_id)}.json"


def reviews_prefix(tenant: str) -> str:
    return tenant_prefix(tenant) + "reviews/"


def embedding_key(tenant: str, encoder_id: str, sha256: str) -> str:
    return f"{tenant_prefix(tenant)}embeddings/{encoder_id}/{sha256}.npy"
