"""Per-tenant media settings, from ``tenants/<t>/tenant.json`` in the data bucket::

    {"ocr": true,                              # or {"images": true, "video": false}
     "video": {"sample_every": 2.0, "keyframes": true}}

OCR is **off** unless a tenant turns it on: it costs about a second per image on 2 cores, some
fifty times the cost of tagging, and only libraries whose assets carry print (packaging, products,
signage) gain from it. Unknown keys are ignored (the file holds other settings too); a malformed
file falls back to the defaults with a warning rather than stopping ingestion.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tagsmith.errors import NotFoundError
from tagsmith.keys import tenant_settings_key
from tagsmith.storage.base import ObjectStore
from tagsmith.tenantcache import TenantCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MediaSettings:
    ocr_images: bool = False
    ocr_video: bool = False
    sample_every: float | None = 2.0  # seconds between regular video samples; None = keyframes only
    keyframes: bool = True

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MediaSettings:
        """
        >>> MediaSettings.from_dict({"ocr": True, "video": {"sample_every": 1}})
        MediaSettings(ocr_images=True, ocr_video=True, sample_every=1.0, keyframes=True)
        """
        ocr = d.get("ocr", False)
        if isinstance(ocr, Mapping):
            images, video = bool(ocr.get("images", False)), bool(ocr.get("video", False))
        else:
            images = video = bool(ocr)
        v = d.get("video") or {}
        every = v.get("sample_every", 2.0)
        if every is not None and not float(every) > 0:
            raise ValueError(f"video.sample_every must be a positive number of seconds, not {every!r}")
        return cls(images, video, float(every) if every is not None else None, bool(v.get("keyframes", True)))


class TenantMediaSettings:
    """Reads each tenant's :class:`MediaSettings`, cached for ``ttl`` seconds."""

    def __init__(
        self,
        *,
        store: ObjectStore,
        bucket: str,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.bucket = bucket
        self._cache = TenantCache(self._read, ttl=ttl, clock=clock)

    def for_tenant(self, tenant: str) -> MediaSettings:
        return self._cache.get(tenant)

    def invalidate(self, tenant: str | None = None) -> None:
        self._cache.invalidate(tenant)

    def _read(self, tenant: str) -> MediaSettings:
        key = tenant_settings_key(tenant)
        try:
            body = self.store.get(self.bucket, key).body
        except NotFoundError:
            return MediaSettings()
        try:
            d = json.loads(body)
            if not isinstance(d, dict):
                raise ValueError("not a JSON object")
            return MediaSettings.from_dict(d)
        except (ValueError, TypeError, AttributeError) as e:
            log.warning(
                "tenant settings %s are malformed (%s); using the defaults", key, e, extra={"tenant": tenant}
            )
            return MediaSettings()
