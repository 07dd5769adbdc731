"""Synthetic datasets in the real on-disk formats of ImageNet, of extra ImageNet-21k classes outside it
(``imagenet_extra``), PASCAL VOC 2007 detection, VOC 2012 action and SUN397 (and of any task that registers a
generator), generated offline.

Each dataset is named by its generator (``GENERATORS``, filled by ``@GENERATORS.register(name)`` above
an ``ensure(scale, seed, workers) -> Path`` function whose module holds its ``SCALES``) and built once under the data directory
(``formats.cache``), in a folder whose name carries a digest of every module that shapes it.
``resolve`` turns a data source, ``embedded:<scale>`` or the path of a real dataset, into a folder, and
``fingerprint`` says what it holds.
"""

import functools
import hashlib
import inspect
import os
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from formats import fork_pool
from formats.cache import build_once, data_dir
from formats.cache import fingerprint as folder_fingerprint
from formats.registry import Registry

GENERATORS = Registry("synthetic dataset", package="synthetic")
EMBEDDED = "embedded:"  # a data source generated here: embedded:<scale>
ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def code_version(generator_file: Path | None = None) -> str:
    """A digest of the code and lists that shape synthetic data: this package, the layer below it (formats:
    the class lists, PASCAL synsets and WordNet rules the generators follow) and the generator's own file where
    it lives elsewhere (a task's file). Cached datasets are named by it, so no edit to any of them ever serves
    data that the old code made."""
    files = [path for package in ("formats", "synthetic") for path in sorted((ROOT / package).glob("*.[pt][yx]*"))]
    if generator_file is not None and generator_file.parent not in (ROOT / "formats", ROOT / "synthetic"):
        files.append(generator_file)
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.parent.name}/{path.name}".encode() + path.read_bytes())
    return digest.hexdigest()[:8]


def generator_version(function: Callable) -> str:
    """The ``code_version`` of the data that a function of a generator's file makes."""
    return code_version(Path(inspect.getsourcefile(function)).resolve())


@dataclass(frozen=True)
class TrainTestScale:
    """The size of a synthetic dataset with a train and a test split."""

    classes: int
    image_size: int  # pixels a side
    train_per_class: int
    test_per_class: int


def ensure_dataset(name: str, scales: dict, scale: str, seed: int, generate: Callable, workers=None) -> Path:
    """The synthetic dataset ``name`` at this scale and seed, generated on first use by
    ``generate(out_dir, scales[scale], seed, workers)``."""
    if scale not in scales:
        raise ValueError(f"unknown scale {scale!r} for {name}; choose one of {sorted(scales)}")
    version = generator_version(generate)
    target = data_dir() / "synthetic" / f"{name}-{scale}-seed{seed}-{version}"
    return build_once(target, lambda out: generate(out, scales[scale], seed, workers))


def resolve(dataset: str, source: str) -> Path:
    """The folder of ``dataset`` for a data source: ``embedded:<scale>`` (generated here on first use, the
    same on every node) or the path of the real dataset. Called where the data is read, so that every
    node of a cluster finds its own copy."""
    if source.startswith(EMBEDDED):
        return GENERATORS[dataset](source.removeprefix(EMBEDDED))
    return Path(source).expanduser().resolve()


def scales(dataset: str) -> list[str]:
    """The scales the embedded ``dataset`` is generated at (``embedded:<scale>``)."""
    return sorted(sys.modules[GENERATORS[dataset].__module__].SCALES)


def fingerprint(dataset: str, source: str) -> str:
    """What a data source holds, for the identity of the units that read it. ``embedded:<scale>``: the source
    and the version of the code that generates it (its data is a function of that code, and the cache builds
    again a folder whose files changed); a real dataset: its folder's ``formats.cache.fingerprint`` (``absent``
    where there is none yet: a dry run may plan for data on another machine; a run checks it first)."""
    if source.startswith(EMBEDDED):
        return f"{source}@{generator_version(GENERATORS[dataset])}"
    root = Path(source).expanduser()
    return folder_fingerprint(root) if root.is_dir() else "absent"


def changed_since_planned(source: str, planned: str, held: str) -> str:
    """Why a unit may not read a data source that no longer holds what its run planned on."""
    return (
        f"{source} on {socket.gethostname()} holds other data than when the run was planned ({held}, planned on "
        f"{planned}): files were added, removed or rewritten since, this node has another copy, or (embedded data) "
        "other code generates it. Give every node the same data and code and rerun the command: it plans on what the "
        "data holds then."
    )


def run_parallel(work: Callable, tasks: Sequence, desc: str, workers: int | None = None) -> list:
    """``work`` over ``tasks`` on all cores with a progress bar; results in task order."""
    with fork_pool(workers or os.cpu_count()) as pool:
        return list(tqdm(pool.imap(work, tasks, chunksize=8), total=len(tasks), desc=desc))
