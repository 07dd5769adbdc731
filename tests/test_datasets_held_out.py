"""Oxford-IIIT Pets, Caltech-101 and Stanford Cars (tasks/pets.py, tasks/caltech101.py, tasks/cars.py): each reader
on a small hand-made copy of the real layout, against torchvision's own dataset class on the synthetic twin, the
splits as the datasets define them, the errors a broken copy gives, and the held-out validation fifth that
``tasks.selection_splits`` takes from these datasets, which have no validation split of their own."""

import io
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image
from torchvision.datasets import Caltech101, OxfordIIITPet, StanfordCars

import synthetic
from formats import DataFormatError
from subsets.sample import rank_keys
from tasks import TASKS, selection_splits
from tasks import caltech101 as caltech_module
from tasks import cars as cars_module
from tasks import pets as pets_module


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((4, 4, 3), 128, np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


JPEG = _jpeg()


def touch_images(folder: Path, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(JPEG)


def twin(key: str, tmp_path: Path | None = None) -> Path:
    """The tiny synthetic twin (the folder torchvision takes as root), or a copy of it to break."""
    TASKS.names()  # imports every task file, and so registers its generator
    root = synthetic.resolve(key, "embedded:tiny")
    if tmp_path is None:
        return root
    shutil.copytree(root, tmp_path / "copy")
    return tmp_path / "copy"


def pairs(examples) -> set[tuple[str, str]]:
    return {(str(examples.root / p), examples.classes[t]) for p, t in zip(examples.paths, examples.targets)}


# Oxford-IIIT Pets ------------------------------------------------------------------------------------------------


def write_pets(root: Path) -> Path:
    base = root / "oxford-iiit-pet"
    touch_images(base / "images", ["Abyssinian_1.jpg", "Abyssinian_2.jpg", "Abyssinian_10.jpg",
                                   "american_pit_bull_terrier_5.jpg", "american_pit_bull_terrier_7.jpg",
                                   "american_bulldog_3.jpg", "american_bulldog_4.jpg"])  # fmt: skip
    (base / "annotations").mkdir()
    (base / "annotations" / "trainval.txt").write_text(
        "Abyssinian_1 1 1 1\nAbyssinian_10 1 1 1\namerican_pit_bull_terrier_5 3 2 2\namerican_bulldog_3 2 2 1\n"
    )
    (base / "annotations" / "test.txt").write_text(
        "Abyssinian_2 1 1 1\r\namerican_bulldog_4 2 2 1\r\n\r\namerican_pit_bull_terrier_7 3 2 2\r\n"
    )
    return base


def test_pets_reads_a_hand_made_copy(tmp_path):
    base = write_pets(tmp_path)
    classes = ["Abyssinian", "American Bulldog", "American Pit Bull Terrier"]
    for root in (tmp_path, base):  # torchvision's root, or the oxford-iiit-pet folder itself
        trainval = pets_module.read(root, "trainval")
        assert trainval.root == base and trainval.classes == classes
        assert trainval.paths == ["images/Abyssinian_1.jpg", "images/Abyssinian_10.jpg",
                                  "images/american_pit_bull_terrier_5.jpg", "images/american_bulldog_3.jpg"]
        assert trainval.targets == [0, 0, 2, 1]
        test = pets_module.read(root, "test", seed=5)  # the official split: the seed chooses nothing
        assert test.paths == ["images/Abyssinian_2.jpg", "images/american_bulldog_4.jpg",
                              "images/american_pit_bull_terrier_7.jpg"]  # fmt: skip
        assert test.targets == [0, 1, 2] and test.classes == classes


@pytest.mark.parametrize("split", ["trainval", "test"])
def test_pets_matches_torchvision_on_the_twin(split):
    root = twin("pets")
    ours = pets_module.read(root, split)
    theirs = OxfordIIITPet(root, split=split, download=False)  # no download, so no md5 check
    assert ours.classes == theirs.classes
    assert [str(ours.root / path) for path in ours.paths] == [str(path) for path in theirs._images]
    assert ours.targets == theirs._labels


def test_pets_twin_has_the_real_splits():
    root = twin("pets")
    scale = pets_module.SCALES["tiny"]
    trainval, test = pets_module.read(root, "trainval"), pets_module.read(root, "test")
    assert trainval.classes == test.classes == [pets_module.class_name(b) for b in pets_module.BREEDS[: scale.classes]]
    assert Counter(trainval.targets) == dict.fromkeys(range(scale.classes), scale.trainval_per_class)
    assert Counter(test.targets) == dict.fromkeys(range(scale.classes), scale.test_per_class)
    assert not set(trainval.paths) & set(test.paths)
    on_disk = {f"images/{path.name}" for path in (root / "oxford-iiit-pet" / "images").iterdir()}
    assert set(trainval.paths) | set(test.paths) == on_disk
    # The release's species and breed-within-species columns: Abyssinian is cat 1, american_bulldog dog 1.
    lines = (root / "oxford-iiit-pet" / "annotations" / "trainval.txt").read_text().split("\n")
    assert {tuple(line.split()[1:]) for line in lines if line} == {("1", "1", "1"), ("2", "2", "1"), ("3", "2", "2"),
                                                                   ("4", "2", "3")}  # fmt: skip


@pytest.mark.parametrize(
    "file, text, message",
    [
        ("test.txt", None, "annotations/test.txt not found"),
        ("trainval.txt", "Abyssinian_1 1 1\n", "is not '<image> <class id> <species> <breed id>'"),
        ("trainval.txt", "Abyssinian_1 one 1 1\n", "is not '<image> <class id> <species> <breed id>'"),
        ("trainval.txt", "Abyssinian_1 1 1 1\nAbyssinian_99 1 1 1\n", "Abyssinian_99.jpg is missing"),
        ("trainval.txt", "Abyssinian_1 1 1 1\nAbyssinian_1 1 1 1\n", "listed again"),
        ("trainval.txt", "\n\n", "lists no images"),
        ("trainval.txt", "american_bulldog_3 1 2 1\n", "each class id names one breed"),
    ],
)
def test_a_broken_pets_copy_is_named(tmp_path, file, text, message):
    base = write_pets(tmp_path)
    path = base / "annotations" / file
    if text is None:
        path.unlink()
    else:
        path.write_text(text)
    with pytest.raises(DataFormatError, match=re.escape(message)) as error:
        pets_module.check_layout(tmp_path)
    assert str(path) in str(error.value)


def test_pets_class_ids_have_no_gap(tmp_path):
    base = write_pets(tmp_path)
    (base / "annotations" / "test.txt").write_text("american_pit_bull_terrier_7 5 2 2\n")  # ids 4 is never listed
    with pytest.raises(DataFormatError, match="class id.* 4 are listed in neither"):
        pets_module.read(tmp_path, "test")


def test_pets_missing_root_and_unknown_split(tmp_path):
    with pytest.raises(DataFormatError, match=r"does not exist\. Point data\.pets at .*python -m synthetic generate"):
        pets_module.read(tmp_path / "nowhere", "trainval")
    with pytest.raises(DataFormatError, match="holds no annotations/ folder"):
        pets_module.read(tmp_path, "trainval")
    with pytest.raises(ValueError, match="no split 'train'; choose one of trainval, test"):
        pets_module.read(write_pets(tmp_path), "train")


# Caltech-101 -----------------------------------------------------------------------------------------------------


def write_caltech(root: Path, counts: dict[str, int]) -> Path:
    folder = root / "caltech101" / "101_ObjectCategories"
    for name, count in counts.items():
        touch_images(folder / name, [f"image_{k:04d}.jpg" for k in range(1, count + 1)])
    return root / "caltech101"


def test_caltech_reads_a_hand_made_copy(tmp_path, monkeypatch):
    monkeypatch.setattr(caltech_module, "TRAIN_PER_CLASS", 2)
    base = write_caltech(tmp_path, {"ant": 3, "Faces": 4, "BACKGROUND_Google": 3})
    (base / "101_ObjectCategories" / "ant" / "notes.txt").write_text("not an image")
    classes = ["BACKGROUND_Google", "Faces", "ant"]  # sorted as torchvision sorts; BACKGROUND_Google is class 0
    everything = [f"101_ObjectCategories/{name}/image_{k:04d}.jpg" for name, count in
                  (("BACKGROUND_Google", 3), ("Faces", 4), ("ant", 3)) for k in range(1, count + 1)]  # fmt: skip
    keys = rank_keys(np.asarray(everything, dtype=object), 7)
    expected = set()
    for name in classes:  # the two lowest keys of each class's paths
        members = [k for k, path in enumerate(everything) if f"/{name}/" in path]
        expected |= {everything[k] for k in sorted(members, key=lambda k: keys[k])[:2]}
    for root in (tmp_path, base):
        train, test = caltech_module.read(root, "train", seed=7), caltech_module.read(root, "test", seed=7)
        assert train.root == test.root == base and train.classes == test.classes == classes
        assert set(train.paths) == expected and len(train.paths) == 6
        assert test.paths == [path for path in everything if path not in expected]
        for examples in (train, test):
            assert [examples.classes[t] for t in examples.targets] == [p.split("/")[1] for p in examples.paths]
    # A class's choice is its paths' and the seed's alone: another class beside it changes nothing.
    write_caltech(tmp_path, {"zebra": 5})
    train = caltech_module.read(tmp_path, "train", seed=7)
    assert {path for path in train.paths if "/zebra/" not in path} == expected and len(train.paths) == 8


def test_caltech_takes_thirty_per_class_and_the_rest_for_test(tmp_path):
    base = write_caltech(tmp_path, {"accordion": 31, "airplanes": 36})
    assert caltech_module.TRAIN_PER_CLASS == 30
    train, test = caltech_module.read(base, "train", seed=0), caltech_module.read(base, "test", seed=0)
    assert Counter(train.targets) == {0: 30, 1: 30} and Counter(test.targets) == {0: 1, 1: 6}
    assert not set(train.paths) & set(test.paths) and len({*train.paths, *test.paths}) == 67
    other = caltech_module.read(base, "train", seed=1)
    assert set(other.paths) != set(train.paths) and Counter(other.targets) == {0: 30, 1: 30}


def test_caltech_matches_torchvision_on_the_twin():
    root = twin("caltech101")
    train, test = caltech_module.read(root, "train", seed=3), caltech_module.read(root, "test", seed=3)
    ours = pairs(train) | pairs(test)
    theirs = Caltech101(root, download=False)  # reads the whole release: it has no split; no md5 check
    base = root / "caltech101" / "101_ObjectCategories"
    listed = {(str(base / theirs.categories[y] / f"image_{index:04d}.jpg"), theirs.categories[y])
              for index, y in zip(theirs.index, theirs.y)}  # fmt: skip
    # torchvision drops BACKGROUND_Google ("not a real class"); Kornblith et al. keep it as the 102nd class, so it is
    # left out of the comparison (its images are compared for being read at all below).
    assert ours - {pair for pair in ours if pair[1] == "BACKGROUND_Google"} == listed
    assert train.classes == ["BACKGROUND_Google", *theirs.categories]
    background = {pair for pair in ours if pair[1] == "BACKGROUND_Google"}
    assert len(background) == len(list((base / "BACKGROUND_Google").iterdir()))


def test_caltech_twin_has_the_real_splits():
    root = twin("caltech101")
    scale = caltech_module.SCALES["tiny"]
    train, test = caltech_module.read(root, "train"), caltech_module.read(root, "test")
    on_disk = Counter(p.parent.name for p in (root / "caltech101" / "101_ObjectCategories").glob("*/*.jpg"))
    assert len(on_disk) == scale.classes and min(on_disk.values()) > caltech_module.TRAIN_PER_CLASS
    assert Counter(train.targets) == dict.fromkeys(range(scale.classes), caltech_module.TRAIN_PER_CLASS)
    assert {train.classes[t]: n for t, n in Counter(test.targets).items()} == {
        name: count - caltech_module.TRAIN_PER_CLASS for name, count in on_disk.items()
    }
    assert not set(train.paths) & set(test.paths)


def test_a_broken_caltech_copy_is_named(tmp_path):
    with pytest.raises(DataFormatError, match=r"does not exist\. Point data\.caltech101 at"):
        caltech_module.read(tmp_path / "nowhere", "train")
    with pytest.raises(DataFormatError, match="101_ObjectCategories is not a directory"):
        caltech_module.read(tmp_path, "train")
    (tmp_path / "caltech101" / "101_ObjectCategories").mkdir(parents=True)
    with pytest.raises(DataFormatError, match="holds no category folders"):
        caltech_module.check_layout(tmp_path)
    write_caltech(tmp_path, {"ant": 31, "inline_skate": 30})
    with pytest.raises(DataFormatError, match="class inline_skate holds 30 .jpg images") as error:
        caltech_module.check_layout(tmp_path)
    assert str(tmp_path / "caltech101" / "101_ObjectCategories" / "inline_skate") in str(error.value)
    with pytest.raises(ValueError, match="no split 'val'; choose one of train, test"):
        caltech_module.read(tmp_path, "val")


# Stanford Cars ---------------------------------------------------------------------------------------------------


def save_annotations(path: Path, records: list[tuple]) -> None:
    """A 1 x N struct array as the release's: (class, fname) and a box each."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"]
    value = np.empty((1, len(records)), dtype=[(field, object) for field in fields])
    for column, (label, fname) in enumerate(records):
        value[0, column] = (np.uint16(1), np.uint16(2), np.uint16(30), np.uint16(20), np.uint8(label), fname)
    scipy.io.savemat(path, {"annotations": value})


def write_cars(root: Path) -> Path:
    base = root / "stanford_cars"
    names = np.empty((1, 3), dtype=object)
    names[0, :] = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Ram C/V Cargo Van Minivan 2012"]
    (base / "devkit").mkdir(parents=True)
    scipy.io.savemat(base / "devkit" / "cars_meta.mat", {"class_names": names})
    save_annotations(base / "devkit" / "cars_train_annos.mat", [(3, "00001.jpg"), (1, "00002.jpg"), (3, "00003.jpg")])
    save_annotations(base / "cars_test_annos_withlabels.mat", [(2, "00001.jpg"), (1, "00002.jpg")])
    touch_images(base / "cars_train", ["00001.jpg", "00002.jpg", "00003.jpg"])
    touch_images(base / "cars_test", ["00001.jpg", "00002.jpg"])
    return base


def test_cars_reads_a_hand_made_copy(tmp_path):
    base = write_cars(tmp_path)
    classes = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Ram C/V Cargo Van Minivan 2012"]
    for root in (tmp_path, base):
        train, test = cars_module.read(root, "train"), cars_module.read(root, "test", seed=4)
        assert train.root == test.root == base and train.classes == test.classes == classes
        assert train.paths == ["cars_train/00001.jpg", "cars_train/00002.jpg", "cars_train/00003.jpg"]
        assert train.targets == [2, 0, 2] and train.crops is None
        assert test.paths == ["cars_test/00001.jpg", "cars_test/00002.jpg"] and test.targets == [1, 0]
    save_annotations(base / "cars_test_annos_withlabels.mat", [(2, "00002.jpg")])  # one annotation reads as a scalar
    assert cars_module.read(base, "test").paths == ["cars_test/00002.jpg"]


@pytest.mark.parametrize("split", ["train", "test"])
def test_cars_matches_torchvision_on_the_twin(split):
    root = twin("cars")
    ours = cars_module.read(root, split)
    theirs = StanfordCars(root, split=split, download=False)  # torchvision checks no md5 here
    assert ours.classes == theirs.classes
    assert [(str(ours.root / p), t) for p, t in zip(ours.paths, ours.targets)] == [
        (path, int(target)) for path, target in theirs._samples
    ]


def test_cars_twin_has_the_real_splits():
    root = twin("cars")
    scale = cars_module.SCALES["tiny"]
    train, test = cars_module.read(root, "train"), cars_module.read(root, "test")
    assert train.classes == test.classes == cars_module.CLASSES[: scale.classes]
    assert Counter(train.targets) == dict.fromkeys(range(scale.classes), scale.train_per_class)
    assert Counter(test.targets) == dict.fromkeys(range(scale.classes), scale.test_per_class)
    assert train.paths == [f"cars_train/{k:05d}.jpg" for k in range(1, scale.classes * scale.train_per_class + 1)]
    assert {str(p) for p in train.paths}.isdisjoint(test.paths)
    annotations = scipy.io.loadmat(root / "stanford_cars" / "devkit" / "cars_train_annos.mat")["annotations"]
    assert annotations.shape == (1, len(train.paths)) and set(annotations.dtype.names) == set(cars_module.FIELDS)


@pytest.mark.parametrize(
    "file, records, message",
    [
        ("devkit/cars_train_annos.mat", None, "devkit/cars_train_annos.mat not found"),
        ("devkit/cars_meta.mat", None, "devkit/cars_meta.mat not found"),
        ("devkit/cars_train_annos.mat", [(4, "00001.jpg")], "class 4 is not a class number from 1 to 3"),
        ("devkit/cars_train_annos.mat", [(0, "00001.jpg")], "class 0 is not a class number from 1 to 3"),
        ("devkit/cars_train_annos.mat", [(1, "00001.jpg"), (2, "00009.jpg")], "annotation 2: the image"),
        ("devkit/cars_train_annos.mat", [(1, "00001.jpg"), (2, "00001.jpg")], "listed again"),
        ("devkit/cars_train_annos.mat", [], "lists no images"),
        ("cars_test_annos_withlabels.mat", b"not a mat file", "is not a MATLAB file"),
    ],
)
def test_a_broken_cars_copy_is_named(tmp_path, file, records, message):
    base = write_cars(tmp_path)
    path = base / file
    if records is None:
        path.unlink()
    elif isinstance(records, bytes):
        path.write_bytes(records)
    else:
        save_annotations(path, records)
    with pytest.raises(DataFormatError, match=re.escape(message)) as error:
        cars_module.check_layout(tmp_path)
    assert str(path) in str(error.value)


def test_cars_missing_root_fields_and_unknown_split(tmp_path):
    with pytest.raises(DataFormatError, match=r"does not exist\. Point data\.cars at"):
        cars_module.read(tmp_path / "nowhere", "train")
    with pytest.raises(DataFormatError, match="holds no devkit/ folder"):
        cars_module.read(tmp_path, "train")
    base = write_cars(tmp_path)
    scipy.io.savemat(base / "devkit" / "cars_train_annos.mat", {"annos": np.zeros(3)})
    with pytest.raises(DataFormatError, match="holds no variable 'annotations'"):
        cars_module.read(base, "train")
    scipy.io.savemat(base / "devkit" / "cars_train_annos.mat", {"annotations": np.zeros(3)})
    with pytest.raises(DataFormatError, match="lacks bbox_x1, bbox_y1, bbox_x2, bbox_y2, class, fname"):
        cars_module.read(base, "train")
    with pytest.raises(ValueError, match="no split 'val'; choose one of train, test"):
        cars_module.read(base, "val")


# The registered tasks --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, metric", [("pets", "mean_per_class"), ("caltech101", "mean_per_class"), ("cars", "top1")]
)
def test_the_tasks_are_registered_with_their_metric(name, metric):
    task = TASKS[name]
    assert task.dataset == name and task.metric == metric and task.validation is None and task.protocol == "finetune"
    # Predicted 0, 0, 1, 0 for 0, 1, 1, 1: top-1 2/4, mean per-class accuracy (1/1 + 1/3) / 2.
    metrics = task.evaluate(np.array([[1, 0], [1, 0], [0, 1], [1, 0.0]]), np.array([0, 1, 1, 1]))
    assert metrics["top1"] == 0.5
    if metric == "mean_per_class":
        assert metrics[metric] == pytest.approx((1 + 1 / 3) / 2)


@pytest.mark.parametrize("name", ["pets", "caltech101"])
def test_selection_holds_out_a_fifth_of_each_training_class(name):
    task, root = TASKS[name], twin(name)
    splits = selection_splits(task, root, seed=0)
    trainval = task.read(root, task.splits[0], seed=0)
    assert splits["trainval"].paths == trainval.paths
    assert not set(splits["train"].paths) & set(splits["val"].paths)
    assert sorted(splits["train"].paths + splits["val"].paths) == sorted(trainval.paths)
    per_class = Counter(trainval.targets)
    assert Counter(splits["val"].targets) == {c: round(n * 0.2) for c, n in per_class.items()}
    assert splits["test"].paths == task.read(root, task.splits[1], seed=0).paths
    other = selection_splits(task, root, seed=1)
    assert set(other["val"].paths) != set(splits["val"].paths)
    if name == "pets":  # the official trainval: only the held-out fifth moves with the seed
        assert other["trainval"].paths == trainval.paths
