"""The datasets with an official validation split among Kornblith et al.'s twelve: FGVC Aircraft, DTD and Oxford 102
Flowers (tasks/aircraft.py, tasks/dtd.py, tasks/flowers102.py). Each reader on a small hand-made copy of the real
layout, against torchvision's own dataset class on the synthetic twin, its splits, and its errors."""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import write_image
from scipy.io import savemat

import synthetic
from formats import DataFormatError
from tasks import TASKS, aircraft, dtd, flowers102, selection_splits

# Hand-made fixtures in the real layouts ------------------------------------------------------------------------------


def make_aircraft(parent: Path) -> Path:
    """fgvc-aircraft-2013b under ``parent``: three variants (two with spaces or a slash), 2 / 1 / 2 images."""
    data = parent / "fgvc-aircraft-2013b" / "data"
    data.mkdir(parents=True)
    (data / "variants.txt").write_text("707-320\nBoeing 717\nF/A-18\n")
    splits = {"train": ["0034309 Boeing 717", "1025794 707-320"], "val": ["0056978 F/A-18"],
              "test": ["2236477 707-320", "0062012 Boeing 717"]}  # fmt: skip
    splits["trainval"] = splits["train"] + splits["val"]
    for split, lines in splits.items():
        (data / f"images_variant_{split}.txt").write_text("".join(f"{line}\n" for line in lines))
        for seed, line in enumerate(lines):
            write_image(data / "images" / f"{line.split(' ')[0]}.jpg", seed=seed)
    return parent / "fgvc-aircraft-2013b"


def make_dtd(parent: Path) -> Path:
    """dtd under ``parent``: three textures, partition 1 (and a different partition 2 that must not be read)."""
    folder = parent / "dtd"
    images = ["banded/banded_0002.jpg", "banded/banded_0004.jpg", "dotted/dotted_0111.jpg", "dotted/dotted_0161.jpg",
              "zigzagged/zigzagged_0051.jpg", "zigzagged/zigzagged_0060.jpg"]  # fmt: skip
    for seed, image in enumerate(images):
        write_image(folder / "images" / image, seed=seed)
    (folder / "labels").mkdir()
    partitions = {1: {"train": [images[4], images[0]], "val": [images[2]], "test": [images[1], images[3], images[5]]},
                  2: {"train": [images[1]], "val": [images[3]], "test": [images[0]]}}  # fmt: skip
    for partition, splits in partitions.items():
        for split, lines in splits.items():
            (folder / "labels" / f"{split}{partition}.txt").write_text("".join(f"{line}\n" for line in lines))
    return folder


def make_flowers(parent: Path) -> Path:
    """flowers-102 under ``parent``: seven images of flowers 1..3, ids shuffled across flowers, labels as doubles."""
    folder = parent / "flowers-102"
    for image_id in range(1, 8):
        write_image(folder / "jpg" / f"image_{image_id:05d}.jpg", seed=image_id)
    savemat(folder / "imagelabels.mat", {"labels": np.array([[3, 1, 3, 2, 1, 2, 1]], dtype=np.float64)})
    savemat(folder / "setid.mat", {"trnid": np.array([[2, 4]], dtype=np.uint16),
                                   "valid": np.array([[6, 1]], dtype=np.uint16),
                                   "tstid": np.array([[3, 5, 7]], dtype=np.uint16)})  # fmt: skip
    return folder


def test_aircraft_reads_the_hand_made_layout_from_either_folder(tmp_path):
    folder = make_aircraft(tmp_path)
    classes = ["707-320", "Boeing 717", "F/A-18"]
    for root in (tmp_path, folder):
        train = aircraft.read(root, "train")
        assert train.root == folder and train.classes == classes
        assert train.paths == ["data/images/0034309.jpg", "data/images/1025794.jpg"] and train.targets == [1, 0]
        assert aircraft.read(root, "val").paths == ["data/images/0056978.jpg"]
        assert aircraft.read(root, "val").targets == [2]
        test = aircraft.read(root, "test")
        assert test.paths == ["data/images/2236477.jpg", "data/images/0062012.jpg"] and test.targets == [0, 1]
        assert aircraft.read(root, "trainval").targets == [1, 0, 2]
    aircraft.check_layout(tmp_path)


