"""Sampling images per class and budgets, and subset manifests read back by an independent
reader (duckdb)."""

import json
import shutil
import subprocess
import sys

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from formats.cache import data_dir
from formats.imagenet import class_list
from subsets import labels
from subsets.manifest import SubsetSpec, build, make_manifest
from subsets.sample import SamplingError, relabel, select

WNIDS = class_list("imagenet1k")


def listing(per_class: dict[str, int], split="train") -> pa.Table:
    paths, wnids = [], []
    for wnid, count in per_class.items():
        paths += [f"{split}/{wnid}/{wnid}_{n}.JPEG" for n in range(count)]
        wnids += [wnid] * count
    return pa.table({"path": paths, "wnid": wnids})


@pytest.fixture(scope="module")
def big_listing():
    counts = np.random.default_rng(0).integers(40, 60, len(WNIDS))
    return listing(dict(zip(WNIDS, counts.tolist())))


def test_images_per_class_are_deterministic_and_nested(big_listing):
    fine = labels.fine(WNIDS)
    small, _ = select(big_listing, fine, seed=0, images_per_class=10)
    large, _ = select(big_listing, fine, seed=0, images_per_class=25)
    again, _ = select(big_listing, fine, seed=0, images_per_class=10)
    other, _ = select(big_listing, fine, seed=1, images_per_class=10)
    assert (small["wnid"].value_counts() == 10).all() and len(small) == 10_000
    assert set(small["path"]) <= set(large["path"])
    assert small["path"].tolist() == again["path"].tolist()
    assert set(small["path"]) != set(other["path"])


def test_selection_of_a_class_does_not_depend_on_other_images(big_listing):
    fine = labels.fine(WNIDS)
    chosen, _ = select(big_listing, fine, seed=0, images_per_class=5)
    fewer = big_listing.filter(pa.compute.not_equal(big_listing["wnid"], WNIDS[1]))
    without_class_1, _ = select(fewer, labels.fine([w for w in WNIDS if w != WNIDS[1]]), seed=0, images_per_class=5)
    tench = lambda frame: sorted(frame[frame["wnid"] == WNIDS[0]]["path"])  # noqa: E731
    assert tench(chosen) == tench(without_class_1)


def test_more_images_per_class_than_held_names_the_class(big_listing):
    short = listing({WNIDS[0]: 3, WNIDS[1]: 50})
    with pytest.raises(SamplingError, match=f"{WNIDS[0]} holds 3.*images_per_class <= 3"):
        select(short, labels.fine(WNIDS[:2]), seed=0, images_per_class=10)


def test_budget_spreads_equally_caps_and_reports_the_shortfall():
    data = listing({WNIDS[0]: 100, WNIDS[1]: 100, WNIDS[2]: 7})
    chosen, facts = select(data, labels.fine(WNIDS[:3]), seed=0, budget=60)
    assert chosen["wnid"].value_counts().to_dict() == {WNIDS[0]: 20, WNIDS[1]: 20, WNIDS[2]: 7}
    assert facts == {"shortfall": 13, "budget": 60}
    chosen, facts = select(data, labels.fine(WNIDS[:3]), seed=0, budget=32)  # 11 + 11 + 10
    assert sorted(chosen["wnid"].value_counts().tolist()) == [7, 11, 11] and facts["shortfall"] == 3
    bigger, _ = select(data, labels.fine(WNIDS[:3]), seed=0, budget=60)
    assert set(chosen["path"]) <= set(bigger["path"])


def test_budget_over_merged_labels_counts_labels_not_classes(big_listing):
    coarse = labels.label_set("down_up_9", WNIDS)
    chosen, facts = select(big_listing, coarse, seed=0, budget=900)
    held = relabel(big_listing, coarse)["label"].value_counts().sort_index()
    assert chosen["label"].value_counts().sort_index().tolist() == np.minimum(held, 100).tolist()
    assert facts["shortfall"] == np.maximum(100 - held, 0).sum() > 0  # some labels merge few classes
    assert len(chosen) + facts["shortfall"] == 900


def test_bad_sampling_requests(big_listing):
    fine = labels.fine(WNIDS)
    with pytest.raises(SamplingError, match="not both"):
        select(big_listing, fine, seed=0, images_per_class=5, budget=100)
    with pytest.raises(SamplingError, match="at least 1"):
        select(big_listing, fine, seed=0, budget=0)
    missing = labels.fine([*WNIDS[:2], "n02085620"])
    with pytest.raises(SamplingError, match="n02085620"):
        select(listing({WNIDS[0]: 5, WNIDS[1]: 5}), missing, seed=0)


