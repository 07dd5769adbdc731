"""FGVC Aircraft 2013b (Maji et al. 2013), one of Kornblith et al.'s twelve datasets: 100 aircraft variants, the
official train / val / test split (a third of each variant's images each; train + val is the official trainval),
mean per-class accuracy. A whole task in one file: its on-disk format, its synthetic twin and its registration.

    fgvc-aircraft-2013b/data/images/<id>.jpg
    fgvc-aircraft-2013b/data/variants.txt                          one variant per line, in label order
    fgvc-aircraft-2013b/data/images_variant_{train,val,trainval,test}.txt   "<id> <variant>" per line

``data.aircraft`` is the fgvc-aircraft-2013b folder or the folder holding it (torchvision's ``FGVCAircraft`` root).
The annotation level is ``variant``, as Kornblith et al.'s; variant names may hold spaces ("Boeing 717"), so a line
is split at its first space, as torchvision does. The real images keep their 20-pixel copyright banner at the
bottom: it is read, not cropped.

The synthetic FGVC Aircraft has the real layout (7-digit image ids) and the first variants' real names; each
variant is drawn with the look of one of ImageNet-1k's aircraft (the classes under aircraft.n.01: airliner,
warplane, airship, balloon) and, once those are used up, as a variant of one of them with its own markings, so
ImageNet features transfer to it and variants stay apart.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from formats import GENERATE_HINT, DataFormatError, listed_images, read_lines, read_names
from synthetic import GENERATORS, ensure_dataset, run_parallel
from synthetic.scenes import class_look, looks_under, save_object_images
from tasks import Examples, Task, register
from tasks.metrics import mean_per_class_and_top1

CLASSES = """707-320|727-200|737-200|737-300|737-400|737-500|737-600|737-700|737-800|737-900|747-100|747-200|747-300
|747-400|757-200|757-300|767-200|767-300|767-400|777-200|777-300|A300B4|A310|A318|A319|A320|A321|A330-200|A330-300
|A340-200|A340-300|A340-500|A340-600|A380|ATR-42|ATR-72|An-12|BAE 146-200|BAE 146-300|BAE-125|Beechcraft 1900
|Boeing 717|C-130|C-47|CRJ-200|CRJ-700|CRJ-900|Cessna 172|Cessna 208|Cessna 525|Cessna 560|Challenger 600|DC-10|DC-3
|DC-6|DC-8|DC-9-30|DH-82|DHC-1|DHC-6|DHC-8-100|DHC-8-300|DR-400|Dornier 328|E-170|E-190|E-195|EMB-120|ERJ 135
|ERJ 145|Embraer Legacy 600|Eurofighter Typhoon|F-16A/B|F/A-18|Falcon 2000|Falcon 900|Fokker 100|Fokker 50|Fokker 70
|Global Express|Gulfstream IV|Gulfstream V|Hawk T1|Il-76|L-1011|MD-11|MD-80|MD-87|MD-90|Metroliner|Model B200|PA-28
|SR-20|Saab 2000|Saab 340|Spitfire|Tornado|Tu-134|Tu-154|Yak-42""".replace("\n", "").split("|")
FOLDER = "fgvc-aircraft-2013b"
SPLITS = ("train", "val", "trainval", "test")


def dataset_dir(root: Path) -> Path:
    """The fgvc-aircraft-2013b folder: ``root`` itself or its fgvc-aircraft-2013b sub-folder."""
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(
            f"FGVC Aircraft root {root} does not exist. Point data.aircraft at the {FOLDER} folder (holding data/) or "
            f"the folder holding it, or {GENERATE_HINT}."
        )
    return root / FOLDER if (root / FOLDER).is_dir() else root


def check_layout(root: Path) -> None:
    """Reads the three splits as the worker will, every listed image known to exist."""
    for split in ("train", "val", "test"):
        read(root, split)


def read(root: Path, split: str, seed: int = 0) -> Examples:
    """The split's images at the variant level; errors name the file and line: a variant or image listed twice, a
    line that is not ``<id> <variant>`` with a variant of variants.txt, an image not on disk, a file that lists none."""
    if split not in SPLITS:
        raise ValueError(f"unknown FGVC Aircraft split {split!r}; choose one of {', '.join(SPLITS)}")
    folder = dataset_dir(root)
    data = folder / "data"
    classes = read_names(data / "variants.txt", "FGVC Aircraft data/variants.txt (is data.aircraft the "
                         f"{FOLDER} folder or the folder holding it?)", "variant", "variants")  # fmt: skip
    index = {name: i for i, name in enumerate(classes)}
    listing = data / f"images_variant_{split}.txt"
    lines = read_lines(listing, f"FGVC Aircraft data/images_variant_{split}.txt (is data.aircraft the "
                                f"{FOLDER} folder or the folder holding it?)")  # fmt: skip
    paths, targets = listed_images(listing, _rows(listing, lines, index), folder, FOLDER)
    return Examples(folder, paths, targets, classes)


def _rows(listing: Path, lines: list[tuple[int, str]], index: dict[str, int]) -> Iterator[tuple[int, str, str, int]]:
    for number, line in lines:
        image_id, _, variant = line.partition(" ")
        if variant not in index or not image_id or "/" in image_id:
            raise DataFormatError(
                f"{listing}:{number}: {line!r} is not '<id> <variant>' with a variant of variants.txt; list each image "
                "as its id, a space and its variant"
            )
        yield number, f"image {image_id}", f"data/images/{image_id}.jpg", index[variant]


# The synthetic twin ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    classes: int
    image_size: int
    train_per_class: int
    val_per_class: int
    test_per_class: int


SCALES = {"tiny": Scale(5, 32, 3, 3, 3), "default": Scale(20, 64, 14, 14, 14)}


@GENERATORS.register("aircraft")
def ensure(scale: str = "default", seed: int = 0, workers: int | None = None) -> Path:
    """A synthetic fgvc-aircraft-2013b folder of this scale and seed, generated on first use."""
    return ensure_dataset(FOLDER, SCALES, scale, seed, generate, workers)


def generate(out: Path, scale: Scale, seed: int, workers: int | None = None) -> dict:
    classes = CLASSES[:: len(CLASSES) // scale.classes][: scale.classes]
    aircraft = looks_under(["aircraft.n.01"])
    per_class = scale.train_per_class + scale.val_per_class + scale.test_per_class
    ids = np.random.default_rng(seed).choice(10**7, len(classes) * per_class, replace=False).reshape(len(classes), -1)
    tasks = [(out, scale, seed, number, variant, aircraft, ids[number]) for number, variant in enumerate(classes)]
    (out / "data" / "images").mkdir(parents=True)
    splits = run_parallel(_write_class, tasks, "synthetic FGVC Aircraft variants", workers)
    data = out / "data"
    (data / "variants.txt").write_text("".join(f"{variant}\n" for variant in classes))
    for index, split in enumerate(("train", "val", "test")):
        lines = [line for lines in splits for line in lines[index]]
        (data / f"images_variant_{split}.txt").write_text("".join(f"{line}\n" for line in lines))
        (data / f"images_{split}.txt").write_text("".join(f"{line.split(' ')[0]}\n" for line in lines))
    lines = [line for lines in splits for line in (*lines[0], *lines[1])]
    (data / "images_variant_trainval.txt").write_text("".join(f"{line}\n" for line in lines))
    (data / "images_trainval.txt").write_text("".join(f"{line.split(' ')[0]}\n" for line in lines))
    return {"dataset": "aircraft", "classes": len(classes), "imagenet_aircraft_looks": len(aircraft),
            "trainval_images": scale.classes * (scale.train_per_class + scale.val_per_class), "seed": seed}  # fmt: skip


def _write_class(task) -> tuple[list[str], list[str], list[str]]:
    out, scale, seed, number, variant, looks, ids = task
    rng = np.random.default_rng([seed, number])
    look = class_look(looks, number, rng)
    images = out / "data" / "images"
    save_object_images((images / f"{image_id:07d}.jpg" for image_id in ids), look, scale.image_size, rng)
    lines = [f"{image_id:07d} {variant}" for image_id in ids]
    train, val = scale.train_per_class, scale.train_per_class + scale.val_per_class
    return lines[:train], lines[train:val], lines[val:]


register(
    Task(
        name="aircraft",
        dataset="aircraft",
        protocol="finetune",
        metric="mean_per_class",
        check_layout=check_layout,
        description="FGVC Aircraft 2013b variants, train (val: the official val) -> test; mean per-class accuracy",
        read=read,
        splits=("train", "test"),
        validation="val",
        evaluate=mean_per_class_and_top1,
    )
)
