"""CIFAR-10 and CIFAR-100 (tasks/cifar10.py, tasks/cifar100.py, formats/cifar.py): the readers on hand-made pickles
in the release layout (and on a Python 2 pickle, as the release's are), against torchvision's CIFAR10 and CIFAR100
on the synthetic twins, the splits, the extraction to PNG files once, and bad input."""

import os
import pickle
import re
import struct
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torchvision.datasets.cifar as torchvision_cifar
from PIL import Image

import synthetic
from formats import GENERATE_HINT, DataFormatError
from formats import cifar as cifar_format
from synthetic.scenes import distinct_looks, look_key
from tasks import TASKS, cifar10, cifar100, selection_splits

TRAIN_BATCHES = [f"data_batch_{k}" for k in range(1, 6)]


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """Extractions of the hand-made fixtures go to the test's own data directory, not the checkout's."""
    monkeypatch.setenv("TRANSFER_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def planes(images: np.ndarray) -> np.ndarray:
    """The release's rows: each image's red, green, then blue 32 x 32 plane."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), 3072)


def write_batch(path, images, labels, labels_key="labels", **extra):
    filenames = [f"x_s_{k:06d}.png" for k in range(len(labels))]
    batch = {"batch_label": "training batch 1 of 5", labels_key: list(labels), "data": planes(images),
             "filenames": filenames, **extra}  # fmt: skip
    with open(path, "wb") as handle:
        pickle.dump(batch, handle, protocol=2)


def write_meta(path, value):
    with open(path, "wb") as handle:
        pickle.dump(value, handle, protocol=2)


# Train labels per batch and the test labels of the hand-made CIFAR-10; classes of its meta.
CIFAR10_TRAIN = [[0, 2], [1], [1], [0], [2]]
CIFAR10_TEST = [2, 0, 1]
CIFAR10_CLASSES = ["airplane", "cat", "truck"]


def write_cifar10(root, train=CIFAR10_TRAIN, test=CIFAR10_TEST, classes=CIFAR10_CLASSES) -> dict:
    """A hand-made cifar-10-batches-py/ under ``root``; returns each split's images [N, 32, 32, 3] in order."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    images = {"train": [], "test": []}
    for name, labels in [*zip(TRAIN_BATCHES, train), ("test_batch", test)]:
        pixels = rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
        pixels[..., 0], pixels[..., 2] = 250, 5  # red and blue planes unlike: a swapped channel order shows
        write_batch(folder / name, pixels, labels)
        images["test" if name == "test_batch" else "train"].append(pixels)
    write_meta(folder / "batches.meta", {"num_cases_per_batch": 2, "label_names": list(classes), "num_vis": 3072})
    return {split: np.concatenate(blocks) for split, blocks in images.items()}


def write_cifar100(root, train=(3, 0, 1, 1), test=(1, 3), classes=("apple", "bear", "tulip", "whale")) -> dict:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(8)
    images = {}
    for split, labels in (("train", train), ("test", test)):
        images[split] = rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
        write_batch(folder / split, images[split], labels, "fine_labels", coarse_labels=[0] * len(labels))
    write_meta(folder / "meta", {"fine_label_names": list(classes), "coarse_label_names": ["fruit", "other"]})
    return images


def pixels(examples, k) -> np.ndarray:
    with Image.open(examples.root / examples.paths[k]) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        return np.asarray(image)


# Readers on hand-made data -----------------------------------------------------------------------------------------


def test_cifar10_reads_the_batches_in_order_as_png_files(tmp_path, data_dir):
    images = write_cifar10(tmp_path / "root")
    train = cifar10.read(tmp_path / "root", "train")
    assert train.paths == [f"train/{k:05d}.png" for k in range(6)]
    assert train.targets == [0, 2, 1, 1, 0, 2] and train.classes == CIFAR10_CLASSES
    test = cifar10.read(tmp_path / "root", "test")
    assert test.paths == ["test/00000.png", "test/00001.png", "test/00002.png"] and test.targets == [2, 0, 1]
    assert test.root == train.root and train.root.parent == data_dir / "extracted"
    assert train.root.name.startswith("cifar10-")
    for split, examples in (("train", train), ("test", test)):
        for k in range(len(examples.paths)):
            np.testing.assert_array_equal(pixels(examples, k), images[split][k])
    # data.cifar10 may also name the batches folder itself.
    assert cifar10.read(tmp_path / "root" / "cifar-10-batches-py", "test").targets == [2, 0, 1]


def test_cifar100_reads_the_fine_labels(tmp_path, data_dir):
    images = write_cifar100(tmp_path / "root")
    for root in (tmp_path / "root", tmp_path / "root" / "cifar-100-python"):
        train, test = cifar100.read(root, "train"), cifar100.read(root, "test")
        assert train.paths == ["train/00000.png", "train/00001.png", "train/00002.png", "train/00003.png"]
        assert train.targets == [3, 0, 1, 1] and test.targets == [1, 3]
        assert test.paths == ["test/00000.png", "test/00001.png"]
        assert train.classes == test.classes == ["apple", "bear", "tulip", "whale"]
        for split, examples in (("train", train), ("test", test)):
            for k in range(len(examples.paths)):
                np.testing.assert_array_equal(pixels(examples, k), images[split][k])


def python2_pickle(value) -> bytes:
    """``value`` pickled as Python 2's cPickle (protocol 2) pickled the release: strings as byte strings, numpy 1's
    arrays under numpy.core.multiarray."""

    def dump(value) -> bytes:
        if isinstance(value, str):
            data = value.encode("latin1")
            return b"U" + bytes([len(data)]) + data
        if isinstance(value, int):
            return b"J" + struct.pack("<i", value)
        if isinstance(value, list):
            return b"](" + b"".join(map(dump, value)) + b"e"
        if isinstance(value, dict):
            return b"}(" + b"".join(dump(key) + dump(item) for key, item in value.items()) + b"u"
        assert isinstance(value, np.ndarray) and value.dtype == np.uint8
        shape = b"(" + b"".join(dump(int(n)) for n in value.shape) + b"t"
        dtype = (b"cnumpy\ndtype\n" + dump("u1") + b"K\x00K\x01\x87R(K\x03" + dump("|")
                 + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")  # fmt: skip
        raw = value.tobytes()
        return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + dump("b") + b"\x87R(K\x01"
                + shape + dtype + b"\x89T" + struct.pack("<i", len(raw)) + raw + b"tb")  # fmt: skip

    return b"\x80\x02" + dump(value) + b"."


def test_a_python2_pickle_as_the_release_has_reads(tmp_path, data_dir):
    images = write_cifar10(tmp_path)
    rows = np.arange(2 * 3072, dtype=np.uint64).astype(np.uint8).reshape(2, 3072)
    batch = {"batch_label": "testing batch 1 of 1", "labels": [1, 0], "data": rows, "filenames": ["a.png", "b.png"]}
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(python2_pickle(batch))
    # What torchvision reads it as (pickle.load, latin-1) is what the reader reads.
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "rb") as handle:
        np.testing.assert_array_equal(pickle.load(handle, encoding="latin1")["data"], rows)
    test = cifar10.read(tmp_path, "test")
    assert test.targets == [1, 0]
    np.testing.assert_array_equal(pixels(test, 1), rows[1].reshape(3, 32, 32).transpose(1, 2, 0))
    assert cifar10.read(tmp_path, "train").targets == [0, 2, 1, 1, 0, 2] and len(images["train"]) == 6


