"""CIFAR-10 (Krizhevsky 2009), one of Kornblith et al.'s twelve datasets: 32 x 32 photos of 10 classes, the official
train -> test split (5,000 / 1,000 images per class), top-1 accuracy. A whole task in one file: its on-disk format
(read by ``formats.cifar``, shared with CIFAR-100), its synthetic twin and its registration.

    cifar-10-batches-py/data_batch_{1..5}   10,000 training images each, a pickled dict: 'data' (uint8 [N, 3072], a
                                            row per image: its red, green and blue 32 x 32 planes), 'labels',
                                            'batch_label', 'filenames'
    cifar-10-batches-py/test_batch          the 10,000 test images, alike
    cifar-10-batches-py/batches.meta        'label_names': the 10 classes in label order

``data.cifar10`` is the folder holding cifar-10-batches-py/ (torchvision's root) or that folder itself. Training
reads images from files, so the first read on a machine extracts every image once as a PNG: a split's examples are
``train/00017.png`` ... under the extracted folder, numbered in the order of the batches, as torchvision's CIFAR10
indexes them. CIFAR-10 has no validation split: ``tasks.selection_splits`` holds out a fifth of each training class.

The synthetic CIFAR-10 has the real layout (five training batches, protocol-2 pickles) and the real 10 classes, each
drawn with the look of one of ImageNet-1k's classes under a related WordNet synset (an airplane is an airliner or a
warplane, a deer an antelope), so ImageNet features transfer to it.
"""

from pathlib import Path

from formats.cifar import CIFAR10, ROW, read_split, write_pickle, write_split
from synthetic import GENERATORS, ensure_dataset
from synthetic.cifar import Scale, draw_splits
from synthetic.scenes import distinct_looks
from tasks import Examples, Task, register
from tasks.metrics import top1

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# Each class's own WordNet synset, then related ones: its look is one of the ImageNet-1k classes under them.
LOOKS = {
    "airplane": ("airplane.n.01", "warplane.n.01"),
    "automobile": ("car.n.01",),
    "bird": ("bird.n.01",),
    "cat": ("domestic_cat.n.01",),
    "deer": ("deer.n.01", "antelope.n.01"),
    "dog": ("dog.n.01",),
    "frog": ("frog.n.01",),
    "horse": ("horse.n.01", "equine.n.01"),
    "ship": ("ship.n.01",),
    "truck": ("truck.n.01",),
}


def check_layout(root: Path) -> None:
    """Reads both splits as the worker will: every pickle present and well-formed, every image extracted."""
    for split in ("train", "test"):
        read(root, split)


def read(root: Path, split: str, seed: int = 0) -> Examples:
    """The split's images (``train`` or ``test``) as PNG files extracted once; errors name the file: a missing
    root, batch or batches.meta, a truncated or corrupt pickle, rows that are not 3072 uint8 values, a label
    outside the classes."""
    folder, paths, targets, classes = read_split(root, split, CIFAR10)
    return Examples(folder, paths, targets, classes)


# The synthetic twin ----------------------------------------------------------------------------------------------


SCALES = {"tiny": Scale(10, 5, 2), "default": Scale(10, 40, 10)}


@GENERATORS.register("cifar10")
def ensure(scale: str = "default", seed: int = 0, workers: int | None = None) -> Path:
    """A synthetic CIFAR-10 root (holding cifar-10-batches-py/) of this scale and seed, generated on first use."""
    return ensure_dataset("cifar-10", SCALES, scale, seed, generate, workers)


def generate(out: Path, scale: Scale, seed: int, workers: int | None = None) -> dict:
    classes = CLASSES[: scale.classes]
    looks = distinct_looks([LOOKS[name] for name in classes])
    splits = draw_splits(scale, seed, classes, looks, "synthetic CIFAR-10 classes", workers)
    folder = out / CIFAR10.folder
    folder.mkdir(parents=True)
    for split, (images, labels, filenames) in splits.items():
        write_split(folder, CIFAR10, split, images, labels, filenames)
    batch_size = scale.classes * scale.train_per_class // len(CIFAR10.files["train"])
    write_pickle(folder / CIFAR10.meta, {"num_cases_per_batch": batch_size, "label_names": classes, "num_vis": ROW})
    return {"dataset": "cifar10", "classes": len(classes), "train_images": scale.classes * scale.train_per_class,
            "test_images": scale.classes * scale.test_per_class, "seed": seed}  # fmt: skip


register(
    Task(
        name="cifar10",
        dataset="cifar10",
        protocol="finetune",
        metric="top1",
        check_layout=check_layout,
        description="CIFAR-10 objects at 32 px, train -> test; top-1",
        read=read,
        splits=("train", "test"),
        validation=None,
        evaluate=lambda scores, labels: {"top1": top1(scores, labels)},
    )
)
