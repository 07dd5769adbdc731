"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) in their "python version" release layout, and their images extracted
once per machine as PNG files, since training reads images from files.

    cifar-10-batches-py/data_batch_{1..5}   the training images, 10,000 a file: a pickled dict, 'data' (uint8
                                            [N, 3072]: each row a 32 x 32 image's red, then green, then blue plane,
                                            row-major), 'labels' (N class indices), 'batch_label', 'filenames'
    cifar-10-batches-py/test_batch          the 10,000 test images, alike
    cifar-10-batches-py/batches.meta        'label_names': the class names in label order
    cifar-100-python/{train,test}           alike, with 'fine_labels' (and 'coarse_labels') for 'labels'
    cifar-100-python/meta                   'fine_label_names' (and 'coarse_label_names')

A dataset's root is the folder holding the batches folder (torchvision's ``root``) or the batches folder itself.
Its pickles are read with only numpy arrays, numbers, strings, lists and dicts allowed in them (unpickling runs no
other code), and are checked: a truncated or corrupt file, or one of another shape, is a DataFormatError naming it.

``extract`` writes every image of both splits as ``<split>/<index>.png`` (lossless; indices five digits, in the
order of the split's files, as torchvision's CIFAR10 and CIFAR100 number them) with ``targets.json`` (the class
names and each split's labels) into ``<data dir>/extracted/<key>-<digest>``, built once (``formats.cache``), the
digest covering the folder and its pickles' names, sizes and modification times: a pickle rewritten or touched
gives another folder, never a stale one, and concurrent readers wait for one build.
"""

import hashlib
import json
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from formats import GENERATE_HINT, DataFormatError, fork_pool
from formats.cache import build_once, data_dir

SIDE = 32
ROW = 3 * SIDE * SIDE  # the values of one image: its red, green and blue planes
EXTRACTION = 1  # the version of the extracted folders' layout: raising it extracts every dataset again
TARGETS = "targets.json"
CHUNK = 1000  # images a process writes per task; more than one chunk is written by a pool of processes
MAX_WORKERS = 8


@dataclass(frozen=True)
class Layout:
    title: str  # as messages name it
    key: str  # the data.<key> of a run, and the extracted folders' name
    folder: str  # the batches folder the archive extracts
    archive: str
    files: dict[str, tuple[str, ...]]  # split -> its pickles, in the order their images are numbered
    meta: str  # the pickle with the class names
    labels_key: str
    names_key: str

    def pickles(self) -> list[str]:
        return [self.meta, *(name for names in self.files.values() for name in names)]


CIFAR10 = Layout(
    "CIFAR-10", "cifar10", "cifar-10-batches-py", "cifar-10-python.tar.gz",
    {"train": tuple(f"data_batch_{k}" for k in range(1, 6)), "test": ("test_batch",)},
    "batches.meta", "labels", "label_names",
)  # fmt: skip
CIFAR100 = Layout(
    "CIFAR-100", "cifar100", "cifar-100-python", "cifar-100-python.tar.gz",
    {"train": ("train",), "test": ("test",)}, "meta", "fine_labels", "fine_label_names",
)  # fmt: skip


def read_split(root: str | Path, split: str, layout: Layout) -> tuple[Path, list[str], list[int], list[str]]:
    """(the extracted folder, the split's PNG paths relative to it, their labels, the class names), extracting the
    dataset on first use on this machine."""
    if split not in layout.files:
        raise ValueError(f"{layout.title} has the splits {', '.join(layout.files)}, not {split!r}")
    folder = extract(root, layout)
    record = json.loads((folder / TARGETS).read_text())
    targets = record[split]
    return folder, [f"{split}/{index:05d}.png" for index in range(len(targets))], targets, record["classes"]


def batches_folder(root: str | Path, layout: Layout) -> Path:
    """The folder of the pickles: ``root/<batches folder>`` or ``root`` itself."""
    root = Path(root)
    accepted = (
        f"Point data.{layout.key} at the folder holding {layout.folder}/ (torchvision's root) or at {layout.folder}/ "
        f"itself, as {layout.archive} extracts it"
    )
    if not root.is_dir():
        raise DataFormatError(f"{layout.title} root {root} does not exist. {accepted}, or {GENERATE_HINT}.")
    if (root / layout.folder).is_dir():
        return root / layout.folder
    if any((root / name).exists() for name in layout.pickles()):
        return root
    raise DataFormatError(
        f"{root} holds neither {layout.folder}/ nor {layout.title}'s pickles ({', '.join(layout.pickles())}). "
        f"{accepted}."
    )


def extract(root: str | Path, layout: Layout, workers: int | None = None) -> Path:
    """The folder of the dataset's images as PNG files and its ``targets.json``, built on first use."""
    folder = batches_folder(root, layout).resolve()
    files = [folder / name for name in layout.pickles()]
    for path in files:
        if not path.is_file():
            raise DataFormatError(
                f"{layout.title}'s {path.name} is missing: {path} is not a file. {folder} must hold "
                f"{', '.join(layout.pickles())}; extract all of {layout.archive} again"
            )
    target = data_dir() / "extracted" / f"{layout.key}-{_content_digest(folder, files)}"
    return build_once(target, lambda out: _extract(out, folder, layout, workers))


def _content_digest(folder: Path, files: Sequence[Path]) -> str:
    digest = hashlib.sha256(json.dumps([EXTRACTION, str(folder)]).encode())
    for path in files:
        status = path.stat()
        digest.update(f"{path.name}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _extract(out: Path, folder: Path, layout: Layout, workers: int | None) -> dict:
    classes = class_names(folder / layout.meta, layout)
    splits = {}
    for split, names in layout.files.items():  # every file is checked before any image is written
        batches = [read_batch(folder / name, layout, len(classes)) for name in names]
        splits[split] = (np.concatenate([rows for rows, _ in batches]), [t for _, labels in batches for t in labels])
        if not splits[split][1]:
            raise DataFormatError(f"{layout.title}'s {split} files ({', '.join(names)} in {folder}) hold no images")
    record = {"classes": classes}
    for split, (rows, targets) in splits.items():
        (out / split).mkdir(parents=True)
        _write_pngs(out / split, planes_to_images(rows), workers)
        record[split] = targets
    (out / TARGETS).write_text(json.dumps(record))
    return {"dataset": layout.key, "source": str(folder), "classes": len(classes),
            **{f"{split}_images": len(targets) for split, (_, targets) in splits.items()}}  # fmt: skip


def planes_to_images(rows: np.ndarray) -> np.ndarray:
    """CIFAR's rows ``[N, 3072]`` as images ``[N, 32, 32, 3]``."""
    return rows.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)


def images_to_planes(images: np.ndarray) -> np.ndarray:
    """Images ``[N, 32, 32, 3]`` as CIFAR's rows ``[N, 3072]``: the red plane, then green, then blue."""
    return np.ascontiguousarray(np.asarray(images, dtype=np.uint8).transpose(0, 3, 1, 2).reshape(len(images), ROW))


def _write_pngs(folder: Path, images: np.ndarray, workers: int | None) -> None:
    chunks = [(folder, start, images[start : start + CHUNK]) for start in range(0, len(images), CHUNK)]
    workers = min(workers or os.cpu_count() or 1, MAX_WORKERS, len(chunks))
    if workers <= 1:
        for chunk in chunks:
            _write_chunk(chunk)
        return
    with fork_pool(workers) as pool:
        for _ in pool.imap_unordered(_write_chunk, chunks):
            pass


def _write_chunk(chunk) -> None:
    folder, start, images = chunk
    for offset, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{start + offset:05d}.png", format="PNG")


# Reading and writing the pickles -----------------------------------------------------------------------------------

# What the release's pickles (written by Python 2's cPickle, numpy 1) and the synthetic twins' (Python 3, numpy 2)
# refer to: numpy arrays, their dtypes and scalars, and the byte strings of protocol 2 (an empty one is bytes()).
_ALLOWED_GLOBALS = {
    *((module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray") for name in ("_reconstruct",
                                                                                                      "scalar")),
    *((module, "_frombuffer") for module in ("numpy.core.numeric", "numpy._core.numeric")),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"), ("__builtin__", "bytes"), ("builtins", "bytes"),
}  # fmt: skip


class _Refused(pickle.UnpicklingError):
    pass


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise _Refused(f"{module}.{name}")
        return super().find_class(module, name)


def load_pickle(path: Path, layout: Layout) -> object:
    """A pickle of the release (Python 2's strings read as latin-1, as torchvision reads them)."""
    try:
        with open(path, "rb") as handle:
            return _ArraysOnly(handle, encoding="latin1").load()
    except _Refused as refused:
        raise DataFormatError(
            f"{path}: not a {layout.title} pickle: it refers to {refused}, which no CIFAR pickle does (only numpy "
            f"arrays, numbers, strings, lists and dicts), and unpickling it could run code; not read. Extract it from "
            f"{layout.archive} again"
        ) from None
    # A truncated or corrupt pickle raises whatever its bytes lead to: EOFError, UnpicklingError, ValueError from
    # numpy, MemoryError from a garbled length, ...: each means the file is not what the release holds.
    except Exception as error:
        raise DataFormatError(
            f"{path}: not a readable {layout.title} pickle ({type(error).__name__}: {error}): the file is truncated "
            f"or corrupt; extract it from {layout.archive} again"
        ) from None


def class_names(path: Path, layout: Layout) -> list[str]:
    meta = load_pickle(path, layout)
    names = meta.get(layout.names_key) if isinstance(meta, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(name, str) and name for name in names):
        raise DataFormatError(
            f"{path}: not {layout.title}'s {layout.meta}: a pickled dict whose {layout.names_key!r} lists the class "
            f"names expected, found {_describe(meta)}; extract it from {layout.archive} again"
        )
    for index, name in enumerate(names):
        if name in names[:index]:
            raise DataFormatError(f"{path}: class {name!r} is listed again (as label {index}); list each class once")
    return names


def read_batch(path: Path, layout: Layout, classes: int) -> tuple[np.ndarray, list[int]]:
    """A file's rows ``[N, 3072]`` and labels, checked: uint8 rows of 3072 values, a label each, within the
    classes."""
    batch = load_pickle(path, layout)
    fix = f"extract it from {layout.archive} again"
    if not isinstance(batch, dict) or "data" not in batch or layout.labels_key not in batch:
        raise DataFormatError(
            f"{path}: not a {layout.title} batch: a pickled dict with 'data' and {layout.labels_key!r} expected, "
            f"found {_describe(batch)}; {fix}"
        )
    rows = batch["data"]
    if not isinstance(rows, np.ndarray) or rows.dtype != np.uint8 or rows.ndim != 2 or rows.shape[1] != ROW:
        raise DataFormatError(
            f"{path}: 'data' is {_describe(rows)}, not uint8 rows of {ROW} values (a {SIDE} x {SIDE} image's red, "
            f"green and blue planes each); {fix}"
        )
    labels = batch[layout.labels_key]
    if not isinstance(labels, list | np.ndarray) or len(labels) != len(rows):
        raise DataFormatError(
            f"{path}: {layout.labels_key!r} is {_describe(labels)}, not a list of {len(rows)} labels, one per row of "
            f"'data'; {fix}"
        )
    for index, label in enumerate(labels):
        if not isinstance(label, int | np.integer) or not 0 <= label < classes:
            raise DataFormatError(
                f"{path}: image {index} has the label {label!r}, not a class index of {layout.meta} (0 to "
                f"{classes - 1}); {fix}"
            )
    return rows, [int(label) for label in labels]


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of {value.dtype} {list(value.shape)}"
    if isinstance(value, dict):
        return f"a dict with the keys {sorted(map(str, value))}"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return f"a {type(value).__name__}"


def write_pickle(path: Path, value: object) -> None:
    """Pickled as the release's files are: protocol 2."""
    with open(path, "wb") as handle:
        pickle.dump(value, handle, protocol=2)


def write_split(folder: Path, layout: Layout, split: str, images: np.ndarray, labels: Sequence[int],
                filenames: Sequence[str], extra: dict[str, Sequence] | None = None) -> None:  # fmt: skip
    """A split's pickles as the release writes them: its images ``[N, 32, 32, 3]`` dealt in order among its files
    (CIFAR-10's five training batches), each a dict of 'batch_label', the labels, 'data' and 'filenames', and
    ``extra`` per-image lists (CIFAR-100's 'coarse_labels')."""
    names = layout.files[split]
    rows = images_to_planes(images)
    for number, (name, part) in enumerate(zip(names, np.array_split(np.arange(len(rows)), len(names))), start=1):
        batch = {
            "batch_label": f"{'training' if split == 'train' else 'testing'} batch {number} of {len(names)}",
            layout.labels_key: [int(labels[k]) for k in part],
            "data": rows[part],
            "filenames": [filenames[k] for k in part],
        }
        for key, values in (extra or {}).items():
            batch[key] = [values[k] for k in part]
        write_pickle(folder / name, batch)
