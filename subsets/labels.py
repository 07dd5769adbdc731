"""Label sets: which ImageNet classes a pretraining sees, and under which labels.

A label set maps each kept class (wnid) to its label (a wnid: the class itself, or the WordNet
ancestor it was merged into); dropped classes are absent. Every set has a name the CLI and the
grids use:

  fine                    every class under its own label
  down_up_<N>             bottom-up merge (paper Sec 5.1): labels at the deepest depth move to
                          their first parent, one depth at a time; each step that changes the
                          count is a set. On ImageNet-1k: 1000, 999, 977, 918, 877, 820, 753, 694,
                          596, 486, 345, 206, 79, 36, 17, 9, 5, 2, 1
  up_down_<N>             top-down merge: every label moves to its first parent, and a parent
                          that lies on another's first-parent chain is absorbed by the highest
                          such; repeated. On ImageNet-1k: 127, 10, 2, 1
  pascal_removed          the ImageNet classes Huh et al. matched to the 20 PASCAL VOC classes dropped
                          (``PASCAL_REMOVAL_SYNSETS``, any hypernym path): 229 go, 771 stay
  random_<N>              N classes drawn at random (seeded)
  split_random_a / _b     two disjoint halves drawn at random (seeded)
  split_min_a / _b        two halves that share the least WordNet ancestry: the classes in
                          depth-first order of the first-parent tree, cut in the middle
  extra_<N>               every class plus N classes from outside them (seeded; see ``extra_classes``),
                          drawn from the extra data's classes, or from ImageNet-21k's list

Each method is registered under its name pattern (``LABEL_SET_METHODS``) by the function that
builds it; "first parent" and "depth" follow the rule in formats/wordnet.py, which reproduces the
paper's published counts.
"""

import difflib
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from nltk.corpus.reader.wordnet import Synset

from formats.imagenet import class_list
from formats.registry import Registry
from formats.voc import PASCAL_CLASS_SYNSETS
from formats.wordnet import (
    ancestors,
    depth,
    first_parent,
    first_parent_chain,
    is_under,
    label_name,
    outside_classes,
    synset_named,
    synset_of,
    wnid_of,
)

LABEL_SET_METHODS = Registry("label-set method")  # name pattern ("down_up_<N>") -> Method
# The synset whose ImageNet-1k classes (on any hypernym path) Huh et al. removed as each PASCAL class (Sec 5.6), as
# their release lists them (label_sets/pascal/common_pascal_coarse.txt in minyoungg/wmigftl): the synset each class
# depicts, except for three classes, which their matching took by name: cow is cow.n.01, under which ImageNet-1k
# has no class (ox stays); pottedplant is plant.n.02, the plants daisy and yellow lady's slipper (the pot stays);
# tvmonitor is monitor.n.05, the computer monitor (the television stays). 229 classes go, 771 stay.
PASCAL_REMOVAL_SYNSETS = {
    **PASCAL_CLASS_SYNSETS, "cow": "cow.n.01", "pottedplant": "plant.n.02", "tvmonitor": "monitor.n.05"
}

class UnknownLabelSetError(ValueError):
    pass


@dataclass(frozen=True)
class LabelSet:
    name: str
    labels: dict  # kept class wnid -> label wnid, in the class list's order

    def __post_init__(self):
        if not self.labels:
            raise ValueError(f"label set {self.name!r} keeps no class")

    @functools.cached_property
    def label_wnids(self) -> list[str]:
        """The labels in index order (sorted wnids, as ImageNet orders its classes)."""
        return sorted(set(self.labels.values()))

    @functools.cached_property
    def label_index(self) -> dict[str, int]:
        return {wnid: index for index, wnid in enumerate(self.label_wnids)}

    @property
    def num_labels(self) -> int:
        return len(self.label_wnids)

    def members(self) -> dict[str, list[str]]:
        """Label wnid -> the classes merged into it."""
        groups = {label: [] for label in self.label_wnids}
        for wnid, label in self.labels.items():
            groups[label].append(wnid)
        return groups

    def rows(self) -> list[dict]:
        """One row per kept class: ``wnid, label_wnid, label_name`` (the CSV export)."""
        return [
            {"wnid": wnid, "label_wnid": label, "label_name": label_name(synset_of(label))}
            for wnid, label in self.labels.items()
        ]


def _from_synsets(name: str, labels: dict[str, Synset]) -> LabelSet:
    return LabelSet(name, {wnid: wnid_of(synset) for wnid, synset in labels.items()})


def fine(wnids: list[str]) -> LabelSet:
    return LabelSet("fine", {w: w for w in wnids})


def down_up_chain(wnids: list[str]) -> list[LabelSet]:
    labels = {w: synset_of(w) for w in wnids}
    chain = [_from_synsets(f"down_up_{len(set(labels.values()))}", labels)]
    while True:
        current = set(labels.values())
        deepest = max(depth(s) for s in current)
        if deepest == 0:
            return chain
        moved = {s: first_parent(s) if depth(s) == deepest else s for s in current}
        labels = {w: moved[s] for w, s in labels.items()}
        count = len(set(labels.values()))
        if count != chain[-1].num_labels:
            chain.append(_from_synsets(f"down_up_{count}", labels))


