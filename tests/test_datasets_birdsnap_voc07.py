"""Birdsnap and VOC 2007 classification: the readers on hand-made fixtures in the real layouts, against torchvision
(VOC) and independent parses on the tiny synthetic twins, their splits, their errors, and VOC 2007's 11-point mAP
against the devkit's VOCevalcls."""

import csv
import hashlib
import logging
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import write_image
from torchvision.datasets import VOCDetection

import synthetic
from formats import DataFormatError
from formats.voc import VOC_CLASSES
from tasks import TASKS, selection_splits
from tasks.birdsnap import SCALES as BIRDSNAP_SCALES

BIRDSNAP, VOC07 = TASKS["birdsnap"], TASKS["voc07_cls"]

# Birdsnap ---------------------------------------------------------------------------------------------------------

PARTS = ["back", "beak", "belly", "breast", "crown", "forehead", "left_cheek", "left_eye", "left_leg", "left_wing",
         "nape", "right_cheek", "right_eye", "right_leg", "right_wing", "tail", "throat"]  # fmt: skip
HEADER = ["url", "md5", "path", "species_id", "bb_x1", "bb_y1", "bb_x2", "bb_y2"] + [
    f"{part}_{axis}" for part in PARTS for axis in "xy"
]
SPECIES = [(3, "Blue Jay", "Cyanocitta cristata", "Blue_Jay"), (1, "Acadian Flycatcher", "Empidonax virescens",
           "Acadian_Flycatcher"), (2, "Cooper's Hawk", "Accipiter cooperii", "Coopers_Hawk")]  # fmt: skip
IMAGES = [  # path, species id, on disk
    ("Coopers_Hawk/0561.jpg", 2, True),
    ("Coopers_Hawk/0629.jpg", 2, True),
    ("Acadian_Flycatcher/0001.jpg", 1, True),
    ("Acadian_Flycatcher/0002.jpg", 1, False),  # its URL was dead
    ("Acadian_Flycatcher/0003.jpg", 1, True),
    ("Blue_Jay/191761.jpg", 3, True),
    ("Blue_Jay/191858.jpg", 3, True),
]
TEST = ["Coopers_Hawk/0629.jpg", "Blue_Jay/191761.jpg", "Acadian_Flycatcher/0003.jpg"]


def image_line(path, species_id, seed=0):
    values = [f"http://farm{seed}.staticflickr.com/{seed}/{seed}_o.jpg", "0" * 32, path, str(species_id),
              "3", "2", "15", "12"] + ["null"] * (2 * len(PARTS))  # fmt: skip
    return "\t".join(values)


@pytest.fixture
def birdsnap(tmp_path):
    root = tmp_path / "birdsnap"
    root.mkdir()
    (root / "species.txt").write_text(
        "id\tcommon\tscientific\tdir\n" + "".join(f"{i}\t{c}\t{s}\t{d}\n" for i, c, s, d in SPECIES)
    )
    lines = [image_line(path, species, seed) for seed, (path, species, _) in enumerate(IMAGES)]
    (root / "images.txt").write_text("\t".join(HEADER) + "\n" + "\n".join(lines) + "\n")
    (root / "test_images.txt").write_text("path\n" + "".join(f"{p}\n" for p in TEST))
    for seed, (path, _, on_disk) in enumerate(IMAGES):
        if on_disk:
            write_image(root / "download" / "images" / path, seed=seed)
    return root


def test_birdsnap_reads_the_release_layout(birdsnap, caplog):
    classes = ["Acadian Flycatcher", "Cooper's Hawk", "Blue Jay"]  # species.txt's id order, not its line order
    with caplog.at_level(logging.WARNING, logger="tasks.birdsnap"):
        train = BIRDSNAP.read(birdsnap, "train")
    assert train.root == birdsnap and train.classes == classes and train.crops is None
    assert train.paths == ["download/images/Coopers_Hawk/0561.jpg", "download/images/Acadian_Flycatcher/0001.jpg",
                           "download/images/Blue_Jay/191858.jpg"]  # fmt: skip
    assert train.targets == [1, 0, 2]
    [warning] = caplog.records  # one warning, naming how many and which
    assert "1 of the 4 images" in warning.getMessage() and "Acadian_Flycatcher/0002.jpg" in warning.getMessage()

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tasks.birdsnap"):
        test = BIRDSNAP.read(birdsnap, "test")
    assert not caplog.records
    assert test.paths == ["download/images/Coopers_Hawk/0629.jpg", "download/images/Acadian_Flycatcher/0003.jpg",
                          "download/images/Blue_Jay/191761.jpg"]  # fmt: skip
    assert test.targets == [1, 0, 2] and test.classes == classes
    BIRDSNAP.check_layout(birdsnap)


