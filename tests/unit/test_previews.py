"""Previews made at ingestion: from the image the encoder's decode already produced where it is
large enough, else decoded again at the preview's scale."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from tagsmith.encoder import decode_image
from tagsmith.previews import PREVIEW_REUSE_SIDE, PREVIEW_SIDE, preview_from
from tagsmith.tagging import Limits


def _jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    # a gradient: JPEG's draft scales need real content to be told apart from a flat fill
    Image.linear_gradient("L").resize((width, height)).convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


def _size(jpeg: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(jpeg)) as im:
        assert im.format == "JPEG"
        return im.size


def test_a_phone_photo_decoded_for_the_encoder_makes_the_preview_without_a_second_decode() -> None:
    data = _jpeg(4032, 3024)  # a 12 MP phone photo
    decoded = decode_image(data, draft_size=Limits().decode_draft_size)
    assert decoded.image.size == (1008, 756)  # JPEG decoded at 1/4 for the encoder
    # the preview is that image (a second decode at 1/2 then a downscale gave 1024 x 768)
    assert _size(preview_from(data, decoded, max_pixels=10**8)) == (1008, 756)
    assert _size(preview_from(data, max_pixels=10**8)) == (PREVIEW_SIDE, 768)


def test_a_photo_decoded_too_small_for_a_preview_is_decoded_again_at_the_preview_scale() -> None:
    data = _jpeg(6000, 4000)  # 24 MP: the encoder's decode is 1/8, 750 x 500
    decoded = decode_image(data, draft_size=Limits().decode_draft_size)
    assert max(decoded.image.size) < PREVIEW_REUSE_SIDE
    assert _size(preview_from(data, decoded, max_pixels=10**8)) == (PREVIEW_SIDE, 683)


@pytest.mark.parametrize("size", [(348, 348), (3000, 1500)])
def test_a_whole_decoded_image_makes_the_preview_bounded_to_the_preview_side(size: tuple[int, int]) -> None:
    data = _jpeg(*size)
    decoded = decode_image(data)  # no draft: the whole image
    width, height = size
    scale = min(1.0, PREVIEW_SIDE / max(size))
    assert _size(preview_from(data, decoded, max_pixels=10**8)) == (
        round(width * scale),
        round(height * scale),
    )