# Extracted once ----------------------------------------------------------------------------------------------------


def test_the_images_are_extracted_once_and_again_when_a_pickle_changes(tmp_path, data_dir, monkeypatch):
    write_cifar10(tmp_path)
    builds = []
    extract = cifar_format._extract
    monkeypatch.setattr(cifar_format, "_extract", lambda *args: builds.append(args) or extract(*args))
    with ThreadPoolExecutor(2) as pool:  # concurrent readers wait for one build
        first, second = pool.map(lambda split: cifar10.read(tmp_path, split), ["train", "test"])
    assert len(builds) == 1 and first.root == second.root
    written = (first.root / "train" / "00000.png").stat().st_mtime_ns
    cifar10.check_layout(tmp_path)
    assert len(builds) == 1 and (first.root / "train" / "00000.png").stat().st_mtime_ns == written
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    os.utime(batch, ns=(batch.stat().st_atime_ns, batch.stat().st_mtime_ns + 10**9))
    again = cifar10.read(tmp_path, "train")
    assert len(builds) == 2 and again.root != first.root and again.targets == first.targets


def test_many_images_are_written_by_a_pool_of_processes(tmp_path, data_dir, monkeypatch):
    monkeypatch.setattr(cifar_format, "CHUNK", 2)
    images = write_cifar10(tmp_path, train=[[0, 1, 2], [2, 2], [1], [0, 0], [1]])
    train = cifar10.read(tmp_path, "train")
    assert train.targets == [0, 1, 2, 2, 2, 1, 0, 0, 1]
    for k in range(9):
        np.testing.assert_array_equal(pixels(train, k), images["train"][k])


