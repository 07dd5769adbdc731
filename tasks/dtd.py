"""The Describable Textures Dataset, DTD (Cimpoi et al. 2014), one of Kornblith et al.'s twelve datasets: 47
textures, the official train / val / test split of partition 1 (a third of each texture's images each; train + val is
the official trainval), top-1 accuracy. A whole task in one file: its on-disk format, its synthetic twin and its
registration.

    dtd/images/<class>/<class>_<number>.jpg
    dtd/labels/{train,val,test}<N>.txt     "<class>/<file>" per line, for the partitions N = 1..10
    dtd/labels/labels_joint_anno.txt       "<class>/<file> <every texture of the image>" (not read)

``data.dtd`` is the dtd folder (holding images/ and labels/), the folder holding it, or torchvision's ``DTD`` root
(which holds dtd/dtd/). The classes are the class folders of images/, sorted: on the real release they are the 47
textures that torchvision's ``DTD`` finds in every split, in its (sorted) order.

The synthetic DTD has the real layout, all ten partitions and a systematic slice of the real texture names; each
texture is drawn as a close-up, filling the frame, of one of ImageNet-1k's surfaces (fabrics, honeycomb, chain mail,
fences, walls, roofs, mats, webs, puzzles, coral), so ImageNet features transfer to it.
"""

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from formats import GENERATE_HINT, DataFormatError, listed_images, read_lines
from synthetic import GENERATORS, ensure_dataset, run_parallel
from synthetic.scenes import class_look, looks_under, save_object_images
from tasks import Examples, Task, register
from tasks.metrics import top1

CLASSES = """banded blotchy braided bubbly bumpy chequered cobwebbed cracked crosshatched crystalline dotted fibrous
flecked freckled frilly gauzy grid grooved honeycombed interlaced knitted lacelike lined marbled matted meshed paisley
perforated pitted pleated polka-dotted porous potholed scaly smeared spiralled sprinkled stained stratified striped
studded swirly veined waffled woven wrinkled zigzagged""".split()
SURFACES = """fabric.n.01 honeycomb.n.02 chain_mail.n.01 window_screen.n.01 chainlink_fence.n.01 picket_fence.n.01
stone_wall.n.01 quilt.n.01 doormat.n.02 prayer_rug.n.01 shoji.n.01 thatch.n.04 tile_roof.n.01 manhole_cover.n.01
coil.n.01 brain_coral.n.01 spider_web.n.01 maze.n.01 crossword_puzzle.n.01 jigsaw_puzzle.n.01 cardigan.n.01
sweatshirt.n.01 mosquito_net.n.01""".split()
PARTITION = 1  # Kornblith et al.'s: the first of the ten splits
PARTITIONS = 10
SPLITS = ("train", "val", "test")


def dataset_dir(root: Path) -> Path:
    """The dtd folder: ``root`` itself, its dtd/ sub-folder or torchvision's dtd/dtd/, whichever holds labels/."""
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(
            f"DTD root {root} does not exist. Point data.dtd at the dtd folder (holding images/ and labels/), or "
            f"{GENERATE_HINT}."
        )
    return next((folder for folder in (root, root / "dtd", root / "dtd" / "dtd") if (folder / "labels").is_dir()), root)


def check_layout(root: Path) -> None:
    """Reads the three splits as the worker will, every listed image known to exist."""
    for split in SPLITS:
        read(root, split)


def read(root: Path, split: str, seed: int = 0) -> Examples:
    """The split's images in partition 1; errors name the file and line: an image listed twice, a line that is not
    ``<class>/<file>`` with a class folder of images/, an image not on disk, a file that lists none."""
    if split not in SPLITS:
        raise ValueError(f"unknown DTD split {split!r}; choose one of {', '.join(SPLITS)}")
    folder = dataset_dir(root)
    listing = folder / "labels" / f"{split}{PARTITION}.txt"
    lines = read_lines(listing, f"DTD labels/{split}{PARTITION}.txt (is data.dtd the dtd folder, holding labels/?)")
    classes = _classes(folder / "images")
    index = {name: i for i, name in enumerate(classes)}
    paths, targets = listed_images(listing, _rows(listing, lines, index, folder / "images"), folder, "DTD")
    return Examples(folder, paths, targets, classes)


