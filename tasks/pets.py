"""Oxford-IIIT Pets (Parkhi et al. 2012), one of Kornblith et al.'s twelve datasets: 37 cat and dog breeds, the
official trainval -> test split (about 100 images per class each), mean per-class accuracy. A whole task in one file:
its on-disk format, its synthetic twin and its registration.

    oxford-iiit-pet/images/<Breed_name>_<n>.jpg
    oxford-iiit-pet/annotations/{trainval,test}.txt   "<image> <class id 1..37> <species 1 cat, 2 dog> <breed id>"

as the release's images.tar.gz and annotations.tar.gz extract, and as torchvision's OxfordIIITPet reads it (its root
is the folder holding oxford-iiit-pet/; either that folder or oxford-iiit-pet itself is accepted here). Class ``k``
is class id ``k + 1``; its name is the breed part of its images' names as torchvision writes it ("american_pit_bull_
terrier_12" -> "American Pit Bull Terrier"). The class list comes from both listings, so that both splits share it;
the ids must run from 1 without a gap.

The synthetic Pets has the real layout, the first classes' real names and ids, and draws each breed with the look of
one of ImageNet-1k's cats (under domestic_cat.n.01) or dogs (under dog.n.01), so ImageNet features transfer to it.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from formats import GENERATE_HINT, DataFormatError, read_lines
from synthetic import GENERATORS, ensure_dataset, run_parallel
from synthetic.scenes import looks_under, save_object_images
from tasks import Examples, Task, register
from tasks.metrics import mean_per_class_and_top1

FOLDER = "oxford-iiit-pet"
SPLITS = ("trainval", "test")

# The breeds in class-id order (ids 1..37; the release's names: cats capitalised, dogs not).
BREEDS = """Abyssinian american_bulldog american_pit_bull_terrier basset_hound beagle Bengal Birman Bombay boxer
British_Shorthair chihuahua Egyptian_Mau english_cocker_spaniel english_setter german_shorthaired great_pyrenees
havanese japanese_chin keeshond leonberger Maine_Coon miniature_pinscher newfoundland Persian pomeranian pug Ragdoll
Russian_Blue saint_bernard samoyed scottish_terrier shiba_inu Siamese Sphynx staffordshire_bull_terrier
wheaten_terrier yorkshire_terrier""".split()

# The ImageNet-1k class whose look the synthetic twin gives each of its breeds (the closest one under
# domestic_cat.n.01 or dog.n.01).
BREED_LOOKS = {
    "Abyssinian": "egyptian_cat.n.01",
    "american_bulldog": "french_bulldog.n.01",
    "american_pit_bull_terrier": "american_staffordshire_terrier.n.01",
    "basset_hound": "basset.n.01",
    "beagle": "beagle.n.01",
    "Bengal": "tiger_cat.n.02",
    "Birman": "siamese_cat.n.01",
    "Bombay": "tabby.n.01",
    "boxer": "boxer.n.04",
    "British_Shorthair": "persian_cat.n.01",
}


def class_name(breed: str) -> str:
    """torchvision's name of a breed: "american_pit_bull_terrier" -> "American Pit Bull Terrier"."""
    return " ".join(part.title() for part in breed.split("_"))


def base_dir(root: Path) -> Path:
    """The oxford-iiit-pet folder: ``root`` itself or its oxford-iiit-pet/ (torchvision's root)."""
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(
            f"Oxford-IIIT Pets root {root} does not exist. Point data.pets at the folder holding {FOLDER}/ (or at "
            f"{FOLDER} itself, holding images/ and annotations/), or {GENERATE_HINT}."
        )
    base = root / FOLDER if (root / FOLDER).is_dir() else root
    if not (base / "annotations").is_dir():
        raise DataFormatError(
            f"{base} holds no annotations/ folder: point data.pets at the folder holding {FOLDER}/ (or at {FOLDER} "
            "itself), where images.tar.gz and annotations.tar.gz of the release are extracted"
        )
    return base


def check_layout(root: Path) -> None:
    """Reads both splits as the worker will, every listed image known to exist."""
    for split in SPLITS:
        read(root, split)


def read(root: Path, split: str, seed: int = 0) -> Examples:
    """The split's images (the official split: ``seed`` chooses nothing); errors name the file and line: a line that
    is not ``<image> <class id> <species> <breed id>``, an image listed twice, a class id whose images name two
    breeds, class ids with a gap, an image not on disk, a file that lists none."""
    if split not in SPLITS:
        raise ValueError(f"Oxford-IIIT Pets has no split {split!r}; choose one of {', '.join(SPLITS)}")
    base = base_dir(root)
    listings = {name: _listing(base, name) for name in SPLITS}
    classes = _classes(base, listings)
    paths, targets = [], []
    for number, image, class_id in listings[split]:
        path = f"images/{image}.jpg"
        if not (base / path).is_file():
            raise DataFormatError(
                f"{_file(base, split)}:{number}: the image {base / path} is missing; re-extract images.tar.gz of "
                "Oxford-IIIT Pets"
            )
        paths.append(path)
        targets.append(class_id - 1)
    return Examples(base, paths, targets, classes)


def _file(base: Path, split: str) -> Path:
    return base / "annotations" / f"{split}.txt"


