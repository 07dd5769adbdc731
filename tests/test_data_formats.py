"""The readers of formats on small hand-made datasets in the real formats, and their
answers to bad input."""

import logging

import numpy as np
import pytest
import torch
from conftest import write_image
from PIL import Image

from formats import DataFormatError
from formats.imagenet import list_imagenet
from formats.images import load_rgb
from formats.prepared import prepare_images
from formats.sun397 import list_sun397
from formats.voc import list_voc_action, list_voc_detection, voc_crop
from trainers.engine import Batches

TENCH, GOLDFISH = "n01440764", "n01443537"


@pytest.fixture
def imagenet_root(tmp_path):
    """ILSVRC-2012 as extracted: JPEGs, plus the oddities real ImageNet has under .JPEG names."""
    root = tmp_path / "imagenet"
    write_image(root / "train" / TENCH / f"{TENCH}_10026.JPEG")
    write_image(root / "train" / TENCH / f"{TENCH}_10029.JPEG", fmt="PNG")  # PNG named .JPEG
    write_image(root / "train" / TENCH / f"{TENCH}_10040.JPEG", mode="CMYK")
    write_image(root / "train" / GOLDFISH / f"{GOLDFISH}_1.JPEG", mode="L")
    (root / "train" / GOLDFISH / "readme.txt").write_text("not an image")
    write_image(root / "val" / "ILSVRC2012_val_00000001.JPEG")
    write_image(root / "val" / "ILSVRC2012_val_00000002.JPEG")
    (root / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\n"
        f"ILSVRC2012_val_00000002,{GOLDFISH} 1 2 10 12 {GOLDFISH} 3 3 8 8\n"
        f"ILSVRC2012_val_00000001,{TENCH} 0 0 19 15\n"
    )
    return root


def test_imagenet_train_lists_every_image_with_its_wnid(imagenet_root):
    table = list_imagenet(imagenet_root, "train")
    assert table.column_names == ["path", "wnid"]
    assert table.to_pylist() == [
        {"path": f"train/{TENCH}/{TENCH}_10026.JPEG", "wnid": TENCH},
        {"path": f"train/{TENCH}/{TENCH}_10029.JPEG", "wnid": TENCH},
        {"path": f"train/{TENCH}/{TENCH}_10040.JPEG", "wnid": TENCH},
        {"path": f"train/{GOLDFISH}/{GOLDFISH}_1.JPEG", "wnid": GOLDFISH},
    ]


def test_imagenet_flat_val_is_labelled_by_loc_val_solution(imagenet_root):
    table = list_imagenet(imagenet_root, "val")
    assert table["path"].to_pylist() == ["val/ILSVRC2012_val_00000001.JPEG", "val/ILSVRC2012_val_00000002.JPEG"]
    assert table["wnid"].to_pylist() == [TENCH, GOLDFISH]


def test_imagenet_val_in_wnid_folders(tmp_path):
    write_image(tmp_path / "val" / TENCH / "ILSVRC2012_val_00000001.JPEG")
    assert list_imagenet(tmp_path, "val")["wnid"].to_pylist() == [TENCH]


def test_imagenet_kaggle_layout(tmp_path):
    write_image(tmp_path / "ILSVRC" / "Data" / "CLS-LOC" / "train" / TENCH / "a.JPEG")
    write_image(tmp_path / "ILSVRC" / "Data" / "CLS-LOC" / "val" / "ILSVRC2012_val_00000001.JPEG")
    (tmp_path / "LOC_val_solution.csv").write_text(f"ImageId,PredictionString\nILSVRC2012_val_00000001,{TENCH} 0 0 1 1\n")
    assert list_imagenet(tmp_path, "train")["path"].to_pylist() == [f"train/{TENCH}/a.JPEG"]
    assert list_imagenet(tmp_path, "val")["wnid"].to_pylist() == [TENCH]


@pytest.mark.parametrize("name", [f"{TENCH}_10026.JPEG", f"{TENCH}_10029.JPEG", f"{TENCH}_10040.JPEG"])
def test_png_and_cmyk_named_jpeg_decode_to_rgb(imagenet_root, name):
    image = load_rgb(imagenet_root / "train" / TENCH / name)
    assert image.mode == "RGB" and image.size == (20, 16)


