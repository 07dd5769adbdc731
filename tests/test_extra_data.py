"""Paper Sec 6's extra data: the synthetic pool of classes outside ImageNet-1k, the reader of a folder of extra
classes and its answers to bad folders, extra_<N> subsets built on it, and the extra_data grid's plan."""

import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_image
from PIL import Image

import synthetic
from formats import DataFormatError
from formats.imagenet import class_list, imagenet1k_wnids, list_imagenet_extra
from formats.wordnet import outside_classes
from orchestrator.config import ConfigError, load
from orchestrator.plan import make_plan
from orchestrator.run import check_data
from subsets.manifest import IMAGENET, IMAGENET_EXTRA, MANIFEST_VERSION, SubsetSpec, build, read_manifest
from synthetic import imagenet, imagenet_extra

TENCH, ARCHERY, PONY_TREKKING = "n01440764", "n00446980", "n00450866"


def test_synthetic_pool_is_250_classes_outside_the_1000_in_the_layout_the_reader_reads(tiny_imagenet_extra):
    pool = imagenet_extra.pool()
    assert len(pool) == len(set(pool)) == 250 and set(pool) <= set(class_list("imagenet21k"))
    assert outside_classes(pool, imagenet1k_wnids()) == pool
    scale = imagenet.SCALES["tiny"]
    listing = list_imagenet_extra(tiny_imagenet_extra)
    assert sorted(set(listing["wnid"].to_pylist())) == pool and len(listing) == 250 * scale.train_per_class
    first = pool[0]
    assert listing["path"].to_pylist()[: scale.train_per_class] == [
        f"{first}/{first}_{n}.JPEG" for n in range(scale.train_per_class)
    ]
    with Image.open(tiny_imagenet_extra / listing["path"][0].as_py()) as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (scale.image_size,) * 2)


def test_reader_takes_class_folders_at_the_root_or_under_train(tmp_path):
    write_image(tmp_path / "flat" / ARCHERY / "a.JPEG")
    write_image(tmp_path / "flat" / TENCH / "a.JPEG")  # an ImageNet-1k class, as in ImageNet-21k: left out
    write_image(tmp_path / "nested" / "train" / ARCHERY / "a.JPEG")
    assert list_imagenet_extra(tmp_path / "flat").to_pylist() == [{"path": f"{ARCHERY}/a.JPEG", "wnid": ARCHERY}]
    assert list_imagenet_extra(tmp_path / "nested")["path"].to_pylist() == [f"train/{ARCHERY}/a.JPEG"]


@pytest.mark.parametrize(
    "files, root, named, fix",
    [
        ([], "missing", "missing", "does not exist"),
        (["images/a.JPEG"], "", "", "no class folders named by wnid"),
        ([f"{ARCHERY}/a.JPEG", f"{PONY_TREKKING}/"], "", "", rf"{PONY_TREKKING}\) in .* hold no images"),
        ([f"{ARCHERY}/a.JPEG", "n99999999/a.JPEG"], "", "", r"n99999999\) in .* name no WordNet 3.0 noun synset"),
        ([f"train/{TENCH}/a.JPEG"], "", "train", "holds only ImageNet-1k classes"),
    ],
)
def test_reader_names_the_folder_and_the_fix(tmp_path, files, root, named, fix):
    for name in files:
        if name.endswith("/"):
            (tmp_path / name).mkdir(parents=True)
        else:
            write_image(tmp_path / name)
    with pytest.raises(DataFormatError, match=fix) as error:
        list_imagenet_extra(tmp_path / root)
    assert f"{tmp_path / named} " in str(error.value)


