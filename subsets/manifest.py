"""A subset spec -> a Parquet manifest of the images and labels a pretraining sees.

A spec is small (label set, images per class or budget, seed, source, for ``extra_<N>`` the extra data's
source, and what the sources held when the run was planned: ``data_fingerprint``) and has a stable content
hash. Building it writes, under ``<data dir>/subsets/<hash>/``:

    manifest.parquet   split (train|val), path (relative to its source's root), source, wnid, label,
                       label_wnid, label_name
    labels.parquet     label, label_wnid, label_name, classes (the wnids merged into it), train_images
    subset.json        the spec, the data roots, the hash, counts, the budget's shortfall and the entries of the
                       data roots that are not class folders (``not_class_folders``: count and first names)

A row's source is the dataset its path lies in: ``imagenet``, or ``imagenet_extra`` for the training images
of ``extra_<N>``'s added classes, listed from the extra data (``formats.imagenet.list_imagenet_extra``),
whose classes are the candidates. Manifests written before the column existed hold ImageNet rows only
(``read_manifest`` reads them so). The validation rows are every validation image of the kept ImageNet
classes, relabelled to the set; added classes have training images only. Builds are cached by hash, which
covers what the data holds (``synthetic.fingerprint``): a changed data folder builds a new manifest, and a
build whose data no longer holds what the run planned on stops with an error. Concurrent builders of one
subset wait for a single build.
"""

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import synthetic
from formats import DataFormatError
from formats.cache import build_once, data_dir
from formats.imagenet import list_imagenet, list_imagenet_extra, not_class_folders
from formats.wordnet import label_name, synset_of
from subsets.labels import LabelSet, adds_extra_classes, check_name, label_set, method_of
from subsets.sample import relabel, select

