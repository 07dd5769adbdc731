"""Pretraining subsets of ImageNet from the WordNet hierarchy.

    python -m subsets label-sets [--classes imagenet1k]
    python -m subsets export <label set> --out FILE.csv [--classes imagenet1k] [--seed 0]
    python -m subsets export extra_500 --out FILE.csv --extra-exclude-under animal.n.01
    python -m subsets build <label set> [--images-per-class N | --budget N] [--seed 0] [--data PATH]
    python -m subsets build extra_100 --extra-data PATH [same options as build]
    python -m subsets describe <label set> [same options as build]

--classes: imagenet1k, imagenet21k, or a data root whose train/ has one folder per wnid.
--data: an ImageNet root (ILSVRC-2012 layout), or embedded:<scale> (default embedded:default).
--extra-data: for extra_<N>, the added classes' images: a folder of <wnid>/*.JPEG class folders outside
ImageNet-1k, or embedded:<scale>; export draws them from ImageNet-21k's list instead.
"""

import argparse
import csv
import sys

import numpy as np

from formats import DataFormatError
from formats.imagenet import class_list
from formats.wordnet import UnknownClassError
from subsets import labels as label_sets
from subsets.manifest import Subset, SubsetSpec, build
from subsets.sample import SamplingError


def print_label_sets(wnids: list[str], seed: int) -> None:
    print(f"{len(wnids)} classes")
    print("down_up:        " + " ".join(str(s.num_labels) for s in label_sets.down_up_chain(wnids)))
    print("up_down:        " + " ".join(str(s.num_labels) for s in label_sets.up_down_chain(wnids)))
    removed = label_sets.pascal_removed_classes(wnids)
    kept = label_sets.pascal_removed(wnids).num_labels
    print(f"pascal_removed: {kept}  ({len(wnids) - kept} removed: "
          + ", ".join(f"{name} {len(group)}" for name, group in removed.items()) + ")")
    halves = label_sets.random_halves(wnids, seed), label_sets.min_shared_ancestry_halves(wnids)
    for a, b in halves:
        shared = len(label_sets.shared_ancestors(a, b))
        print(f"{a.name[:-2] + ':':15s} {a.num_labels} + {b.num_labels}, {shared} shared WordNet ancestors")
    print(f"random_<N>:     any N from 1 to {len(wnids)} (seeded)")
    print("extra_<N>:      the classes plus N from ImageNet-21k outside them (seeded)")


def export(name: str, wnids: list[str], seed: int, out: str, include_under=(), exclude_under=()) -> None:
    rows = label_sets.label_set(name, wnids, seed, include_under, exclude_under).rows()
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["wnid", "label_wnid", "label_name"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"{out}: {len(rows)} classes, {len({r['label_wnid'] for r in rows})} labels")


def describe(subset: Subset) -> None:
    facts, label_table = subset.facts, subset.labels()
    print(f"subset {facts['hash']}  ({subset.directory})")
    print(f"label set {facts['spec']['label_set']}: {facts['labels']} labels over {facts['classes']} classes")
    print(f"images: {facts['train_images']} train, {facts['val_images']} val; data {facts['root']}"
          + (f", extra data {facts['extra_root']}" if "extra_root" in facts else ""))
    left_out = facts.get("not_class_folders", {"count": 0})
    if left_out["count"]:
        more = " ..." if left_out["count"] > 5 else ""
        print(f"left out, not class folders: {left_out['count']} ({', '.join(left_out['first'][:5])}{more})")
    if "budget" in facts:
        print(f"budget {facts['budget']}, shortfall {facts['shortfall']}")
    counts = label_table["train_images"].to_numpy()
    histogram, edges = np.histogram(counts, bins=min(5, len(np.unique(counts))))
    print("train images per label:")
    for labels, low, high in zip(histogram, edges[:-1], edges[1:]):
        print(f"  {low:8.0f} .. {high:<8.0f} {labels:5d} labels")
    largest = label_table.assign(size=label_table["classes"].map(len)).nlargest(5, "size")
    print("largest merged groups:")
    for row in largest.itertuples():
        print(f"  {row.size:4d} classes -> {row.label_name} ({row.label_wnid})")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m subsets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("label-sets", help="each method's chain of class counts")
    exporting = commands.add_parser("export", help="a label set as CSV: wnid,label_wnid,label_name")
    exporting.add_argument("label_set")
    exporting.add_argument("--out", required=True)
    for command in (listing, exporting):
        command.add_argument("--classes", default="imagenet1k")
        command.add_argument("--seed", type=int, default=0)
    building = [commands.add_parser(name, help=f"{name} a subset's Parquet manifest") for name in ("build", "describe")]
    for command in building:
        command.add_argument("label_set")
        limit = command.add_mutually_exclusive_group()
        limit.add_argument("--images-per-class", type=int)
        limit.add_argument("--budget", type=int)
        command.add_argument("--seed", type=int, default=0)
        command.add_argument("--data", default="embedded:default")
        command.add_argument("--extra-data", help="extra_<N>: the added classes' images (folder or embedded:<scale>)")
    for command in (exporting, *building):
        for which in ("include", "exclude"):
            command.add_argument(f"--extra-{which}-under", nargs="+", default=[], metavar="SYNSET",
                                 help=f"extra_<N>: {which} only candidates under these synsets (like dog.n.01)")
    args = parser.parse_args(argv)
    try:
        if args.command == "label-sets":
            print_label_sets(class_list(args.classes), args.seed)
        elif args.command == "export":
            export(args.label_set, class_list(args.classes), args.seed, args.out,
                   tuple(args.extra_include_under), tuple(args.extra_exclude_under))
        else:
            spec = SubsetSpec(args.label_set, args.images_per_class, args.budget, args.seed, args.data,
                              tuple(args.extra_include_under), tuple(args.extra_exclude_under), args.extra_data)
            subset = build(spec)
            describe(subset) if args.command == "describe" else print(subset.directory / "manifest.parquet")
    except (label_sets.UnknownLabelSetError, UnknownClassError, SamplingError, DataFormatError, ValueError) as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
