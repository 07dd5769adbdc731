"""A subset spec -> a Parquet manifest of the images and labels a pretraining sees.

A spec is small (label set, images per class or budget, seed, source) and has a stable content
hash. Building it writes, under ``<data dir>/subsets/<hash>/``:

    manifest.parquet   split (train|val), path (relative to root), wnid, label, label_wnid, label_name
    labels.parquet     label, label_wnid, label_name, classes (the wnids merged into it), train_images
    subset.json        the spec, the data root, the hash, counts and the budget's shortfall

The validation rows are every validation image of the kept classes, relabelled to the set.
Builds are cached by hash, and concurrent builders of one subset wait for a single build.
"""

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import synthetic
from formats.cache import build_once, data_dir
from formats.imagenet import list_imagenet
from formats.wordnet import label_name, synset_of
from subsets.labels import LabelSet, check_name, label_set, method_of
from subsets.sample import relabel, select

MANIFEST_VERSION = 1  # bump when the manifest's content rules change: it is part of the hash


@dataclass(frozen=True)
class SubsetSpec:
    label_set: str = "fine"
    images_per_class: int | None = None  # None, and no budget: every image
    budget: int | None = None
    seed: int = 0
    source: str = "embedded:default"  # embedded:<scale>, or the path of an ImageNet root
    extra_include_under: tuple[str, ...] = ()  # for extra_<N>: see subsets.labels.extra_classes
    extra_exclude_under: tuple[str, ...] = ()

    def __post_init__(self):
        check_name(self.label_set)  # before any data is listed or generated

    def root(self) -> Path:
        return synthetic.resolve("imagenet", self.source)

    def identity(self) -> dict:
        """What determines the subset's classes and images, short of the data: the spec, and the label-set
        method's version where it is not 0 (so that subsets specified before methods had versions keep theirs)."""
        version = method_of(self.label_set)[0].version
        return {**dataclasses.asdict(self), **({"method_version": version} if version else {})}

    def content_hash(self) -> str:
        fields = {**self.identity(), "root": str(self.root()), "version": MANIFEST_VERSION}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    def resolve_labels(self, wnids: list[str]) -> LabelSet:
        return label_set(self.label_set, wnids, self.seed, self.extra_include_under, self.extra_exclude_under)


@dataclass(frozen=True)
class Subset:
    spec: SubsetSpec
    directory: Path

    @property
    def facts(self) -> dict:
        return json.loads((self.directory / "subset.json").read_text())

    @property
    def root(self) -> Path:
        return Path(self.facts["root"])

    def manifest(self, split: str | None = None) -> pd.DataFrame:
        frame = pq.read_table(self.directory / "manifest.parquet").to_pandas()
        return frame if split is None else frame[frame["split"] == split].reset_index(drop=True)

    def labels(self) -> pd.DataFrame:
        return pq.read_table(self.directory / "labels.parquet").to_pandas()


def make_manifest(spec: SubsetSpec, labels: LabelSet, train: pa.Table, val: pa.Table) -> tuple[pa.Table, pa.Table, dict]:
    """The manifest and label tables of a subset from listings of its data (``path``, ``wnid``)."""
    chosen, facts = select(train, labels, spec.seed, spec.images_per_class, spec.budget)
    validation = relabel(val, labels)
    names = [label_name(synset_of(wnid)) for wnid in labels.label_wnids]
    frames = [
        frame.assign(split=split, label_name=np.array(names, dtype=object)[frame["label"].to_numpy()])
        for split, frame in (("train", chosen), ("val", validation))
    ]
    columns = ["split", "path", "wnid", "label", "label_wnid", "label_name"]
    manifest = pa.Table.from_pandas(pd.concat(frames, ignore_index=True)[columns], preserve_index=False)
    train_images = chosen["label"].value_counts()
    members = labels.members()
    label_table = pa.table({
        "label": pa.array(range(labels.num_labels), pa.int32()),
        "label_wnid": labels.label_wnids,
        "label_name": names,
        "classes": [members[w] for w in labels.label_wnids],
        "train_images": [int(train_images.get(i, 0)) for i in range(labels.num_labels)],
    })  # fmt: skip
    facts |= {
        "classes": len(labels.labels),
        "labels": labels.num_labels,
        "train_images": len(chosen),
        "val_images": len(validation),
    }
    return manifest, label_table, facts


def build(spec: SubsetSpec) -> Subset:
    """The subset of ``spec``, built on first use."""
    root = spec.root()
    target = data_dir() / "subsets" / spec.content_hash()

    def write(out: Path) -> dict:
        train, val = list_imagenet(root, "train"), list_imagenet(root, "val")
        labels = spec.resolve_labels(sorted(set(train["wnid"].to_pylist())))
        manifest, label_table, facts = make_manifest(spec, labels, train, val)
        out.mkdir(parents=True)
        pq.write_table(manifest, out / "manifest.parquet")
        pq.write_table(label_table, out / "labels.parquet")
        facts = {"spec": dataclasses.asdict(spec), "root": str(root), "hash": target.name, **facts}
        (out / "subset.json").write_text(json.dumps(facts, indent=1))
        return {"hash": target.name}

    return Subset(spec, build_once(target, write))