def test_birdsnap_task_is_top1_without_a_validation_split(birdsnap):
    assert (BIRDSNAP.splits, BIRDSNAP.validation, BIRDSNAP.metric, BIRDSNAP.multilabel) == (
        ("train", "test"), None, "top1", False)  # fmt: skip
    scores = np.eye(3)[[0, 1, 1, 2]]
    assert BIRDSNAP.evaluate(scores, np.array([0, 1, 2, 2]))["top1"] == 0.75
    splits = selection_splits(BIRDSNAP, birdsnap, seed=0)
    assert sorted(splits["train"].paths + splits["val"].paths) == sorted(splits["trainval"].paths)


def read_tsv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def test_birdsnap_reads_its_synthetic_twin_as_an_independent_parse():
    root = synthetic.resolve("birdsnap", "embedded:tiny")
    scale = BIRDSNAP_SCALES["tiny"]
    species = read_tsv(root / "species.txt")
    order = sorted(int(row["id"]) for row in species)
    names = {int(row["id"]): row["common"] for row in species}
    images = read_tsv(root / "images.txt")
    test_paths = (root / "test_images.txt").read_text().split("\n")[1:]
    failed = {line.split("\t")[1] for line in (root / "download" / "fail.txt").read_text().splitlines()}
    assert failed, "the twin misses a few images, as real copies do"
    for split in ("train", "test"):
        examples = BIRDSNAP.read(root, split)
        assert examples.classes == [names[i] for i in order]
        expected = [(f"download/images/{row['path']}", order.index(int(row["species_id"]))) for row in images
                    if (row["path"] in test_paths) == (split == "test") and row["path"] not in failed]  # fmt: skip
        assert list(zip(examples.paths, examples.targets)) == expected
        for row in images:  # what get_birdsnap.py checks of each file it has
            if row["path"] not in failed:
                assert hashlib.md5((root / "download/images" / row["path"]).read_bytes()).hexdigest() == row["md5"]
            else:
                assert not (root / "download/images" / row["path"]).exists()
        # Sizes per class: the listed images of the class less the ones that failed.
        listed = Counter(int(row["species_id"]) for row in images if (row["path"] in test_paths) == (split == "test"))
        lost = Counter(int(row["species_id"]) for row in images
                       if row["path"] in failed and (row["path"] in test_paths) == (split == "test"))  # fmt: skip
        per_class = scale.test_per_class if split == "test" else scale.train_per_class
        assert all(listed[i] == per_class for i in order)
        assert Counter(examples.targets) == {order.index(i): listed[i] - lost[i] for i in order}
    train, test = BIRDSNAP.read(root, "train"), BIRDSNAP.read(root, "test")
    assert not set(train.paths) & set(test.paths)
    assert len(train.paths) + len(test.paths) + len(failed) == len(images)
    dirs = [row["dir"] for row in sorted(species, key=lambda row: int(row["id"]))]
    assert all(path.split("/")[2] == dirs[target] for path, target in zip(train.paths, train.targets))


def break_file(root, name, old, new):
    path = root / name
    path.write_text(path.read_text().replace(old, new, 1))