def test_dtd_reads_partition_1_of_the_hand_made_layout(tmp_path):
    folder = make_dtd(tmp_path)
    for root in (folder, tmp_path):
        train = dtd.read(root, "train")
        assert train.root == folder and train.classes == ["banded", "dotted", "zigzagged"]
        assert train.paths == ["images/zigzagged/zigzagged_0051.jpg", "images/banded/banded_0002.jpg"]
        assert train.targets == [2, 0]
        assert dtd.read(root, "val").paths == ["images/dotted/dotted_0111.jpg"]
        assert dtd.read(root, "test").targets == [0, 1, 2]
    dtd.check_layout(folder)


def test_dtd_finds_torchvisions_download_folder(tmp_path):
    make_dtd(tmp_path / "dtd")  # torchvision's DTD(root) reads root/dtd/dtd/
    assert dtd.read(tmp_path, "val").root == tmp_path / "dtd" / "dtd"


def test_flowers_reads_the_hand_made_layout_from_either_folder(tmp_path):
    folder = make_flowers(tmp_path)
    for root in (tmp_path, folder):
        train = flowers102.read(root, "train")
        assert train.root == folder
        assert train.classes == ["pink primrose", "hard-leaved pocket orchid", "canterbury bells"]
        assert train.paths == ["jpg/image_00002.jpg", "jpg/image_00004.jpg"] and train.targets == [0, 1]
        val = flowers102.read(root, "val")
        assert val.paths == ["jpg/image_00006.jpg", "jpg/image_00001.jpg"] and val.targets == [1, 2]
        test = flowers102.read(root, "test")
        assert test.paths == ["jpg/image_00003.jpg", "jpg/image_00005.jpg", "jpg/image_00007.jpg"]
        assert test.targets == [2, 0, 0]
    flowers102.check_layout(folder)


# Against torchvision, on the synthetic twins ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    return {name: synthetic.resolve(name, "embedded:tiny") for name in ("aircraft", "dtd", "flowers102")}


def pairs(examples) -> list[tuple[Path, int]]:
    return [(examples.root / path, target) for path, target in zip(examples.paths, examples.targets)]


def torchvision_pairs(dataset) -> list[tuple[Path, int]]:
    return [(Path(path), int(label)) for path, label in zip(dataset._image_files, dataset._labels)]


def test_aircraft_agrees_with_torchvision(tiny, tmp_path):
    from torchvision.datasets import FGVCAircraft

    (tmp_path / "fgvc-aircraft-2013b").symlink_to(tiny["aircraft"])  # torchvision's root holds fgvc-aircraft-2013b
    for split in ("train", "val", "trainval", "test"):
        theirs = FGVCAircraft(tmp_path, split=split, annotation_level="variant", download=False)
        ours = aircraft.read(tmp_path, split)
        assert pairs(ours) == torchvision_pairs(theirs) and ours.classes == theirs.classes
        assert pairs(aircraft.read(tiny["aircraft"], split)) == [
            (tiny["aircraft"] / path.relative_to(tmp_path / "fgvc-aircraft-2013b"), target)
            for path, target in torchvision_pairs(theirs)
        ]


def test_dtd_agrees_with_torchvision(tiny, tmp_path):
    from torchvision.datasets import DTD

    (tmp_path / "dtd").mkdir()
    (tmp_path / "dtd" / "dtd").symlink_to(tiny["dtd"])  # torchvision's DTD(root) reads root/dtd/dtd/
    for split in ("train", "val", "test"):
        theirs = DTD(tmp_path, split=split, partition=1, download=False)
        ours = dtd.read(tmp_path, split)
        assert pairs(ours) == torchvision_pairs(theirs) and ours.classes == theirs.classes
        assert dtd.read(tiny["dtd"], split).paths == ours.paths


def test_flowers_agrees_with_torchvision(tiny, tmp_path, monkeypatch):
    from torchvision.datasets import Flowers102

    # torchvision checks the md5 sums of the real imagelabels.mat and setid.mat, which the synthetic ones cannot
    # match: skip that check (it reads the files all the same).
    monkeypatch.setattr(Flowers102, "_check_integrity", lambda self: True)
    (tmp_path / "flowers-102").symlink_to(tiny["flowers102"])
    for split in ("train", "val", "test"):
        theirs = Flowers102(tmp_path, split=split, download=False)
        ours = flowers102.read(tmp_path, split)
        assert pairs(ours) == torchvision_pairs(theirs)
        assert ours.classes == theirs.classes[: flowers102.SCALES["tiny"].classes]


# The splits ------------------------------------------------------------------------------------------------------


def counts(examples) -> dict[int, int]:
    return dict(zip(*np.unique(examples.targets, return_counts=True)))