def up_down_chain(wnids: list[str]) -> list[LabelSet]:
    labels = {w: synset_of(w) for w in wnids}
    chain = []
    while len(set(labels.values())) > 1:
        parent_of = {s: first_parent(s) or s for s in set(labels.values())}
        parents = set(parent_of.values())
        highest = {}
        for parent in parents:
            above = [p for p in first_parent_chain(parent) if p in parents]
            highest[parent] = above[-1] if above else parent
        labels = {w: highest[parent_of[s]] for w, s in labels.items()}
        chain.append(_from_synsets(f"up_down_{len(set(labels.values()))}", labels))
    return chain


def pascal_removed_classes(wnids: list[str]) -> dict[str, list[str]]:
    """PASCAL class -> the classes under its removal synset (a class can fall under several)."""
    return {
        pascal: [w for w in wnids if is_under(synset_of(w), synset_named(synset_name))]
        for pascal, synset_name in PASCAL_REMOVAL_SYNSETS.items()
    }


def pascal_removed(wnids: list[str]) -> LabelSet:
    removed = {w for group in pascal_removed_classes(wnids).values() for w in group}
    return LabelSet("pascal_removed", {w: w for w in wnids if w not in removed})


def random_classes(wnids: list[str], count: int, seed: int) -> LabelSet:
    if not 1 <= count <= len(wnids):
        raise ValueError(f"random_{count}: choose between 1 and {len(wnids)} classes")
    chosen = set(np.random.default_rng(seed).choice(wnids, count, replace=False).tolist())
    return LabelSet(f"random_{count}", {w: w for w in wnids if w in chosen})