def _rows(
    listing: Path, lines: list[tuple[int, str]], index: dict[str, int], images: Path
) -> Iterator[tuple[int, str, str, int]]:
    for number, line in lines:
        texture, _, name = line.partition("/")
        if texture not in index or not name or "/" in name:
            raise DataFormatError(
                f"{listing}:{number}: {line!r} is not '<class>/<file>' with a class folder of {images}; list each "
                "image as its class folder and file name"
            )
        yield number, line, f"images/{line}", index[texture]


def _classes(images: Path) -> list[str]:
    if not images.is_dir():
        raise DataFormatError(f"DTD images folder not found: {images} is missing; re-extract DTD (dtd/images/<class>/)")
    classes = sorted(entry.name for entry in images.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise DataFormatError(f"{images} holds no class folders; re-extract DTD (dtd/images/<class>/)")
    return classes


# The synthetic twin ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    classes: int
    image_size: int
    per_split: int  # images of each texture in each of train, val and test (the real: 40)


SCALES = {"tiny": Scale(5, 32, 3), "default": Scale(20, 64, 14)}


@GENERATORS.register("dtd")
def ensure(scale: str = "default", seed: int = 0, workers: int | None = None) -> Path:
    """A synthetic dtd folder of this scale and seed, generated on first use."""
    return ensure_dataset("dtd", SCALES, scale, seed, generate, workers)


def generate(out: Path, scale: Scale, seed: int, workers: int | None = None) -> dict:
    classes = CLASSES[:: len(CLASSES) // scale.classes][: scale.classes]
    surfaces = looks_under(SURFACES)
    tasks = [(out, scale, seed, number, texture, surfaces) for number, texture in enumerate(classes)]
    (out / "labels").mkdir(parents=True)
    files = run_parallel(_write_class, tasks, "synthetic DTD textures", workers)
    labels = out / "labels"
    joint = [f"{line} {line.split('/')[0]} \n" for lines in files for line in lines]  # each image's textures
    (labels / "labels_joint_anno.txt").write_text("".join(joint))
    rng = np.random.default_rng([seed, len(classes)])
    for partition in range(1, PARTITIONS + 1):
        splits = {split: [] for split in SPLITS}
        for lines in files:
            order = rng.permutation(len(lines))
            for index, split in enumerate(SPLITS):
                splits[split] += sorted(lines[k] for k in order[index * scale.per_split :][: scale.per_split])
        for split, lines in splits.items():
            (labels / f"{split}{partition}.txt").write_text("".join(f"{line}\n" for line in lines))
    return {"dataset": "dtd", "classes": len(classes), "imagenet_surface_looks": len(surfaces),
            "trainval_images": scale.classes * 2 * scale.per_split, "seed": seed}  # fmt: skip


def _write_class(task) -> list[str]:
    out, scale, seed, number, texture, looks = task
    rng = np.random.default_rng([seed, number])
    # A close-up: the surface fills (most of) the frame.
    look = replace(class_look(looks, number, rng), size=1.5)
    folder = out / "images" / texture
    folder.mkdir(parents=True)
    numbers = np.sort(rng.choice(np.arange(1, 10**4), 3 * scale.per_split, replace=False))
    names = [f"{texture}_{image_number:04d}.jpg" for image_number in numbers]
    save_object_images((folder / name for name in names), look, scale.image_size, rng)
    return [f"{texture}/{name}" for name in names]


register(
    Task(
        name="dtd",
        dataset="dtd",
        protocol="finetune",
        metric="top1",
        check_layout=check_layout,
        description="DTD textures, partition 1, train (val: the official val) -> test; top-1",
        read=read,
        splits=("train", "test"),
        validation="val",
        evaluate=lambda scores, labels: {"top1": top1(scores, labels)},
    )
)
