"""Asset previews: one bounded JPEG per object version, made once (at ingest) and served from there.

A console page shows dozens of assets; decoding each original for every view is unbounded work (a
408 KB 9,990 x 9,990 PNG takes 9-17 s and 1.9 GiB to decode, and a PNG cannot be decoded at a
reduced scale). So ingestion, which decodes the image anyway, writes a preview of at most
:data:`PREVIEW_SIDE` pixels per side beside the video thumbnails::

    tenants/<t>/thumbnails/<asset path>/<etag>/preview.jpg

before the record that describes that version (as video thumbnails are), and the console serves
it, downscaling a ~1 MP JPEG for smaller sizes. Like thumbnails, a preview belongs to one object
version: :func:`delete_stale_thumbnails` drops those of replaced versions and of
deleted assets. A missing preview (an asset ingested before previews existed, or a crash between
the preview and the record) is a projection like any other: the sweep and the console make it once,
one at a time (:class:`PreviewMaker`), and store it.
"""

from __future__ import annotations

import io
import logging
import threading
from typing import TYPE_CHECKING

from PIL import Image

from tagsmith.errors import InvalidInputError, TransientError
from tagsmith.keys import thumbnails_prefix
from tagsmith.records import AssetStatus
from tagsmith.video.decode import video_frame_from

if TYPE_CHECKING:
    from collections.abc import Iterable

    from tagsmith.encoder import DecodedImage
    from tagsmith.records import AssetRecord
    from tagsmith.storage.base import ObjectInfo, ObjectStore

log = logging.getLogger(__name__)

PREVIEW_SIDE = 1024  # the console's largest view (its default ``max``)
#: An image ingestion decoded for the encoder (a JPEG at 1/2, 1/4 or 1/8 scale, both sides >= the
#: draft size) makes the preview itself when its long side is at least this: a 12 MP photo decoded
#: at 1/4 (1008 x 756) does, instead of being decoded again at 1/2 and downscaled (about 45 ms a
#: photo, more than the encoder's own share; docs/benchmarks.md). Such a preview is 768-1024 px.
PREVIEW_REUSE_SIDE = 768
PREVIEW_NAME = "preview.jpg"
PREVIEW_QUALITY = 85


def preview_key(tenant: str, path: str, etag: str) -> str:
    """Where the preview of one object version lives.

    >>> preview_key("acme", "shoot/a.png", "abc")
    'tenants/acme/thumbnails/shoot/a.png/abc/preview.jpg'
    """
    return f"{thumbnails_prefix(tenant, path)}{etag}/{PREVIEW_NAME}"


def record_preview_key(record: AssetRecord) -> str:
    return preview_key(record.tenant, record.path, record.source.etag)


def jpeg_preview(image: Image.Image, *, max_side: int = PREVIEW_SIDE) -> bytes:
    """``image`` as a JPEG of at most ``max_side`` pixels per side (never upscaled)."""
    rgb = image.convert("RGB")
    if max(rgb.size) > max_side:
        rgb = rgb.copy()
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    rgb.save(buf, "JPEG", quality=PREVIEW_QUALITY)
    return buf.getvalue()


def preview_from(data: bytes, decoded: DecodedImage | None = None, *, max_pixels: int) -> bytes:
    """The preview of image bytes. ``decoded``: the same bytes already decoded (ingestion's), used
    when it is whole or holds at least :data:`PREVIEW_REUSE_SIDE` pixels on its long side; a JPEG
    decoded at a smaller scale for the encoder is decoded again at the preview's scale (JPEG's draft
    mode keeps that cheap)."""
    from tagsmith.encoder import decode_image

    if decoded is not None:
        full = decoded.image.size in ((decoded.width, decoded.height), (decoded.height, decoded.width))
        if full or max(decoded.image.size) >= PREVIEW_REUSE_SIDE:
            return jpeg_preview(decoded.image)
    return jpeg_preview(decode_image(data, max_pixels=max_pixels, draft_size=PREVIEW_SIDE).image)


