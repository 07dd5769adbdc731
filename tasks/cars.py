"""Stanford Cars (Krause et al. 2013), one of Kornblith et al.'s twelve datasets: 196 makes, models and years of car,
the official train -> test split (8,144 / 8,041 images, about half of each class each), top-1 accuracy, on the whole
images (the annotations' boxes are not used, as torchvision does not). A whole task in one file: its on-disk format,
its synthetic twin and its registration.

    stanford_cars/devkit/cars_meta.mat                  class_names: 1 x 196 cell of strings, in label order
    stanford_cars/devkit/cars_train_annos.mat           annotations: 1 x N struct (bbox_x1, bbox_y1, bbox_x2, bbox_y2,
    stanford_cars/cars_test_annos_withlabels.mat            class 1..196, fname), one per image
    stanford_cars/cars_train/<NNNNN>.jpg, stanford_cars/cars_test/<NNNNN>.jpg

as the release's car_devkit.tgz, cars_train.tgz, cars_test.tgz and cars_test_annos_withlabels.mat lay out, and as
torchvision's StanfordCars reads it (its root is the folder holding stanford_cars/; either that folder or
stanford_cars itself is accepted here). Class ``k`` is annotation class ``k + 1``, named by ``class_names``.

The synthetic Stanford Cars has the real layout and .mat files and the first classes' real names; each model is drawn
with the look of one of ImageNet-1k's cars (the classes under car.n.01), so ImageNet features transfer to it.
"""

from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from formats import GENERATE_HINT, DataFormatError, require_file
from synthetic import GENERATORS, TrainTestScale, ensure_dataset, run_parallel
from synthetic.render import object_image
from synthetic.scenes import looks_under
from tasks import Examples, Task, register
from tasks.metrics import top1

FOLDER = "stanford_cars"
SPLITS = ("train", "test")
META = "devkit/cars_meta.mat"
ANNOTATIONS = {"train": "devkit/cars_train_annos.mat", "test": "cars_test_annos_withlabels.mat"}
IMAGES = {"train": "cars_train", "test": "cars_test"}
FIELDS = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")

# The first classes of cars_meta.mat, in label order (the twin's).
CLASSES = [
    "AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012", "Acura TL Type-S 2008",
    "Acura TSX Sedan 2012", "Acura Integra Type R 2001", "Acura ZDX Hatchback 2012",
    "Aston Martin V8 Vantage Convertible 2012", "Aston Martin V8 Vantage Coupe 2012",
    "Aston Martin Virage Convertible 2012", "Aston Martin Virage Coupe 2012", "Audi RS 4 Convertible 2008",
]  # fmt: skip


def base_dir(root: Path) -> Path:
    """The stanford_cars folder: ``root`` itself or its stanford_cars/ (torchvision's root)."""
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(
            f"Stanford Cars root {root} does not exist. Point data.cars at the folder holding {FOLDER}/ (or at "
            f"{FOLDER} itself, holding devkit/, cars_train/ and cars_test/), or {GENERATE_HINT}."
        )
    base = root / FOLDER if (root / FOLDER).is_dir() else root
    if not (base / "devkit").is_dir():
        raise DataFormatError(
            f"{base} holds no devkit/ folder: point data.cars at the folder holding {FOLDER}/ (or at {FOLDER} "
            "itself), where the release's car_devkit.tgz, cars_train.tgz and cars_test.tgz are extracted"
        )
    return base


def check_layout(root: Path) -> None:
    """Reads both splits as the worker will, every listed image known to exist."""
    for split in SPLITS:
        read(root, split)


def read(root: Path, split: str, seed: int = 0) -> Examples:
    """The split's images (the official split: ``seed`` chooses nothing), in the annotations' order; errors name the
    .mat file and the annotation: a field missing, a class outside cars_meta.mat's, an image listed twice or not on
    disk, a file that lists none."""
    if split not in SPLITS:
        raise ValueError(f"Stanford Cars has no split {split!r}; choose one of {', '.join(SPLITS)}")
    base = base_dir(root)
    classes = _classes(base / META)
    annotations_file = base / ANNOTATIONS[split]
    annotations = _load(annotations_file, "annotations", f"Stanford Cars {ANNOTATIONS[split]}")
    missing = [field for field in FIELDS if field not in (annotations.dtype.names or ())]
    if missing:
        raise DataFormatError(
            f"{annotations_file}: 'annotations' is not a struct array with the fields {', '.join(FIELDS)} (it lacks "
            f"{', '.join(missing)}); is it the release's file?"
        )
    paths, targets, first_seen = [], [], {}
    for number, annotation in enumerate(annotations, start=1):
        where = f"{annotations_file}: annotation {number}"
        fname, label = _scalar(annotation["fname"]), _scalar(annotation["class"])
        if not isinstance(fname, str) or not fname or "/" in fname:
            raise DataFormatError(f"{where}: fname {fname!r} is not the name of an image of {IMAGES[split]}/")
        if not isinstance(label, int) or not 1 <= label <= len(classes):
            raise DataFormatError(
                f"{where} ({fname}): class {label!r} is not a class number from 1 to {len(classes)} (the classes of "
                f"{META})"
            )
        if fname in first_seen:
            raise DataFormatError(
                f"{where}: {fname} is listed again (first as annotation {first_seen[fname]}); list each image once"
            )
        first_seen[fname] = number
        path = f"{IMAGES[split]}/{fname}"
        if not (base / path).is_file():
            raise DataFormatError(f"{where}: the image {base / path} is missing; re-extract {IMAGES[split]}.tgz")
        paths.append(path)
        targets.append(int(label) - 1)
    if not paths:
        raise DataFormatError(f"{annotations_file} lists no images")
    return Examples(base, paths, targets, classes)


