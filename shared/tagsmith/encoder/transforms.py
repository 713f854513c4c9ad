"""Pure preprocessing: bytes -> an upright RGB ``PIL.Image`` -> a normalised NCHW batch.

Nothing here keeps state between calls or reads the environment.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

from tagsmith.errors import ImageTooLargeError, UnsupportedMediaError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SUPPORTED_FORMATS",
    "DecodedImage",
    "decode_image",
    "describe_bytes",
    "to_model_input",
]

DEFAULT_MAX_PIXELS = 100_000_000

#: Pillow formats we are willing to parse. Restricting the list keeps tenant bytes away from the
#: rarely exercised plugins (and from EPS, which would hand the file to Ghostscript).
SUPPORTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP", "AVIF")

# Magic numbers of things people upload by mistake, to say what the bytes looked like.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"%PDF", "a PDF document"),
    (0, b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (0, b"\x1f\x8b", "a gzip archive"),
    (0, b"Rar!", "a RAR archive"),
    (0, b"7z\xbc\xaf", "a 7-Zip archive"),
    (0, b"%!PS", "a PostScript/EPS file"),
    (0, b"\xc5\xd0\xd3\xc6", "a PostScript/EPS file"),
    (0, b"8BPS", "a Photoshop PSD file"),
    (0, b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"),
    (0, b"\xff\x0a", "a JPEG XL image"),
    (0, b"\x00\x00\x00\x0cJXL ", "a JPEG XL image"),
    (0, b"ID3", "an MP3 audio file"),
    (0, b"OggS", "an Ogg media file"),
    (0, b"fLaC", "a FLAC audio file"),
    (0, b"\x1a\x45\xdf\xa3", "a Matroska/WebM video"),
    (0, b"\x7fELF", "an ELF executable"),
    (0, b"MZ", "a Windows executable"),
)
_FTYP_BRANDS: dict[bytes, str] = {
    b"heic": "a HEIC image (convert it to JPEG or PNG)",
    b"heix": "a HEIC image (convert it to JPEG or PNG)",
    b"mif1": "a HEIF image (convert it to JPEG or PNG)",
    b"msf1": "a HEIF image sequence",
    b"qt  ": "a QuickTime video",
}
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


@dataclass(frozen=True)
class DecodedImage:
    """An upright RGB image and facts about the original file.

    ``width`` and ``height`` are the original image's size after EXIF orientation, even when
    ``decode_image(..., draft_size=...)`` let the JPEG decoder produce a smaller ``image``.
    """

    image: Image.Image
    width: int
    height: int
    mime: str


def describe_bytes(data: bytes) -> str | None:
    """Say what non-image bytes look like ("a PDF document"), or ``None`` when unsure."""
    for offset, magic, what in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return what
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in _FTYP_BRANDS:
            return _FTYP_BRANDS[brand]
        return "an MP4/QuickTime video" if brand[:2] not in (b"av", b"he") else "an AVIF/HEIF image"
    if data[:4] == b"RIFF" and data[8:12] in (b"WAVE", b"AVI "):
        return "a WAV audio file" if data[8:12] == b"WAVE" else "an AVI video"
    head = data[:1024]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character may be cut at the 1024-byte boundary; retry a little shorter.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not text or any(ch < " " and ch not in "\t\r\n\f" for ch in text):
        return None
    lowered = text.lstrip("\ufeff \t\r\n").lower()
    if lowered.startswith(("<svg", "<?xml")) and "<svg" in lowered:
        return "an SVG drawing (rasterise it to PNG)"
    if lowered.startswith(("<!doctype html", "<html")):
        return "an HTML page"
    if lowered.startswith("<?xml"):
        return "an XML document"
    if lowered.startswith(("{", "[")):
        return "JSON text"
    return "plain text"


def decode_image(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: int | None = None
) -> DecodedImage:
    """Decode image bytes into an upright RGB image.

    - EXIF orientation is applied; ``width``/``height`` are reported after it.
    - Transparency (RGBA, LA, palette with transparency) is composited on white.
    - CMYK, 16-bit (``I;16``, ``I;16B``, ``I``), float (``F``), 1-bit and greyscale become RGB;
      16-bit values are scaled to 8 bits rather than clipped.
    - The pixel count is checked from the header before any pixel is decoded.
    - ``draft_size`` lets the JPEG decoder downscale by 2/4/8 while both sides stay at least that
      large, which makes big photos several times cheaper to decode for a 224 px model.

    Raises :class:`UnsupportedMediaError` for empty, non-image, unsupported or truncated bytes and
    :class:`ImageTooLargeError` when the header declares more than ``max_pixels`` pixels.
    Pillow's own decompression-bomb guard (about 179 M pixels) also applies, whatever
    ``max_pixels`` says.

    Example::

        >>> decoded = decode_image(Path("photo.jpg").read_bytes())  # doctest: +SKIP
        >>> decoded.mime, decoded.image.mode  # doctest: +SKIP
        ('image/jpeg', 'RGB')
    """
    if len(data) == 0:
        raise UnsupportedMediaError("empty object: 0 bytes; upload the image file again")
    image = _open_lazily(data, max_pixels=max_pixels)
    mime = _mime_type(image)
    header_width, header_height = image.size  # draft() below may shrink image.size
    try:
        if draft_size is not None and image.format in ("JPEG", "MPO"):
            # draft() keeps both sides >= the requested size, so a later resize loses nothing.
            image.draft("RGB", (draft_size, draft_size))
        image.load()
        # Read orientation only after load(): a PNG may keep its EXIF after the pixel data.
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        # exif_transpose copies even an upright image, so call it only when there is work to do.
        upright = ImageOps.exif_transpose(image) if orientation in range(2, 9) else image
        rgb = _to_rgb(upright)
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as e:
        raise UnsupportedMediaError(
            f"{mime} image is truncated or corrupt ({e}); upload the complete file again"
        ) from e
    # Orientations 5-8 turn the picture by 90 degrees, swapping its sides.
    if orientation in (5, 6, 7, 8):
        header_width, header_height = header_height, header_width
    return DecodedImage(image=rgb, width=header_width, height=header_height, mime=mime)


def _open_lazily(data: bytes, *, max_pixels: int) -> ImageFile.ImageFile:
    """``Image.open`` (header only) with the size check, translating Pillow's errors."""
    try:
        # Pillow warns about images above MAX_IMAGE_PIXELS while opening; we apply our own limit
        # right after, so collect its warnings here instead of letting them reach the caller.
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            image = Image.open(io.BytesIO(data), formats=_available_formats())
    except Image.DecompressionBombError as e:
        found = _BOMB_PIXELS.search(str(e))
        pixels = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        raise ImageTooLargeError(
            f"image header declares {pixels}, more than the limit of {max_pixels:,}; "
            "downscale it before uploading"
        ) from e
    except UnidentifiedImageError as e:
        what = describe_bytes(data)
        looks_like = f"it looks like {what}" if what else "its format was not recognised"
        raise UnsupportedMediaError(
            f"not a supported image ({len(data):,} bytes; {looks_like}); "
            f"upload one of: {', '.join(SUPPORTED_FORMATS)}"
        ) from e
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
        raise UnsupportedMediaError(f"image header is corrupt ({e}); upload the file again") from e

    width, height = image.size
    if width <= 0 or height <= 0:
        raise UnsupportedMediaError(f"image header declares an empty {width}x{height} image")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image is {width}x{height} ({width * height:,} pixels), more than the limit of "
            f"{max_pixels:,}; downscale it before uploading"
        )
    return image


