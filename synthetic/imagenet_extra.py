"""Synthetic extra classes for the ``extra_<N>`` label sets (paper Sec 6: more data from outside the 1000
classes), in the layout ``formats.imagenet.list_imagenet_extra`` reads.

    <root>/<wnid>/<wnid>_<n>.JPEG

The classes are a fixed pool of ``POOL_SIZE`` real ImageNet-21k wnids (timm's list), drawn with a fixed seed
among the classes outside ImageNet-1k (``formats.wordnet.outside_classes``), the same at every scale and seed.
Their images are drawn as synthetic ImageNet's training images, each class with the look of its own WordNet
chain, at the ImageNet scales' image size and training images per class; there are no validation images.
"""

from pathlib import Path

import numpy as np

from formats.imagenet import class_list, imagenet1k_wnids
from formats.wordnet import outside_classes, synset_of
from synthetic import GENERATORS, ensure_dataset, run_parallel
from synthetic.imagenet import SCALES, Scale, look_of, write_train_images

POOL_SIZE, POOL_SEED = 250, 0


def pool() -> list[str]:
    """The extra classes, sorted."""
    candidates = outside_classes(class_list("imagenet21k"), imagenet1k_wnids())
    return sorted(np.random.default_rng(POOL_SEED).choice(candidates, POOL_SIZE, replace=False).tolist())


@GENERATORS.register("imagenet_extra")
def ensure(scale: str = "default", seed: int = 0, workers: int | None = None) -> Path:
    """The synthetic extra classes of this scale and seed, generated on first use."""
    return ensure_dataset("imagenet_extra", SCALES, scale, seed, generate, workers)


def generate(out: Path, scale: Scale, seed: int, workers: int | None = None) -> dict:
    wnids = pool()
    out.mkdir(parents=True)
    tasks = [(out, scale, seed, index, wnid, look_of(synset_of(wnid))) for index, wnid in enumerate(wnids)]
    run_parallel(_write_class, tasks, "synthetic extra classes", workers)
    return {
        "dataset": "imagenet_extra",
        "classes": len(wnids),
        "train_images": len(wnids) * scale.train_per_class,
        "image_size": scale.image_size,
        "seed": seed,
    }


def _write_class(task) -> None:
    out, scale, seed, index, wnid, look = task
    # Streams of their own: ImageNet's class at the same index draws from [seed, 0, index].
    write_train_images(out / wnid, wnid, look, scale, np.random.default_rng([seed, 2, index]))