@pytest.mark.parametrize("name", ["aircraft", "dtd", "flowers102"])
def test_the_official_splits_are_disjoint_and_cover_every_image(name, tiny):
    task, root = TASKS[name], tiny[name]
    assert task.splits == ("train", "test") and task.validation == "val"
    splits = {split: task.read(root, split) for split in ("train", "val", "test")}
    sets = {split: set(examples.paths) for split, examples in splits.items()}
    assert all(len(sets[split]) == len(splits[split].paths) for split in sets)
    assert not sets["train"] & sets["val"] and not sets["train"] & sets["test"] and not sets["val"] & sets["test"]
    images = {str(path.relative_to(splits["train"].root)) for path in splits["train"].root.rglob("*.jpg")}
    assert sets["train"] | sets["val"] | sets["test"] == images
    selection = selection_splits(task, root, seed=3)  # the official val, not a held-out fifth of train
    assert selection["val"].paths == splits["val"].paths and selection["train"].paths == splits["train"].paths
    assert selection["trainval"].paths == splits["train"].paths + splits["val"].paths


def test_aircraft_and_dtd_give_a_third_of_each_class_to_each_split(tiny):
    scale = aircraft.SCALES["tiny"]
    for split, size in (("train", scale.train_per_class), ("val", scale.val_per_class), ("test", scale.test_per_class)):
        assert counts(aircraft.read(tiny["aircraft"], split)) == dict.fromkeys(range(scale.classes), size)
    trainval = aircraft.read(tiny["aircraft"], "trainval")
    assert counts(trainval) == dict.fromkeys(range(scale.classes), scale.train_per_class + scale.val_per_class)
    scale = dtd.SCALES["tiny"]
    for split in ("train", "val", "test"):
        assert counts(dtd.read(tiny["dtd"], split)) == dict.fromkeys(range(scale.classes), scale.per_split)
    # Every partition splits all images, each its own way.
    labels = tiny["dtd"] / "labels"
    firsts = [(labels / f"train{n}.txt").read_text() for n in range(1, 11)]
    assert len(set(firsts)) == 10
    for n in range(1, 11):
        listed = [(labels / f"{split}{n}.txt").read_text().split() for split in ("train", "val", "test")]
        assert sorted(sum(listed, [])) == sorted(str(p.relative_to(tiny["dtd"] / "images"))
                                               for p in (tiny["dtd"] / "images").rglob("*.jpg"))  # fmt: skip


def test_flowers_give_as_many_of_each_class_to_train_as_to_val_and_the_rest_to_test(tiny):
    scale = flowers102.SCALES["tiny"]
    train, val, test = (flowers102.read(tiny["flowers102"], split) for split in ("train", "val", "test"))
    assert counts(train) == counts(val) == dict.fromkeys(range(scale.classes), scale.train_per_class)
    assert set(counts(test)) == set(range(scale.classes))
    assert all(scale.test_per_class[0] <= n <= scale.test_per_class[1] for n in counts(test).values())


@pytest.mark.parametrize("name", ["aircraft", "dtd", "flowers102"])
def test_evaluation_gives_the_papers_metric(name):
    task = TASKS[name]
    scores = np.eye(3)[[0, 0, 0, 1, 2]]  # class 0: 3 of 3 right; class 1: 1 of 2 right (top-1 4/5, mean 0.75)
    metrics = task.evaluate(scores, np.array([0, 0, 0, 1, 1]))
    assert metrics["top1"] == pytest.approx(0.8)
    expected = {"aircraft": "mean_per_class", "dtd": "top1", "flowers102": "mean_per_class"}[name]
    assert task.metric == expected and metrics[expected] == pytest.approx(0.8 if expected == "top1" else 0.75)


# Bad input -------------------------------------------------------------------------------------------------------


def raises(read, root, split, *fragments):
    with pytest.raises(DataFormatError) as error:
        read(root, split)
    for fragment in fragments:
        assert fragment in str(error.value), str(error.value)
    return str(error.value)


@pytest.mark.parametrize("module, key", [(aircraft, "aircraft"), (dtd, "dtd"), (flowers102, "flowers102")])
def test_a_missing_root_or_an_unknown_split_is_named(module, key, tmp_path):
    message = raises(module.read, tmp_path / "nowhere", "train", str(tmp_path / "nowhere"), f"data.{key}")
    assert "python -m synthetic generate" in message
    with pytest.raises(ValueError, match=re.escape("choose one of train, val")):
        module.read(tmp_path, "validation")
    with pytest.raises(DataFormatError):
        module.check_layout(tmp_path)