def _load(path: Path, key: str, what: str) -> np.ndarray:
    """The variable ``key`` of a .mat file, as a flat array (torchvision's ``squeeze_me`` reading)."""
    require_file(path, what)
    try:
        contents = scipy.io.loadmat(path, squeeze_me=True)
    except Exception as error:  # scipy raises ValueError, TypeError, MatReadError ... for a file it cannot parse
        raise DataFormatError(
            f"{path} is not a MATLAB file that scipy.io.loadmat reads ({error}); re-extract it from the release"
        ) from None
    if key not in contents:
        raise DataFormatError(f"{path} holds no variable {key!r} (it holds {', '.join(sorted(contents)) or 'none'})")
    return np.atleast_1d(contents[key]).ravel()


def _scalar(value):
    """A field of one annotation: an int (a whole number of any type), another number, a string, or None (an empty or
    longer MATLAB array)."""
    value = np.asarray(value)
    if value.size != 1:
        return None
    value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _classes(meta: Path) -> list[str]:
    names = _load(meta, "class_names", f"Stanford Cars {META}")
    if not names.size:
        raise DataFormatError(f"{meta}: class_names lists no classes")
    classes = []
    for number, name in enumerate(names, start=1):
        name = _scalar(name)
        if not isinstance(name, str) or not name.strip():
            raise DataFormatError(f"{meta}: class name {number} ({name!r}) is not a string; is it the release's file?")
        classes.append(name)
    return classes


# The synthetic twin ----------------------------------------------------------------------------------------------


SCALES = {"tiny": TrainTestScale(4, 32, 6, 4), "default": TrainTestScale(10, 64, 30, 12)}


@GENERATORS.register("cars")
def ensure(scale: str = "default", seed: int = 0, workers: int | None = None) -> Path:
    """A synthetic folder holding stanford_cars/ of this scale and seed, generated on first use."""
    return ensure_dataset("stanford_cars", SCALES, scale, seed, generate, workers)


def generate(out: Path, scale: TrainTestScale, seed: int, workers: int | None = None) -> dict:
    classes = CLASSES[: scale.classes]
    if len(classes) < scale.classes:
        raise ValueError(f"the synthetic Stanford Cars names at most {len(CLASSES)} classes (CLASSES)")
    cars = looks_under(["car.n.01"])
    base = out / FOLDER
    (base / "devkit").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    tasks = []
    numbers = {}
    for split, per_class in (("train", scale.train_per_class), ("test", scale.test_per_class)):
        (base / IMAGES[split]).mkdir()
        # The release numbers each split's images 00001.jpg, ... with the classes mixed.
        numbers[split] = rng.permutation(np.arange(1, scale.classes * per_class + 1)).reshape(scale.classes, per_class)
    for label, _ in enumerate(classes):
        files = [(IMAGES[split], int(n)) for split in SPLITS for n in numbers[split][label]]
        tasks.append((base, scale, seed, label, cars[label % len(cars)], files))
    boxes = dict(item for items in run_parallel(_write_class, tasks, "synthetic Stanford Cars classes", workers)
                 for item in items)  # fmt: skip
    _save_struct(base / META, "class_names", None, classes)
    for split in SPLITS:
        records = [(*boxes[IMAGES[split], int(n)], label + 1, f"{int(n):05d}.jpg")
                   for label, row in enumerate(numbers[split]) for n in row]  # fmt: skip
        _save_struct(base / ANNOTATIONS[split], "annotations", sorted(records, key=lambda record: record[-1]), None)
    return {"dataset": "cars", "classes": len(classes), "train_images": scale.classes * scale.train_per_class,
            "test_images": scale.classes * scale.test_per_class, "seed": seed}  # fmt: skip


def _save_struct(path: Path, key: str, records: list | None, names: list[str] | None) -> None:
    """A .mat file as the release's: ``names`` as a 1 x N cell of strings, or ``records`` as a 1 x N struct array."""
    if names is not None:
        value = np.empty((1, len(names)), dtype=object)
        value[0, :] = names
    else:
        value = np.empty((1, len(records)), dtype=[(field, object) for field in FIELDS])
        for column, (*numbers, fname) in enumerate(records):
            value[0, column] = (*(np.uint16(number) for number in numbers), fname)
    scipy.io.savemat(path, {key: value})


def _write_class(task) -> list[tuple[tuple[str, int], tuple[int, int, int, int]]]:
    """Draws one class's images; their boxes (x1, y1, x2, y2, one-based pixels as the release's) by file."""
    base, scale, seed, label, look, files = task
    rng = np.random.default_rng([seed, label])
    boxes = []
    for folder, number in files:
        image, box = object_image(look, scale.image_size, rng)
        Image.fromarray(image).save(base / folder / f"{number:05d}.jpg", quality=90)
        box = box or (0, 0, scale.image_size - 1, scale.image_size - 1)
        boxes.append(((folder, number), tuple(coordinate + 1 for coordinate in box)))
    return boxes


register(
    Task(
        name="cars",
        dataset="cars",
        protocol="finetune",
        metric="top1",
        check_layout=check_layout,
        description="Stanford Cars models, train -> test; top-1",
        read=read,
        splits=SPLITS,
        validation=None,
        evaluate=lambda scores, labels: {"top1": top1(scores, labels)},
    )
)
