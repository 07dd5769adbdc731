"""Seconds to fingerprint a data folder (``formats.cache.fingerprint``: every file's path, size and modification
time), which a run does once per real data source when it plans and again where a manifest is built: an
ImageNet-layout folder of 1000 class folders with N small files each is made, then fingerprinted with 1 and with
the default number of threads. It prints files per second and the projection for ImageNet's 1.28M files.

    .venv/bin/python benchmarks/fingerprint.py [--per-class 128] [--folder DIR]

--folder fingerprints an existing folder (a real ImageNet copy, a network mount) instead.
"""

import argparse
import tempfile
import time
from pathlib import Path

from formats import cache
from formats.imagenet import imagenet1k_wnids

IMAGENET_TRAIN_FILES = 1_281_167


def make_folder(root: Path, per_class: int) -> None:
    for wnid in imagenet1k_wnids():
        folder = root / "train" / wnid
        folder.mkdir(parents=True)
        for index in range(per_class):
            (folder / f"{wnid}_{index}.JPEG").write_bytes(b"\xff\xd8" + bytes(index % 97))


def timed(root: Path, threads: int) -> tuple[float, str]:
    cache.FINGERPRINT_THREADS = threads
    started = time.perf_counter()
    digest = cache.fingerprint(root)
    return time.perf_counter() - started, digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=128)
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args()
    default_threads = cache.FINGERPRINT_THREADS
    with tempfile.TemporaryDirectory() as scratch:
        root = args.folder or Path(scratch)
        if args.folder is None:
            make_folder(root, args.per_class)
        for threads in (1, default_threads):
            seconds, digest = timed(root, threads)
            files = int(digest.split("-")[0])
            print(f"{threads} thread(s): {files:,} files in {seconds:.2f} s, {files / seconds:,.0f} files/s; "
                  f"ImageNet's train set would take {IMAGENET_TRAIN_FILES / files * seconds:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