# Against torchvision on the synthetic twins ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "module, dataset", [(cifar10, torchvision_cifar.CIFAR10), (cifar100, torchvision_cifar.CIFAR100)]
)
def test_the_readers_agree_with_torchvision_on_the_synthetic_twins(module, dataset, monkeypatch):
    root = synthetic.resolve(module.__name__.split(".")[-1], "embedded:tiny")
    # torchvision checks the md5 sums of the real release's files (CIFAR10._check_integrity and, for batches.meta or
    # meta, check_integrity in _load_meta); the synthetic twins' files are other files in the same format, so the
    # checks are switched off here, and only here.
    monkeypatch.setattr(dataset, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision_cifar, "check_integrity", lambda *args, **kwargs: True)
    for split in ("train", "test"):
        reference = dataset(str(root), train=split == "train", download=False)
        examples = module.read(root, split)
        assert examples.classes == reference.classes
        assert examples.targets == list(reference.targets) and len(examples.paths) == len(reference)
        for k in range(len(reference)):
            np.testing.assert_array_equal(pixels(examples, k), np.asarray(reference[k][0]))


# The splits ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [cifar10, cifar100])
def test_the_splits_sizes_per_class_and_disjoint(module):
    name = module.__name__.split(".")[-1]
    task, root, scale = TASKS[name], synthetic.resolve(name, "embedded:tiny"), module.SCALES["tiny"]
    assert task.splits == ("train", "test") and task.validation is None and task.metric == "top1"
    train, test = module.read(root, "train"), module.read(root, "test")
    assert len(train.classes) == scale.classes
    assert np.bincount(train.targets).tolist() == [scale.train_per_class] * scale.classes
    assert np.bincount(test.targets).tolist() == [scale.test_per_class] * scale.classes
    splits = selection_splits(task, root, seed=3)
    assert not set(splits["train"].paths) & set(splits["val"].paths)
    assert sorted(splits["train"].paths + splits["val"].paths) == sorted(splits["trainval"].paths)
    assert sorted(splits["trainval"].paths) == sorted(train.paths)
    assert np.bincount(splits["val"].targets).tolist() == [1] * scale.classes  # a fifth of 5 per class
    # No image is both a training and a test image, by its pixels.
    drawn = {pixels(train, k).tobytes() for k in range(len(train.paths))}
    assert len(drawn) == len(train.paths) and not drawn & {pixels(test, k).tobytes() for k in range(len(test.paths))}
    scores = np.eye(len(test.classes))[test.targets]
    assert task.evaluate(scores, np.asarray(test.targets)) == {"top1": 1.0}


def test_the_twins_have_the_release_layout_and_real_class_names():
    folder = synthetic.resolve("cifar10", "embedded:tiny") / "cifar-10-batches-py"
    batches = [pickle.loads((folder / name).read_bytes(), encoding="latin1") for name in TRAIN_BATCHES]
    assert [batch["batch_label"] for batch in batches] == [f"training batch {k} of 5" for k in range(1, 6)]
    assert {len(batch["labels"]) for batch in batches} == {10} and batches[0]["data"].shape == (10, 3072)
    assert all(name.endswith(".png") for batch in batches for name in batch["filenames"])
    meta = pickle.loads((folder / "batches.meta").read_bytes(), encoding="latin1")
    assert meta == {"num_cases_per_batch": 10, "label_names": cifar10.CLASSES, "num_vis": 3072}
    assert cifar10.CLASSES == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    folder = synthetic.resolve("cifar100", "embedded:tiny") / "cifar-100-python"
    meta = pickle.loads((folder / "meta").read_bytes(), encoding="latin1")
    assert meta["fine_label_names"] == ["apple", "chair", "lamp", "plain", "squirrel"]
    assert len(meta["coarse_label_names"]) == 20 and meta["coarse_label_names"][14] == "people"
    train = pickle.loads((folder / "train").read_bytes(), encoding="latin1")
    assert train["batch_label"] == "training batch 1 of 1" and "labels" not in train
    coarse = [meta["coarse_label_names"][label] for label in train["coarse_labels"]]
    expected = {"apple": "fruit_and_vegetables", "chair": "household_furniture", "lamp": "household_electrical_devices",
                "plain": "large_natural_outdoor_scenes", "squirrel": "small_mammals"}  # fmt: skip
    assert coarse == [expected[meta["fine_label_names"][label]] for label in train["fine_labels"]]
    assert len(cifar100.CLASSES) == 100 == len(set(cifar100.CLASSES)) and cifar100.CLASSES == sorted(cifar100.CLASSES)
    assert sorted(cifar100.COARSE_LABEL) == cifar100.CLASSES
    assert np.bincount(list(cifar100.COARSE_LABEL.values())).tolist() == [5] * 20


def test_every_class_is_drawn_with_its_own_look():
    def keys(module, classes):
        return {look_key(look) for look in distinct_looks([module.LOOKS[name] for name in classes])}

    assert len(keys(cifar10, cifar10.CLASSES)) == 10
    assert len(keys(cifar100, cifar100.CLASSES)) == 100
    for scale in cifar100.SCALES.values():
        classes = cifar100.scale_classes(scale)
        assert len(classes) == scale.classes and len(keys(cifar100, classes)) == scale.classes


# Bad input -------------------------------------------------------------------------------------------------------


