"""One reader per on-disk format: ImageNet (ILSVRC-2012), PASCAL VOC 2007 detection, VOC 2012
action classification and SUN397. Each reads the real dataset from a path; the embedded
synthetic datasets (``embedded``) are written in the same formats and read by the same code.

Bad input, checked in the driver before any training worker starts:
- a missing root, split folder or list file: ``DataFormatError`` naming the path and the fix;
- an ImageNet class folder with no images: ``DataFormatError`` (a pretraining on fewer classes
  than asked would silently change the experiment);
- a VOC XML without a required field (size, object name, box coordinates), or with an unknown
  class: ``DataFormatError`` naming the file and the field. Missing optional fields (difficult,
  truncated) default to 0, as in VOC's devkit.
While training:
- an unreadable image (corrupt or truncated file) is skipped, logged with its path and counted
  (``collate_skipping_unreadable``); PNG, CMYK and greyscale files named ``.JPEG`` (real ImageNet
  has all three) are decoded by content and converted to RGB.
"""

import csv
import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import torch
from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
GENERATE_HINT = "generate the embedded synthetic data with `python -m embedded generate`"


class DataFormatError(ValueError):
    """A dataset on disk is missing or not in the format its reader expects."""


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataFormatError(f"{what} not found: {path} is not a directory")
    return path


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataFormatError(f"{what} not found: {path} is missing")
    return path


# ImageNet ------------------------------------------------------------------------------------


def _is_wnid(name: str) -> bool:
    return len(name) == 9 and name[0] == "n" and name[1:].isdigit()


def _images_in(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.name.lower().endswith(IMAGE_SUFFIXES))


def imagenet_image_root(root: Path) -> Path:
    """``root`` itself, or Kaggle's ``root/ILSVRC/Data/CLS-LOC`` layout."""
    kaggle = root / "ILSVRC" / "Data" / "CLS-LOC"
    return kaggle if kaggle.is_dir() else root


