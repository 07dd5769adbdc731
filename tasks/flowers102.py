"""Oxford 102 Flowers (Nilsback and Zisserman 2008), one of Kornblith et al.'s twelve datasets: 102 flowers, the
official train / val / test split (10 + 10 images of each flower, the rest, 20 to 238, to test; train + val is the
official trainval), mean per-class accuracy. A whole task in one file: its on-disk format, its synthetic twin and its
registration.

    flowers-102/jpg/image_<5-digit id>.jpg    ids 1..N
    flowers-102/imagelabels.mat               labels: the flower (1..102) of image 1..N, in id order
    flowers-102/setid.mat                     trnid, valid, tstid: the image ids of train, val and test

``data.flowers102`` is the flowers-102 folder (the release's 102flowers.tgz, giving jpg/, with the two .mat files
beside it) or the folder holding it (torchvision's ``Flowers102`` root). Targets are the labels less one; the class
names, which the release does not hold, are torchvision's (label order), as many as the highest label.

The synthetic Flowers 102 has the real layout (image ids shuffled across flowers, as the real ones are) and labels
1..K for the first K flowers; each flower is drawn with the look of one of ImageNet-1k's flowers and plant parts
(daisy, yellow lady's slipper, rapeseed, hips, buckeyes, fruits: the classes under flower.n.01 and plant_part.n.01)
and, once those are used up, as a variant of one with its own markings, so ImageNet features transfer to it.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from formats import GENERATE_HINT, DataFormatError, require_file
from synthetic import GENERATORS, ensure_dataset, run_parallel
from synthetic.scenes import class_look, looks_under, save_object_images
from tasks import Examples, Task, register
from tasks.metrics import mean_per_class_and_top1

CLASSES = """pink primrose|hard-leaved pocket orchid|canterbury bells|sweet pea|english marigold|tiger lily|moon orchid|
bird of paradise|monkshood|globe thistle|snapdragon|colt's foot|king protea|spear thistle|yellow iris|
globe-flower|purple coneflower|peruvian lily|balloon flower|giant white arum lily|fire lily|pincushion flower|
fritillary|red ginger|grape hyacinth|corn poppy|prince of wales feathers|stemless gentian|artichoke|
sweet william|carnation|garden phlox|love in the mist|mexican aster|alpine sea holly|ruby-lipped cattleya|
cape flower|great masterwort|siam tulip|lenten rose|barbeton daisy|daffodil|sword lily|poinsettia|
bolero deep blue|wallflower|marigold|buttercup|oxeye daisy|common dandelion|petunia|wild pansy|primula|
sunflower|pelargonium|bishop of llandaff|gaura|geranium|orange dahlia|pink-yellow dahlia?|cautleya spicata|
japanese anemone|black-eyed susan|silverbush|californian poppy|osteospermum|spring crocus|bearded iris|
windflower|tree poppy|gazania|azalea|water lily|rose|thorn apple|morning glory|passion flower|lotus|toad lily|
anthurium|frangipani|clematis|hibiscus|columbine|desert-rose|tree mallow|magnolia|cyclamen|watercress|
canna lily|hippeastrum|bee balm|ball moss|foxglove|bougainvillea|camellia|mallow|mexican petunia|bromelia|
blanket flower|trumpet creeper|blackberry lily""".replace("\n", "").split("|")
FOLDER = "flowers-102"
SPLIT_KEYS = {"train": "trnid", "val": "valid", "test": "tstid"}  # the split's variable in setid.mat


def dataset_dir(root: Path) -> Path:
    """The flowers-102 folder: ``root`` itself or its flowers-102 sub-folder."""
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(
            f"Flowers 102 root {root} does not exist. Point data.flowers102 at the {FOLDER} folder (holding jpg/, "
            f"imagelabels.mat and setid.mat) or the folder holding it, or {GENERATE_HINT}."
        )
    return root / FOLDER if (root / FOLDER).is_dir() else root


def check_layout(root: Path) -> None:
    """Reads the three splits as the worker will, every listed image known to exist."""
    for split in SPLIT_KEYS:
        read(root, split)


def read(root: Path, split: str, seed: int = 0) -> Examples:
    """The split's images; errors name the file and variable: a label that is no flower 1..102, an id listed twice
    or not labelled, an image not on disk, a split that lists none."""
    if split not in SPLIT_KEYS:
        raise ValueError(f"unknown Flowers 102 split {split!r}; choose one of {', '.join(SPLIT_KEYS)}")
    folder = dataset_dir(root)
    label_file, set_file, key = folder / "imagelabels.mat", folder / "setid.mat", SPLIT_KEYS[split]
    labels = _integers(label_file, "labels")
    wrong = np.flatnonzero((labels < 1) | (labels > len(CLASSES)))
    if wrong.size:
        position = wrong[0]
        raise DataFormatError(
            f"{label_file}: labels[{position}] (image {position + 1}) is {labels[position]}, not a flower 1.."
            f"{len(CLASSES)}; re-download imagelabels.mat"
        )
    paths, targets, first_seen = [], [], {}
    for position, image_id in enumerate(_integers(set_file, key).tolist()):
        if not 1 <= image_id <= len(labels):
            raise DataFormatError(
                f"{set_file}: {key}[{position}] is image {image_id}, but {label_file} labels images 1..{len(labels)}; "
                "re-download setid.mat and imagelabels.mat together"
            )
        if image_id in first_seen:
            raise DataFormatError(
                f"{set_file}: {key}[{position}] lists image {image_id} again (first at {key}[{first_seen[image_id]}]); "
                "list each image once"
            )
        first_seen[image_id] = position
        path = f"jpg/image_{image_id:05d}.jpg"
        if not (folder / path).is_file():
            raise DataFormatError(f"{set_file}: {key}[{position}]: the image {folder / path} is missing; re-extract "
                                  "102flowers.tgz into jpg/")  # fmt: skip
        paths.append(path)
        targets.append(int(labels[image_id - 1]) - 1)
    if not paths:
        raise DataFormatError(f"{set_file}: {key} lists no images")
    return Examples(folder, paths, targets, CLASSES[: int(labels.max())])


def _integers(path: Path, key: str) -> np.ndarray:
    """The whole numbers of the variable ``key`` of a MATLAB file, flattened."""
    from scipy.io import loadmat

    require_file(path, f"Flowers 102 {path.name} (is data.flowers102 the {FOLDER} folder or the folder holding it?)")
    try:
        variables = loadmat(path)
    except Exception as error:  # scipy raises several kinds for a file that is not MATLAB's
        raise DataFormatError(f"{path} is not a MATLAB .mat file ({error}); re-download {path.name}") from None
    if key not in variables:
        held = ", ".join(sorted(name for name in variables if not name.startswith("__"))) or "none"
        raise DataFormatError(f"{path} holds no variable {key!r} (it holds {held}); re-download {path.name}")
    values = np.asarray(variables[key]).ravel()
    if values.size == 0:
        raise DataFormatError(f"{path}: {key} is empty; re-download {path.name}")
    if values.dtype.kind not in "iuf" or not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
        raise DataFormatError(f"{path}: {key} holds {values.dtype} values that are not whole numbers; re-download "
                              f"{path.name}")  # fmt: skip
    return values.astype(np.int64)


# The synthetic twin ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    classes: int
    image_size: int
    train_per_class: int  # and as many to val (the real: 10 each)
    test_per_class: tuple[int, int]  # the fewest and most (the real: 20..238)


SCALES = {"tiny": Scale(5, 32, 2, (2, 4)), "default": Scale(20, 64, 14, (12, 16))}


@GENERATORS.register("flowers102")
def ensure(scale: str = "default", seed: int = 0, workers: int | None = None) -> Path:
    """A synthetic flowers-102 folder of this scale and seed, generated on first use."""
    return ensure_dataset(FOLDER, SCALES, scale, seed, generate, workers)


def generate(out: Path, scale: Scale, seed: int, workers: int | None = None) -> dict:
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    tests = rng.integers(scale.test_per_class[0], scale.test_per_class[1] + 1, scale.classes)
    counts = 2 * scale.train_per_class + tests
    ids = np.split(rng.permutation(int(counts.sum())) + 1, np.cumsum(counts)[:-1])  # real ids mix the flowers
    flowers = looks_under(["flower.n.01"]) + looks_under(["plant_part.n.01"])
    (out / "jpg").mkdir(parents=True)
    run_parallel(_write_class, [(out, scale, seed, number, flowers, ids[number]) for number in range(scale.classes)],
                 "synthetic Flowers 102 flowers", workers)  # fmt: skip
    labels = np.zeros(int(counts.sum()), dtype=np.uint8)
    for number, class_ids in enumerate(ids):
        labels[class_ids - 1] = number + 1
    savemat(out / "imagelabels.mat", {"labels": labels[None]})
    train = scale.train_per_class
    splits = {key: np.sort(np.concatenate([class_ids[part] for class_ids in ids])).astype(np.uint16)[None]
              for key, part in (("trnid", slice(train)), ("valid", slice(train, 2 * train)),
                                ("tstid", slice(2 * train, None)))}  # fmt: skip
    savemat(out / "setid.mat", splits)
    return {"dataset": "flowers102", "classes": scale.classes, "imagenet_flower_looks": len(flowers),
            "images": int(counts.sum()), "seed": seed}  # fmt: skip


def _write_class(task) -> None:
    out, scale, seed, number, looks, ids = task
    rng = np.random.default_rng([seed, number])
    look = class_look(looks, number, rng)
    save_object_images((out / "jpg" / f"image_{image_id:05d}.jpg" for image_id in ids), look, scale.image_size, rng)


register(
    Task(
        name="flowers102",
        dataset="flowers102",
        protocol="finetune",
        metric="mean_per_class",
        check_layout=check_layout,
        description="Oxford 102 Flowers, train (val: the official val) -> test; mean per-class accuracy",
        read=read,
        splits=("train", "test"),
        validation="val",
        evaluate=mean_per_class_and_top1,
    )
)
