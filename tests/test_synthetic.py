"""The synthetic datasets are in the real on-disk formats, deterministic, and built safely; the
readers of formats read them."""

import collections
import csv
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from formats import cache
from formats.imagenet import imagenet1k_wnids, list_imagenet
from formats.sun397 import list_sun397
from formats.voc import VOC_ACTIONS, VOC_CLASSES, list_voc_action, list_voc_detection
from synthetic import imagenet, sun397


def summary(root: Path) -> dict:
    return json.loads((root / cache.COMPLETE_MARKER).read_text())


def test_imagenet_layout_is_ilsvrc2012(tiny_imagenet):
    scale = imagenet.SCALES["tiny"]
    wnids = imagenet1k_wnids()
    assert len(wnids) == 1000 and wnids[0] == "n01440764"
    assert sorted(p.name for p in (tiny_imagenet / "train").iterdir()) == wnids
    tench = sorted(p.name for p in (tiny_imagenet / "train" / "n01440764").iterdir())
    assert tench == [f"n01440764_{n}.JPEG" for n in range(scale.train_per_class)]
    with Image.open(tiny_imagenet / "train" / "n01440764" / tench[0]) as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (scale.image_size,) * 2)
    val = sorted(p.name for p in (tiny_imagenet / "val").iterdir())
    assert val == [f"ILSVRC2012_val_{n:08d}.JPEG" for n in range(1, 1000 * scale.val_per_class + 1)]
    with open(tiny_imagenet / "LOC_val_solution.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["ImageId", "PredictionString"] and len(rows) == len(val) + 1
    for _, prediction in rows[1:]:
        wnid, *box = prediction.split()
        assert wnid in wnids and len(box) == 4 and all(0 <= int(v) < scale.image_size for v in box)
    mapping = (tiny_imagenet / "LOC_synset_mapping.txt").read_text().splitlines()
    assert mapping[0] == "n01440764 tench, Tinca tinca" and [m.split()[0] for m in mapping] == wnids
    # Validation images are not grouped by class, as in the real set.
    first_ten = [row[1].split()[0] for row in rows[1:11]]
    assert len(set(first_ten)) > 5


def test_imagenet_reader_sees_every_generated_image(tiny_imagenet):
    facts = summary(tiny_imagenet)
    train, val = list_imagenet(tiny_imagenet, "train"), list_imagenet(tiny_imagenet, "val")
    assert (len(train), len(val)) == (facts["train_images"], facts["val_images"])
    assert set(val["wnid"].to_pylist()) == set(imagenet1k_wnids())


def _tree_digest(root: Path, pattern: str) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.glob(pattern)):
        digest.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


GENERATE = "import sys; from pathlib import Path; from synthetic import imagenet; " \
    "imagenet.generate(Path(sys.argv[1]), imagenet.SCALES['tiny'], seed=int(sys.argv[2]))"


def test_generation_is_deterministic_per_seed(tiny_imagenet, tmp_path):
    # In other processes, with other string hashing: nothing may depend on either.
    for name, seed, hash_seed in (("again", "0", "12345"), ("other", "1", "54321")):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", GENERATE, str(tmp_path / name), seed], env=env, check=True)
    for pattern in ("train/n0144*/*", "val/ILSVRC2012_val_0000001*", "LOC_val_solution.csv"):
        assert _tree_digest(tmp_path / "again", pattern) == _tree_digest(tiny_imagenet, pattern)
        assert _tree_digest(tmp_path / "other", pattern) != _tree_digest(tiny_imagenet, pattern)


def test_voc2007_layout_and_image_sets(tiny_voc):
    year = tiny_voc / "VOC2007"
    main = year / "ImageSets" / "Main"
    splits = {s: (main / f"{s}.txt").read_text().split() for s in ("train", "val", "trainval", "test")}
    assert sorted(splits["train"] + splits["val"]) == splits["trainval"]
    assert not set(splits["trainval"]) & set(splits["test"])
    all_ids = sorted(splits["trainval"] + splits["test"])
    assert all_ids == sorted(p.stem for p in (year / "Annotations").glob("*.xml"))
    assert all(re.fullmatch(r"\d{6}", i) for i in all_ids)
    for image_id in all_ids[:10]:
        root = ET.parse(year / "Annotations" / f"{image_id}.xml").getroot()
        assert root.findtext("folder") == "VOC2007" and root.findtext("filename") == f"{image_id}.jpg"
        width, height = int(root.findtext("size/width")), int(root.findtext("size/height"))
        with Image.open(year / "JPEGImages" / f"{image_id}.jpg") as image:
            assert image.format == "JPEG" and image.size == (width, height)
        for obj in root.findall("object"):
            assert obj.findtext("name") in VOC_CLASSES
            assert obj.findtext("truncated") in ("0", "1") and obj.findtext("difficult") in ("0", "1")
            x0, y0, x1, y1 = (int(obj.findtext(f"bndbox/{c}")) for c in ("xmin", "ymin", "xmax", "ymax"))
            assert 1 <= x0 <= x1 <= width and 1 <= y0 <= y1 <= height  # one-based, inclusive
    # <class>_<split>.txt agrees with the annotations: 1 present, 0 only difficult, -1 absent.
    images = {image.image_id: image for image in list_voc_detection(tiny_voc, "test")}
    assert sorted(images) == splits["test"]
    for name in VOC_CLASSES:
        for line in (main / f"{name}_test.txt").read_text().splitlines():
            image_id, label = line.split()
            mine = [o for o in images[image_id].objects if o.name == name]
            expected = -1 if not mine else 0 if all(o.difficult for o in mine) else 1
            assert int(label) == expected, (name, image_id)
    objects = [o for image in images.values() for o in image.objects]
    assert {o.difficult for o in objects} == {True, False} and {o.truncated for o in objects} == {True, False}
    assert len({o.name for o in objects}) >= 15