def test_manifest_relabels_validation_to_the_label_set(big_listing):
    coarse = labels.label_set("down_up_79", WNIDS)
    val = listing(dict.fromkeys(WNIDS, 2), split="val")
    spec = SubsetSpec("down_up_79", images_per_class=5, source="/nowhere")
    manifest, label_table, facts = make_manifest(spec, coarse, big_listing, val)
    assert facts == {"shortfall": 0, "classes": 1000, "labels": 79, "train_images": 5000, "val_images": 2000}
    rows = manifest.to_pylist()
    assert {r["split"] for r in rows} == {"train", "val"}
    assert all(r["label_wnid"] == coarse.labels[r["wnid"]] for r in rows)
    assert all(coarse.label_wnids[r["label"]] == r["label_wnid"] for r in rows)
    assert label_table.num_rows == 79 and sum(label_table["train_images"].to_pylist()) == 5000
    assert sorted(w for group in label_table["classes"].to_pylist() for w in group) == sorted(WNIDS)


def test_removed_classes_leave_train_and_val(big_listing):
    kept = labels.pascal_removed(WNIDS)
    val = listing(dict.fromkeys(WNIDS, 1), split="val")
    manifest, _, facts = make_manifest(SubsetSpec("pascal_removed", source="/nowhere"), kept, big_listing, val)
    assert facts["val_images"] == 771 and set(manifest["wnid"].to_pylist()) == set(kept.labels)


def test_images_per_class_of_a_set_that_drops_classes_counts_only_its_own(big_listing):
    """The data holds the dropped classes too; their images (or their absence) are no part of the request."""
    kept = labels.pascal_removed(WNIDS)
    only_kept = big_listing.filter(pa.compute.is_in(big_listing["wnid"], value_set=pa.array(sorted(kept.labels))))
    for data in (big_listing, only_kept):
        chosen, _ = select(data, kept, seed=0, images_per_class=3)
        assert len(chosen) == 771 * 3 and set(chosen["wnid"]) == set(kept.labels)


def test_build_writes_parquet_that_duckdb_reads(tiny_imagenet):
    spec = SubsetSpec("up_down_127", images_per_class=3, seed=5, source="embedded:tiny")
    subset = build(spec)
    assert build(spec).directory == subset.directory  # cached by content hash
    assert subset.directory.name == spec.content_hash() == subset.facts["hash"]
    assert SubsetSpec("up_down_127", images_per_class=3, seed=6, source="embedded:tiny").content_hash() != spec.content_hash()
    manifest = str(subset.directory / "manifest.parquet")
    counts = dict(duckdb.sql(f"select split, count(*) from '{manifest}' group by split").fetchall())
    assert counts == {"train": 3000, "val": 2000}
    labels_used = duckdb.sql(f"select count(distinct label), min(label), max(label) from '{manifest}'").fetchall()[0]
    assert labels_used == (127, 0, 126)
    per_class = duckdb.sql(f"select count(*) from '{manifest}' where split = 'train' group by wnid").fetchall()
    assert {n for (n,) in per_class} == {3}
    joined = duckdb.sql(
        f"select count(*) from '{manifest}' m join '{subset.directory / 'labels.parquet'}' l "
        "on m.label = l.label and m.label_wnid = l.label_wnid and m.label_name = l.label_name"
    ).fetchall()[0]
    assert joined == (5000,)
    assert all((subset.root / p).is_file() for p in subset.manifest("train")["path"][:50])
    facts = json.loads((subset.directory / "subset.json").read_text())
    assert facts["spec"]["label_set"] == "up_down_127" and facts["train_images"] == 3000


def test_unknown_label_set_fails_before_any_data_is_touched():
    with pytest.raises(labels.UnknownLabelSetError, match="Did you mean"):
        SubsetSpec("pascal_remove", source="/nowhere")


def cli(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "subsets", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_cli_builds_one_subset_once_from_two_processes_and_describes_it(tiny_imagenet):
    spec = SubsetSpec("down_up_9", images_per_class=2, seed=11, source="embedded:tiny")
    shutil.rmtree(data_dir() / "subsets" / spec.content_hash(), ignore_errors=True)
    args = ["down_up_9", "--images-per-class", "2", "--seed", "11", "--data", "embedded:tiny"]
    builders = [cli("build", *args) for _ in range(2)]
    outputs = [builder.communicate(timeout=300) for builder in builders]
    assert [b.returncode for b in builders] == [0, 0], outputs
    manifest = data_dir() / "subsets" / spec.content_hash() / "manifest.parquet"
    assert [out.strip() for out, _ in outputs] == [str(manifest)] * 2
    assert duckdb.sql(f"select count(*) from '{manifest}'").fetchall() == [(4000,)]
    assert not list((data_dir() / "subsets").glob(f".{spec.content_hash()}.partial-*"))
    described, _ = cli("describe", *args).communicate(timeout=300)
    assert "label set down_up_9: 9 labels over 1000 classes" in described
    assert "images: 2000 train, 2000 val" in described
    assert "largest merged groups:" in described and "classes -> " in described
    too_many = cli("build", "fine", "--images-per-class", "99", "--data", "embedded:tiny")
    _, error = too_many.communicate(timeout=300)
    assert too_many.returncode == 1 and "holds 4" in error