def list_imagenet(root: str | Path, split: str) -> pa.Table:
    """Every image of an ILSVRC-2012 split as a table ``path`` (relative to the image root, see
    ``imagenet_image_root``) and ``wnid``, sorted by path.

    train: ``train/<wnid>/*.JPEG``. val: ``val/<wnid>/*.JPEG`` (the common prepared layout), or
    ``val/*.JPEG`` with ``LOC_val_solution.csv`` beside ``val/`` or in ``root``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(
            f"ImageNet root {root} does not exist. Point the ImageNet path at a folder with "
            f"train/ and val/ (ILSVRC-2012 layout), or {GENERATE_HINT}."
        )
    if split not in ("train", "val"):
        raise ValueError(f"ImageNet split must be 'train' or 'val', not {split!r}")
    images = imagenet_image_root(root)
    split_dir = _require_dir(images / split, f"ImageNet {split} folder (ILSVRC-2012 layout)")
    class_dirs = sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and _is_wnid(e.name))
    if split == "val" and not class_dirs:
        return _list_flat_imagenet_val(root, images)
    if not class_dirs:
        raise DataFormatError(f"{split_dir} holds no class folders named by wnid (like n01440764)")
    paths, wnids, empty = [], [], []
    for wnid in class_dirs:
        files = _images_in(split_dir / wnid)
        if not files:
            empty.append(wnid)
        paths += [f"{split}/{wnid}/{name}" for name in files]
        wnids += [wnid] * len(files)
    if empty:
        raise DataFormatError(
            f"{len(empty)} class folder(s) in {split_dir} hold no images: {', '.join(empty[:5])}"
            f"{' ...' if len(empty) > 5 else ''}. Re-extract those classes, or remove the folders "
            "to train without them."
        )
    return pa.table({"path": paths, "wnid": wnids})


def _list_flat_imagenet_val(root: Path, images: Path) -> pa.Table:
    candidates = [images.parent / "LOC_val_solution.csv", root / "LOC_val_solution.csv"]
    solution = next((c for c in candidates if c.is_file()), None)
    if solution is None:
        raise DataFormatError(
            f"{images / 'val'} has no wnid folders, and no LOC_val_solution.csv labels it "
            f"(looked in {candidates[0].parent} and {root}). Use the val/<wnid>/ layout or add "
            "the label file."
        )
    on_disk = {Path(name).stem: name for name in _images_in(images / "val")}
    rows = []
    with open(solution, newline="") as f:
        for line_number, row in enumerate(csv.DictReader(f), start=2):
            try:
                image_id, wnid = row["ImageId"], row["PredictionString"].split()[0]
            except (KeyError, IndexError, AttributeError):
                raise DataFormatError(f"{solution}:{line_number}: expected 'ImageId,<wnid> ...'") from None
            if image_id not in on_disk:
                raise DataFormatError(f"{solution}:{line_number}: no image {image_id} in {images / 'val'}")
            rows.append((f"val/{on_disk[image_id]}", wnid))
    rows.sort()
    return pa.table({"path": [p for p, _ in rows], "wnid": [w for _, w in rows]})


# PASCAL VOC ----------------------------------------------------------------------------------

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip
VOC_ACTIONS = (
    "jumping", "phoning", "playinginstrument", "reading", "ridingbike", "ridinghorse",
    "running", "takingphoto", "usingcomputer", "walking",
)  # fmt: skip


@dataclass(frozen=True)
class VOCObject:
    name: str
    box: tuple[int, int, int, int]  # xmin, ymin, xmax, ymax: VOC's one-based pixel coordinates
    difficult: bool
    truncated: bool
    actions: tuple[str, ...] = ()  # VOC2012 Action: the actions this person performs


@dataclass(frozen=True)
class VOCImage:
    image_id: str
    path: Path
    width: int
    height: int
    objects: tuple[VOCObject, ...]


def voc_year_dir(root: str | Path, year: str) -> Path:
    """``root`` may be the VOCdevkit folder or the VOC<year> folder inside it."""
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(
            f"PASCAL VOC root {root} does not exist. Point it at a VOCdevkit folder (holding "
            f"VOC{year}/), or {GENERATE_HINT}."
        )
    return root if root.name == f"VOC{year}" else _require_dir(root / f"VOC{year}", f"VOC{year} folder")


def _text(element: ET.Element, path: str, xml_path: Path, what: str) -> str:
    found = element.find(path)
    if found is None or not (found.text or "").strip():
        raise DataFormatError(f"{xml_path}: {what} has no <{path}>")
    return found.text.strip()


def _flag(element: ET.Element, tag: str) -> bool:
    found = element.find(tag)
    return found is not None and (found.text or "0").strip() == "1"


def read_voc_annotation(xml_path: Path, image_dir: Path) -> VOCImage:
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as error:
        raise DataFormatError(f"{xml_path}: not valid XML ({error})") from None
    objects = []
    for number, obj in enumerate(root.findall("object"), start=1):
        what = f"object {number}"
        name = _text(obj, "name", xml_path, what)
        if name not in VOC_CLASSES:
            raise DataFormatError(f"{xml_path}: {what} has unknown class {name!r}")
        coordinates = [_text(obj, f"bndbox/{c}", xml_path, what) for c in ("xmin", "ymin", "xmax", "ymax")]
        try:
            box = tuple(int(float(c)) for c in coordinates)
        except ValueError:
            raise DataFormatError(f"{xml_path}: {what} has a non-numeric box coordinate") from None
        actions = obj.find("actions")
        done = tuple(a.tag for a in actions if (a.text or "").strip() == "1") if actions is not None else ()
        objects.append(VOCObject(name, box, _flag(obj, "difficult"), _flag(obj, "truncated"), done))
    image_id = xml_path.stem
    filename = root.findtext("filename", f"{image_id}.jpg").strip()
    return VOCImage(
        image_id=image_id,
        path=image_dir / filename,
        width=int(_text(root, "size/width", xml_path, "the image")),
        height=int(_text(root, "size/height", xml_path, "the image")),
        objects=tuple(objects),
    )


def _read_split(year_dir: Path, image_sets: str, split: str) -> list[str]:
    listing = _require_file(year_dir / "ImageSets" / image_sets / f"{split}.txt", f"VOC {split} list")
    return [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]


def check_voc_splits(root: str | Path, year: str, image_sets: str, splits: tuple[str, ...]) -> None:
    """Raises DataFormatError naming what is missing unless ``root`` holds these split lists."""
    year_dir = voc_year_dir(root, year)
    for split in splits:
        _read_split(year_dir, image_sets, split)


def list_voc_detection(root: str | Path, split: str = "trainval", year: str = "2007") -> list[VOCImage]:
    """The images of a VOC detection split (ImageSets/Main/<split>.txt) with their objects."""
    year_dir = voc_year_dir(root, year)
    return [
        read_voc_annotation(
            _require_file(year_dir / "Annotations" / f"{i}.xml", "VOC annotation"), year_dir / "JPEGImages"
        )
        for i in _read_split(year_dir, "Main", split)
    ]


def voc_crop(box: tuple[int, int, int, int], context: float = 0.0) -> tuple[int, int, int, int]:
    """A VOC box (one-based, inclusive) as a PIL crop, grown by ``context`` of its size on each
    side (PIL pads beyond the image with black)."""
    x0, y0, x1, y1 = box
    grow_x, grow_y = context * (x1 - x0 + 1), context * (y1 - y0 + 1)
    return (round(x0 - 1 - grow_x), round(y0 - 1 - grow_y), round(x1 + grow_x), round(y1 + grow_y))


@dataclass(frozen=True)
class ActionPerson:
    image: VOCImage
    box: tuple[int, int, int, int]
    actions: tuple[str, ...]


def list_voc_action(root: str | Path, split: str = "train", year: str = "2012") -> list[ActionPerson]:
    """Every annotated person of a VOC Action split (ImageSets/Action/<split>.txt)."""
    year_dir = voc_year_dir(root, year)
    people = []
    for image_id in _read_split(year_dir, "Action", split):
        xml_path = _require_file(year_dir / "Annotations" / f"{image_id}.xml", "VOC annotation")
        image = read_voc_annotation(xml_path, year_dir / "JPEGImages")
        for obj in image.objects:
            unknown = set(obj.actions) - set(VOC_ACTIONS) - {"other"}
            if unknown:
                raise DataFormatError(f"{xml_path}: unknown action(s) {sorted(unknown)}")
            if obj.name == "person" and obj.actions:
                people.append(ActionPerson(image, obj.box, obj.actions))
    return people


# SUN397 --------------------------------------------------------------------------------------


def list_sun397(root: str | Path, split: str = "train", partition: int = 1) -> tuple[list[tuple[str, int]], list[str]]:
    """``([(path relative to root, class index)], class names)`` of one of SUN397's ten
    train/test partitions; the partition files live in ``root/Partitions`` or ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(
            f"SUN397 root {root} does not exist. Point it at the SUN397 folder (with its "
            f"Partitions/ files), or {GENERATE_HINT}."
        )
    if split not in ("train", "test") or not 1 <= partition <= 10:
        raise ValueError(f"SUN397 split is 'train' or 'test' and partition 1..10, not {split!r}, {partition}")
    folder = root / "Partitions" if (root / "Partitions").is_dir() else root
    names = _require_file(folder / "ClassName.txt", "SUN397 ClassName.txt").read_text().split()
    index = {name: i for i, name in enumerate(names)}
    listing = folder / f"{'Training' if split == 'train' else 'Testing'}_{partition:02d}.txt"
    samples = []
    for line in _require_file(listing, "SUN397 partition file").read_text().split():
        scene = line.rsplit("/", 1)[0]
        if scene not in index:
            raise DataFormatError(f"{listing}: {line} is in no class of ClassName.txt")
        samples.append((line.lstrip("/"), index[scene]))
    return samples, [name.lstrip("/") for name in names]


# Decoding ------------------------------------------------------------------------------------


def load_rgb(path: Path) -> Image.Image | None:
    """The image as RGB, whatever its real format; None (logged) when it cannot be decoded."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError, SyntaxError) as error:
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
