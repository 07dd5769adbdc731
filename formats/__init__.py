"""The bottom layer: what is on disk and what it means.

Readers for every dataset layout (``imagenet``, ``voc``, ``sun397``), image decoding (``images``),
WordNet 3.0 and the first-parent rule (``wordnet``), the build-once cache of generated and derived
data (``cache``), the registries every layer above fills (``registry``), and the error every reader
raises. Nothing here imports another package of the project.
"""

import contextlib
import multiprocessing
import multiprocessing.pool
import signal
from collections.abc import Iterable, Iterator
from pathlib import Path

GENERATE_HINT = "generate the embedded synthetic data with `python -m synthetic generate`"


class DataFormatError(ValueError):
    """A dataset on disk is missing or not in the format its reader expects."""


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataFormatError(f"{what} not found: {path} is not a directory")
    return path


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataFormatError(f"{what} not found: {path} is missing")
    return path


def read_lines(path: Path, what: str) -> list[tuple[int, str]]:
    """The non-blank lines of a text file, stripped, each with its line number. Windows line ends and a byte-order
    mark read like any others; anything but UTF-8 text is a DataFormatError naming the file and line."""
    data = require_file(path, what).read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DataFormatError(
            f"{path}:{line}: not UTF-8 text (byte {data[error.start]:#04x}); is it the {what} of the dataset's "
            "release? Re-extract or re-download it"
        ) from None
    return [(number, line.strip()) for number, line in enumerate(text.split("\n"), start=1) if line.strip()]


def read_names(path: Path, what: str, noun: str = "class", nouns: str = "classes") -> list[str]:
    """The names a text file lists one a line, in its order (a dataset's classes, in label order); a name listed
    twice, or none at all, is a DataFormatError naming the file (and line)."""
    first_seen = {}
    for number, name in read_lines(path, what):
        if name in first_seen:
            raise DataFormatError(f"{path}:{number}: {noun} {name} is listed again; list each {noun} once")
        first_seen[name] = number
    if not first_seen:
        raise DataFormatError(f"{path} lists no {nouns}")
    return list(first_seen)


def listed_images(
    listing: Path, rows: Iterable[tuple[int, str, str, int]], root: Path, release: str
) -> tuple[list[str], list[int]]:
    """The paths and targets of the images a listing lists, from its rows (line number, the image as messages name
    it, its path under ``root``, its target), in order; an image listed twice or not on disk (re-extract
    ``release``), or none at all, is a DataFormatError naming the file and line."""
    paths, targets, first_seen = [], [], {}
    for number, image, path, target in rows:
        if image in first_seen:
            raise DataFormatError(
                f"{listing}:{number}: {image} is listed again (first on line {first_seen[image]}); list each image once"
            )
        first_seen[image] = number
        if not (root / path).is_file():
            raise DataFormatError(f"{listing}:{number}: the image {root / path} is missing; re-extract {release}")
        paths.append(path)
        targets.append(target)
    if not paths:
        raise DataFormatError(f"{listing} lists no images")
    return paths, targets


def _default_signals() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def fork_pool(workers: int) -> Iterator[multiprocessing.pool.Pool]:
    """A pool of forked processes that ends without hanging. A process forked from a Ray worker inherits its SIGTERM
    handler, which does not stop it, so ``Pool.terminate`` (what ``with Pool()`` ends with) can wait for ever on a
    child that holds the task queue's lock; here the children die on SIGTERM as processes do, and a pool whose work
    is done is closed and joined instead."""
    pool = multiprocessing.get_context("fork").Pool(workers, initializer=_default_signals)
    try:
        yield pool
    except BaseException:
        pool.terminate()
        raise
    else:
        pool.close()
    finally:
        pool.join()
