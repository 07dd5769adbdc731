"""Prepared images: a dataset's images decoded once, made ``size`` x ``size`` and stored as one uint8 array
``[N, size, size, 3]`` that every reader memory-maps, so that training decodes nothing and the trials on one node
share one copy in the page cache, however many read it.

By default each image is squashed whole to the square: the ImageNet recipe of the papers' era (Caffe's
``convert_imageset`` resizes to 256 x 256; training crops 227 px from it), and what random crops are drawn from,
since it keeps all of the image. With ``centre_crop_pct`` the copy holds an evaluation view instead: the shorter
side resized (bicubic) to ``size / centre_crop_pct`` and the centred ``size`` square kept, as Kornblith et al.
(2019) and timm (``crop_pct``) evaluate. The copy is built once per node under the data directory
(``formats.cache.build_once``), named by a digest of the root, the listed files with their sizes and modification
times, the crops, the view and the size: an image rewritten on disk gives another copy, never a stale one. An
unreadable file becomes a row marked unreadable (logged by ``load_rgb``), which readers skip and count.

    images = prepare_images(root, paths, prepared_size(32))    # images.pixels[i]: paths[i] at 37 x 37, RGB
    python -m formats.prepared imagenet ROOT --image-size 224   # ImageNet's train and val at 256 px, ahead of a run
"""

import argparse
import contextlib
import functools
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from formats import DataFormatError, fork_pool
from formats.cache import build_once, data_dir
from formats.imagenet import imagenet_image_root, list_imagenet, list_imagenet_extra
from formats.images import load_rgb

PIXELS, READABLE, PATHS = "pixels.npy", "readable.npy", "paths.json"
CHUNK = 256  # images a building process decodes per task


def imagenet_images(root: Path) -> tuple[Path, list[str]]:
    """The folder that ImageNet's listed paths are relative to, and every train and val image in it."""
    return imagenet_image_root(root), [
        path for split in ("train", "val") for path in list_imagenet(root, split)["path"].to_pylist()
    ]


# The images of a pretraining source that its prepared copy holds, as (folder, paths): all of them, so that every
# subset of the source, in any trial on the node, reads the one copy.
SOURCE_IMAGES = {
    "imagenet": imagenet_images,
    "imagenet_extra": lambda root: (Path(root), list_imagenet_extra(root)["path"].to_pylist()),
}


def prepared_size(image_size: int, crop_pct: float = 224 / 256) -> int:
    """The side images are prepared at for a recipe that reads ``image_size`` px crops that are ``crop_pct`` of
    it (timm's term): 256 for 224, as in the papers."""
    return round(image_size / crop_pct)


@dataclass(frozen=True)
class PreparedImages:
    folder: Path
    pixels: np.ndarray  # [N, size, size, 3] uint8, memory-mapped read-only
    readable: np.ndarray  # [N] bool: False where the file could not be decoded (its pixels are zero)
    paths: list[str]

    @functools.cached_property
    def _row_of(self) -> dict[str, int]:  # built once: a pretraining looks up its train and its val rows
        return {path: row for row, path in enumerate(self.paths)}

    def rows(self, paths: Sequence[str]) -> np.ndarray:
        """The rows of these paths."""
        try:
            return np.array([self._row_of[path] for path in paths], dtype=np.int64)
        except KeyError as missing:
            raise KeyError(f"{missing} is not among the {len(self.paths)} prepared images of {self.folder}") from None


def prepare_images(
    root: str | Path,
    paths: Sequence[str],
    size: int,
    crops: Sequence[tuple[int, int, int, int]] | None = None,
    workers: int = 1,
    centre_crop_pct: float | None = None,
) -> PreparedImages:
    """``paths`` (relative to ``root``), each cropped to its PIL box in ``crops`` if given, made ``size`` x ``size``:
    squashed, or with ``centre_crop_pct`` the centre of the image with its shorter side at ``size /
    centre_crop_pct``; built with ``workers`` processes on first use on this node."""
    root = Path(root).resolve()
    if crops is not None and len(crops) != len(paths):
        raise ValueError("paths and crops must have the same length")
    if centre_crop_pct is not None and not 0 < centre_crop_pct <= 1:
        raise ValueError(f"centre_crop_pct must be in (0, 1], not {centre_crop_pct!r}")
    view = "squash" if centre_crop_pct is None else f"centre{centre_crop_pct:g}"
    digest = _content_digest(root, paths, size, crops, view)
    target = data_dir() / "prepared" / f"{root.name}-{size}px-{view}-{len(paths)}-{digest}"
    folder = build_once(target, lambda out: _build(out, root, list(paths), size, crops, centre_crop_pct, workers))
    return PreparedImages(
        folder, np.load(folder / PIXELS, mmap_mode="r"), np.load(folder / READABLE),
        json.loads((folder / PATHS).read_text()),
    )  # fmt: skip


