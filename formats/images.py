"""Decoding image files: whatever their real format, as RGB; an unreadable file is logged with its path and
left out (``formats.prepared`` marks it, training skips and counts it). PNG, CMYK and greyscale files named
``.JPEG`` (real ImageNet has all three) are decoded by content."""

import logging
from pathlib import Path

from PIL import Image

log = logging.getLogger(__name__)

def load_rgb(path: Path) -> Image.Image | None:
    """The image as RGB, whatever its real format; None (logged) when it cannot be decoded."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    # Whatever a file holds, one of Pillow's many format plugins reads it, and a corrupt one makes them raise
    # far more than OSError (ValueError from a garbled PPM header, DecompressionBombError from a header claiming
    # billions of pixels, NotImplementedError from a DDS pixel format): each means this file cannot be decoded.
    except Exception as error:
        log.warning("skipping unreadable image %s: %s", path, error)
        return None