def scaled(preview: bytes, max_side: int) -> bytes:
    """A stored preview scaled down to ``max_side`` (a ~1 MP JPEG: milliseconds)."""
    with Image.open(io.BytesIO(preview)) as im:
        if max(im.size) <= max_side:
            return preview
        im.draft("RGB", (max_side, max_side))
        return jpeg_preview(im, max_side=max_side)


class PreviewMaker:
    """Makes missing previews on demand, at most ``concurrency`` at a time per process: a burst of
    requests for unprocessed giant images queues here instead of decoding them all at once. A caller
    that waits longer than ``wait_seconds`` gets a :class:`TransientError` (HTTP 503: retry)."""

    def __init__(
        self,
        *,
        store: ObjectStore,
        data_bucket: str,
        max_pixels: int,
        max_bytes: int = 64 * 1024 * 1024,
        concurrency: int = 1,
        wait_seconds: float = 20.0,
    ) -> None:
        self.store = store
        self.data_bucket = data_bucket
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes
        self.wait_seconds = wait_seconds
        self._slots = threading.BoundedSemaphore(concurrency)

    def get(self, record: AssetRecord) -> bytes | None:
        """The stored preview of ``record``'s object version, or None."""
        from tagsmith.errors import NotFoundError

        try:
            return self.store.get(self.data_bucket, record_preview_key(record)).body
        except NotFoundError:
            return None

    def ensure(self, record: AssetRecord) -> bytes:
        """The preview of ``record``'s object version, made and stored now if it is missing.
        Raises :class:`InvalidInputError` for an asset that cannot be previewed and
        :class:`~tagsmith.errors.NotFoundError` when the object is gone."""
        found = self.get(record)
        if found is not None:
            return found
        if not self._slots.acquire(timeout=self.wait_seconds):
            raise TransientError("previews are being made for other assets; retry in a moment")
        try:
            found = self.get(record)  # made by another request while this one waited
            if found is not None:
                return found
            body = self._make(record)
            self.store.put(self.data_bucket, record_preview_key(record), body, content_type="image/jpeg")
            log.info("made a missing preview", extra={"tenant": record.tenant, "key": record.key})
            return body
        finally:
            self._slots.release()

    def _make(self, record: AssetRecord) -> bytes:
        if record.media_type and record.media_type.startswith("video/"):
            with self.store.open(record.source.bucket, record.source.key) as f:
                return jpeg_preview(video_frame_from(f))
        if record.source.size > self.max_bytes:
            raise InvalidInputError(f"{record.key} is over {self.max_bytes:,} bytes: no preview")
        data = self.store.get(record.source.bucket, record.source.key).body
        return preview_from(data, max_pixels=self.max_pixels)


def delete_stale_thumbnails(
    store: ObjectStore, bucket: str, record: AssetRecord, listing: Iterable[ObjectInfo] | None = None
) -> int:
    """Delete the asset's segment thumbnails that ``record`` (just written) no longer points at:
    those of replaced versions and of segments that are gone. Never before the record is
    written (a reader of the old record would find its pictures gone), and never a thumbnail
    of the object version now in the bucket (its own ingest may be about to point at it). For a
    tombstone (no segments, no object) that is every thumbnail of the asset.
    Idempotent: a second call finds nothing to delete. Returns how many were deleted.
    ``listing``: the asset's thumbnails folder as the caller just listed it."""
    prefix = thumbnails_prefix(record.tenant, record.path)
    keep = {s.thumbnail_key for s in record.segments}
    if record.status is not AssetStatus.DELETED:
        keep.add(preview_key(record.tenant, record.path, record.source.etag))
    stale = []
    for info in store.list(bucket, prefix) if listing is None else listing:
        version, _, name = info.key[len(prefix) :].partition("/")
        if not name or "/" in name or info.key in keep:
            continue  # another asset's (a path below this one), or in use
        stale.append((version, info.key))
    if any(version != record.source.etag for version, _ in stale):
        head = store.head(record.source.bucket, record.source.key)
        newest = head.etag if head is not None else None
        stale = [(v, k) for v, k in stale if v == record.source.etag or v != newest]
    for _, key in stale:
        store.delete(bucket, key)
    if stale:
        log.info(
            "deleted %d stale thumbnails", len(stale), extra={"tenant": record.tenant, "key": record.key}
        )
    return len(stale)