def test_corrupt_images_are_skipped_logged_and_counted(imagenet_root, caplog):
    broken = imagenet_root / "train" / TENCH / f"{TENCH}_10026.JPEG"
    broken.write_bytes(broken.read_bytes()[:100])  # truncated mid-scan
    (imagenet_root / "train" / TENCH / f"{TENCH}_10099.JPEG").write_bytes(b"\xff\xd8 not a jpeg")
    paths = list_imagenet(imagenet_root, "train")["path"].to_pylist()
    with caplog.at_level(logging.WARNING, logger="formats.images"):
        prepared = prepare_images(imagenet_root, paths, 8)
    assert prepared.readable.tolist() == [False, True, True, False, True]
    assert not prepared.pixels[~prepared.readable].any() and prepared.pixels[prepared.readable].any()
    batches = Batches([(prepared, np.arange(len(paths)))], torch.arange(len(paths)), image_size=8, train=False,
                      batch_size=len(paths), seed=0, mean=(0.5,) * 3, std=(0.25,) * 3, device=torch.device("cpu"))  # fmt: skip
    ((images, targets),) = batches
    assert batches.skipped == 2 and images.shape == (3, 3, 8, 8)
    assert targets.tolist() == [1, 2, 4]  # the PNG and the CMYK tench and the goldfish survive
    assert sum("skipping unreadable image" in r.message for r in caplog.records) == 2


def test_missing_imagenet_root_says_how_to_get_data(tmp_path):
    with pytest.raises(DataFormatError, match="python -m synthetic generate"):
        list_imagenet(tmp_path / "nowhere", "train")


def test_partial_imagenet_root_names_the_missing_folder(imagenet_root):
    with pytest.raises(DataFormatError, match="val"):
        list_imagenet(imagenet_root.parent, "val")  # a root with neither train/ nor val/
    (imagenet_root / "LOC_val_solution.csv").unlink()
    with pytest.raises(DataFormatError, match="LOC_val_solution.csv"):
        list_imagenet(imagenet_root, "val")


def test_empty_class_folder_is_an_error_naming_it(imagenet_root):
    (imagenet_root / "train" / "n01484850").mkdir()
    with pytest.raises(DataFormatError, match="n01484850"):
        list_imagenet(imagenet_root, "train")


def test_val_label_for_a_missing_image_is_an_error(imagenet_root):
    (imagenet_root / "val" / "ILSVRC2012_val_00000002.JPEG").unlink()
    with pytest.raises(DataFormatError, match="ILSVRC2012_val_00000002"):
        list_imagenet(imagenet_root, "val")


# A real VOC2007 annotation's shape (000005.xml), shortened to two objects.
VOC2007_XML = """\
<annotation>
	<folder>VOC2007</folder>
	<filename>000005.jpg</filename>
	<source><database>The VOC2007 Database</database><annotation>PASCAL VOC2007</annotation></source>
	<size><width>500</width><height>375</height><depth>3</depth></size>
	<segmented>0</segmented>
	<object>
		<name>chair</name><pose>Rear</pose><truncated>0</truncated><difficult>0</difficult>
		<bndbox><xmin>263</xmin><ymin>211</ymin><xmax>324</xmax><ymax>339</ymax></bndbox>
	</object>
	<object>
		<name>chair</name><pose>Unspecified</pose><truncated>1</truncated><difficult>1</difficult>
		<bndbox><xmin>5</xmin><ymin>244</ymin><xmax>67</xmax><ymax>374</ymax></bndbox>
	</object>
</annotation>
"""


def make_voc2007(root, xml=VOC2007_XML):
    year = root / "VOC2007"
    (year / "Annotations").mkdir(parents=True)
    (year / "Annotations" / "000005.xml").write_text(xml)
    write_image(year / "JPEGImages" / "000005.jpg", size=(500, 375))
    (year / "ImageSets" / "Main").mkdir(parents=True)
    (year / "ImageSets" / "Main" / "trainval.txt").write_text("000005\n")
    (year / "ImageSets" / "Main" / "chair_trainval.txt").write_text("000005  1\n")
    return root


