"""Caltech-101 (Fei-Fei et al. 2004), one of Kornblith et al.'s twelve datasets: 101 object categories and a
background class (102 classes, as Kornblith et al. count them), 30 training images per class chosen at random and the
rest for testing, mean per-class accuracy. A whole task in one file: its on-disk format, its synthetic twin and its
registration.

    caltech101/101_ObjectCategories/<category>/image_<NNNN>.jpg     102 folders, BACKGROUND_Google among them

as the release's 101_ObjectCategories.tar.gz extracts, and as torchvision's Caltech101 reads it (its root is the
folder holding caltech101/; either that folder or caltech101 itself is accepted here). The classes are the folders in
sorted order (torchvision's order, which drops BACKGROUND_Google: here it is class 0). The release has no split:
``train`` is ``TRAIN_PER_CLASS`` images of each class chosen by a keyed hash of their paths with the seed
(``subsets.sample.rank_keys``: the choice does not depend on the order in which the disk lists them), ``test`` the
rest of each class.

The synthetic Caltech-101 has the real layout and the first classes' real names; each category is drawn with the look
of the ImageNet-1k classes under a related synset (BACKGROUND_Google with a random look each image, as its images are
random ones from the web), so ImageNet features transfer to it.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from formats import GENERATE_HINT, DataFormatError
from subsets.sample import rank_keys
from synthetic import GENERATORS, ensure_dataset, run_parallel
from synthetic.render import object_image, random_look
from synthetic.scenes import looks_under
from tasks import Examples, Task, register
from tasks.metrics import mean_per_class_and_top1

FOLDER = "caltech101"
CATEGORIES = "101_ObjectCategories"
BACKGROUND = "BACKGROUND_Google"
SPLITS = ("train", "test")
TRAIN_PER_CLASS = 30  # Kornblith et al.'s (and Fei-Fei et al.'s) training images per class; the rest are for testing

# The 102 folders of 101_ObjectCategories, in sorted (class) order.
CLASSES = """BACKGROUND_Google Faces Faces_easy Leopards Motorbikes accordion airplanes anchor ant barrel bass beaver
binocular bonsai brain brontosaurus buddha butterfly camera cannon car_side ceiling_fan cellphone chair chandelier
cougar_body cougar_face crab crayfish crocodile crocodile_head cup dalmatian dollar_bill dolphin dragonfly
electric_guitar elephant emu euphonium ewer ferry flamingo flamingo_head garfield gerenuk gramophone grand_piano
hawksbill headphone hedgehog helicopter ibis inline_skate joshua_tree kangaroo ketch lamp laptop llama lobster lotus
mandolin mayfly menorah metronome minaret nautilus octopus okapi pagoda panda pigeon pizza platypus pyramid revolver
rhino rooster saxophone schooner scissors scorpion sea_horse snoopy soccer_ball stapler starfish stegosaurus stop_sign
strawberry sunflower tick trilobite umbrella watch water_lilly wheelchair wild_cat windsor_chair wrench
yin_yang""".split()

# The synset under which the synthetic twin finds the ImageNet-1k look of each of its categories (the first look
# where there are several); None: a random look for each image.
CLASS_LOOKS = {
    "BACKGROUND_Google": None,
    "Faces": "person.n.01",
    "Faces_easy": "face.n.01",
    "Leopards": "leopard.n.02",
    "Motorbikes": "motorcycle.n.01",
    "accordion": "accordion.n.01",
    "airplanes": "airplane.n.01",
    "anchor": "anchor.n.01",
    "ant": "ant.n.01",
    "barrel": "barrel.n.02",
    "bass": "bass.n.08",
    "beaver": "beaver.n.07",
}


def base_dir(root: Path) -> Path:
    """The caltech101 folder: ``root`` itself or its caltech101/ (torchvision's root)."""
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(
            f"Caltech-101 root {root} does not exist. Point data.caltech101 at the folder holding {FOLDER}/ (or at "
            f"{FOLDER} itself, holding {CATEGORIES}/), or {GENERATE_HINT}."
        )
    base = root / FOLDER if (root / FOLDER).is_dir() else root
    if not (base / CATEGORIES).is_dir():
        raise DataFormatError(
            f"{base / CATEGORIES} is not a directory: point data.caltech101 at the folder holding {FOLDER}/ (or at "
            f"{FOLDER} itself), where the release's {CATEGORIES}.tar.gz is extracted"
        )
    return base


def check_layout(root: Path) -> None:
    """Reads both splits as the worker will: every class has more than ``TRAIN_PER_CLASS`` images."""
    for split in SPLITS:
        read(root, split)


def read(root: Path, split: str, seed: int = 0) -> Examples:
    """The split's images: ``train`` holds ``TRAIN_PER_CLASS`` of each class, chosen by ``seed``, ``test`` the
    rest. A category folder holding ``TRAIN_PER_CLASS`` images or fewer, or no category folder at all, is an error
    that names the folder."""
    if split not in SPLITS:
        raise ValueError(f"Caltech-101 has no split {split!r}; choose one of {', '.join(SPLITS)}")
    base = base_dir(root)
    folder = base / CATEGORIES
    classes = sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise DataFormatError(f"{folder} holds no category folders; re-extract {CATEGORIES}.tar.gz of Caltech-101")
    paths, targets = [], []
    for target, name in enumerate(classes):
        images = sorted(entry.name for entry in (folder / name).iterdir()
                        if entry.suffix.lower() == ".jpg" and entry.is_file())  # fmt: skip
        if len(images) <= TRAIN_PER_CLASS:
            raise DataFormatError(
                f"{folder / name}: class {name} holds {len(images)} .jpg images, but {TRAIN_PER_CLASS} of each class "
                f"train and at least one tests; give it more than {TRAIN_PER_CLASS} (every class of the release has "
                "31 or more), or remove its folder"
            )
        paths += [f"{CATEGORIES}/{name}/{image}" for image in images]
        targets += [target] * len(images)
    chosen = _training_rows(paths, targets, seed)
    rows = np.flatnonzero(chosen if split == "train" else ~chosen)
    return Examples(base, [paths[k] for k in rows], [targets[k] for k in rows], classes)


def _training_rows(paths: list[str], targets: list[int], seed: int) -> np.ndarray:
    """A mask of the ``TRAIN_PER_CLASS`` images of each class with the lowest keys of their paths under ``seed``."""
    keys = rank_keys(np.asarray(paths, dtype=object), seed)
    targets = np.asarray(targets)
    chosen = np.zeros(len(paths), dtype=bool)
    for target in np.unique(targets):
        members = np.flatnonzero(targets == target)
        chosen[members[np.argsort(keys[members], kind="stable")[:TRAIN_PER_CLASS]]] = True
    return chosen


# The synthetic twin ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    classes: int
    image_size: int
    min_per_class: int  # images per class, drawn between these (the release's classes differ in size)
    max_per_class: int


# Every class holds more than TRAIN_PER_CLASS images at both scales, so that both read with the real split; 32 px
# images are cheap enough for that at the tiny scale.
SCALES = {"tiny": Scale(4, 32, TRAIN_PER_CLASS + 2, TRAIN_PER_CLASS + 5),
          "default": Scale(10, 64, TRAIN_PER_CLASS + 10, TRAIN_PER_CLASS + 15)}  # fmt: skip


@GENERATORS.register("caltech101")
def ensure(scale: str = "default", seed: int = 0, workers: int | None = None) -> Path:
    """A synthetic folder holding caltech101/ of this scale and seed, generated on first use."""
    return ensure_dataset("caltech101", SCALES, scale, seed, generate, workers)


def generate(out: Path, scale: Scale, seed: int, workers: int | None = None) -> dict:
    classes = CLASSES[: scale.classes]
    if any(name not in CLASS_LOOKS for name in classes):
        raise ValueError(f"the synthetic Caltech-101 draws at most {len(CLASS_LOOKS)} classes (CLASS_LOOKS)")
    folder = out / FOLDER / CATEGORIES
    folder.mkdir(parents=True)
    counts = np.random.default_rng(seed).integers(scale.min_per_class, scale.max_per_class + 1, len(classes))
    tasks = [(folder, scale, seed, number, name, int(count), CLASS_LOOKS[name] and looks_under([CLASS_LOOKS[name]])[0])
             for number, (name, count) in enumerate(zip(classes, counts))]  # fmt: skip
    run_parallel(_write_class, tasks, "synthetic Caltech-101 classes", workers)
    return {"dataset": "caltech101", "classes": len(classes), "images": int(counts.sum()), "seed": seed}


def _write_class(task) -> None:
    folder, scale, seed, number, name, count, look = task
    rng = np.random.default_rng([seed, number])
    (folder / name).mkdir()
    for index in range(1, count + 1):  # the release numbers each category's images image_0001.jpg, ...
        image, _ = object_image(look or random_look(rng), scale.image_size, rng)
        Image.fromarray(image).save(folder / name / f"image_{index:04d}.jpg", quality=90)


register(
    Task(
        name="caltech101",
        dataset="caltech101",
        protocol="finetune",
        metric="mean_per_class",
        check_layout=check_layout,
        description=f"Caltech-101 (102 classes with background), {TRAIN_PER_CLASS} per class -> the rest; "
        "mean per-class accuracy",
        read=read,
        splits=SPLITS,
        validation=None,
        evaluate=mean_per_class_and_top1,
    )
)