@pytest.mark.parametrize(
    "damage, split, message",
    [
        (lambda r: (r / "species.txt").unlink(), "train", r"species\.txt.*missing"),
        (lambda r: (r / "images.txt").unlink(), "test", r"images\.txt.*missing"),
        (lambda r: (r / "test_images.txt").unlink(), "train", r"test_images\.txt.*missing"),
        (lambda r: break_file(r, "images.txt", "\t3\t2\t15\t12\t", "\t3\t2\t15\t"), "train",
         r"images\.txt:2: 41 tab-separated fields where the header names 42; re-extract"),
        (lambda r: break_file(r, "images.txt", "\t2\t3\t2\t15", "\t7\t3\t2\t15"), "train",
         r"images\.txt:2: species_id '7' is no id of species\.txt"),
        (lambda r: break_file(r, "images.txt", "\tspecies_id\t", "\tspecies\t"), "train",
         r"images\.txt:1: the header line .* has no field species_id"),
        (lambda r: break_file(r, "images.txt", "Coopers_Hawk/0629.jpg", "Coopers_Hawk/0561.jpg"), "test",
         r"images\.txt:3: Coopers_Hawk/0561\.jpg is listed again \(first on line 2\)"),
        (lambda r: break_file(r, "species.txt", "1\tAcadian", "x\tAcadian"), "test",
         r"species\.txt:3: .* no whole-number id"),
        (lambda r: break_file(r, "test_images.txt", "path\n", ""), "test",
         r"test_images\.txt:1: the first line is the header 'path'"),
        (lambda r: break_file(r, "test_images.txt", "Blue_Jay/191761.jpg", "Blue_Jay/9.jpg"), "train",
         r"test_images\.txt:3: the test image Blue_Jay/9\.jpg is not a path of images\.txt"),
        (lambda r: (r / "download/images/Acadian_Flycatcher/0001.jpg").unlink(), "train",
         r"1 species of .*species\.txt have no training image .*\(Acadian Flycatcher\); run get_birdsnap\.py"),
        (lambda r: [p.unlink() for p in (r / "download/images").rglob("*.jpg")], "test",
         r"none of the 3 images that .*images\.txt lists for the Birdsnap test split .*run get_birdsnap\.py"),
        (lambda r: (r / "test_images.txt").write_text("path\n" + "".join(f"{p}\n" for p, _, _ in IMAGES)), "train",
         r"lists no image for the Birdsnap train split"),
    ],
)
def test_a_broken_birdsnap_is_named(birdsnap, damage, split, message):
    damage(birdsnap)
    with pytest.raises(DataFormatError, match=message):
        BIRDSNAP.read(birdsnap, split)
    with pytest.raises(DataFormatError):
        BIRDSNAP.check_layout(birdsnap)


def test_birdsnap_names_a_missing_root_and_an_unknown_split(tmp_path, birdsnap):
    with pytest.raises(DataFormatError, match=r"no-such.*data\.birdsnap.*python -m synthetic generate"):
        BIRDSNAP.read(tmp_path / "no-such", "train")
    with pytest.raises(ValueError, match=r"train, test, not 'val'"):
        BIRDSNAP.read(birdsnap, "val")


# VOC 2007 classification -----------------------------------------------------------------------------------------

VOC_FIXTURE = {  # image id -> split, [(class, difficult: "0"/"1"/None for no tag)]
    "000001": ("train", [("dog", "0"), ("person", "1")]),
    "000002": ("train", [("cat", "1"), ("cat", "0"), ("car", None)]),
    "000003": ("val", [("bird", "1"), ("chair", "0"), ("bird", "1")]),
    "000004": ("test", [("person", "0"), ("bottle", "1"), ("bottle", "0"), ("tvmonitor", "1")]),
    "000005": ("test", [("sheep", "0")]),
}


