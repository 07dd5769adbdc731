"""Synthetic ImageNet (ILSVRC-2012 classification) in ImageNet's own layout.

    <root>/train/<wnid>/<wnid>_<n>.JPEG
    <root>/val/ILSVRC2012_val_<8 digits>.JPEG
    <root>/LOC_val_solution.csv      ImageId,PredictionString  ("<wnid> x0 y0 x1 y1")
    <root>/LOC_synset_mapping.txt    "<wnid> <lemmas>", one line per class, in class-index order

The classes are the real 1000 ILSVRC-2012 wnids (timm's list) and each image shows an object
drawn with its class's WordNet look (synthetic.render), so the hierarchy is in the pixels.
"""

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from formats.imagenet import imagenet1k_wnids, wnid_lemmas
from formats.wordnet import root_first_path, synset_of
from synthetic import GENERATORS, ensure_dataset, run_parallel
from synthetic.render import Look, look_of_path, object_image


@dataclass(frozen=True)
class Scale:
    image_size: int
    train_per_class: int
    val_per_class: int


SCALES = {
    "tiny": Scale(image_size=32, train_per_class=4, val_per_class=2),
    "default": Scale(image_size=64, train_per_class=40, val_per_class=10),
}


def look_of(synset) -> Look:
    """A synset's look: the sum of the traits along its root-first chain of first parents."""
    return look_of_path([s.offset() for s in root_first_path(synset)])


@GENERATORS.register("imagenet")
def ensure(scale: str = "default", seed: int = 0, workers: int | None = None) -> Path:
    """The synthetic ImageNet of this scale and seed, generated on first use."""
    return ensure_dataset("imagenet", SCALES, scale, seed, generate, workers)


def generate(out: Path, scale: Scale, seed: int, workers: int | None = None) -> dict:
    wnids = imagenet1k_wnids()
    looks = [look_of(synset_of(wnid)) for wnid in wnids]
    n_val = len(wnids) * scale.val_per_class
    # Real validation files are not grouped by class; neither are ours.
    val_numbers = np.random.default_rng([seed, 1]).permutation(n_val) + 1
    (out / "val").mkdir(parents=True)
    tasks = [
        (out, scale, seed, index, wnid, look, val_numbers[index * scale.val_per_class :][: scale.val_per_class])
        for index, (wnid, look) in enumerate(zip(wnids, looks))
    ]
    per_class = run_parallel(_write_class, tasks, "synthetic ImageNet classes", workers)
    solution = sorted(row for rows in per_class for row in rows)
    with open(out / "LOC_val_solution.csv", "w", newline="") as f:
        csv.writer(f).writerows([("ImageId", "PredictionString"), *solution])
    lemmas = wnid_lemmas()
    (out / "LOC_synset_mapping.txt").write_text("".join(f"{w} {lemmas[w]}\n" for w in wnids))
    return {
        "dataset": "imagenet",
        "classes": len(wnids),
        "train_images": len(wnids) * scale.train_per_class,
        "val_images": n_val,
        "image_size": scale.image_size,
        "seed": seed,
    }


def write_train_images(class_dir: Path, wnid: str, look: Look, scale: Scale, rng: np.random.Generator) -> None:
    """A class's training images at this scale: ``<class_dir>/<wnid>_<n>.JPEG``."""
    class_dir.mkdir(parents=True)
    for n in range(scale.train_per_class):
        image, _ = object_image(look, scale.image_size, rng)
        Image.fromarray(image).save(class_dir / f"{wnid}_{n}.JPEG", quality=90)


def _write_class(task) -> list[tuple[str, str]]:
    out, scale, seed, index, wnid, look, val_numbers = task
    rng = np.random.default_rng([seed, 0, index])
    write_train_images(out / "train" / wnid, wnid, look, scale, rng)
    rows = []
    for number in val_numbers:
        image, box = object_image(look, scale.image_size, rng)
        image_id = f"ILSVRC2012_val_{number:08d}"
        Image.fromarray(image).save(out / "val" / f"{image_id}.JPEG", quality=90)
        x0, y0, x1, y1 = box or (0, 0, scale.image_size - 1, scale.image_size - 1)
        rows.append((image_id, f"{wnid} {x0} {y0} {x1} {y1}"))
    return rows
