"""PASCAL VOC: the 20 object classes, the 10 actions, the synsets the classes name, and readers for VOC 2007
detection and VOC 2012 action classification in VOCdevkit's layout.

    VOCdevkit/VOC<year>/Annotations/<id>.xml
    VOCdevkit/VOC<year>/JPEGImages/<id>.jpg
    VOCdevkit/VOC<year>/ImageSets/{Main,Action}/<split>.txt

A VOC XML without a required field (size, object name, box coordinates), with an unknown class or
action, a box that is not inside its image (or whose corners are swapped), or whose image file is missing, is a
``DataFormatError`` naming the file and the field; missing optional fields (difficult, truncated) read as 0,
as in VOC's devkit. So is a split list that lists an image twice, or none. Everything checked here is what
MMDetection's own VOC reader (the detector's) would otherwise fail on, or learn garbage from, inside a worker.
"""

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from formats import GENERATE_HINT, DataFormatError, read_lines, require_dir

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip
VOC_ACTIONS = (
    "jumping", "phoning", "playinginstrument", "reading", "ridingbike", "ridinghorse",
    "running", "takingphoto", "usingcomputer", "walking",
)  # fmt: skip

# What each PASCAL VOC class depicts, as a WordNet synset: the synthetic VOC draws a class's objects with the
# looks of the ImageNet classes under it (a cow as cattle, a potted plant as a pot, a tvmonitor as a
# television). Which ImageNet classes Huh et al. removed as PASCAL classes is another table
# (subsets.labels.PASCAL_REMOVAL_SYNSETS).
PASCAL_CLASS_SYNSETS = {
    "aeroplane": "airplane.n.01",
    "bicycle": "bicycle.n.01",
    "bird": "bird.n.01",
    "boat": "boat.n.01",
    "bottle": "bottle.n.01",
    "bus": "bus.n.01",
    "car": "car.n.01",
    "cat": "cat.n.01",
    "chair": "chair.n.01",
    "cow": "cattle.n.01",
    "diningtable": "dining_table.n.01",
    "dog": "dog.n.01",
    "horse": "horse.n.01",
    "motorbike": "motorcycle.n.01",
    "person": "person.n.01",
    "pottedplant": "pot.n.04",
    "sheep": "sheep.n.01",
    "sofa": "sofa.n.01",
    "train": "train.n.01",
    "tvmonitor": "television.n.02",
}


@dataclass(frozen=True)
class VOCObject:
    name: str
    box: tuple[int, int, int, int]  # xmin, ymin, xmax, ymax: VOC's one-based pixel coordinates
    difficult: bool
    truncated: bool
    actions: tuple[str, ...] = ()  # VOC2012 Action: the actions this person performs


@dataclass(frozen=True)
class VOCImage:
    image_id: str
    path: Path
    width: int
    height: int
    objects: tuple[VOCObject, ...]


def voc_year_dir(root: str | Path, year: str) -> Path:
    """``root`` may be the VOCdevkit folder or the VOC<year> folder inside it."""
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(
            f"PASCAL VOC root {root} does not exist. Point it at a VOCdevkit folder (holding "
            f"VOC{year}/), or {GENERATE_HINT}."
        )
    return root if root.name == f"VOC{year}" else require_dir(root / f"VOC{year}", f"VOC{year} folder")


def _text(element: ET.Element, path: str, xml_path: Path, what: str) -> str:
    found = element.find(path)
    if found is None or not (found.text or "").strip():
        raise DataFormatError(f"{xml_path}: {what} has no <{path}>")
    return found.text.strip()


def _flag(element: ET.Element, tag: str, xml_path: Path, what: str) -> bool:
    found = element.find(tag)
    if found is None:
        return False
    if (found.text or "").strip() not in ("0", "1"):
        raise DataFormatError(f"{xml_path}: {what} has <{tag}>{found.text}</{tag}>; it is 0 or 1")
    return found.text.strip() == "1"


def _size(root: ET.Element, xml_path: Path, side: str) -> int:
    text = _text(root, f"size/{side}", xml_path, "the image")
    if not text.isdigit() or int(text) < 1:  # as MMDetection reads it: int(text)
        raise DataFormatError(f"{xml_path}: the image's <size/{side}> is {text!r}, not a whole number of pixels")
    return int(text)


def _box(obj: ET.Element, xml_path: Path, what: str, width: int, height: int) -> tuple[int, int, int, int]:
    """The object's box, as MMDetection reads it (int(float(text))), once it is known to lie inside the image with
    its corners in order (VOC's corners are inclusive pixels: xmin == xmax is a box one pixel wide)."""
    coordinates = [_text(obj, f"bndbox/{c}", xml_path, what) for c in ("xmin", "ymin", "xmax", "ymax")]
    try:
        values = [float(c) for c in coordinates]
    except ValueError:
        raise DataFormatError(
            f"{xml_path}: {what} has a non-numeric box coordinate ({', '.join(coordinates)})"
        ) from None
    if not all(map(math.isfinite, values)):
        raise DataFormatError(f"{xml_path}: {what} has a box coordinate that is not a finite number")
    x0, y0, x1, y1 = (int(v) for v in values)
    if not (0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height):
        raise DataFormatError(
            f"{xml_path}: {what} has the box ({x0}, {y0}, {x1}, {y1}) (xmin, ymin, xmax, ymax), which is not inside "
            f"its {width} x {height} image with xmin <= xmax and ymin <= ymax; correct or remove the object"
        )
    return x0, y0, x1, y1


