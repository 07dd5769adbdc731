"""Seconds to build the manifests of all the paper's subsets from a full-size ImageNet listing.

    .venv/bin/python benchmarks/build_subsets.py

The listing is generated (1000 classes, most holding 1300 training images and the rest 732 to 1300, 1.28M in all,
and 50 validation images each, as ILSVRC-2012); no image is read. Target (issue #3): every
variant's manifest in under 30 s on 2 cores. WordNet's load and the label sets' chains are timed
separately from the manifests.
"""

import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from formats.imagenet import class_list
from subsets.manifest import SubsetSpec, make_manifest

VARIANTS = [
    *(SubsetSpec("fine", images_per_class=n) for n in (50, 125, 250, 500)),
    SubsetSpec("fine"),
    *(SubsetSpec(f"down_up_{n}") for n in (918, 753, 486, 79, 9)),
    SubsetSpec("up_down_127"),
    SubsetSpec("pascal_removed"),
    *(SubsetSpec(f"split_{kind}_{half}") for kind in ("random", "min") for half in ("a", "b")),
    *(SubsetSpec(name, budget=320_000) for name in ("random_250", "random_500", "fine", "up_down_127")),
]


def imagenet_sized_listing(wnids: list[str]) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(0)
    # As in ILSVRC-2012: most classes hold 1300 images, the rest between 732 and 1300.
    counts = np.where(rng.random(len(wnids)) < 0.9, 1300, rng.integers(732, 1300, len(wnids)))
    train = [(f"train/{w}/{w}_{i}.JPEG", w) for w, n in zip(wnids, counts) for i in range(n)]
    val = [(f"val/ILSVRC2012_val_{k * 1000 + j + 1:08d}.JPEG", w) for j, w in enumerate(wnids) for k in range(50)]
    table = lambda rows: pa.table({"path": [p for p, _ in rows], "wnid": [w for _, w in rows]})  # noqa: E731
    return table(train), table(val)


def main() -> None:
    start = time.perf_counter()
    wnids = class_list("imagenet1k")
    resolved = [(spec, spec.resolve_labels(wnids)) for spec in VARIANTS]
    label_seconds = time.perf_counter() - start
    print(f"WordNet and {len(VARIANTS)} label sets: {label_seconds:.1f} s")
    train, val = imagenet_sized_listing(wnids)
    print(f"listing: {train.num_rows:,} train and {val.num_rows:,} val images")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for number, (spec, label_set) in enumerate(resolved):
            began = time.perf_counter()
            manifest, label_table, facts = make_manifest(spec, label_set, train, val)
            pq.write_table(manifest, Path(tmp) / f"{number}-manifest.parquet")
            pq.write_table(label_table, Path(tmp) / f"{number}-labels.parquet")
            limit = f"{spec.images_per_class}/class" if spec.images_per_class else f"budget {spec.budget}" if spec.budget else "all"
            print(f"  {spec.label_set:15s} {limit:14s} {facts['labels']:5d} labels {facts['train_images']:9,d} images"
                  f"  {time.perf_counter() - began:5.2f} s")
    total = time.perf_counter() - start
    print(f"all {len(VARIANTS)} manifests: {total:.1f} s; with WordNet and the label sets: "
          f"{total + label_seconds:.1f} s (target: under 30 s)")


if __name__ == "__main__":
    main()
