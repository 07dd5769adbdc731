"""Princeton WordNet 3.0, the version ImageNet's wnids index, read through NLTK; the one place that
says what a synset's parent, depth and ancestors are.

Debian's ``wordnet-base`` ships the 3.0 database under /usr/share/wordnet. NLTK's reader also
wants ``lexnames`` (the 45 lexicographer files, a fixed table of lexnames(5WN)) and
``index.sense`` (sense key -> synset, which the data files determine), and NLTK >= 3.10 reads
only from directories on ``nltk.data.path``. ``install`` lays the corpus out under the project's
data directory; ``load`` returns the reader. Nothing is downloaded.

The first-parent rule. Huh et al. merged classes by following each synset's "first hypernym",
computed in 2016 with NLTK, whose ``hypernyms()`` then returned a synset's related synsets sorted
by name. Today's NLTK keeps them in a set, so their order changes with Python's string hashing
from one process to the next, and naive use gives other, unstable chains (1000, 999, 978, 920,
... in one run). Taking the alphabetically first of a synset's hypernyms and instance hypernyms
as its parent (``first_parent``), and a synset's depth as the length of its chain of first
parents up to entity.n.01, reproduces every published count: down_up 918, 753, 486, 79, 9 and
up_down 127 (tests/test_label_sets.py).

"Under" a synset means on any of its hypernym or instance-hypernym paths (``ancestors``); a class is
"outside" a set of classes when it is neither one of them nor above or below one (``outside_classes``:
the extra classes of paper Sec 6).

    python -m formats.wordnet      # install (set-up runs this); prints the corpus path
"""

import functools
import os
import shutil
import warnings
from pathlib import Path

import nltk
from nltk.corpus.reader.wordnet import Synset, WordNetCorpusReader, WordNetError

from formats.cache import build_once, data_dir

DEBIAN_WORDNET = Path(os.environ.get("WORDNET_DIR", "/usr/share/wordnet"))
DATABASE_FILES = tuple(
    f"{kind}.{pos}" for kind in ("data", "index") for pos in ("noun", "verb", "adj", "adv")
) + ("noun.exc", "verb.exc", "adj.exc", "adv.exc", "cntlist.rev")
# lexnames(5WN): file number = position in this tuple.
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute "
    "noun.body noun.cognition noun.communication noun.event noun.feeling noun.food noun.group "
    "noun.location noun.motive noun.object noun.person noun.phenomenon noun.plant "
    "noun.possession noun.process noun.quantity noun.relation noun.shape noun.state "
    "noun.substance noun.time verb.body verb.change verb.cognition verb.communication "
    "verb.competition verb.consumption verb.contact verb.creation verb.emotion verb.motion "
    "verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
SYNTACTIC_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def nltk_data_dir() -> Path:
    return data_dir() / "nltk_data"


def corpus_dir() -> Path:
    return nltk_data_dir() / "corpora" / "wordnet"


def install(source: Path = DEBIAN_WORDNET) -> Path:
    _allow_nltk_data_dir()
    return build_once(corpus_dir(), lambda tmp: _lay_out(Path(source), tmp))


@functools.cache
def load() -> WordNetCorpusReader:
    """The WordNet 3.0 reader, installing the corpus first if needed."""
    return _reader(install())


@functools.cache
def first_parent(synset: Synset) -> Synset | None:
    """The alphabetically first of a synset's hypernyms and instance hypernyms.

    NLTK keeps a synset's pointers in a set, so ``hypernyms()`` comes in an order that changes
    with Python's string hashing from one process to the next; "the first hypernym" needs a
    rule. This one is stable, and it is the one that reproduces the paper's label sets, computed
    with a 2016 NLTK that sorted related synsets by name (see the module's docstring)."""
    parents = synset.hypernyms() + synset.instance_hypernyms()
    return min(parents, key=Synset.name) if parents else None


