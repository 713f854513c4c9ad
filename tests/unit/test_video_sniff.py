"""Media-type dispatch: the first bytes decide, the content type and extension break ties."""

from __future__ import annotations

import pytest
from tagsmith.video import MediaKind, sniff_media

from tests.fakes import solid_jpeg
from tests.videoclips import colour_clip


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", MediaKind.VIDEO),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", MediaKind.VIDEO),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00", MediaKind.IMAGE),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", MediaKind.IMAGE),
        (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01", MediaKind.VIDEO),
        (b"RIFF\x00\x00\x00\x00AVI LIST", MediaKind.VIDEO),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", MediaKind.IMAGE),
        (b"\x89PNG\r\n\x1a\n\x00\x00", MediaKind.IMAGE),
        (b"%PDF-1.7", MediaKind.IMAGE),  # the image path names what it is
    ],
)
def test_sniff_media_reads_the_first_bytes(head: bytes, expected: MediaKind) -> None:
    assert sniff_media(head) is expected


def test_sniff_media_trusts_bytes_over_a_misleading_name() -> None:
    assert sniff_media(colour_clip()[:64], content_type="image/jpeg", key="acme/photo.jpg") is MediaKind.VIDEO
    assert (
        sniff_media(solid_jpeg((1, 2, 3))[:64], content_type="video/mp4", key="acme/clip.mp4")
        is MediaKind.IMAGE
    )


def test_sniff_media_falls_back_to_content_type_then_extension() -> None:
    assert sniff_media(b"\x00" * 16, content_type="video/webm") is MediaKind.VIDEO
    assert sniff_media(b"\x00" * 16, key="acme/2026/spot.MKV") is MediaKind.VIDEO
    assert sniff_media(b"\x00" * 16, key="acme/2026/mkv/notes") is MediaKind.IMAGE