def test_voc_detection_reads_objects(tmp_path):
    (image,) = list_voc_detection(make_voc2007(tmp_path / "VOCdevkit"), "trainval")
    assert (image.image_id, image.width, image.height) == ("000005", 500, 375)
    assert image.path == tmp_path / "VOCdevkit" / "VOC2007" / "JPEGImages" / "000005.jpg"
    assert [(o.name, o.box, o.difficult, o.truncated) for o in image.objects] == [
        ("chair", (263, 211, 324, 339), False, False),
        ("chair", (5, 244, 67, 374), True, True),
    ]
    # The year folder itself works as the root too.
    assert list_voc_detection(tmp_path / "VOCdevkit" / "VOC2007")[0] == image


def test_voc_missing_optional_fields_default_to_zero(tmp_path):
    xml = VOC2007_XML.replace("<truncated>1</truncated><difficult>1</difficult>", "")
    (image,) = list_voc_detection(make_voc2007(tmp_path, xml))
    assert (image.objects[1].difficult, image.objects[1].truncated) == (False, False)


@pytest.mark.parametrize(
    "broken, message",
    [
        ("<xmin>5</xmin>", "object 2 has no <bndbox/xmin>"),
        ("<name>chair</name><pose>Rear</pose>", "object 1 has no <name>"),
        ("<width>500</width>", "the image has no <size/width>"),
    ],
)
def test_voc_missing_required_field_names_file_and_field(tmp_path, broken, message):
    make_voc2007(tmp_path, VOC2007_XML.replace(broken, "<pose>Rear</pose>" if "name" in broken else ""))
    with pytest.raises(DataFormatError, match=f"000005.xml: {message}"):
        list_voc_detection(tmp_path)


def test_voc_unknown_class_and_bad_xml(tmp_path):
    make_voc2007(tmp_path / "a", VOC2007_XML.replace("<name>chair</name><pose>Rear", "<name>chiar</name><pose>Rear"))
    with pytest.raises(DataFormatError, match="unknown class 'chiar'"):
        list_voc_detection(tmp_path / "a")
    make_voc2007(tmp_path / "b", VOC2007_XML[:200])
    with pytest.raises(DataFormatError, match="not valid XML"):
        list_voc_detection(tmp_path / "b")


def test_voc_missing_root_and_split(tmp_path):
    with pytest.raises(DataFormatError, match="python -m synthetic generate"):
        list_voc_detection(tmp_path / "VOCdevkit")
    make_voc2007(tmp_path)
    with pytest.raises(DataFormatError, match="test.txt"):
        list_voc_detection(tmp_path, "test")


VOC2012_ACTION_XML = """\
<annotation>
	<filename>2010_000001.jpg</filename>
	<folder>VOC2012</folder>
	<object>
		<actions>
			<jumping>1</jumping><other>0</other><phoning>0</phoning><playinginstrument>0</playinginstrument>
			<reading>0</reading><ridingbike>0</ridingbike><ridinghorse>0</ridinghorse><running>0</running>
			<takingphoto>0</takingphoto><usingcomputer>0</usingcomputer><walking>0</walking>
		</actions>
		<bndbox><xmax>196</xmax><xmin>131</xmin><ymax>285</ymax><ymin>58</ymin></bndbox>
		<name>person</name>
		<point><x>162</x><y>98</y></point>
	</object>
	<object>
		<actions>
			<jumping>0</jumping><other>0</other><phoning>1</phoning><playinginstrument>0</playinginstrument>
			<reading>0</reading><ridingbike>0</ridingbike><ridinghorse>0</ridinghorse><running>0</running>
			<takingphoto>0</takingphoto><usingcomputer>0</usingcomputer><walking>0</walking>
		</actions>
		<bndbox><xmax>340</xmax><xmin>280</xmin><ymax>300</ymax><ymin>90</ymin></bndbox>
		<name>person</name>
	</object>
	<segmented>0</segmented>
	<size><depth>3</depth><height>375</height><width>500</width></size>
	<source><annotation>PASCAL VOC2010</annotation><database>The VOC2010 Database</database><image>flickr</image></source>
</annotation>
"""


