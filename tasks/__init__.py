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


def register(task: Task) -> Task:
    return TASKS.register(task.name)(task)


def datasets() -> list[str]:
    """Every dataset a pretraining (the sources of its manifest: imagenet, and imagenet_extra for extra_<N>
    label sets) or a registered task reads: the keys of the ``data`` section."""
    return sorted({*SOURCES, *(TASKS[name].dataset for name in TASKS.names())})