def test_aircraft_errors_name_the_file_and_what_to_fix(tmp_path):
    folder = make_aircraft(tmp_path)
    data = folder / "data"
    (data / "images_variant_val.txt").unlink()
    raises(aircraft.read, tmp_path, "val", "images_variant_val.txt", "not found")
    with open(data / "images_variant_train.txt", "a") as listing:
        listing.write("0099999 747-8\n")
    raises(aircraft.read, tmp_path, "train", "images_variant_train.txt:3", "'<id> <variant>'")
    (data / "images_variant_train.txt").write_text("0034309\n")
    raises(aircraft.read, tmp_path, "train", "images_variant_train.txt:1", "not '<id> <variant>'")
    (data / "images_variant_train.txt").write_text("0034309 Boeing 717\n0034309 Boeing 717\n")
    raises(aircraft.read, tmp_path, "train", "images_variant_train.txt:2", "listed again")
    (data / "images" / "2236477.jpg").unlink()
    raises(aircraft.read, tmp_path, "test", "images_variant_test.txt:1", "2236477.jpg is missing", "re-extract")
    (data / "images_variant_trainval.txt").write_text("\n")
    raises(aircraft.read, tmp_path, "trainval", "images_variant_trainval.txt lists no images")
    (data / "variants.txt").write_text("707-320\n707-320\n")
    raises(aircraft.read, tmp_path, "train", "variants.txt:2", "listed again")
    (data / "variants.txt").unlink()
    raises(aircraft.read, tmp_path, "train", "variants.txt", "data.aircraft")


def test_dtd_errors_name_the_file_and_what_to_fix(tmp_path):
    folder = make_dtd(tmp_path)
    labels = folder / "labels"
    (labels / "val1.txt").unlink()
    raises(dtd.read, folder, "val", "val1.txt", "not found", "data.dtd")
    (labels / "train1.txt").write_text("banded/banded_0002.jpg\nbanded_0004.jpg\n")
    raises(dtd.read, folder, "train", "train1.txt:2", "not '<class>/<file>'")
    (labels / "train1.txt").write_text("woven/woven_0001.jpg\n")
    raises(dtd.read, folder, "train", "train1.txt:1", "class folder")
    (labels / "train1.txt").write_text("banded/banded_0002.jpg\nbanded/banded_0002.jpg\n")
    raises(dtd.read, folder, "train", "train1.txt:2", "listed again")
    (folder / "images" / "dotted" / "dotted_0161.jpg").unlink()
    raises(dtd.read, folder, "test", "test1.txt:2", "dotted_0161.jpg is missing", "re-extract")
    (labels / "test1.txt").write_text("")
    raises(dtd.read, folder, "test", "test1.txt lists no images")
    shutil.rmtree(folder / "images")
    raises(dtd.read, folder, "train", str(folder / "images"), "re-extract")


def test_flowers_errors_name_the_file_and_what_to_fix(tmp_path):
    folder = make_flowers(tmp_path)
    (folder / "jpg" / "image_00005.jpg").unlink()
    raises(flowers102.read, folder, "test", "setid.mat: tstid[1]", "image_00005.jpg is missing", "re-extract")
    savemat(folder / "setid.mat", {"trnid": np.array([[2, 9]]), "valid": np.array([[1, 1]]), "tstid": np.array([[]])})
    raises(flowers102.read, folder, "train", "setid.mat: trnid[1] is image 9", "imagelabels.mat labels images 1..7")
    raises(flowers102.read, folder, "val", "setid.mat: valid[1] lists image 1 again", "list each image once")
    raises(flowers102.read, folder, "test", "setid.mat: tstid is empty", "re-download")
    savemat(folder / "setid.mat", {"trnid": np.array([[2.5]])})
    raises(flowers102.read, folder, "train", "setid.mat: trnid", "not whole numbers")
    raises(flowers102.read, folder, "val", "setid.mat holds no variable 'valid' (it holds trnid)", "re-download")
    (folder / "setid.mat").write_text("trnid 1 2 3\n")
    raises(flowers102.read, folder, "train", "setid.mat is not a MATLAB .mat file", "re-download setid.mat")
    (folder / "setid.mat").unlink()
    raises(flowers102.read, folder, "train", "setid.mat", "not found", "data.flowers102")
    savemat(folder / "imagelabels.mat", {"labels": np.array([[1, 103, 2]])})
    raises(flowers102.read, folder, "train", "imagelabels.mat: labels[1] (image 2) is 103", "not a flower 1..102")