MANIFEST_VERSION = 1  # bump when the manifest's content rules change: it is part of the hash
IMAGENET, IMAGENET_EXTRA = SOURCES = ("imagenet", "imagenet_extra")  # a row's source: the dataset its path is in
MANIFEST_COLUMNS = ["split", "path", "source", "wnid", "label", "label_wnid", "label_name"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubsetSpec:
    label_set: str = "fine"
    images_per_class: int | None = None  # None, and no budget: every image
    budget: int | None = None
    seed: int = 0
    source: str = "embedded:default"  # embedded:<scale>, or the path of an ImageNet root
    extra_include_under: tuple[str, ...] = ()  # for extra_<N>: see subsets.labels.extra_classes
    extra_exclude_under: tuple[str, ...] = ()
    extra_source: str | None = None  # for extra_<N>: embedded:<scale>, or a folder of class folders outside ImageNet
    data_fingerprint: str | None = None  # what the sources held when planned (``fingerprinted``); None: not yet taken

    def __post_init__(self):
        check_name(self.label_set)  # before any data is listed or generated
        if self.extra_source is not None and not adds_extra_classes(self.label_set):
            raise ValueError(f"extra data serves extra_<N> label sets only, not {self.label_set!r}")

    def root(self) -> Path:
        return synthetic.resolve(IMAGENET, self.source)

    def extra_root(self) -> Path:
        if self.extra_source is None:
            raise ValueError(
                f"{self.label_set} adds classes from outside ImageNet-1k and needs their images: give an extra "
                "source (embedded:<scale>, or a folder of <wnid>/*.JPEG class folders; --extra-data on the CLI)"
            )
        return synthetic.resolve(IMAGENET_EXTRA, self.extra_source)

    def identity(self) -> dict:
        """What determines the subset's classes and images: the spec (the extra source only where there is one,
        so that specs from before extra data existed read the same), and the label-set method's version where it
        is not 0."""
        spec = {key: value for key, value in dataclasses.asdict(self).items()
                if key not in ("extra_source", "data_fingerprint") or value is not None}  # fmt: skip
        version = method_of(self.label_set)[0].version
        return {**spec, **({"method_version": version} if version else {})}

    def held_now(self, fingerprint_of: Callable[[str, str], str] = synthetic.fingerprint) -> str:
        """What its data sources hold now (``synthetic.fingerprint``): ImageNet's, and the extra data's too."""
        held = fingerprint_of(IMAGENET, self.source)
        return held if self.extra_source is None else f"{held} + {fingerprint_of(IMAGENET_EXTRA, self.extra_source)}"

    def fingerprinted(self, fingerprint_of: Callable[[str, str], str] = synthetic.fingerprint) -> "SubsetSpec":
        """The spec of the data as it is now: its identity, and so its hash and its pretrainings' ids, change
        with what the data holds."""
        return dataclasses.replace(self, data_fingerprint=self.held_now(fingerprint_of))

    def content_hash(self) -> str:
        spec = self if self.data_fingerprint is not None else self.fingerprinted()
        fields = {**spec.identity(), "root": str(self.root()), "version": MANIFEST_VERSION}
        if self.extra_source is not None:
            fields["extra_root"] = str(self.extra_root())
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    def resolve_labels(self, wnids: list[str], extra_pool: list[str] | None = None) -> LabelSet:
        """The label set over the classes ``wnids``; ``extra_pool``: the classes extra_<N> draws from (default:
        ImageNet-21k's list)."""
        return label_set(
            self.label_set, wnids, self.seed, self.extra_include_under, self.extra_exclude_under, extra_pool
        )


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
        frame = read_manifest(self.directory / "manifest.parquet")
        return frame if split is None else frame[frame["split"] == split].reset_index(drop=True)

    def labels(self) -> pd.DataFrame:
        return pq.read_table(self.directory / "labels.parquet").to_pandas()


def read_manifest(location: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A manifest's rows (a path or a pyarrow filesystem URI), only ``columns`` if given. A manifest written
    before the source column existed holds ImageNet rows only, and reads so."""
    columns = columns or MANIFEST_COLUMNS
    present = pq.read_schema(location).names
    frame = pq.read_table(location, columns=[c for c in columns if c in present]).to_pandas()
    if "source" in columns and "source" not in present:
        frame["source"] = IMAGENET
    return frame[columns]


def _with_source(listing: pa.Table, source: str) -> pa.Table:
    codes = pa.array(np.full(len(listing), SOURCES.index(source), np.int8))
    return listing.append_column("source", pa.DictionaryArray.from_arrays(codes, list(SOURCES)))


def make_manifest(
    spec: SubsetSpec, labels: LabelSet, train: pa.Table, val: pa.Table, extra_train: pa.Table | None = None
) -> tuple[pa.Table, pa.Table, dict]:
    """The manifest and label tables of a subset from listings of its data (``path``, ``wnid``): ImageNet's
    training and validation images, and for extra_<N> the extra data's images."""
    listings = [_with_source(train, IMAGENET)]
    if extra_train is not None:
        listings.append(_with_source(extra_train, IMAGENET_EXTRA))
    chosen, facts = select(pa.concat_tables(listings), labels, spec.seed, spec.images_per_class, spec.budget)
    validation = relabel(_with_source(val, IMAGENET), labels)
    names = [label_name(synset_of(wnid)) for wnid in labels.label_wnids]
    frames = [
        frame.assign(split=split, label_name=np.array(names, dtype=object)[frame["label"].to_numpy()])
        for split, frame in (("train", chosen), ("val", validation))
    ]
    manifest = pa.Table.from_pandas(pd.concat(frames, ignore_index=True)[MANIFEST_COLUMNS], preserve_index=False)
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
    """The subset of ``spec``, built on first use; extra_<N> draws its added classes from the extra data's. A spec
    that carries a fingerprint is checked against what the data holds now, here: a subset is never built from
    other data than its run planned on."""
    held = spec.held_now()
    if spec.data_fingerprint is None:
        spec = dataclasses.replace(spec, data_fingerprint=held)
    elif spec.data_fingerprint != held:
        sources = f"{spec.source}{f' and {spec.extra_source}' if spec.extra_source else ''}"
        raise DataFormatError(
            synthetic.changed_since_planned(f"the ImageNet data ({sources})", spec.data_fingerprint, held)
        )
    root = spec.root()
    extra_root = spec.extra_root() if adds_extra_classes(spec.label_set) else None
    target = data_dir() / "subsets" / spec.content_hash()

    def write(out: Path) -> dict:
        train, val = list_imagenet(root, "train"), list_imagenet(root, "val")
        extra = None if extra_root is None else list_imagenet_extra(extra_root)
        extra_pool = None if extra is None else sorted(set(extra["wnid"].to_pylist()))
        labels = spec.resolve_labels(sorted(set(train["wnid"].to_pylist())), extra_pool)
        manifest, label_table, facts = make_manifest(spec, labels, train, val, extra)
        out.mkdir(parents=True)
        pq.write_table(manifest, out / "manifest.parquet")
        pq.write_table(label_table, out / "labels.parquet")
        roots = {"root": str(root), **({"extra_root": str(extra_root)} if extra_root else {})}
        left_out = not_class_folders(root) + ([] if extra_root is None else not_class_folders(extra_root, extra=True))
        if left_out:
            log.warning("%d entries of the data are not class folders and were left out: %s", len(left_out),
                        ", ".join(left_out[:5]))  # fmt: skip
        facts = {"spec": dataclasses.asdict(spec), **roots, "hash": target.name, **facts,
                 "not_class_folders": {"count": len(left_out), "first": left_out[:20]}}  # fmt: skip
        (out / "subset.json").write_text(json.dumps(facts, indent=1))
        return {"hash": target.name}

    return Subset(spec, build_once(target, write))
