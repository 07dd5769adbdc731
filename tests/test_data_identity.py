"""The data a run reads is the data it recorded: a manifest, a unit id and a row cover what the data folder
holds (its files' paths, sizes and modification times), not only its path; a changed folder is new work,
and a folder that changed under a planned run stops the units that would read it, with the cause."""

import json
import shutil
from pathlib import Path

import pytest
from conftest import write_image

import synthetic
from formats import DataFormatError
from formats.imagenet import not_class_folders
from orchestrator.config import load
from orchestrator.plan import make_plan
from orchestrator.run import check_data
from subsets.__main__ import main as subsets_cli
from subsets.manifest import SubsetSpec, build

CLASSES = ("n01440764", "n01443537", "n01484850")  # tench, goldfish, great white shark


def hand_made_imagenet(root):
    """Three classes of three training and one validation image, and two entries that are no class folder."""
    for index, wnid in enumerate(CLASSES):
        for image in range(3):
            write_image(root / "train" / wnid / f"{wnid}_{image}.JPEG", seed=index * 10 + image)
        write_image(root / "val" / wnid / f"ILSVRC2012_val_{index}.JPEG", seed=100 + index)
    (root / "train" / "notes").mkdir()
    (root / "train" / "README.txt").write_text("copied from the cluster")
    (root / "train" / ".DS_Store").write_bytes(b"finder")  # litter: neither data nor worth a report
    return root


def built_manifest(capsys, root) -> str:
    subsets_cli(["build", "fine", "--images-per-class", "2", "--data", str(root)])
    return capsys.readouterr().out.strip()


def test_a_changed_data_folder_builds_a_new_manifest_that_records_what_it_read(tmp_path, capsys):
    root = hand_made_imagenet(tmp_path / "imagenet")
    first = built_manifest(capsys, root)
    assert built_manifest(capsys, root) == first  # unchanged: served from the cache
    write_image(root / "train" / CLASSES[0] / "added.JPEG", seed=7)
    added = built_manifest(capsys, root)
    (root / "train" / CLASSES[1] / f"{CLASSES[1]}_0.JPEG").unlink()
    removed = built_manifest(capsys, root)
    assert len({first, added, removed}) == 3
    facts = [json.loads((Path(manifest).parent / "subset.json").read_text()) for manifest in (first, added, removed)]
    fingerprints = [f["spec"]["data_fingerprint"] for f in facts]
    assert len(set(fingerprints)) == 3 and fingerprints[0].startswith("13-files-")  # 12 images and the README
    assert facts[0]["not_class_folders"] == {"count": 2, "first": ["train/README.txt", "train/notes"]}
    subsets_cli(["describe", "fine", "--images-per-class", "2", "--data", str(root)])
    assert "left out, not class folders: 2 (train/README.txt, train/notes)" in capsys.readouterr().out


def test_a_subset_is_never_built_from_other_data_than_its_run_planned_on(tmp_path):
    root = hand_made_imagenet(tmp_path / "imagenet")
    planned = SubsetSpec("fine", images_per_class=2, seed=3, source=str(root)).fingerprinted()
    (root / "train" / CLASSES[2] / f"{CLASSES[2]}_1.JPEG").write_bytes(b"rewritten")
    with pytest.raises(DataFormatError, match="holds other data than when the run was planned"):
        build(planned)
    rebuilt = build(planned.fingerprinted())
    assert rebuilt.facts["spec"]["data_fingerprint"] != planned.data_fingerprint


def grid(imagenet, sun397, storage) -> list[str]:
    return ["grid=classes_vs_examples", "grid.tasks=[sun397]", f"data.imagenet={imagenet}", f"data.sun397={sun397}",
            "data.voc=embedded:tiny", f"storage={storage}"]  # fmt: skip


def unit_ids(config) -> tuple[set, set]:
    plan = make_plan(config)
    return {p.unit_id for p in plan.pretrainings}, {f.unit_id for f in plan.finetunings}


def test_unit_ids_cover_what_the_data_holds(tmp_path, tiny_sun397):
    imagenet = hand_made_imagenet(tmp_path / "imagenet")
    sun397 = tmp_path / "SUN397"
    shutil.copytree(tiny_sun397, sun397)
    config = load(grid(imagenet, sun397, tmp_path / "runs"))
    pretrainings, finetunings = unit_ids(config)
    assert unit_ids(config) == (pretrainings, finetunings)  # the same data, the same work
    plan = make_plan(config)
    assert {p.subset.data_fingerprint for p in plan.pretrainings} == {synthetic.fingerprint("imagenet", str(imagenet))}
    assert {f.data_fingerprint for f in plan.finetunings} == {synthetic.fingerprint("sun397", str(sun397))}

    write_image(imagenet / "train" / CLASSES[0] / "added.JPEG", seed=9)
    changed_imagenet = unit_ids(config)
    assert not changed_imagenet[0] & pretrainings and not changed_imagenet[1] & finetunings
    partition = sun397 / "Partitions" / "Training_01.txt"
    partition.write_text(partition.read_text() + "\n")  # rewritten
    changed_sun = unit_ids(config)
    assert changed_sun[0] == changed_imagenet[0] and not changed_sun[1] & changed_imagenet[1]


def test_check_data_reports_the_folders_that_are_not_classes(tmp_path, capsys, tiny_sun397):
    imagenet = hand_made_imagenet(tmp_path / "imagenet")
    assert not_class_folders(imagenet) == ["train/README.txt", "train/notes"]
    config = load(grid(imagenet, "embedded:tiny", tmp_path / "runs"))
    check_data(config, make_plan(config))
    assert f"note: data.imagenet={imagenet}: 2 entries are not class folders and are left out: " \
           "train/README.txt, train/notes" in capsys.readouterr().out  # fmt: skip


def test_fine_tunings_of_data_changed_since_planning_fail_with_the_cause(tmp_path, tiny_sun397):
    from orchestrator.trial import _changed_data  # imports Ray and torch

    sun397 = tmp_path / "SUN397"
    shutil.copytree(tiny_sun397, sun397)
    held = synthetic.fingerprint("sun397", str(sun397))
    units = [{"unit_id": "a", "task": "sun397", "data_source": str(sun397), "data_fingerprint": held},
             {"unit_id": "b", "task": "voc_action", "data_source": "embedded:tiny",
              "data_fingerprint": synthetic.fingerprint("voc", "embedded:tiny")}]  # fmt: skip
    assert _changed_data(units) == {}
    next(sun397.rglob("*.jpg")).unlink()
    changed = _changed_data(units)
    assert list(changed) == ["a"] and "holds other data than when the run was planned" in changed["a"]