def read_voc_annotation(xml_path: Path, image_dir: Path) -> VOCImage:
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as error:
        raise DataFormatError(f"{xml_path}: not valid XML ({error})") from None
    image_id = xml_path.stem
    filename = (root.findtext("filename") or f"{image_id}.jpg").strip()
    if Path(filename).name != filename or not (image_dir / filename).is_file():
        raise DataFormatError(f"{xml_path}: its image <filename>{filename}</filename> is not a file in {image_dir}")
    width, height = _size(root, xml_path, "width"), _size(root, xml_path, "height")
    objects = []
    for number, obj in enumerate(root.findall("object"), start=1):
        what = f"object {number}"
        name = _text(obj, "name", xml_path, what)
        if obj.findtext("name") != name or name not in VOC_CLASSES:  # MMDetection drops " cat " as unknown
            raise DataFormatError(f"{xml_path}: {what} has unknown class {obj.findtext('name')!r}")
        box = _box(obj, xml_path, what, width, height)
        actions = obj.find("actions")
        done = tuple(a.tag for a in actions if (a.text or "").strip() == "1") if actions is not None else ()
        flags = (_flag(obj, "difficult", xml_path, what), _flag(obj, "truncated", xml_path, what))
        objects.append(VOCObject(name, box, *flags, done))
    return VOCImage(image_id, image_dir / filename, width, height, tuple(objects))


IMAGE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # VOC's are 000005 and 2008_000001


def _read_split(year_dir: Path, image_sets: str, split: str) -> list[str]:
    """The image ids of a split list, each once and each with an annotation; errors name the file and line."""
    listing = year_dir / "ImageSets" / image_sets / f"{split}.txt"
    first_seen = {}
    for number, line in read_lines(listing, f"VOC {split} list"):
        image_id = line.split()[0]
        if not IMAGE_ID.fullmatch(image_id):
            raise DataFormatError(f"{listing}:{number}: {image_id!r} is not a VOC image id (like 000005)")
        if not _annotation(year_dir, image_id).is_file():
            raise DataFormatError(
                f"{listing}:{number}: {image_id} has no annotation ({_annotation(year_dir, image_id)})"
            )
        if image_id in first_seen:
            raise DataFormatError(
                f"{listing}:{number}: {image_id} is listed again (first on line {first_seen[image_id]}); "
                "list each image once"
            )
        first_seen[image_id] = number
    if not first_seen:
        raise DataFormatError(f"{listing} lists no images")
    return list(first_seen)


def _annotation(year_dir: Path, image_id: str) -> Path:
    return year_dir / "Annotations" / f"{image_id}.xml"


def list_voc_detection(root: str | Path, split: str = "trainval", year: str = "2007") -> list[VOCImage]:
    """The images of a VOC detection split (ImageSets/Main/<split>.txt) with their objects."""
    year_dir = voc_year_dir(root, year)
    return [
        read_voc_annotation(_annotation(year_dir, i), year_dir / "JPEGImages")
        for i in _read_split(year_dir, "Main", split)
    ]


def voc_crop(box: tuple[int, int, int, int], context: float = 0.0) -> tuple[int, int, int, int]:
    """A VOC box (one-based, inclusive) as a PIL crop, grown by ``context`` of its size on each
    side (PIL pads beyond the image with black)."""
    x0, y0, x1, y1 = box
    grow_x, grow_y = context * (x1 - x0 + 1), context * (y1 - y0 + 1)
    return (round(x0 - 1 - grow_x), round(y0 - 1 - grow_y), round(x1 + grow_x), round(y1 + grow_y))


@dataclass(frozen=True)
class ActionPerson:
    image: VOCImage
    box: tuple[int, int, int, int]
    actions: tuple[str, ...]


def list_voc_action(root: str | Path, split: str = "train", year: str = "2012") -> list[ActionPerson]:
    """Every annotated person of a VOC Action split (ImageSets/Action/<split>.txt)."""
    year_dir = voc_year_dir(root, year)
    people = []
    for image_id in _read_split(year_dir, "Action", split):
        xml_path = _annotation(year_dir, image_id)
        image = read_voc_annotation(xml_path, year_dir / "JPEGImages")
        for obj in image.objects:
            unknown = set(obj.actions) - set(VOC_ACTIONS) - {"other"}
            if unknown:
                raise DataFormatError(f"{xml_path}: unknown action(s) {sorted(unknown)}")
            if obj.name == "person" and obj.actions:
                people.append(ActionPerson(image, obj.box, obj.actions))
    return people