def random_halves(wnids: list[str], seed: int) -> tuple[LabelSet, LabelSet]:
    order = np.random.default_rng(seed).permutation(len(wnids))
    first = {wnids[i] for i in order[: len(wnids) // 2]}
    return (
        LabelSet("split_random_a", {w: w for w in wnids if w in first}),
        LabelSet("split_random_b", {w: w for w in wnids if w not in first}),
    )


def min_shared_ancestry_halves(wnids: list[str]) -> tuple[LabelSet, LabelSet]:
    """Classes in depth-first order of the first-parent tree, cut in the middle: whole subtrees
    fall on one side, so the halves share only the ancestors above the cut."""

    def tree_position(wnid):
        synset = synset_of(wnid)
        return tuple(s.name() for s in reversed((synset, *first_parent_chain(synset))))

    ordered = sorted(wnids, key=tree_position)
    first = set(ordered[: len(wnids) // 2])
    return (
        LabelSet("split_min_a", {w: w for w in wnids if w in first}),
        LabelSet("split_min_b", {w: w for w in wnids if w not in first}),
    )


def shared_ancestors(a: LabelSet, b: LabelSet) -> set[Synset]:
    """The synsets above classes of both sets (any hypernym path)."""
    above = lambda s: set().union(*(ancestors(synset_of(w)) for w in s.labels))  # noqa: E731
    return above(a) & above(b)


def extra_classes(
    wnids: list[str],
    count: int,
    seed: int,
    pool: list[str],
    include_under: tuple[str, ...] = (),
    exclude_under: tuple[str, ...] = (),
) -> LabelSet:
    """Every class of ``wnids`` plus ``count`` classes drawn (seeded) from the wnids ``pool``.

    Candidates are the pool's classes outside ``wnids`` (``formats.wordnet.outside_classes``).
    ``include_under`` keeps only candidates under one of these synsets (names like ``dog.n.01``);
    ``exclude_under`` drops the candidates under any of them."""
    include = [synset_named(name) for name in include_under]
    exclude = [synset_named(name) for name in exclude_under]
    candidates = [
        wnid for wnid in outside_classes(pool, wnids)
        if (not include or any(is_under(synset_of(wnid), s) for s in include))
        and not any(is_under(synset_of(wnid), s) for s in exclude)
    ]  # fmt: skip
    if not 1 <= count <= len(candidates):
        raise ValueError(
            f"extra_{count}: {len(candidates)} candidate classes of the {len(pool)} in the extra pool fit the filters"
        )
    chosen = sorted(np.random.default_rng(seed).choice(candidates, count, replace=False).tolist())
    return LabelSet(f"extra_{count}", {w: w for w in [*wnids, *chosen]})


# Names: every method registered under its name pattern ---------------------------------------


@dataclass(frozen=True)
class Request:
    """What a method builds from: the set's name, the number in it (``<N>``), the class list and options."""

    name: str
    number: int | None
    wnids: tuple[str, ...]
    seed: int = 0
    include_under: tuple[str, ...] = ()
    exclude_under: tuple[str, ...] = ()
    extra_pool: tuple[str, ...] | None = None  # extra_<N>'s candidates (None: ImageNet-21k's list)


@dataclass(frozen=True)
class Method:
    pattern: str  # the names it builds: "fine", "down_up_<N>", ...
    build: Callable[[Request], LabelSet]
    example: str  # a name it builds on ImageNet-1k (the registry-driven tests build it)
    adds_extra_classes: bool = False  # classes from outside the data's: an extra pool, include/exclude_under apply
    version: int = 0  # raised when the classes it builds change: part of the identity of what is built on it

    def matches(self, name: str) -> re.Match | None:
        return re.fullmatch(re.escape(self.pattern).replace("<N>", r"(\d+)"), name)


def register_method(
    pattern: str, example: str | None = None, adds_extra_classes: bool = False, version: int = 0
) -> Callable:
    def add(build: Callable[[Request], LabelSet]) -> Callable:
        LABEL_SET_METHODS.register(pattern)(Method(pattern, build, example or pattern, adds_extra_classes, version))
        return build

    return add


@functools.cache
def _chain(make_chain: Callable[[list[str]], list[LabelSet]], wnids: tuple[str, ...]) -> list[LabelSet]:
    return make_chain(list(wnids))


def _pick_from_chain(request: Request, make_chain: Callable[[list[str]], list[LabelSet]]) -> LabelSet:
    chain = _chain(make_chain, request.wnids)
    for step in chain:
        if step.name == request.name:
            return step
    counts = ", ".join(str(s.num_labels) for s in chain)
    method = request.name.rsplit("_", 1)[0]
    raise UnknownLabelSetError(f"{method} has no step named {request.name!r}; its steps have {counts} classes")


register_method("fine")(lambda r: fine(list(r.wnids)))
register_method("down_up_<N>", "down_up_918")(lambda r: _pick_from_chain(r, down_up_chain))
register_method("up_down_<N>", "up_down_127")(lambda r: _pick_from_chain(r, up_down_chain))
# Version 1: the authors' released set (ox, pot and television stay; monitor, daisy, yellow lady's slipper go).
register_method("pascal_removed", version=1)(lambda r: pascal_removed(list(r.wnids)))
register_method("random_<N>", "random_10")(lambda r: random_classes(list(r.wnids), r.number, r.seed))
register_method("split_random_a")(lambda r: random_halves(list(r.wnids), r.seed)[0])
register_method("split_random_b")(lambda r: random_halves(list(r.wnids), r.seed)[1])
register_method("split_min_a")(lambda r: min_shared_ancestry_halves(list(r.wnids))[0])
register_method("split_min_b")(lambda r: min_shared_ancestry_halves(list(r.wnids))[1])
register_method("extra_<N>", "extra_5", adds_extra_classes=True)(
    lambda r: extra_classes(
        list(r.wnids), r.number, r.seed, class_list("imagenet21k") if r.extra_pool is None else list(r.extra_pool),
        r.include_under, r.exclude_under,
    )
)


def method_of(name: str) -> tuple[Method, int | None]:
    """The method that builds the label set ``name``, and the number in the name; UnknownLabelSetError, with
    the nearest valid names, if there is none."""
    patterns = LABEL_SET_METHODS.names()
    for pattern in patterns:
        method = LABEL_SET_METHODS[pattern]
        if found := method.matches(name):
            return method, int(found.group(1)) if found.groups() else None
    close = difflib.get_close_matches(name, [p.replace("<N>", "") for p in patterns], n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UnknownLabelSetError(f"unknown label set {name!r}.{hint} Label sets: {', '.join(patterns)}")


def check_name(name: str) -> None:
    """Raises UnknownLabelSetError, with the nearest valid names, unless ``name`` is one."""
    method_of(name)


def adds_extra_classes(name: str) -> bool:
    """Whether the label set ``name`` adds classes from outside the data's (``extra_<N>``): their images are
    extra data."""
    return method_of(name)[0].adds_extra_classes


def label_set(
    name: str,
    wnids: list[str],
    seed: int = 0,
    include_under: tuple[str, ...] = (),
    exclude_under: tuple[str, ...] = (),
    extra_pool: list[str] | None = None,
) -> LabelSet:
    """The label set called ``name`` over the classes ``wnids`` (see the module docstring);
    ``extra_pool`` holds the candidates of ``extra_<N>`` (default: ImageNet-21k's list), and ``include_under``
    and ``exclude_under`` filter them."""
    method, number = method_of(name)
    if not wnids:
        raise ValueError("the class list is empty")
    if (include_under or exclude_under or extra_pool is not None) and not method.adds_extra_classes:
        raise ValueError(
            f"include/exclude-under filters and extra pools apply to extra_<N> label sets only, not {name!r}"
        )
    for wnid in wnids:
        synset_of(wnid)  # names an unknown class before anything is built on it
    pool = None if extra_pool is None else tuple(extra_pool)
    return method.build(Request(name, number, tuple(wnids), seed, tuple(include_under), tuple(exclude_under), pool))
