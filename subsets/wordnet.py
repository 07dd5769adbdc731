"""The WordNet 3.0 hierarchy as the paper's label sets used it, and where class lists come from.

The first-parent rule. Huh et al. merged classes by following each synset's "first hypernym",
computed in 2016 with NLTK, whose ``hypernyms()`` then returned a synset's related synsets sorted
by name. Today's NLTK keeps them in a set, so their order changes with Python's string hashing
from one process to the next, and naive use gives other, unstable chains (1000, 999, 978, 920,
... in one run). Taking the alphabetically first of a synset's hypernyms and instance hypernyms
as its parent (``embedded.wordnet.first_parent``), and a synset's depth as the length of its
chain of first parents up to entity.n.01, reproduces every published count: down_up 918, 753,
486, 79, 9 and up_down 127 (tests/test_label_sets.py).
"""

import functools
from pathlib import Path

from nltk.corpus.reader.wordnet import Synset, WordNetError

from embedded import imagenet, wordnet
from embedded.wordnet import first_parent_chain
from trainers.data import list_imagenet


class UnknownClassError(ValueError):
    """A wnid that is malformed, or names no WordNet 3.0 noun synset."""


@functools.cache
def synset_of(wnid: str) -> Synset:
    try:
        return imagenet.synset_of(wnid)
    except ValueError as error:
        raise UnknownClassError(str(error)) from None


def synset_named(name: str) -> Synset:
    """A synset by NLTK name, like ``dog.n.01``."""
    try:
        return wordnet.load().synset(name)
    except (WordNetError, ValueError):
        raise UnknownClassError(f"{name!r} names no WordNet 3.0 synset (expected a name like dog.n.01)") from None


def wnid_of(synset: Synset) -> str:
    return f"{synset.pos()}{synset.offset():08d}"


def label_name(synset: Synset) -> str:
    return ", ".join(name.replace("_", " ") for name in synset.lemma_names())


def depth(synset: Synset) -> int:
    return len(first_parent_chain(synset))


@functools.cache
def ancestors(synset: Synset) -> frozenset[Synset]:
    """Every synset above this one on any hypernym path."""
    return frozenset(synset.closure(lambda s: s.hypernyms() + s.instance_hypernyms()))


def is_under(synset: Synset, ancestor: Synset) -> bool:
    return synset == ancestor or ancestor in ancestors(synset)


# Class lists --------------------------------------------------------------------------------

CLASS_LISTS = {
    "imagenet1k": "imagenet_synsets.txt",  # the 1000 ILSVRC-2012 classes
    "imagenet21k": "imagenet21k_goog_synsets.txt",  # Google's ImageNet-21k release (21,843)
}


def class_list(source: str) -> list[str]:
    """``imagenet1k``, ``imagenet21k`` (timm's lists), or a data root whose ``train/`` holds one
    folder per wnid. Every wnid is checked against WordNet 3.0."""
    if source in CLASS_LISTS:
        wnids = list(imagenet.timm_info_lines(CLASS_LISTS[source]))
    elif Path(source).is_dir():
        wnids = sorted(set(list_imagenet(source, "train")["wnid"].to_pylist()))
    else:
        raise ValueError(f"class list {source!r} is neither one of {sorted(CLASS_LISTS)} nor a data folder")
    for wnid in wnids:
        synset_of(wnid)
    return wnids
