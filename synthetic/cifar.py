"""What the synthetic CIFAR-10 and CIFAR-100 share: each class's 32 x 32 images, shuffled into the release's splits."""

from dataclasses import dataclass

import numpy as np

from formats.cifar import SIDE
from synthetic import run_parallel
from synthetic.render import Look, object_image


@dataclass(frozen=True)
class Scale:
    classes: int
    train_per_class: int
    test_per_class: int


def draw_splits(
    scale: Scale, seed: int, classes: list[str], looks: list[Look], desc: str, workers: int | None = None
) -> dict[str, tuple[np.ndarray, list[int], list[str]]]:
    """Each split's (images, labels, file names), ``scale.train_per_class`` and ``scale.test_per_class`` images of
    each class, drawn with its look."""
    tasks = [(scale, seed, number, name, look) for number, (name, look) in enumerate(zip(classes, looks))]
    drawn = run_parallel(_draw_class, tasks, desc, workers)
    rng = np.random.default_rng([seed, len(classes)])
    splits = {}
    for index, split in enumerate(("train", "test")):  # the release's images are in no order of class
        images = np.concatenate([class_splits[index][0] for class_splits in drawn])
        labels = [label for class_splits in drawn for label in class_splits[index][1]]
        filenames = [name for class_splits in drawn for name in class_splits[index][2]]
        order = rng.permutation(len(images))
        splits[split] = images[order], [labels[k] for k in order], [filenames[k] for k in order]
    return splits


def _draw_class(task) -> list[tuple[np.ndarray, list[int], list[str]]]:
    """(images, labels, file names) of the class's training and test images."""
    scale, seed, number, name, look = task
    rng = np.random.default_rng([seed, number])
    counts = (scale.train_per_class, scale.test_per_class)
    ids = rng.choice(10**6, sum(counts), replace=False)
    images = np.stack([object_image(look, SIDE, rng)[0] for _ in ids])
    filenames = [f"{name}_s_{image_id:06d}.png" for image_id in ids]
    return [(images[: counts[0]], [number] * counts[0], filenames[: counts[0]]),
            (images[counts[0] :], [number] * counts[1], filenames[counts[0] :])]  # fmt: skip
