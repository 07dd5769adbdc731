"""Food-101 (Bossard et al. 2014), one of Kornblith et al.'s twelve datasets: 101 dishes, the official train -> test
split (750 / 250 images per class), top-1 accuracy. A whole task in one file: its on-disk format, its synthetic
twin and its registration.

    food-101/images/<class>/<id>.jpg
    food-101/meta/classes.txt          one class per line, in label order
    food-101/meta/{train,test}.txt     "<class>/<id>" per line, no extension

The synthetic Food-101 has the real layout and the first classes' real names; each dish is drawn with the look of
one of ImageNet-1k's foods (the classes under food.n.01 and food.n.02), so ImageNet features transfer to it.
"""

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from formats import GENERATE_HINT, DataFormatError, listed_images, read_lines, read_names
from synthetic import GENERATORS, TrainTestScale, ensure_dataset, run_parallel
from synthetic.scenes import looks_under, save_object_images
from tasks import Examples, Task, register
from tasks.metrics import top1

CLASSES = """apple_pie baby_back_ribs baklava beef_carpaccio beef_tartare beet_salad beignets bibimbap bread_pudding
breakfast_burrito bruschetta caesar_salad cannoli caprese_salad carrot_cake ceviche cheese_plate cheesecake
chicken_curry chicken_quesadilla chicken_wings chocolate_cake chocolate_mousse churros clam_chowder club_sandwich
crab_cakes creme_brulee croque_madame cup_cakes deviled_eggs donuts dumplings edamame eggs_benedict escargots falafel
filet_mignon fish_and_chips foie_gras french_fries french_onion_soup french_toast fried_calamari fried_rice
frozen_yogurt garlic_bread gnocchi greek_salad grilled_cheese_sandwich grilled_salmon guacamole gyoza hamburger
hot_and_sour_soup hot_dog huevos_rancheros hummus ice_cream lasagna lobster_bisque lobster_roll_sandwich
macaroni_and_cheese macarons miso_soup mussels nachos omelette onion_rings oysters pad_thai paella pancakes
panna_cotta peking_duck pho pizza pork_chop poutine prime_rib pulled_pork_sandwich ramen ravioli red_velvet_cake
risotto samosa sashimi scallops seaweed_salad shrimp_and_grits spaghetti_bolognese spaghetti_carbonara spring_rolls
steak strawberry_shortcake sushi tacos takoyaki tiramisu tuna_tartare waffles""".split()


def meta_dir(root: Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(
            f"Food-101 root {root} does not exist. Point data.food101 at the food-101 folder (holding images/ and "
            f"meta/), or {GENERATE_HINT}."
        )
    return root / "meta"


def check_layout(root: Path) -> None:
    """Reads both splits as the worker will, every listed image known to exist."""
    for split in ("train", "test"):
        read(root, split)


def read(root: Path, split: str, seed: int = 0) -> Examples:
    """The split's images; errors name the file and line: a class or image listed twice, a line that is not
    ``<class>/<id>``, an image not on disk, a file that lists none."""
    meta = meta_dir(root)
    classes = read_names(meta / "classes.txt", "Food-101 meta/classes.txt")
    index = {name: i for i, name in enumerate(classes)}
    listing = meta / f"{split}.txt"
    lines = read_lines(listing, f"Food-101 meta/{split}.txt")
    paths, targets = listed_images(listing, _rows(listing, lines, index), Path(root), "Food-101")
    return Examples(Path(root), paths, targets, classes)


def _rows(listing: Path, lines: list[tuple[int, str]], index: dict[str, int]) -> Iterator[tuple[int, str, str, int]]:
    for number, line in lines:
        dish, _, image_id = line.partition("/")
        if dish not in index or not image_id or "/" in image_id:
            raise DataFormatError(f"{listing}:{number}: {line!r} is not '<class>/<id>' with a class of classes.txt")
        yield number, line, f"images/{line}.jpg", index[dish]


# The synthetic twin ----------------------------------------------------------------------------------------------


SCALES = {"tiny": TrainTestScale(10, 32, 6, 4), "default": TrainTestScale(20, 64, 30, 20)}


@GENERATORS.register("food101")
def ensure(scale: str = "default", seed: int = 0, workers: int | None = None) -> Path:
    """A synthetic food-101 folder of this scale and seed, generated on first use."""
    return ensure_dataset("food-101", SCALES, scale, seed, generate, workers)


def generate(out: Path, scale: TrainTestScale, seed: int, workers: int | None = None) -> dict:
    classes = CLASSES[:: len(CLASSES) // scale.classes][: scale.classes]
    foods = looks_under(["food.n.01", "food.n.02"])
    tasks = [(out, scale, seed, number, dish, foods[number % len(foods)]) for number, dish in enumerate(classes)]
    (out / "meta").mkdir(parents=True)
    splits = run_parallel(_write_class, tasks, "synthetic Food-101 classes", workers)
    (out / "meta" / "classes.txt").write_text("".join(f"{dish}\n" for dish in classes))
    for index, split in enumerate(("train", "test")):
        (out / "meta" / f"{split}.txt").write_text("".join(f"{line}\n" for lines in splits for line in lines[index]))
    return {"dataset": "food101", "classes": len(classes), "imagenet_food_looks": len(foods),
            "train_images": scale.classes * scale.train_per_class, "seed": seed}  # fmt: skip


def _write_class(task) -> tuple[list[str], list[str]]:
    out, scale, seed, number, dish, look = task
    rng = np.random.default_rng([seed, number])
    folder = out / "images" / dish
    folder.mkdir(parents=True)
    ids = rng.choice(10**7, scale.train_per_class + scale.test_per_class, replace=False)
    save_object_images((folder / f"{image_id}.jpg" for image_id in ids), look, scale.image_size, rng)
    lines = [f"{dish}/{image_id}" for image_id in ids]
    return lines[: scale.train_per_class], lines[scale.train_per_class :]


register(
    Task(
        name="food101",
        dataset="food101",
        protocol="finetune",
        metric="top1",
        check_layout=check_layout,
        description="Food-101 dishes, train -> test; top-1",
        read=read,
        evaluate=lambda scores, labels: {"top1": top1(scores, labels)},
    )
)
