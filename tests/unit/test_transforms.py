"""tagsmith.encoder.transforms: decoding every image kind to upright RGB, refusing bad bytes, and
turning images into normalised model input."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image
from tagsmith.encoder import DecodedImage, decode_image, describe_bytes, to_model_input
from tagsmith.errors import ImageTooLargeError, InvalidInputError, UnsupportedMediaError


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def rgb_at(decoded: DecodedImage, xy: tuple[int, int]) -> tuple[int, int, int]:
    pixel = decoded.image.getpixel(xy)
    assert isinstance(pixel, tuple)
    return (int(pixel[0]), int(pixel[1]), int(pixel[2]))


def png_with_header(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR declares width x height; the pixel data is one empty zlib stream."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


# ---------------------------------------------------------------- every image kind decodes to RGB


def test_decode_image_rgb_jpeg_keeps_size_and_reports_mime() -> None:
    data = encode(Image.new("RGB", (64, 48), (200, 30, 30)), "JPEG", quality=95)

    decoded = decode_image(data)

    assert (decoded.width, decoded.height, decoded.image.size) == (64, 48, (64, 48))
    assert decoded.image.mode == "RGB"
    assert decoded.mime == "image/jpeg"
    r, g, b = rgb_at(decoded, (32, 24))
    assert r > 180 and g < 60 and b < 60


def test_decode_image_applies_exif_orientation() -> None:
    # GIVEN a 60x40 JPEG, red on the left and blue on the right, tagged "rotate 90 CW to display"
    stored = Image.new("RGB", (60, 40), (255, 0, 0))
    stored.paste((0, 0, 255), (30, 0, 60, 40))
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(stored, "JPEG", quality=95, exif=exif.tobytes())

    decoded = decode_image(data)

    # THEN it is upright: 40 wide, 60 tall, the stored left (red) now on top
    assert (decoded.width, decoded.height) == (40, 60)
    assert decoded.image.size == (40, 60)
    assert rgb_at(decoded, (20, 10))[0] > 200 and rgb_at(decoded, (20, 10))[2] < 60
    assert rgb_at(decoded, (20, 50))[2] > 200 and rgb_at(decoded, (20, 50))[0] < 60


def test_decode_image_draft_keeps_original_size_and_enough_pixels() -> None:
    data = encode(Image.new("RGB", (2000, 1000), (10, 120, 10)), "JPEG")

    decoded = decode_image(data, draft_size=224)

    assert (decoded.width, decoded.height) == (2000, 1000)
    assert decoded.image.size[0] < 2000  # the decoder did downscale
    assert min(decoded.image.size) >= 224


def test_decode_image_composites_rgba_on_white() -> None:
    image = Image.new("RGBA", (10, 10), (255, 0, 0, 0))  # fully transparent red
    image.putpixel((5, 5), (0, 0, 255, 255))  # one opaque blue pixel

    decoded = decode_image(encode(image, "PNG"))

    assert decoded.mime == "image/png"
    assert decoded.image.mode == "RGB"
    assert rgb_at(decoded, (0, 0)) == (255, 255, 255)
    assert rgb_at(decoded, (5, 5)) == (0, 0, 255)


def test_decode_image_palette_with_transparency_becomes_white() -> None:
    image = Image.new("P", (8, 8), 1)
    image.putpalette([0, 0, 0, 0, 200, 0] + [0, 0, 0] * 254)
    image.putpixel((0, 0), 0)
    data = encode(image, "PNG", transparency=0)

    decoded = decode_image(data)

    assert rgb_at(decoded, (0, 0)) == (255, 255, 255)
    assert rgb_at(decoded, (4, 4)) == (0, 200, 0)


def test_decode_image_gif_with_transparency() -> None:
    image = Image.new("P", (8, 8), 1)
    image.putpalette([0, 0, 0, 10, 20, 250] + [0, 0, 0] * 254)
    image.putpixel((7, 7), 0)

    decoded = decode_image(encode(image, "GIF", transparency=0))

    assert decoded.mime == "image/gif"
    assert rgb_at(decoded, (7, 7)) == (255, 255, 255)
    assert rgb_at(decoded, (1, 1)) == (10, 20, 250)


def test_decode_image_la_composites_grey_alpha_on_white() -> None:
    image = Image.new("LA", (6, 6), (0, 255))
    image.putpixel((0, 0), (0, 0))

    decoded = decode_image(encode(image, "PNG"))

    assert rgb_at(decoded, (0, 0)) == (255, 255, 255)
    assert rgb_at(decoded, (3, 3)) == (0, 0, 0)


def test_decode_image_cmyk_jpeg() -> None:
    image = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK

    decoded = decode_image(encode(image, "JPEG", quality=95))

    assert decoded.image.mode == "RGB"
    r, g, b = rgb_at(decoded, (8, 8))
    assert r > 200 and g < 60 and b < 60


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_decode_image_16_bit_is_scaled_not_clipped(mode: str) -> None:
    values = np.array([[0, 257 * 100], [65535, 257 * 200]], dtype=np.uint16)
    dtype = ">u2" if mode == "I;16B" else "<u2"
    image = Image.frombytes(mode, (2, 2), values.astype(dtype).tobytes())

    decoded = decode_image(encode(image, "TIFF" if mode == "I;16B" else "PNG"))

    assert decoded.image.mode == "RGB"
    assert [rgb_at(decoded, xy)[0] for xy in [(0, 0), (1, 0), (0, 1), (1, 1)]] == [0, 100, 255, 200]


def test_decode_image_32_bit_integer() -> None:
    values = np.array([[0, 257 * 50], [65535, 1000]], dtype=np.int32)
    image = Image.fromarray(values, mode="I")

    decoded = decode_image(encode(image, "TIFF"))

    assert [rgb_at(decoded, xy)[0] for xy in [(0, 0), (1, 0), (0, 1)]] == [0, 50, 255]


def test_decode_image_float_zero_to_one() -> None:
    values = np.array([[0.0, 0.5], [1.0, 0.25]], dtype=np.float32)
    image = Image.fromarray(values, mode="F")

    decoded = decode_image(encode(image, "TIFF"))

    assert decoded.mime == "image/tiff"
    assert [rgb_at(decoded, xy)[1] for xy in [(0, 0), (1, 0), (0, 1), (1, 1)]] == [0, 128, 255, 64]


def test_decode_image_one_bit() -> None:
    image = Image.new("1", (9, 9), 0)
    image.putpixel((4, 4), 1)

    decoded = decode_image(encode(image, "PNG"))

    assert rgb_at(decoded, (4, 4)) == (255, 255, 255)
    assert rgb_at(decoded, (0, 0)) == (0, 0, 0)


def test_decode_image_webp_and_bmp() -> None:
    for fmt, mime in [("WEBP", "image/webp"), ("BMP", "image/bmp")]:
        decoded = decode_image(encode(Image.new("RGB", (20, 10), (0, 0, 0)), fmt))
        assert (decoded.mime, decoded.width, decoded.height) == (mime, 20, 10)


# ---------------------------------------------------------------- bytes that must be refused


def test_decode_image_rejects_zero_bytes() -> None:
    with pytest.raises(UnsupportedMediaError, match=r"^empty object: 0 bytes"):
        decode_image(b"")


def test_decode_image_rejects_text_and_says_so() -> None:
    with pytest.raises(UnsupportedMediaError, match="plain text") as caught:
        decode_image(b"hello, this is not a picture\n" * 10)
    assert "JPEG" in str(caught.value)  # tells the user what would work


def test_decode_image_rejects_pdf_and_names_it() -> None:
    with pytest.raises(UnsupportedMediaError, match="PDF document"):
        decode_image(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")


def test_decode_image_refuses_formats_outside_the_allow_list() -> None:
    # Pillow can read PCX, but tenants' bytes only reach the plugins we listed.
    data = encode(Image.new("RGB", (8, 8)), "PCX")
    with pytest.raises(UnsupportedMediaError, match="not a supported image"):
        decode_image(data)


def test_decode_image_rejects_truncated_jpeg() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), "JPEG", quality=90)

    with pytest.raises(UnsupportedMediaError, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2])


def test_decode_image_rejects_truncated_png() -> None:
    noise = np.random.default_rng(1).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), "PNG")

    with pytest.raises(UnsupportedMediaError, match=r"image/png image is truncated or corrupt"):
        decode_image(data[: len(data) // 2])


def test_decode_image_reads_exif_orientation_from_a_png() -> None:
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 CCW to display
    data = encode(Image.new("RGB", (30, 10), (0, 0, 0)), "PNG", exif=exif.tobytes())

    decoded = decode_image(data)

    assert (decoded.width, decoded.height, decoded.image.size) == (10, 30, (10, 30))


def test_decode_image_rejects_30000_square_png_from_its_header() -> None:
    data = png_with_header(30_000, 30_000)
    assert len(data) < 100  # nothing to decode: only the header can be read

    started = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match=r"900,000,000 pixels.*downscale") as caught:
        decode_image(data)

    assert time.perf_counter() - started < 1.0
    assert isinstance(caught.value, InvalidInputError)  # poison: never retried


def test_decode_image_applies_its_own_limit_below_pillows() -> None:
    # 12000 x 10000 is between Pillow's warning and error thresholds: no warning may escape
    # (pytest turns warnings into errors here), our limit must speak.
    with pytest.raises(ImageTooLargeError, match=r"12000x10000 \(120,000,000 pixels\)"):
        decode_image(png_with_header(12_000, 10_000))


def test_decode_image_honours_a_smaller_max_pixels() -> None:
    data = encode(Image.new("RGB", (100, 100)), "PNG")

    with pytest.raises(ImageTooLargeError, match="100x100"):
        decode_image(data, max_pixels=5_000)
    assert decode_image(data, max_pixels=10_000).width == 100


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"PK\x03\x04rest", "ZIP"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00", "HEIC"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00", "MP4"),
        (b'<?xml version="1.0"?><svg xmlns="x"/>', "SVG"),
        (b"<!DOCTYPE html><html></html>", "HTML"),
        (b'{"key": 1}', "JSON"),
        (bytes(range(256)), None),
    ],
)
def test_describe_bytes(data: bytes, expected: str | None) -> None:
    described = describe_bytes(data)
    if expected is None:
        assert described is None
    else:
        assert described is not None and expected in described


# ---------------------------------------------------------------- to_model_input


def test_to_model_input_shape_dtype_and_normalisation() -> None:
    images = [Image.new("RGB", (300, 200), (127, 255, 0)), Image.new("RGB", (100, 400), (127, 255, 0))]

    batch = to_model_input(images, size=224)

    assert batch.shape == (2, 3, 224, 224) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[:, 0], 0.0, atol=1e-6)
    np.testing.assert_allclose(batch[:, 1], 128 / 128, atol=1e-6)
    np.testing.assert_allclose(batch[:, 2], -127 / 128, atol=1e-6)


def test_to_model_input_uses_mean_and_std_per_channel() -> None:
    batch = to_model_input([Image.new("RGB", (8, 8), (10, 20, 30))], size=4, mean=(10, 0, 40), std=(1, 2, 5))

    np.testing.assert_allclose(batch[0, :, 0, 0], [0.0, 10.0, -2.0], atol=1e-6)


def test_to_model_input_centre_crops_the_longer_side() -> None:
    # GIVEN 448x224: red quarter | green half | blue quarter
    image = Image.new("RGB", (448, 224), (0, 255, 0))
    image.paste((255, 0, 0), (0, 0, 112, 224))
    image.paste((0, 0, 255), (336, 0, 448, 224))

    batch = to_model_input([image], size=224)

    # THEN only the green middle survives (the outermost column may blend a little)
    green = batch[0, 1] * 128 + 127
    red = batch[0, 0] * 128 + 127
    assert green[:, 2:-2].min() > 250
    assert red[:, 2:-2].max() < 5


def test_to_model_input_accepts_non_rgb_images() -> None:
    batch = to_model_input([Image.new("L", (50, 60), 255)], size=32)

    np.testing.assert_allclose(batch, (255 - 127) / 128, atol=1e-6)


def test_to_model_input_of_nothing_is_an_empty_batch() -> None:
    assert to_model_input([], size=224).shape == (0, 3, 224, 224)
