"""Induction (Huh et al. Sec 5.3-5.4): do features learned on one granularity of labels separate another? The
pretrained network's fixed features of held-out ImageNet images (the validation set, which no pretraining trains
on), probed by nearest neighbour and by a linear classifier (the ``probe`` protocol) against

  imagenet_fine     the 1000 fine classes: do features pretrained on coarse labels (up_down_127) tell apart the
                    fine classes they merged?
  imagenet_coarse   the 127 coarse labels of up_down_127: the reverse, for features pretrained on fine labels.

Each class's validation images are split in two halves by a keyed hash of their paths (the unit's seed is the
key): the probes learn on one half and are scored on the other, so seeds give independent splits.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np

from formats import DataFormatError
from formats.imagenet import imagenet_image_root, list_imagenet
from formats.wordnet import label_name, synset_of
from subsets.labels import label_set
from subsets.sample import rank_keys
from tasks import Examples, Task, register
from tasks.metrics import top1

COARSE = "up_down_127"
HALVES = ("held_out_train", "held_out_test")


def held_out_half(root: Path, split: str, seed: int) -> tuple[Path, list[str], list[str]]:
    """(image root, paths, wnids) of one half of every class's validation images."""
    listing = list_imagenet(root, "val").to_pandas()
    listing["key"] = rank_keys(listing["path"].to_numpy(), seed)
    listing = listing.sort_values(["wnid", "key"])
    position = listing.groupby("wnid").cumcount().to_numpy()
    size = listing.groupby("wnid")["path"].transform("size").to_numpy()
    chosen = listing[(position < size // 2) == (split == HALVES[0])]
    if chosen.empty:
        raise DataFormatError(
            f"{root}: the {split} half of the ImageNet validation images is empty: the probes need classes with at "
            "least two validation images each"
        )
    return imagenet_image_root(Path(root)), chosen["path"].tolist(), chosen["wnid"].tolist()


def read_fine(root: Path, split: str, seed: int = 0) -> Examples:
    images, paths, wnids = held_out_half(root, split, seed)
    classes = sorted(set(list_imagenet(root, "val")["wnid"].to_pylist()))
    index = {wnid: i for i, wnid in enumerate(classes)}
    return Examples(images, paths, [index[w] for w in wnids], classes)


def read_coarse(root: Path, split: str, seed: int = 0) -> Examples:
    images, paths, wnids = held_out_half(root, split, seed)
    coarse = label_set(COARSE, sorted(set(list_imagenet(root, "val")["wnid"].to_pylist())))
    index = coarse.label_index
    classes = [label_name(synset_of(wnid)) for wnid in coarse.label_wnids]
    return Examples(images, paths, [index[coarse.labels[w]] for w in wnids], classes)


def evaluate(scores: np.ndarray, labels: np.ndarray) -> dict:
    return {"top1": top1(scores, labels)}


def reading_both_halves(read: Callable[..., Examples]) -> Callable[[Path], None]:
    """A layout check that reads both halves as the worker will: an empty half, or a class list that the label
    set cannot be built on, is named before anything starts."""

    def check_layout(root: Path) -> None:
        for split in HALVES:
            read(root, split)

    return check_layout


for name, read, what in (("imagenet_fine", read_fine, "the 1000 fine classes"),
                         ("imagenet_coarse", read_coarse, f"the {COARSE} coarse labels")):  # fmt: skip
    register(
        Task(
            name=name,
            dataset="imagenet",
            protocol="probe",
            metric="top1",  # of the linear probe; the nearest neighbour's is nn_top1
            check_layout=reading_both_halves(read),
            description=f"held-out ImageNet validation images, fixed features probed against {what}",
            read=read,
            splits=HALVES,
            evaluate=evaluate,
        )
    )