def test_a_missing_root_or_a_folder_of_other_files(tmp_path, data_dir):
    with pytest.raises(DataFormatError, match=re.escape("data.cifar10")) as error:
        cifar10.read(tmp_path / "absent", "train")
    assert str(tmp_path / "absent") in str(error.value) and GENERATE_HINT in str(error.value)
    (tmp_path / "other").mkdir()
    with pytest.raises(DataFormatError, match="holds neither cifar-100-python/ nor") as error:
        cifar100.read(tmp_path / "other", "test")
    assert "data.cifar100" in str(error.value) and "cifar-100-python/ itself" in str(error.value)


@pytest.mark.parametrize("missing", ["data_batch_3", "test_batch", "batches.meta"])
def test_a_missing_pickle_is_named(tmp_path, data_dir, missing):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / missing).unlink()
    with pytest.raises(DataFormatError, match=f"{missing} is missing") as error:
        cifar10.check_layout(tmp_path)
    assert str(tmp_path / "cifar-10-batches-py" / missing) in str(error.value)
    assert "cifar-10-python.tar.gz" in str(error.value)


def test_a_missing_cifar100_meta_is_named(tmp_path, data_dir):
    write_cifar100(tmp_path)
    (tmp_path / "cifar-100-python" / "meta").unlink()
    with pytest.raises(DataFormatError, match="meta is missing"):
        cifar100.read(tmp_path, "train")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_truncated_or_corrupt_pickle_is_named(tmp_path, data_dir, damage):
    write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_4"
    data = batch.read_bytes()
    batch.write_bytes({"truncated": data[: len(data) // 2], "garbage": data[:40] + bytes(range(256)) * 4,
                       "empty": b""}[damage])  # fmt: skip
    with pytest.raises(DataFormatError, match="truncated or corrupt") as error:
        cifar10.read(tmp_path, "test")
    assert str(batch) in str(error.value)
    assert not list((data_dir / "extracted").glob("cifar10-*"))  # nothing that looks extracted


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_that_would_run_code_is_refused(tmp_path, data_dir):
    write_cifar100(tmp_path)
    marker = tmp_path / "ran"
    write_meta(tmp_path / "cifar-100-python" / "meta", {"fine_label_names": ["a"], "x": RunsCode(marker)})
    with pytest.raises(DataFormatError, match="it refers to io.open, which no CIFAR pickle does") as error:
        cifar100.read(tmp_path, "train")
    assert str(tmp_path / "cifar-100-python" / "meta") in str(error.value) and not marker.exists()


@pytest.mark.parametrize(
    "batch, message",
    [
        ({"labels": [0]}, "a pickled dict with 'data' and 'labels' expected"),
        ([1, 2], "a pickled dict with 'data' and 'labels' expected, found a list"),
        ({"data": np.zeros((1, 1024), np.uint8), "labels": [0]}, r"'data' is an array of uint8 \[1, 1024\], not uint8"),
        ({"data": np.zeros((1, 3072), np.float32), "labels": [0]}, "'data' is an array of float32"),
        ({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, "'labels' is a list of 1, not a list of 2 labels"),
        ({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 3]}, r"image 1 has the label 3, not a class index"),
        ({"data": np.zeros((1, 3072), np.uint8), "labels": ["cat"]}, "image 0 has the label 'cat'"),
    ],
)
def test_a_malformed_batch_is_named(tmp_path, data_dir, batch, message):
    write_cifar10(tmp_path)
    write_meta(tmp_path / "cifar-10-batches-py" / "data_batch_5", batch)
    with pytest.raises(DataFormatError, match=message) as error:
        cifar10.read(tmp_path, "train")
    assert str(tmp_path / "cifar-10-batches-py" / "data_batch_5") in str(error.value)


@pytest.mark.parametrize(
    "meta, message",
    [({"label_names": []}, "'label_names' lists the class names"), ({"names": ["a"]}, "found a dict with the keys"),
     ({"label_names": ["cat", "dog", "cat"]}, "class 'cat' is listed again")],
)  # fmt: skip
def test_a_malformed_meta_is_named(tmp_path, data_dir, meta, message):
    write_cifar10(tmp_path)
    write_meta(tmp_path / "cifar-10-batches-py" / "batches.meta", meta)
    with pytest.raises(DataFormatError, match=message) as error:
        cifar10.read(tmp_path, "train")
    assert str(tmp_path / "cifar-10-batches-py" / "batches.meta") in str(error.value)


def test_a_split_with_no_images_and_an_unknown_split(tmp_path, data_dir):
    write_cifar100(tmp_path, test=())
    with pytest.raises(DataFormatError, match="test files .*hold no images"):
        cifar100.read(tmp_path, "train")
    with pytest.raises(ValueError, match="has the splits train, test, not 'val'"):
        cifar100.read(tmp_path, "val")
