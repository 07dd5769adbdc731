"""The paper's label sets, regenerated exactly from WordNet 3.0, and new ones."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from formats.imagenet import class_list
from formats.wordnet import UnknownClassError, ancestors, first_parent_chain, synset_named, synset_of
from subsets import labels

DOWN_UP_COUNTS = [1000, 999, 977, 918, 877, 820, 753, 694, 596, 486, 345, 206, 79, 36, 17, 9, 5, 2, 1]


@pytest.fixture(scope="module")
def imagenet1k():
    return class_list("imagenet1k")


def test_down_up_chain_has_the_published_counts(imagenet1k):
    chain = labels.down_up_chain(imagenet1k)
    assert [s.num_labels for s in chain] == DOWN_UP_COUNTS
    assert {918, 753, 486, 79, 9} <= {s.num_labels for s in chain}
    assert labels.label_set("down_up_918", imagenet1k).num_labels == 918


def test_up_down_first_step_has_127_classes(imagenet1k):
    chain = labels.up_down_chain(imagenet1k)
    assert chain[0].name == "up_down_127" and chain[0].num_labels == 127
    assert [s.num_labels for s in chain] == [127, 10, 2, 1]


HYPERNYM_ORDERS = """
from formats.imagenet import class_list
from formats.wordnet import first_parent_chain, synset_of
for wnid in class_list("imagenet1k"):
    synset = synset_of(wnid)
    print(wnid, [s.name() for s in synset.hypernyms()], [s.name() for s in first_parent_chain(synset)])
"""


def test_first_parent_is_stable_where_nltks_hypernym_order_is_not():
    """Why formats/wordnet.py needs a rule: NLTK keeps pointers in a set, so the order of
    ``hypernyms()`` follows Python's string hashing, which differs between processes."""
    runs = [
        subprocess.run([sys.executable, "-c", HYPERNYM_ORDERS], env={**os.environ, "PYTHONHASHSEED": seed},
                       capture_output=True, text=True, check=True).stdout.splitlines()
        for seed in ("1", "2", "3")
    ]
    nltk_orders = [[line.split(" [", 1)[1].rsplit("] [", 1)[0] for line in run] for run in runs]
    our_chains = [[line.rsplit("] [", 1)[1] for line in run] for run in runs]
    assert len({tuple(orders) for orders in nltk_orders}) > 1
    assert our_chains[0] == our_chains[1] == our_chains[2]


def test_merged_labels_are_first_parent_ancestors_and_steps_nest(imagenet1k):
    chain = labels.down_up_chain(imagenet1k)
    for finer, coarser in zip(chain, chain[1:]):
        for wnid, label in coarser.labels.items():
            leaf = synset_of(wnid)
            assert synset_of(label) in (leaf, *first_parent_chain(leaf))
        # every label of a step merges whole labels of the step before
        for members in finer.members().values():
            assert len({coarser.labels[w] for w in members}) == 1


def test_pascal_removed_keeps_771_and_lists_the_removed_per_class(imagenet1k):
    kept = labels.pascal_removed(imagenet1k)
    assert kept.num_labels == 771 and kept.name == "pascal_removed"
    removed = labels.pascal_removed_classes(imagenet1k)
    assert len(removed["dog"]) == 118 and len(removed["bird"]) == 59
    assert len({w for group in removed.values() for w in group}) == 229
    pascal = {synset_named(name) for name in labels.PASCAL_REMOVAL_SYNSETS.values()}
    for wnid in kept.labels:  # no kept class lies under a PASCAL synset on any hypernym path
        assert not ({synset_of(wnid)} | ancestors(synset_of(wnid))) & pascal