def _available_formats() -> tuple[str, ...]:
    # A Pillow build without one of the plugins (AVIF is optional) must not make open() fail.
    Image.init()
    return tuple(name for name in SUPPORTED_FORMATS if name in Image.OPEN)


def _mime_type(image: ImageFile.ImageFile) -> str:
    if image.format == "MPO":  # a multi-picture JPEG, as many phones write: still a JPEG file
        return "image/jpeg"
    return image.get_format_mimetype() or f"image/{(image.format or 'unknown').lower()}"


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB, compositing transparency on white and rescaling deep images."""
    mode = image.mode
    if mode in ("RGB", "L") and "transparency" in image.info:  # a tRNS chunk names a see-through colour
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode == "RGB":
        return image
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
        if mode == "RGB":
            return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _deep_to_rgb(image)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    # 1, L, CMYK, YCbCr, LAB, HSV: Pillow's own conversions are right for these.
    return image.convert("RGB")


def _deep_to_rgb(image: Image.Image) -> Image.Image:
    """16-bit / 32-bit integer and float images -> 8-bit RGB, scaled rather than clipped."""
    values = np.asarray(image).astype(np.float64)
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if image.mode.startswith("I;16"):
        scaled = values / 257.0  # 65535 -> 255
    elif image.mode == "I" and low >= 0 and high <= 65535:
        scaled = values / 257.0  # Pillow opens some 16-bit files as 32-bit "I"
    elif image.mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255.0  # the usual 0..1 float convention
    elif high > low:
        scaled = (values - low) * (255.0 / (high - low))  # unknown range: stretch to fit
    else:
        scaled = np.zeros_like(values)
    grey = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")


def to_model_input(
    images: Sequence[Image.Image],
    *,
    size: int = 224,
    mean: Sequence[float] = (127.0, 127.0, 127.0),
    std: Sequence[float] = (128.0, 128.0, 128.0),
    crop: float = 1.0,
) -> np.ndarray:
    """Resize the shorter side to ``size``, centre-crop to a square, normalise: (N, 3, size, size).

    ``crop`` < 1 keeps only that share of the shorter side around the centre (a zoom: 0.7 keeps
    the central 70% square, see ``docs/benchmarks.md``, "Variants tried in session 2").
    ``mean`` and ``std`` are per RGB channel in 0..255 units; the result is ``(x - mean) / std``
    in float32, channels first. Resizing is bicubic with antialiasing (Pillow's filters widen
    their support when shrinking), done in one step on the crop box.

    Example::

        >>> batch = to_model_input([decode_image(data).image])  # doctest: +SKIP
        >>> batch.shape, batch.dtype  # doctest: +SKIP
        ((1, 3, 224, 224), dtype('float32'))
    """
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    if not 0.0 < crop <= 1.0:
        raise ValueError(f"crop must be in (0, 1], got {crop}")
    mean_arr = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
    scale_arr = (1.0 / np.asarray(std, dtype=np.float32)).reshape(3, 1, 1)
    batch = np.empty((len(images), 3, size, size), dtype=np.float32)
    for i, image in enumerate(images):
        rgb = image if image.mode == "RGB" else _to_rgb(image)
        width, height = rgb.size
        side = min(width, height) * crop
        # Resizing the centred square box straight to size x size equals resize-then-crop, but
        # never resamples the pixels that the crop would throw away.
        left = (width - side) / 2
        top = (height - side) / 2
        square = rgb.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side))
        # Normalise straight into the channels-first slot: ten times cheaper than building an HWC
        # float image and copying it through a transposed view.
        chw = np.asarray(square).transpose(2, 0, 1)
        np.subtract(chw, mean_arr, out=batch[i], dtype=np.float32)
        batch[i] *= scale_arr
    return batch
