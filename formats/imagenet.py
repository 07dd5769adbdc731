"""ImageNet (ILSVRC-2012) in its release layouts, extra classes from outside it in ImageNet-21k's, and the
class lists timm ships.

    <root>/train/<wnid>/*.JPEG
    <root>/val/<wnid>/*.JPEG, or <root>/val/*.JPEG with LOC_val_solution.csv (Kaggle's layout,
    also under <root>/ILSVRC/Data/CLS-LOC/)
    <extra root>/<wnid>/*.JPEG, or <extra root>/train/<wnid>/*.JPEG: classes outside ImageNet-1k
    (``list_imagenet_extra``), the extra data of paper Sec 6

A class folder with no images is a ``DataFormatError`` (a pretraining on fewer classes than asked
would silently change the experiment). Entries beside the class folders that are none (``notes/``,
``README.txt``) are left out of the listings, and ``not_class_folders`` names them for the reports.
"""

import csv
import functools
import importlib.util
import os
from pathlib import Path

import pyarrow as pa

from formats import GENERATE_HINT, DataFormatError, require_dir
from formats.wordnet import UnknownClassError, synset_of

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
CLASS_LISTS = {
    "imagenet1k": "imagenet_synsets.txt",  # the 1000 ILSVRC-2012 classes
    "imagenet21k": "imagenet21k_goog_synsets.txt",  # Google's ImageNet-21k release (21,843)
}


@functools.cache
def timm_info_lines(name: str) -> tuple[str, ...]:
    """A list that timm ships in timm/data/_info (ImageNet-1k, -21k, -22k wnids, lemmas).

    Read from timm's install folder: importing timm would import torch and torchvision."""
    (timm_dir,) = importlib.util.find_spec("timm").submodule_search_locations
    return tuple((Path(timm_dir) / "data" / "_info" / name).read_text().splitlines())


def imagenet1k_wnids() -> list[str]:
    """The 1000 ILSVRC-2012 wnids in the standard (sorted) class-index order."""
    return list(timm_info_lines(CLASS_LISTS["imagenet1k"]))


def wnid_lemmas() -> dict[str, str]:
    return dict(line.split("\t", 1) for line in timm_info_lines("imagenet_synset_to_lemma.txt"))


def is_wnid(name: str) -> bool:
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
    split_dir = require_dir(images / split, f"ImageNet {split} folder (ILSVRC-2012 layout)")
    class_dirs = _class_dirs(split_dir)
    if split == "val" and not class_dirs:
        return _list_flat_imagenet_val(root, images)
    if not class_dirs:
        raise DataFormatError(f"{split_dir} holds no class folders named by wnid (like n01440764)")
    return _list_class_dirs(split_dir, class_dirs, f"{split}/")


def list_imagenet_extra(root: str | Path) -> pa.Table:
    """Every image of a folder of extra classes, ImageNet-21k style, as a table ``path`` (relative to ``root``)
    and ``wnid``, sorted by path: ``<root>/<wnid>/*.JPEG``, or ``<root>/train/<wnid>/*.JPEG``. Every class
    folder must name a WordNet 3.0 noun. The folders of ImageNet-1k's classes are left out (real ImageNet-21k
    holds them too): extra data adds classes, it never adds images to the 1000."""
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(
            f"extra data folder {root} does not exist. Point it at a folder of class folders (<wnid>/*.JPEG, "
            f"ImageNet-21k style) outside ImageNet-1k, or {GENERATE_HINT}."
        )
    folder = root / "train" if (root / "train").is_dir() else root
    class_dirs = _class_dirs(folder)
    if not class_dirs:
        raise DataFormatError(
            f"{folder} holds no class folders named by wnid (like n00007846): the extra data is "
            "<folder>/<wnid>/*.JPEG or <folder>/train/<wnid>/*.JPEG"
        )
    unknown = [wnid for wnid in class_dirs if not _names_a_synset(wnid)]
    if unknown:
        raise DataFormatError(
            f"{_listed(unknown)} in {folder} name no WordNet 3.0 noun synset; rename or remove those folders"
        )
    imagenet1k = set(imagenet1k_wnids())
    outside = [wnid for wnid in class_dirs if wnid not in imagenet1k]
    if not outside:
        raise DataFormatError(f"{folder} holds only ImageNet-1k classes; extra data is classes outside the 1000")
    return _list_class_dirs(folder, outside, "train/" if folder != root else "")


