"""Is an object an image or a video? Decided from its first bytes; the content type and the file
extension only break ties (a ``.jpg`` that is really an MP4 goes to the video path)."""

from __future__ import annotations

from enum import StrEnum

SNIFF_BYTES = 64

VIDEO_EXTENSIONS = frozenset({"mp4", "m4v", "mov", "qt", "webm", "mkv"})
_IMAGE_BRANDS = (b"avif", b"avis", b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1")


class MediaKind(StrEnum):
    IMAGE = "image"
    VIDEO = "video"


def sniff_media(head: bytes, *, content_type: str | None = None, key: str = "") -> MediaKind:
    """``VIDEO`` for ISO-BMFF (``ftyp``, not an AVIF/HEIF brand), QuickTime atoms, EBML
    (Matroska/WebM) and RIFF AVI; else by content type or extension; else ``IMAGE`` (the image
    path then says precisely what the bytes are).

    >>> sniff_media(b"\\x00\\x00\\x00\\x18ftypisom\\x00\\x00\\x02\\x00")
    <MediaKind.VIDEO: 'video'>
    >>> sniff_media(b"\\x00\\x00\\x00\\x1cftypavif")
    <MediaKind.IMAGE: 'image'>
    >>> sniff_media(b"\\x1a\\x45\\xdf\\xa3\\x9f\\x42\\x86\\x81\\x01")
    <MediaKind.VIDEO: 'video'>
    >>> sniff_media(b"", key="acme/clip.MOV")
    <MediaKind.VIDEO: 'video'>
    """
    if head[4:8] == b"ftyp":
        return MediaKind.IMAGE if head[8:12] in _IMAGE_BRANDS else MediaKind.VIDEO
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):  # QuickTime files without ftyp
        return MediaKind.VIDEO
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return MediaKind.VIDEO
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return MediaKind.VIDEO
    if _looks_like_image(head):
        return MediaKind.IMAGE
    if content_type and content_type.split(";")[0].strip().lower().startswith("video/"):
        return MediaKind.VIDEO
    extension = key.rsplit(".", 1)[-1].lower() if "." in key.rsplit("/", 1)[-1] else ""
    return MediaKind.VIDEO if extension in VIDEO_EXTENSIONS else MediaKind.IMAGE


def _looks_like_image(head: bytes) -> bool:
    return head.startswith(
        (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
    ) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