def test_pascal_removed_is_the_authors_released_set(imagenet1k):
    """Per PASCAL class, the classes Huh et al. released as removed: ox, pot and television stay; monitor, daisy
    and yellow lady's slipper go."""
    released = {}
    for line in (Path(__file__).parent / "fixtures" / "pascal_removed_authors.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            pascal, wnids = line.split(":")
            released[pascal] = set(wnids.split())
    removed = labels.pascal_removed_classes(imagenet1k)
    assert {pascal: set(group) for pascal, group in removed.items()} == released
    kept = labels.pascal_removed(imagenet1k).labels
    assert {"n02403003", "n03991062", "n04404412"} <= kept.keys()  # ox, pot, television
    assert not {"n03782006", "n11939491", "n12057211"} & kept.keys()  # monitor, daisy, yellow lady's slipper


def test_random_classes_are_seeded(imagenet1k):
    a, b, c = (labels.label_set("random_100", imagenet1k, seed) for seed in (0, 0, 1))
    assert a.num_labels == 100 and a.labels == b.labels and a.labels != c.labels
    with pytest.raises(ValueError, match="between 1 and 1000"):
        labels.label_set("random_1001", imagenet1k)


def test_class_splits_are_disjoint_halves(imagenet1k):
    random_a, random_b = labels.random_halves(imagenet1k, seed=0)
    min_a, min_b = labels.min_shared_ancestry_halves(imagenet1k)
    for a, b in ((random_a, random_b), (min_a, min_b)):
        assert not set(a.labels) & set(b.labels) and len(a.labels) + len(b.labels) == 1000
    assert len(labels.shared_ancestors(min_a, min_b)) < len(labels.shared_ancestors(random_a, random_b)) / 5
    assert labels.label_set("split_min_b", imagenet1k).labels == min_b.labels


def test_extra_classes_come_from_outside_the_base_classes(imagenet1k):
    imagenet21k = class_list("imagenet21k")
    extra = labels.extra_classes(imagenet1k, 50, seed=0, pool=imagenet21k)
    assert extra.labels == labels.label_set("extra_50", imagenet1k).labels  # ImageNet-21k's list by default
    added = [w for w in extra.labels if w not in set(imagenet1k)]
    assert extra.num_labels == 1050 and len(added) == 50
    base = {synset_of(w) for w in imagenet1k}
    for wnid in added:
        synset = synset_of(wnid)
        assert not ancestors(synset) & base  # not a kind of a base class
        assert not any(synset in ancestors(b) for b in base)  # nor a parent of one
    dogs = labels.extra_classes(imagenet1k, 10, seed=0, pool=imagenet21k, include_under=("dog.n.01",))
    assert all(synset_named("dog.n.01") in ancestors(synset_of(w)) for w in dogs.labels if w not in imagenet1k)
    no_animals = labels.extra_classes(imagenet1k, 200, seed=0, pool=imagenet21k, exclude_under=("animal.n.01",))
    animal = synset_named("animal.n.01")
    assert not any(animal in ancestors(synset_of(w)) for w in no_animals.labels if w not in imagenet1k)


@pytest.mark.parametrize(
    "wnid, message",
    [("n99999999", "names no WordNet 3.0 noun synset"), ("dog", "is not a wnid"), ("n0144076", "is not a wnid")],
)
def test_unknown_wnid_is_named(wnid, message):
    with pytest.raises(UnknownClassError, match=message) as error:
        labels.label_set("fine", ["n01440764", wnid])
    assert repr(wnid) in str(error.value) or wnid in str(error.value)


def test_bad_label_set_names_and_empty_sets(imagenet1k):
    with pytest.raises(labels.UnknownLabelSetError, match="Did you mean down_up_"):
        labels.label_set("downup_9", imagenet1k)
    with pytest.raises(labels.UnknownLabelSetError, match="918"):
        labels.label_set("down_up_900", imagenet1k)  # not a step: the steps are listed
    with pytest.raises(ValueError, match="class list is empty"):
        labels.label_set("fine", [])
    with pytest.raises(ValueError, match="between 1 and"):
        labels.label_set("random_0", imagenet1k)
    with pytest.raises(UnknownClassError, match="dgo.n.01"):
        labels.extra_classes(imagenet1k, 5, 0, class_list("imagenet21k"), include_under=("dgo.n.01",))
    with pytest.raises(ValueError, match="extra_<N> label sets only"):
        labels.label_set("fine", imagenet1k, include_under=("dog.n.01",))
    with pytest.raises(ValueError, match="extra_<N> label sets only"):
        labels.label_set("fine", imagenet1k, extra_pool=["n00446980"])
    # Archery is outside the 1000; a tench is one of them, and a person is above some (a scuba diver).
    with pytest.raises(ValueError, match="extra_2: 1 candidate classes of the 3 in the extra pool"):
        labels.label_set("extra_2", imagenet1k, extra_pool=["n00446980", "n01440764", "n00007846"])


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "subsets", *args], capture_output=True, text=True, timeout=300)


def test_cli_label_sets_and_export(tmp_path):
    listing = run_cli("label-sets")
    assert listing.returncode == 0, listing.stderr
    assert "down_up:        " + " ".join(map(str, DOWN_UP_COUNTS)) in listing.stdout
    assert "up_down:        127 10 2 1" in listing.stdout
    assert "pascal_removed: 771  (229 removed" in listing.stdout
    exported = run_cli("export", "down_up_79", "--out", str(tmp_path / "du79.csv"))
    assert exported.returncode == 0, exported.stderr
    with open(tmp_path / "du79.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["wnid", "label_wnid", "label_name"] and len(rows) == 1000
    assert len({r["label_wnid"] for r in rows}) == 79
    tench = next(r for r in rows if r["wnid"] == "n01440764")
    assert synset_of(tench["label_wnid"]) in first_parent_chain(synset_of("n01440764"))
    removed = run_cli("export", "pascal_removed", "--out", str(tmp_path / "pr.csv"))
    assert removed.returncode == 0
    with open(tmp_path / "pr.csv", newline="") as f:
        kept = [r["wnid"] for r in csv.DictReader(f)]
    assert len(kept) == 771 and "n02085620" not in kept  # Chihuahua is a dog: dropped
    bad = run_cli("export", "down_up_10", "--out", str(tmp_path / "x.csv"))
    assert bad.returncode == 1 and "its steps have" in bad.stderr and not (tmp_path / "x.csv").exists()