def not_class_folders(root: str | Path, extra: bool = False) -> list[str]:
    """What the listings leave out of a data root, as paths relative to it: the entries of ``train/`` and ``val/``
    (for extra data, of the folder or its ``train/``) that are not class folders named by a wnid. Hidden names
    (``.DS_Store``) are file-system litter and not counted; a flat ``val/`` (Kaggle's layout) holds images."""
    root = Path(root)
    if extra:
        folders = [root / "train" if (root / "train").is_dir() else root]
    else:
        images = imagenet_image_root(root)
        folders = [images / split for split in ("train", "val") if (images / split).is_dir()]
    left_out = []
    for folder in folders:
        entries = [e for e in os.scandir(folder) if not e.name.startswith(".")]
        if any(e.is_dir() and is_wnid(e.name) for e in entries):
            prefix = folder.relative_to(root).as_posix() + "/" if folder != root else ""
            left_out += sorted(prefix + e.name for e in entries if not (e.is_dir() and is_wnid(e.name)))
    return left_out


def _class_dirs(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and is_wnid(e.name))


def _names_a_synset(wnid: str) -> bool:
    try:
        synset_of(wnid)
    except UnknownClassError:
        return False
    return True


def _listed(wnids: list[str]) -> str:
    return f"{len(wnids)} class folder(s) ({', '.join(wnids[:5])}{' ...' if len(wnids) > 5 else ''})"


def _list_class_dirs(folder: Path, class_dirs: list[str], prefix: str) -> pa.Table:
    """The images in ``folder``'s class folders: ``path`` (``prefix<wnid>/<file>``), ``wnid``."""
    paths, wnids, empty = [], [], []
    for wnid in class_dirs:
        files = _images_in(folder / wnid)
        if not files:
            empty.append(wnid)
        paths += [f"{prefix}{wnid}/{name}" for name in files]
        wnids += [wnid] * len(files)
    if empty:
        raise DataFormatError(
            f"{_listed(empty)} in {folder} hold no images. Re-extract those classes, or remove the folders "
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
    labelled = {}
    try:
        with open(solution, newline="", encoding="utf-8-sig") as f:  # -sig: a byte-order mark is not a column name
            for line_number, row in enumerate(csv.DictReader(f), start=2):
                try:
                    image_id, wnid = row["ImageId"], row["PredictionString"].split()[0]
                except (KeyError, IndexError, AttributeError):
                    raise DataFormatError(f"{solution}:{line_number}: expected 'ImageId,<wnid> ...'") from None
                if image_id not in on_disk:
                    raise DataFormatError(f"{solution}:{line_number}: no image {image_id} in {images / 'val'}")
                if not is_wnid(wnid):
                    raise DataFormatError(f"{solution}:{line_number}: {wnid!r} is no wnid (like n01440764)")
                if image_id in labelled:
                    raise DataFormatError(f"{solution}:{line_number}: {image_id} is labelled a second time")
                labelled[image_id] = wnid
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{solution} is not UTF-8 text ({error}); re-download or re-extract it") from None
    if not labelled:
        raise DataFormatError(f"{solution} labels no image: it holds no rows below its header")
    rows = sorted((f"val/{on_disk[image_id]}", wnid) for image_id, wnid in labelled.items())
    return pa.table({"path": [p for p, _ in rows], "wnid": [w for _, w in rows]})


# PASCAL VOC ----------------------------------------------------------------------------------


def class_list(source: str) -> list[str]:
    """``imagenet1k``, ``imagenet21k`` (timm's lists), or a data root whose ``train/`` holds one
    folder per wnid. Every wnid is checked against WordNet 3.0."""
    if source in CLASS_LISTS:
        wnids = list(timm_info_lines(CLASS_LISTS[source]))
    elif Path(source).is_dir():
        wnids = sorted(set(list_imagenet(source, "train")["wnid"].to_pylist()))
    else:
        raise ValueError(f"class list {source!r} is neither one of {sorted(CLASS_LISTS)} nor a data folder")
    for wnid in wnids:
        synset_of(wnid)
    return wnids
