"""PASCAL VOC 2007 image classification, one of Kornblith et al.'s twelve datasets: does an image show an object of
each of the 20 classes; train -> test with val the official validation split (train + val = trainval), scored by
VOC 2007's 11-point mean average precision over the classes. Read from the VOC2007 detection annotations through
``formats.voc`` (the detection task's reader), in VOCdevkit's layout:

    VOCdevkit/VOC2007/Annotations/<id>.xml
    VOCdevkit/VOC2007/JPEGImages/<id>.jpg
    VOCdevkit/VOC2007/ImageSets/Main/{train,val,trainval,test}.txt     (test: from VOCtest_06-Nov-2007.tar)

as torchvision's ``VOCDetection(root, year="2007", image_set=...)`` reads it (root: the folder holding VOCdevkit/).
The task's root (``data.voc``) is the VOCdevkit folder, or the VOC2007 folder inside it; image paths are relative
to it.

A target is the multi-hot vector, in ``VOC_CLASSES`` order, of the classes with at least one non-difficult object
in the image: what the devkit's ``ImageSets/Main/<class>_<split>.txt`` mark 1. An image whose only objects of a
class are 'difficult' (marked 0 there) is neither positive nor negative for it: ``tasks.metrics.IGNORED``, which
leaves it out of that class's ranking, as the devkit's VOCevalcls does, and out of the training loss.
"""

from pathlib import Path

from formats import GENERATE_HINT, DataFormatError
from formats.voc import VOC_CLASSES, list_voc_detection, voc_year_dir
from tasks import Examples, Task, register
from tasks.metrics import IGNORED, mean_average_precision

SPLITS = ("train", "val", "trainval", "test")


def read(root: Path, split: str, seed: int = 0) -> Examples:
    """The split's images (ImageSets/Main/<split>.txt) with their multi-hot targets; errors (``formats.voc``'s) name
    the list or annotation file and line or field."""
    if split not in SPLITS:
        raise ValueError(f"VOC 2007 classification has the splits {', '.join(SPLITS)}, not {split!r}")
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(
            f"PASCAL VOC root {root} does not exist. Point data.voc at the VOCdevkit folder (holding VOC2007/ with "
            f"Annotations/, JPEGImages/ and ImageSets/Main/), or {GENERATE_HINT}."
        )
    listing = voc_year_dir(root, "2007") / "ImageSets" / "Main" / f"{split}.txt"
    if split == "test" and not listing.is_file():
        raise DataFormatError(
            f"the VOC 2007 test list {listing} is missing: the test images and annotations come in their own archive "
            "(VOCtest_06-Nov-2007.tar); extract it into the same VOCdevkit folder"
        )
    images = list_voc_detection(root, split, "2007")
    return Examples(
        root=root,
        paths=[str(image.path.relative_to(root)) for image in images],
        targets=[targets_of(image.objects) for image in images],
        classes=list(VOC_CLASSES),
    )


def targets_of(objects) -> list[float]:
    """1.0 for each class with a non-difficult object among ``objects``, IGNORED for one with difficult objects only,
    else 0.0."""
    present = {obj.name for obj in objects if not obj.difficult}
    difficult = {obj.name for obj in objects if obj.difficult} - present
    return [1.0 if name in present else IGNORED if name in difficult else 0.0 for name in VOC_CLASSES]


def check_layout(root: Path) -> None:
    """Reads every annotation of the three splits, as the worker will: a malformed one is named before anything
    starts."""
    for split in ("train", "val", "test"):
        read(root, split)


def evaluate(scores, targets) -> dict:
    mean_ap, per_class = mean_average_precision(scores, targets, eleven_point=True)
    return {"map": mean_ap, **{f"ap_{name}": ap for name, ap in zip(VOC_CLASSES, per_class)}}


register(
    Task(
        name="voc07_cls",
        dataset="voc",
        protocol="finetune",
        metric="map",
        check_layout=check_layout,
        description="VOC 2007 image classification (20 classes, multi-label), train -> test, val for selection; "
        "11-point mAP",
        read=read,
        splits=("train", "test"),
        validation="val",
        multilabel=True,
        evaluate=evaluate,
    )
)