@functools.cache
def first_parent_chain(synset: Synset) -> tuple[Synset, ...]:
    """The synset's first parent, its first parent, ... up to entity.n.01."""
    parent = first_parent(synset)
    return () if parent is None else (parent, *first_parent_chain(parent))


class UnknownClassError(ValueError):
    """A wnid that is malformed, or names no WordNet 3.0 noun synset."""


@functools.cache
def synset_of(wnid: str) -> Synset:
    """The WordNet 3.0 noun synset a wnid names (``n01440764`` -> tench.n.01)."""
    if len(wnid) != 9 or wnid[0] != "n" or not wnid[1:].isdigit():
        raise UnknownClassError(f"{wnid!r} is not a wnid (expected 'n' and 8 digits, like n01440764)")
    with warnings.catch_warnings():  # NLTK warns, then returns None, for an offset it lacks
        warnings.simplefilter("ignore", UserWarning)
        try:
            synset = load().synset_from_pos_and_offset("n", int(wnid[1:]))
        except WordNetError:
            synset = None
    if synset is None:
        raise UnknownClassError(
            f"{wnid} names no WordNet 3.0 noun synset; ImageNet's wnids are WordNet 3.0 offsets. "
            "Check the class list or folder name."
        )
    return synset


def synset_named(name: str) -> Synset:
    """A synset by NLTK name, like ``dog.n.01``."""
    try:
        return load().synset(name)
    except (WordNetError, ValueError):
        raise UnknownClassError(f"{name!r} names no WordNet 3.0 synset (expected a name like dog.n.01)") from None


def wnid_of(synset: Synset) -> str:
    return f"{synset.pos()}{synset.offset():08d}"


def label_name(synset: Synset) -> str:
    return ", ".join(name.replace("_", " ") for name in synset.lemma_names())


def depth(synset: Synset) -> int:
    return len(first_parent_chain(synset))


def root_first_path(synset: Synset) -> list[Synset]:
    """entity.n.01, ..., the synset: its chain of first parents, root first."""
    return [*reversed(first_parent_chain(synset)), synset]


@functools.cache
def ancestors(synset: Synset) -> frozenset[Synset]:
    """Every synset above this one on any hypernym or instance-hypernym path."""
    return frozenset(synset.closure(lambda s: s.hypernyms() + s.instance_hypernyms()))


def is_under(synset: Synset, ancestor: Synset) -> bool:
    return synset == ancestor or ancestor in ancestors(synset)


def outside_classes(pool_wnids: list[str], base_wnids: list[str]) -> list[str]:
    """The wnids of ``pool_wnids`` outside the classes ``base_wnids``: neither one of them, nor above or below
    one of them (any hypernym path). A class above or below a base class would show the same objects again."""
    base = {synset_of(wnid) for wnid in base_wnids}
    above_base = set().union(*(ancestors(synset) for synset in base))
    return [
        wnid for wnid in pool_wnids
        if (synset := synset_of(wnid)) not in base and synset not in above_base and not ancestors(synset) & base
    ]  # fmt: skip


def _allow_nltk_data_dir() -> None:
    if str(nltk_data_dir()) not in nltk.data.path:
        nltk.data.path.insert(0, str(nltk_data_dir()))


class _EnglishCorpusReader(WordNetCorpusReader):
    """The stock reader without its map to the corpus published under ``corpora/wordnet``, which only the
    multilingual functions use: building it reads every sense key twice (seconds in every process that plans
    or builds a subset), and while the corpus is being laid out, the published one is the one being built."""

    def map_wn(self, version="wordnet"):
        return None


def _reader(path: Path) -> WordNetCorpusReader:
    _allow_nltk_data_dir()
    with warnings.catch_warnings():  # "multilingual functions are not available": we need none
        warnings.simplefilter("ignore", UserWarning)
        return _EnglishCorpusReader(str(path), None)