def test_voc_action_reads_each_person_with_its_actions(tmp_path):
    year = tmp_path / "VOC2012"
    (year / "Annotations").mkdir(parents=True)
    (year / "Annotations" / "2010_000001.xml").write_text(VOC2012_ACTION_XML)
    write_image(year / "JPEGImages" / "2010_000001.jpg", size=(500, 375))
    (year / "ImageSets" / "Action").mkdir(parents=True)
    (year / "ImageSets" / "Action" / "train.txt").write_text("2010_000001\n")
    people = list_voc_action(tmp_path, "train")
    assert [(p.box, p.actions) for p in people] == [((131, 58, 196, 285), ("jumping",)), ((280, 90, 340, 300), ("phoning",))]
    assert people[0].image.path.name == "2010_000001.jpg"


def test_voc_crop_converts_one_based_boxes_and_adds_context():
    assert voc_crop((1, 1, 10, 20)) == (0, 0, 10, 20)
    assert voc_crop((11, 11, 20, 20), context=0.5) == (5, 5, 25, 25)
    image = Image.new("RGB", (30, 30))
    assert image.crop(voc_crop((1, 1, 10, 20))).size == (10, 20)


def make_sun397(root):
    for scene, files in (("/a/abbey", ["sun_a.jpg", "sun_b.jpg"]), ("/b/bedroom", ["sun_c.jpg", "sun_d.jpg"])):
        for name in files:
            write_image(root / scene.lstrip("/") / name)
    (root / "Partitions").mkdir()
    (root / "Partitions" / "ClassName.txt").write_text("/a/abbey\n/b/bedroom\n")
    (root / "Partitions" / "Training_01.txt").write_text("/a/abbey/sun_a.jpg\n/b/bedroom/sun_d.jpg\n")
    (root / "Partitions" / "Testing_01.txt").write_text("/a/abbey/sun_b.jpg\n/b/bedroom/sun_c.jpg\n")
    return root


def test_sun397_partition(tmp_path):
    root = make_sun397(tmp_path)
    samples, classes = list_sun397(root, "train", 1)
    assert classes == ["a/abbey", "b/bedroom"]
    assert samples == [("a/abbey/sun_a.jpg", 0), ("b/bedroom/sun_d.jpg", 1)]
    assert list_sun397(root, "test", 1)[0] == [("a/abbey/sun_b.jpg", 0), ("b/bedroom/sun_c.jpg", 1)]
    assert all((root / path).is_file() for path, _ in samples)


def test_sun397_bad_input(tmp_path):
    root = make_sun397(tmp_path)
    with pytest.raises(DataFormatError, match="Training_02.txt"):
        list_sun397(root, "train", 2)
    (root / "Partitions" / "Testing_01.txt").write_text("/k/kitchen/sun_x.jpg\n")
    with pytest.raises(DataFormatError, match="kitchen"):
        list_sun397(root, "test", 1)
    with pytest.raises(DataFormatError, match="python -m synthetic generate"):
        list_sun397(tmp_path / "missing")


def test_prepared_images_are_the_crops_resized(tmp_path):
    write_image(tmp_path / "x.jpg", size=(40, 30))
    crop = voc_crop((1, 1, 10, 20))
    assert crop == (0, 0, 10, 20)
    prepared = prepare_images(tmp_path, ["x.jpg", "x.jpg"], 12, crops=[crop, (0, 0, 40, 30)])
    with Image.open(tmp_path / "x.jpg") as image:
        expected = [np.asarray(image.convert("RGB").crop(box).resize((12, 12), Image.Resampling.BILINEAR))
                    for box in (crop, (0, 0, 40, 30))]  # fmt: skip
    assert prepared.pixels.shape == (2, 12, 12, 3) and (prepared.pixels == np.stack(expected)).all()
