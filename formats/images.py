"""Decoding image files for training: whatever their real format, as RGB; an unreadable file is skipped,
logged with its path and counted (``collate_skipping_unreadable``). PNG, CMYK and greyscale files named
``.JPEG`` (real ImageNet has all three) are decoded by content."""

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
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


class ImageDataset(torch.utils.data.Dataset):
    """``(transform(image), target)`` pairs for image files, optionally cropped (PIL's
    ``(left, upper, right, lower)``, see ``voc_crop``); ``None`` for an unreadable file (see
    ``collate_skipping_unreadable``)."""

    def __init__(
        self,
        root: str | Path,
        paths: Sequence[str],
        targets: Sequence,
        transform: Callable,
        crops: Sequence[tuple[int, int, int, int]] | None = None,
    ):
        if len(paths) != len(targets) or (crops is not None and len(crops) != len(paths)):
            raise ValueError("paths, targets and crops must have the same length")
        self.root, self.paths, self.targets = Path(root), paths, targets
        self.transform, self.crops = transform, crops

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        image = load_rgb(self.root / self.paths[index])
        if image is None:
            return None
        if self.crops is not None:
            image = image.crop(self.crops[index])
        return self.transform(image), self.targets[index]


def collate_skipping_unreadable(batch: list) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(images, targets, number skipped)``; skipped items were logged by ``load_rgb``."""
    kept = [item for item in batch if item is not None]
    if not kept:
        return torch.empty(0), torch.empty(0), len(batch)
    images, targets = torch.utils.data.default_collate(kept)
    return images, targets, len(batch) - len(kept)