def _listing(base: Path, split: str) -> list[tuple[int, str, int]]:
    """(line number, image name, class id) of each line of annotations/<split>.txt."""
    listing = _file(base, split)
    rows, first_seen = [], {}
    for number, line in read_lines(listing, f"Oxford-IIIT Pets annotations/{split}.txt"):
        if line.startswith("#"):  # list.txt's header; the split files have none
            continue
        fields = line.split()
        if len(fields) != 4 or not all(field.isdigit() and int(field) > 0 for field in fields[1:]):
            raise DataFormatError(
                f"{listing}:{number}: {line!r} is not '<image> <class id> <species> <breed id>' (positive numbers, "
                "as in the release's annotations); re-extract annotations.tar.gz"
            )
        image, class_id = fields[0], int(fields[1])
        if "_" not in image or "/" in image:
            raise DataFormatError(f"{listing}:{number}: {image!r} is not an image name '<Breed_name>_<number>'")
        if image in first_seen:
            raise DataFormatError(
                f"{listing}:{number}: {image} is listed again (first on line {first_seen[image]}); list each image once"
            )
        first_seen[image] = number
        rows.append((number, image, class_id))
    if not rows:
        raise DataFormatError(f"{listing} lists no images")
    return rows


def _classes(base: Path, listings: dict) -> list[str]:
    """The class names in id order, from the breeds that both listings' images name."""
    breeds = {}  # class id -> (breed, where first seen)
    for split, rows in listings.items():
        for number, image, class_id in rows:
            breed = image.rsplit("_", 1)[0]
            seen = breeds.setdefault(class_id, (breed, f"{_file(base, split)}:{number}"))
            if seen[0] != breed:
                raise DataFormatError(
                    f"{_file(base, split)}:{number}: {image} has class id {class_id}, which {seen[1]} gives breed "
                    f"{seen[0]}; each class id names one breed"
                )
    missing = sorted(set(range(1, max(breeds) + 1)) - set(breeds))
    if missing:
        raise DataFormatError(
            f"{base / 'annotations'}: class id(s) {', '.join(map(str, missing[:5]))} are listed in neither "
            f"trainval.txt nor test.txt, though ids up to {max(breeds)} are; class ids run from 1 without a gap"
        )
    return [class_name(breeds[class_id][0]) for class_id in range(1, max(breeds) + 1)]


# The synthetic twin ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    classes: int
    image_size: int
    trainval_per_class: int
    test_per_class: int


SCALES = {"tiny": Scale(4, 32, 10, 4), "default": Scale(10, 64, 30, 12)}


@GENERATORS.register("pets")
def ensure(scale: str = "default", seed: int = 0, workers: int | None = None) -> Path:
    """A synthetic folder holding oxford-iiit-pet/ of this scale and seed, generated on first use."""
    return ensure_dataset("pets", SCALES, scale, seed, generate, workers)


def generate(out: Path, scale: Scale, seed: int, workers: int | None = None) -> dict:
    breeds = BREEDS[: scale.classes]
    if any(breed not in BREED_LOOKS for breed in breeds):
        raise ValueError(f"the synthetic Pets draws at most {len(BREED_LOOKS)} breeds (BREED_LOOKS)")
    base = out / FOLDER
    (base / "images").mkdir(parents=True)
    (base / "annotations").mkdir()
    tasks = [(base, scale, seed, class_id, breed, looks_under([BREED_LOOKS[breed]])[0])
             for class_id, breed in enumerate(breeds, start=1)]  # fmt: skip
    splits = run_parallel(_write_class, tasks, "synthetic Oxford-IIIT Pets classes", workers)
    for index, split in enumerate(SPLITS):
        (base / "annotations" / f"{split}.txt").write_text("".join(line for lines in splits for line in lines[index]))
    header = "".join(f"#{line}\n" for line in ("Image CLASS-ID SPECIES BREED ID", "ID: 1:37 Class ids",
                                                   "SPECIES: 1:Cat 2:Dog", "BREED ID: 1-12:Cat 1-25:Dog"))  # fmt: skip
    everything = sorted((line for lines in splits for line in lines[0] + lines[1]), key=str.lower)
    (base / "annotations" / "list.txt").write_text(header + "".join(everything))
    return {"dataset": "pets", "classes": len(breeds), "trainval_images": scale.classes * scale.trainval_per_class,
            "test_images": scale.classes * scale.test_per_class, "seed": seed}  # fmt: skip


def _write_class(task) -> tuple[list[str], list[str]]:
    base, scale, seed, class_id, breed, look = task
    rng = np.random.default_rng([seed, class_id])
    cat = breed[0].isupper()  # the release capitalises the cats' breeds
    breed_id = sum(other[0].isupper() == cat for other in BREEDS[:class_id])
    count = scale.trainval_per_class + scale.test_per_class
    numbers = rng.permutation(np.arange(1, count + 1))  # the release numbers each breed's images 1, 2, ...
    save_object_images((base / "images" / f"{breed}_{number}.jpg" for number in numbers), look, scale.image_size, rng)
    line = lambda number: f"{breed}_{number} {class_id} {1 if cat else 2} {breed_id}\n"  # noqa: E731
    return [line(n) for n in sorted(numbers[: scale.trainval_per_class])], [
        line(n) for n in sorted(numbers[scale.trainval_per_class :])
    ]


register(
    Task(
        name="pets",
        dataset="pets",
        protocol="finetune",
        metric="mean_per_class",
        check_layout=check_layout,
        description="Oxford-IIIT Pets breeds, trainval -> test; mean per-class accuracy",
        read=read,
        splits=SPLITS,
        validation=None,
        evaluate=mean_per_class_and_top1,
    )
)
