"""Target tasks: what a pretrained network is transferred to, one registered file each.

A task names its dataset (the ``data.<dataset>`` key of the run configuration, and the synthetic
generator of the same name), the protocol that transfers a network to it (``finetune``: the
classifier is replaced and every layer trained; ``detect``: a detector through MMDetection;
``probe``: fixed features scored by nearest neighbour and a linear classifier), its primary metric,
a quick check of the on-disk layout, and, for classification, how to read its splits (the unit's
seed may choose them, as the induction probes' halves). Everything here is safe to import in the driver: no training code.

    from tasks import TASKS
    TASKS["sun397"].read(root, "train", seed=0)   # Examples: files, targets, class names
    TASKS.names()                            # every registered task

A new task is one new file in this folder that calls ``register(Task(...))``.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from formats.registry import Registry
from subsets.manifest import SOURCES
from subsets.sample import rank_keys

TASKS = Registry("task", package="tasks")


@dataclass(frozen=True)
class Examples:
    """The images of one split: files under ``root``, a target each (a class index, or a multi-hot
    vector for multi-label tasks), optional crops (PIL boxes), and the class names in target order."""

    root: Path
    paths: list[str]
    targets: list
    classes: list[str]
    crops: list[tuple[int, int, int, int]] | None = None


@dataclass(frozen=True)
class Task:
    name: str
    dataset: str  # the data.<dataset> key and the synthetic generator
    protocol: str  # finetune | detect | probe
    metric: str  # the primary metric: a key of the unit's results; the row's metric is "<name>_<metric>"
    check_layout: Callable[[Path], None]  # raises formats.DataFormatError naming what is missing
    description: str
    read: Callable[..., Examples] | None = None  # classification: read(root, split, seed) -> the split's examples
    splits: tuple[str, str] = ("train", "test")  # the splits that ``read`` trains on and tests on
    multilabel: bool = False  # one sigmoid per class (scored by mAP) rather than a softmax
    evaluate: Callable[[np.ndarray, np.ndarray], dict] | None = None  # (scores, targets) -> metrics
    requires_model: str | None = None  # the only pretrained architecture the protocol can build on, if any
    # The split that ``read`` gives for choosing hyper-parameters (the dataset's own validation set), or None: then
    # a seeded fifth of each class of the training split is held out for it (``selection_splits``).
    validation: str | None = None


HELD_OUT_FRACTION = 0.2  # of each training class, where a dataset has no validation split (Kornblith et al.'s size
# is not published)


def register(task: Task) -> Task:
    return TASKS.register(task.name)(task)


def datasets() -> list[str]:
    """Every dataset a pretraining (the sources of its manifest: imagenet, and imagenet_extra for extra_<N>
    label sets) or a registered task reads: the keys of the ``data`` section."""
    return sorted({*SOURCES, *(TASKS[name].dataset for name in TASKS.names())})


def concatenate(first: Examples, second: Examples) -> Examples:
    """The images of two splits of one dataset as one split."""
    if first.root != second.root or first.classes != second.classes:
        raise ValueError("only splits of one dataset, read from one root with one class list, concatenate")
    crops = None if first.crops is None else [*first.crops, *second.crops]
    return Examples(first.root, [*first.paths, *second.paths], [*first.targets, *second.targets], first.classes, crops)


def take(examples: Examples, rows) -> Examples:
    crops = None if examples.crops is None else [examples.crops[k] for k in rows]
    return Examples(examples.root, [examples.paths[k] for k in rows], [examples.targets[k] for k in rows],
                    examples.classes, crops)  # fmt: skip


def selection_splits(task: Task, root: Path, seed: int) -> dict[str, Examples]:
    """The four splits of a hyper-parameter search (Kornblith et al.'s protocol): ``train`` to fit each setting on,
    ``val`` to choose one with, ``trainval`` (both) to refit the chosen one on, and ``test`` to report. ``val`` is the
    dataset's own validation split where it has one; otherwise ``HELD_OUT_FRACTION`` of each class of the training
    split (at least one image of a class with two or more), chosen by a keyed hash of the paths with the unit's seed."""
    train_split, test_split = task.splits
    test = task.read(root, test_split, seed=seed)
    if task.validation is not None:
        train, val = task.read(root, train_split, seed=seed), task.read(root, task.validation, seed=seed)
        return {"train": train, "val": val, "trainval": concatenate(train, val), "test": test}
    trainval = task.read(root, train_split, seed=seed)
    if task.multilabel:
        raise ValueError(f"task {task.name}: a multi-label task names its validation split (Task.validation)")
    keys = rank_keys(np.asarray(trainval.paths, dtype=object), seed)
    held_out = np.zeros(len(trainval.paths), dtype=bool)
    targets = np.asarray(trainval.targets)
    for target in np.unique(targets):
        members = np.flatnonzero(targets == target)
        count = int(round(len(members) * HELD_OUT_FRACTION)) if len(members) > 1 else 0
        held_out[members[np.argsort(keys[members], kind="stable")[: max(count, int(len(members) > 1))]]] = True
    return {"train": take(trainval, np.flatnonzero(~held_out)), "val": take(trainval, np.flatnonzero(held_out)),
            "trainval": trainval, "test": test}  # fmt: skip