def _lay_out(source: Path, out: Path) -> dict:
    missing = [name for name in DATABASE_FILES if not (source / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"WordNet 3.0 database files missing from {source}: {', '.join(missing)}. "
            "Install Debian's package (as root): apt-get install --no-install-recommends "
            "wordnet-base, or run ./setup.sh"
        )
    out.mkdir(parents=True)
    for name in DATABASE_FILES:
        shutil.copyfile(source / name, out / name)
    (out / "lexnames").write_text(
        "".join(
            f"{number:02d}\t{name}\t{SYNTACTIC_CATEGORY[name.split('.')[0]]}\n"
            for number, name in enumerate(LEXNAMES)
        )
    )
    (out / "index.sense").write_text(_index_sense(out))
    version = _reader(out).get_version()
    if version != "3.0":
        raise ValueError(f"{source} holds WordNet {version}; ImageNet's wnids need WordNet 3.0")
    return {"wordnet_version": version, "source": str(source)}


SENSE_TYPE_NUMBERS = {"n": 1, "v": 2, "a": 3, "r": 4, "s": 5}  # ss_type in a sense key (senseidx(5WN))


def _index_sense(corpus: Path) -> str:
    """index.sense per senseidx(5WN), ``sense_key synset_offset sense_number tag_cnt`` sorted by key, read straight
    from the data and index files (NLTK's reader would parse every synset into objects: three times slower)."""
    tag_counts = {}
    for line in (corpus / "cntlist.rev").read_text().splitlines():
        key, _, count = line.split()
        tag_counts[key] = int(count)
    senses = {}  # (lemma, index pos) -> its synsets' offsets in sense order
    for pos in ("noun", "verb", "adj", "adv"):
        for line in (corpus / f"index.{pos}").read_text().splitlines():
            if line.startswith(" "):  # the licence
                continue
            fields = line.split()
            lemma, index_pos, pointers = fields[0], fields[1], int(fields[3])
            senses[lemma, index_pos] = fields[4 + pointers + 2 :]
    synsets = [_data_fields(line) for pos in ("noun", "verb", "adj", "adv")
               for line in (corpus / f"data.{pos}").read_text().splitlines() if not line.startswith(" ")]  # fmt: skip
    heads = {offset: words[0] for offset, _, ss_type, words, _ in synsets if ss_type == "a"}  # adjective clusters
    rows = []
    for offset, lex_filenum, ss_type, words, head in synsets:
        head_name, head_id = ("", "")
        if ss_type == "s":  # a satellite's key names the first word of its cluster's head
            head_word, head_lex_id = heads[head]
            head_name, head_id = head_word, f"{head_lex_id:02d}"
        index_pos = "a" if ss_type == "s" else ss_type
        for word, lex_id in words:
            key = f"{word}%{SENSE_TYPE_NUMBERS[ss_type]}:{lex_filenum:02d}:{lex_id:02d}:{head_name}:{head_id}".lower()
            number = senses[word.lower(), index_pos].index(offset) + 1
            rows.append((key, f"{key} {offset} {number} {tag_counts.get(key, 0)}\n"))
    rows.sort()
    return "".join(row for _, row in rows)


def _data_fields(line: str) -> tuple[str, int, str, list[tuple[str, int]], str | None]:
    """(offset, lex_filenum, ss_type, [(word, lex_id)], the first similar-to pointer's offset) of a data.<pos> line
    (wndb(5WN)); an adjective's syntactic marker, "(a)", "(p)" or "(ip)", is not part of its word."""
    fields = line.split(" | ", 1)[0].split()
    count = int(fields[3], 16)
    words = [(fields[4 + 2 * k].split("(")[0], int(fields[5 + 2 * k], 16)) for k in range(count)]
    at = 4 + 2 * count
    pointers = [fields[at + 1 + 4 * k : at + 5 + 4 * k] for k in range(int(fields[at]))]
    similar = next((target for symbol, target, _, _ in pointers if symbol == "&"), None)
    return fields[0], int(fields[1]), fields[2], words, similar


if __name__ == "__main__":
    print(install())