def test_extra_subset_adds_classes_from_the_extra_folder(tiny_imagenet_extra):
    spec = SubsetSpec("extra_20", images_per_class=2, source="embedded:tiny", extra_source="embedded:tiny")
    subset = build(spec)
    assert subset.facts["labels"] == subset.labels().shape[0] == 1020
    manifest = subset.manifest()
    extra = manifest[manifest["source"] == IMAGENET_EXTRA]
    assert len(extra) == 20 * 2 and set(extra["split"]) == {"train"}  # added classes have no validation images
    assert set(extra["wnid"]) <= set(imagenet_extra.pool())  # the folder's classes
    assert all((spec.extra_root() / path).is_file() for path in extra["path"])
    assert spec.extra_root() == tiny_imagenet_extra and subset.facts["extra_root"] == str(tiny_imagenet_extra)
    imagenet_rows = manifest[manifest["source"] == IMAGENET]
    assert set(imagenet_rows["wnid"]) == set(imagenet1k_wnids()) and (imagenet_rows["split"] == "val").any()
    label_table = subset.labels().set_index("label_wnid")
    assert (label_table.loc[sorted(set(extra["wnid"])), "train_images"] == 2).all()


def test_only_extra_label_sets_take_extra_data_and_they_need_it():
    with pytest.raises(ValueError, match="extra_<N> label sets only"):
        SubsetSpec("fine", extra_source="embedded:tiny")
    with pytest.raises(ValueError, match="needs their images"):
        build(SubsetSpec("extra_5", source="embedded:tiny"))


def test_a_subset_without_extra_data_has_no_extra_source_in_its_identity(tiny_imagenet):
    spec = SubsetSpec("fine", images_per_class=3, source="embedded:tiny").fingerprinted()
    held = synthetic.fingerprint("imagenet", "embedded:tiny")
    expected = {"label_set": "fine", "images_per_class": 3, "budget": None, "seed": 0, "source": "embedded:tiny",
                "extra_include_under": (), "extra_exclude_under": (), "data_fingerprint": held}  # fmt: skip
    assert spec.identity() == expected
    fields = {**expected, "root": str(tiny_imagenet), "version": MANIFEST_VERSION}
    assert spec.content_hash() == hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def test_manifests_from_before_the_source_column_read_as_imagenet(tmp_path):
    old = tmp_path / "manifest.parquet"
    pq.write_table(pa.table({"split": ["train"], "path": [f"train/{TENCH}/a.JPEG"], "wnid": [TENCH], "label": [0],
                             "label_wnid": [TENCH], "label_name": ["tench"]}), old)  # fmt: skip
    assert read_manifest(old, ["path", "source"]).to_dict("records") == [
        {"path": f"train/{TENCH}/a.JPEG", "source": IMAGENET}
    ]


def test_extra_data_grid_plans_extra_data_for_its_extra_points_only(tmp_path):
    config = load(["grid=extra_data", "scale=paper", f"data.imagenet_extra={tmp_path}"])
    plan = make_plan(config)
    assert len(plan.pretrainings) == 3 and len(plan.finetunings) == 3 * 3 * 3
    sources = {p.subset.label_set: p.subset.extra_source for p in plan.pretrainings}
    assert sources == {"fine": None, "extra_500": str(tmp_path), "extra_1000": str(tmp_path)}
    fine = next(p for p in plan.pretrainings if p.subset.label_set == "fine")
    assert "extra_source" not in fine.subset.identity()
    # The same pretraining as images_per_class's point with all images: its id did not change with the field.
    all_images = make_plan(load(["grid=images_per_class", "scale=paper"]))
    assert fine.unit_id in {p.unit_id for p in all_images.pretrainings}


def test_check_data_prepares_the_extra_data_only_for_extra_points(monkeypatch, tmp_path):
    resolved = []
    monkeypatch.setattr(synthetic, "resolve", lambda dataset, source: resolved.append(dataset))
    for grid, extra in (("pascal_removed", False), ("extra_data", True)):
        resolved.clear()
        config = load([f"grid={grid}"])
        check_data(config, make_plan(config))
        assert ("imagenet_extra" in resolved) == extra
    config = load(["grid=extra_data", f"data.imagenet_extra={tmp_path / 'missing'}"])
    with pytest.raises(ConfigError, match="data.imagenet_extra=.*missing is not a folder"):
        check_data(config, make_plan(config))