def test_voc2012_action_layout(tiny_voc):
    action_sets = tiny_voc / "VOC2012" / "ImageSets" / "Action"
    train = (action_sets / "train.txt").read_text().split()
    val = (action_sets / "val.txt").read_text().split()
    assert not set(train) & set(val) and all(re.fullmatch(r"2012_\d{6}", i) for i in train + val)
    people = list_voc_action(tiny_voc, "train")
    assert {p.image.image_id for p in people} == set(train)
    assert all(len(p.actions) == 1 and p.actions[0] in VOC_ACTIONS for p in people)
    assert len({p.actions[0] for p in people}) >= 8
    # Per-action files list every person of the split with 1 / -1, matching the XML.
    by_key, seen = {}, collections.Counter()
    for p in people:  # in XML order: the n-th person of an image is person n
        seen[p.image.image_id] += 1
        by_key[(p.image.image_id, seen[p.image.image_id])] = p.actions[0]
    for action in VOC_ACTIONS:
        rows = [line.split() for line in (action_sets / f"{action}_train.txt").read_text().splitlines()]
        assert len(rows) == len(people)
        for image_id, person, label in rows:
            assert (int(label) == 1) == (by_key[(image_id, int(person))] == action)


def test_sun397_layout_and_partitions(tiny_sun397):
    scale = sun397.SCALES["tiny"]
    partitions = tiny_sun397 / "Partitions"
    class_lines = (partitions / "ClassName.txt").read_text().split()
    assert len(class_lines) == scale.classes
    assert all(re.fullmatch(r"/([a-z])/\1[a-z_]*(/[a-z_]+)?", c) for c in class_lines)
    for number in range(1, 11):
        train, classes = list_sun397(tiny_sun397, "train", number)
        test, _ = list_sun397(tiny_sun397, "test", number)
        assert len(train) == scale.classes * scale.train_per_class and len(test) == scale.classes * scale.test_per_class
        assert not {p for p, _ in train} & {p for p, _ in test}
        assert all((tiny_sun397 / p).is_file() and re.search(r"/sun_[a-z]{16}\.jpg$", p) for p, _ in train + test)
    assert classes == [c.lstrip("/") for c in class_lines]


def test_unknown_scale_lists_the_choices():
    with pytest.raises(ValueError, match="tiny"):
        imagenet.ensure("huge")


def _count_builds(args):
    target, counter = args

    def build(out):
        out.mkdir()
        with open(counter, "a") as f:
            f.write("x")
        return {}

    return str(cache.build_once(Path(target), build))


def test_build_once_builds_once_across_processes(tmp_path):
    target, counter = tmp_path / "dataset", tmp_path / "builds"
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        results = pool.map(_count_builds, [(str(target), str(counter))] * 3)
    assert results == [str(target)] * 3 and counter.read_text() == "x"


def test_interrupted_build_leaves_nothing_finished(tmp_path):
    def dies_midway(out):
        out.mkdir()
        (out / "half.jpg").write_bytes(b"")
        raise KeyboardInterrupt

    target = tmp_path / "dataset"
    with pytest.raises(KeyboardInterrupt):
        cache.build_once(target, dies_midway)
    assert not target.exists() and not cache.is_built(target)

    def works(out):
        out.mkdir()
        return {"ok": True}

    cache.build_once(target, works)
    assert summary(target) == {"ok": True, "fingerprint": cache.fingerprint(target, (cache.COMPLETE_MARKER,))}
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


def test_fingerprint_covers_every_file_and_folder_but_not_litter(tmp_path):
    root = tmp_path / "data"
    (root / "train" / "n01440764").mkdir(parents=True)
    image = root / "train" / "n01440764" / "a.JPEG"
    image.write_bytes(b"jpeg")
    first = cache.fingerprint(root)
    assert first.startswith("1-files-")
    (root / ".DS_Store").write_bytes(b"finder")
    (root / "train" / ".nfs0001").write_bytes(b"nfs")
    assert cache.fingerprint(root) == first
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)  # copies modification times, as rsync -a does
    assert cache.fingerprint(copy) == first
    changes = [
        lambda: image.write_bytes(b"jpeg!"),  # rewritten: size and time
        lambda: os.utime(image, ns=(0, 0)),  # touched
        lambda: image.rename(image.with_name("b.JPEG")),
        lambda: (root / "train" / "n01443537").mkdir(),  # an empty class folder
        lambda: (root / "val").mkdir() or (root / "val" / "x.JPEG").write_bytes(b"jpeg"),
    ]
    seen = {first}
    for change in changes:
        change()
        seen.add(cache.fingerprint(root))
    assert len(seen) == len(changes) + 1


def test_a_built_folder_that_changed_is_built_again(tmp_path):
    builds = []

    def build(out):
        out.mkdir()
        (out / "images").mkdir()
        (out / "images" / "a.JPEG").write_bytes(b"jpeg")
        builds.append(out)
        return {}

    target = tmp_path / "dataset"
    cache.build_once(target, build)
    cache.build_once(target, build)
    assert len(builds) == 1
    (target / "images" / "a.JPEG").write_bytes(b"")  # a damaged file
    cache.build_once(target, build)
    assert len(builds) == 2 and (target / "images" / "a.JPEG").read_bytes() == b"jpeg"
    (target / "images" / "extra.JPEG").write_bytes(b"jpeg")
    cache.build_once(target, build)
    assert len(builds) == 3 and not (target / "images" / "extra.JPEG").exists()
