"""Embedded offline data: WordNet as an NLTK corpus and synthetic datasets in the real on-disk
formats of ImageNet, PASCAL VOC 2007 detection, VOC 2012 action and SUN397.

Everything lives under one data directory: ``$TRANSFER_DATA_DIR`` or ``data/`` in the checkout.
Each dataset is built once into a temporary folder and renamed into place, under a file lock,
so an interrupted build leaves nothing that looks finished and concurrent builders wait
for each other instead of racing.
"""

import fcntl
import functools
import hashlib
import json
import multiprocessing
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm import tqdm

COMPLETE_MARKER = "BUILD_COMPLETE.json"


def data_dir() -> Path:
    return Path(os.environ.get("TRANSFER_DATA_DIR", Path(__file__).resolve().parents[1] / "data"))


@functools.cache
def code_version() -> str:
    """A digest of this package's code and lists: cached datasets are named by it, so a change
    to a generator never serves data that the old code made."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.[pt][yx]*")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:8]


def ensure_dataset(name: str, scales: dict, scale: str, seed: int, generate: Callable, workers=None) -> Path:
    """The synthetic dataset ``name`` at this scale and seed, generated on first use by
    ``generate(out_dir, scales[scale], seed, workers)``."""
    if scale not in scales:
        raise ValueError(f"unknown scale {scale!r} for {name}; choose one of {sorted(scales)}")
    target = data_dir() / "synthetic" / f"{name}-{scale}-seed{seed}-{code_version()}"
    return build_once(target, lambda out: generate(out, scales[scale], seed, workers))


def is_built(path: Path) -> bool:
    return (path / COMPLETE_MARKER).is_file()


def build_once(target: Path, build: Callable[[Path], dict]) -> Path:
    """Run ``build(tmp_dir)`` and move the result to ``target`` unless it is already there.

    ``build`` returns a JSON-able summary that is stored in the completion marker.
    """
    if is_built(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_built(target):  # another process built it while we waited
            return target
        for stale in target.parent.glob(f".{target.name}.partial-*"):  # from killed builds
            shutil.rmtree(stale)
        tmp = target.parent / f".{target.name}.partial-{os.getpid()}"
        summary = build(tmp)
        (tmp / COMPLETE_MARKER).write_text(json.dumps(summary, indent=1, sort_keys=True))
        if target.exists():  # a stale, unfinished build from an interrupted run
            shutil.rmtree(target)
        os.rename(tmp, target)
    return target


def run_parallel(work: Callable, tasks: Sequence, desc: str, workers: int | None = None) -> list:
    """``work`` over ``tasks`` on all cores with a progress bar; results in task order."""
    with multiprocessing.get_context("fork").Pool(workers or os.cpu_count()) as pool:
        return list(tqdm(pool.imap(work, tasks, chunksize=8), total=len(tasks), desc=desc))
