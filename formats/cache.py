"""Where generated and derived data live, and how each piece is built exactly once.

Everything lives under one data directory: ``$TRANSFER_DATA_DIR`` or ``data/`` in the checkout.
Each piece is built into a temporary folder and renamed into place under a file lock, with
``BUILD_COMPLETE.json`` written last, so an interrupted build leaves nothing that looks finished
and concurrent builders wait for one build instead of racing.
"""

import fcntl
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

COMPLETE_MARKER = "BUILD_COMPLETE.json"


def data_dir() -> Path:
    return Path(os.environ.get("TRANSFER_DATA_DIR", Path(__file__).resolve().parents[1] / "data"))


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