def voc_xml(image_id, objects):
    parts = [f"<annotation><folder>VOC2007</folder><filename>{image_id}.jpg</filename>",
             "<size><width>20</width><height>16</height><depth>3</depth></size><segmented>0</segmented>"]  # fmt: skip
    for name, difficult in objects:
        flag = "" if difficult is None else f"<difficult>{difficult}</difficult>"
        box = "<bndbox><xmin>2</xmin><ymin>3</ymin><xmax>12</xmax><ymax>10</ymax></bndbox>"
        parts.append(f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>{flag}{box}</object>")
    return "".join(parts) + "</annotation>"


@pytest.fixture
def voc(tmp_path):
    root = tmp_path / "VOCdevkit"
    year = root / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (year / sub).mkdir(parents=True)
    for seed, (image_id, (_, objects)) in enumerate(VOC_FIXTURE.items()):
        (year / "Annotations" / f"{image_id}.xml").write_text(voc_xml(image_id, objects))
        write_image(year / "JPEGImages" / f"{image_id}.jpg", seed=seed)
    for split in ("train", "val", "test"):
        ids = [i for i, (s, _) in VOC_FIXTURE.items() if s == split]
        (year / "ImageSets/Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    ids = [i for i, (s, _) in VOC_FIXTURE.items() if s != "test"]
    (year / "ImageSets/Main/trainval.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


def targets_from_xml(xml_path):
    """The devkit's rule, parsed here: a class is positive with one non-difficult object (no tag: not difficult),
    neither (-1 here) with difficult ones only, else negative."""
    positive, difficult = set(), set()
    for obj in ET.parse(xml_path).getroot().iter("object"):
        (positive if int(obj.findtext("difficult") or 0) == 0 else difficult).add(obj.findtext("name").strip())
    return [1.0 if name in positive else -1.0 if name in difficult else 0.0 for name in VOC_CLASSES]


def test_voc07_targets_are_the_non_difficult_classes_of_each_image(voc):
    hand = {"000001": {"dog"}, "000002": {"cat", "car"}, "000003": {"chair"}, "000004": {"person", "bottle"},
            "000005": {"sheep"}}  # fmt: skip
    for split in ("train", "val", "trainval", "test"):
        examples = VOC07.read(voc, split)
        ids = [i for i, (s, _) in VOC_FIXTURE.items() if s == split or (split == "trainval" and s != "test")]
        assert examples.root == voc and examples.classes == list(VOC_CLASSES)
        assert examples.paths == [f"VOC2007/JPEGImages/{i}.jpg" for i in ids]
        for image_id, target in zip(ids, examples.targets):
            assert target == targets_from_xml(voc / "VOC2007/Annotations" / f"{image_id}.xml")
            assert {VOC_CLASSES[k] for k, v in enumerate(target) if v == 1.0} == hand[image_id]
    # The VOC2007 folder itself is a root too; paths are relative to it.
    assert VOC07.read(voc / "VOC2007", "val").paths == ["JPEGImages/000003.jpg"]
    VOC07.check_layout(voc)


def test_voc07_task_trains_on_train_selects_on_val_and_tests_on_test(voc):
    assert (VOC07.dataset, VOC07.splits, VOC07.validation, VOC07.metric, VOC07.multilabel) == (
        "voc", ("train", "test"), "val", "map", True)  # fmt: skip
    splits = selection_splits(VOC07, voc, seed=3)
    assert splits["trainval"].paths == VOC07.read(voc, "trainval").paths
    assert splits["val"].paths == ["VOC2007/JPEGImages/000003.jpg"]


def test_voc07_reads_the_synthetic_voc_as_torchvision_and_the_devkit_lists(tmp_path):
    root = synthetic.resolve("voc", "embedded:tiny")
    (tmp_path / "VOCdevkit").symlink_to(root)  # torchvision's root holds VOCdevkit/
    main = root / "VOC2007/ImageSets/Main"
    read = {}
    for split in ("train", "val", "trainval", "test"):
        examples = read[split] = VOC07.read(root, split)
        theirs = VOCDetection(tmp_path, year="2007", image_set=split, download=False)
        assert [str((root / p).resolve()) for p in examples.paths] == [str(Path(p).resolve()) for p in theirs.images]
        for annotation, target in zip(theirs.annotations, examples.targets):
            objects = VOCDetection.parse_voc_xml(ET.parse(annotation).getroot())["annotation"].get("object", [])
            positive = {obj["name"] for obj in objects if obj.get("difficult", "0") == "0"}
            difficult = {obj["name"] for obj in objects} - positive
            assert target == [1.0 if n in positive else -1.0 if n in difficult else 0.0 for n in VOC_CLASSES]
        # The devkit's own lists: <class>_<split>.txt marks 1 (positive), 0 (difficult only), -1 (absent).
        ids = [Path(p).stem for p in examples.paths]
        for k, name in enumerate(VOC_CLASSES):
            marks = dict(line.split() for line in (main / f"{name}_{split}.txt").read_text().splitlines())
            assert [{"1": 1.0, "0": -1.0, "-1": 0.0}[marks[i]] for i in ids] == [target[k] for target in examples.targets]
    train, val, test = (set(read[s].paths) for s in ("train", "val", "test"))
    assert not train & val and not (train | val) & test and train | val == set(read["trainval"].paths)
    assert (len(train), len(val), len(test)) == (20, 20, 40)


@pytest.mark.parametrize(
    "damage, split, message",
    [
        (lambda y: (y / "ImageSets/Main/test.txt").unlink(), "test", r"test\.txt is missing.*VOCtest_06-Nov-2007"),
        (lambda y: (y / "ImageSets/Main/val.txt").unlink(), "val", r"val\.txt is missing"),
        (lambda y: (y / "ImageSets/Main/train.txt").write_text("000001\nbad/id 1\n"), "train",
         r"train\.txt:2: 'bad/id' is not a VOC image id"),
        (lambda y: (y / "ImageSets/Main/train.txt").write_text("000001\n000009\n"), "train",
         r"train\.txt:2: 000009 has no annotation"),
        (lambda y: (y / "JPEGImages/000005.jpg").unlink(), "test", r"000005\.xml: its image .*000005\.jpg"),
        (lambda y: (y / "Annotations/000003.xml").write_text(voc_xml("000003", [("kitten", "0")])), "val",
         r"000003\.xml: object 1 has unknown class 'kitten'"),
    ],
)
def test_a_broken_voc07_is_named(voc, damage, split, message):
    damage(voc / "VOC2007")
    with pytest.raises(DataFormatError, match=message):
        VOC07.read(voc, split)
    with pytest.raises(DataFormatError):
        VOC07.check_layout(voc)


def test_voc07_names_a_missing_root_and_an_unknown_split(tmp_path, voc):
    with pytest.raises(DataFormatError, match=r"no-such.*data\.voc.*python -m synthetic generate"):
        VOC07.read(tmp_path / "no-such", "train")
    with pytest.raises(ValueError, match=r"train, val, trainval, test, not 'minival'"):
        VOC07.read(voc, "minival")


def devkit_ap(out: np.ndarray, gt: np.ndarray) -> float:
    """VOC2007 devkit VOCevalcls.m with VOCap's 2007 branch: gt is 1 (positive), -1 (negative) or 0 (ignored)."""
    si = np.argsort(-out, kind="stable")  # [so, si] = sort(-out)
    tp = np.cumsum(gt[si] > 0)
    fp = np.cumsum(gt[si] < 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rec = tp / np.sum(gt > 0)
        prec = tp / (fp + tp)
    ap = 0.0
    for t in np.arange(0, 1.1, 0.1):  # for t = 0:0.1:1
        p = prec[rec >= t]
        p = p[~np.isnan(p)]  # MATLAB's max skips NaN
        ap += (p.max() if p.size else 0.0) / 11
    return ap


def test_voc07_map_is_the_devkit_11_point_average_precision():
    scores, gt = np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, -1, 1, -1])
    assert devkit_ap(scores, gt) == pytest.approx((6 * 1 + 5 * 2 / 3) / 11)  # worked by hand
    rng = np.random.default_rng(0)
    for images in (7, 40, 250):
        targets = (rng.random((images, 20)) < rng.uniform(0.05, 0.5, 20)).astype(float)
        targets[np.arange(20) % images, np.arange(20)] = 1  # a positive of every class
        targets[:, 3] = 0  # a class without positives: no AP, left out of the mean
        targets[:10, 4], targets[10:, 4] = 1, 0  # ten positives: recall reaches each threshold exactly
        targets[rng.random((images, 20)) < 0.1] = -1  # difficult only: neither (the devkit's 0)
        targets[np.arange(20) % images, np.arange(20)] = 1
        targets[:, 3] = np.minimum(targets[:, 3], 0)
        scores = rng.standard_normal((images, 20))
        metrics = VOC07.evaluate(scores, targets)
        devkit_marks = {1.0: 1, 0.0: -1, -1.0: 0}
        expected = [devkit_ap(scores[:, k], np.vectorize(devkit_marks.get)(targets[:, k])) for k in range(20)]
        # A class without positives: the devkit's recall is 0/0, so its AP is 0; tasks.metrics gives NaN and leaves
        # the class out of the mean (VOC 2007's test split has positives of every class).
        assert expected[3] == 0 and np.isnan(metrics["ap_boat"])
        for k, name in enumerate(VOC_CLASSES):
            if k != 3:
                assert metrics[f"ap_{name}"] == pytest.approx(expected[k]), (images, name)
        assert metrics["map"] == pytest.approx(np.mean(expected[:3] + expected[4:]))
