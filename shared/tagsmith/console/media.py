"""What the console shows of an asset: the image itself when a browser can show it and it is small
enough, else a JPEG preview (a large or exotic image, or a video's first keyframe)."""

from __future__ import annotations

import io

from PIL import Image

from tagsmith.video.decode import video_frame_from

BROWSER_IMAGES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})
DEFAULT_MAX_SIDE = 1024


def preview(
    data: bytes, media_type: str | None, *, max_side: int = DEFAULT_MAX_SIDE, max_pixels: int
) -> tuple[bytes, str]:
    """(bytes, content type) to send to the browser for an asset."""
    if media_type and media_type.startswith("video/"):
        image = video_frame(data)
    else:
        from tagsmith.encoder import decode_image

        decoded = decode_image(data, max_pixels=max_pixels, draft_size=max_side)
        if decoded.mime in BROWSER_IMAGES and max(decoded.width, decoded.height) <= max_side:
            return data, decoded.mime
        image = decoded.image
    image = image.convert("RGB")
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=85)
    return buf.getvalue(), "image/jpeg"


def video_frame(data: bytes) -> Image.Image:
    """The first keyframe of a video (PyAV decodes keyframes only, which is fast)."""
    return video_frame_from(io.BytesIO(data))