def _content_digest(root: Path, paths: Sequence[str], size: int, crops, view: str) -> str:
    digest = hashlib.sha256(json.dumps([str(root), size, crops and [list(c) for c in crops], view]).encode())
    for path in paths:
        try:
            status = os.stat(root / path)
            digest.update(f"{path}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
        except OSError:  # a missing file is prepared as unreadable, like a corrupt one
            digest.update(f"{path}\0missing\n".encode())
    return digest.hexdigest()[:16]


def _build(out: Path, root: Path, paths: list[str], size: int, crops, centre_crop_pct, workers: int) -> dict:
    out.mkdir(parents=True)
    pixels = np.lib.format.open_memmap(out / PIXELS, mode="w+", dtype=np.uint8, shape=(len(paths), size, size, 3))
    readable = np.zeros(len(paths), dtype=bool)
    chunks = [(root, paths[start : start + CHUNK], crops and crops[start : start + CHUNK], size, centre_crop_pct, start)
              for start in range(0, len(paths), CHUNK)]  # fmt: skip
    with fork_pool(workers) if workers > 1 else contextlib.nullcontext() as pool:
        for start, block, ok in (pool.imap_unordered if pool else map)(_decode_chunk, chunks):
            pixels[start : start + len(block)], readable[start : start + len(block)] = block, ok
    pixels.flush()
    del pixels
    np.save(out / READABLE, readable)
    (out / PATHS).write_text(json.dumps(paths))
    return {"root": str(root), "images": len(paths), "size": size, "centre_crop_pct": centre_crop_pct,
            "unreadable": int((~readable).sum())}


def _decode_chunk(chunk) -> tuple[int, np.ndarray, np.ndarray]:
    root, paths, crops, size, centre_crop_pct, start = chunk
    block = np.zeros((len(paths), size, size, 3), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    for k, path in enumerate(paths):
        image = load_rgb(root / path)
        if image is None:
            continue
        if crops is not None:
            image = image.crop(crops[k])
        if centre_crop_pct is None:
            block[k] = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))
        else:
            block[k] = np.asarray(_centre_view(image, size, prepared_size(size, centre_crop_pct)))
        ok[k] = True
    return start, block, ok


def _centre_view(image: Image.Image, size: int, side: int) -> Image.Image:
    """The centred ``size`` square of ``image`` with its shorter side resized to ``side``, rounded as torchvision's
    ``Resize(side)`` and ``CenterCrop(size)`` round."""
    width, height = image.size
    resized = (side, int(side * height / width)) if width <= height else (int(side * width / height), side)
    left, top = round((resized[0] - size) / 2), round((resized[1] - size) / 2)
    return image.resize(resized, Image.Resampling.BICUBIC).crop((left, top, left + size, top + size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="python -m formats.prepared")
    parser.add_argument("source", choices=sorted(SOURCE_IMAGES), help="what the folder holds")
    parser.add_argument("root", type=Path, help="its folder (data.imagenet or data.imagenet_extra of a run)")
    parser.add_argument("--image-size", type=int, required=True, help="the recipe's pretrain.image_size")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="decoding processes")
    arguments = parser.parse_args()
    root = arguments.root.resolve()
    size = prepared_size(arguments.image_size)
    try:
        prepared = prepare_images(*SOURCE_IMAGES[arguments.source](root), size, workers=arguments.workers)
    except DataFormatError as error:
        sys.exit(f"error: {error}")
    print(f"{len(prepared.paths)} images ({int((~prepared.readable).sum())} unreadable) in {prepared.folder}")


if __name__ == "__main__":
    main()
