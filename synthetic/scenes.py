"""What the synthetic target tasks share: looks taken from ImageNet classes, scene backgrounds,
and VOC-style XML.

A target-task object is drawn with the look of a random ImageNet-1k class under its WordNet
synset (a VOC "bird" is one of ImageNet's birds), so features learned on synthetic ImageNet
transfer to the target tasks as real ones do.
"""

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence

import numpy as np

from formats.imagenet import imagenet1k_wnids
from formats.wordnet import is_under, synset_named, synset_of
from synthetic.imagenet import look_of
from synthetic.render import Look, background, random_look


def looks_under(synset_names: Sequence[str]) -> list[Look]:
    """Looks of the ImageNet-1k classes under any of these synsets, or of the synsets themselves where
    ImageNet-1k has none under them."""
    roots = sorted(synset_named(name) for name in synset_names)
    looks = []
    for wnid in imagenet1k_wnids():
        synset = synset_of(wnid)
        if any(is_under(synset, root) for root in roots):
            looks.append(look_of(synset))
    return looks or [look_of(root) for root in roots]


def scene_background(width: int, height: int, rng: np.random.Generator, scene: Look | None = None):
    """Sky above ground; a scene look fixes both colours (up to jitter), else they are random."""
    scene = scene or random_look(rng)
    jitter = lambda: rng.uniform(0.85, 1.15, 3).astype(np.float32)  # noqa: E731
    sky = np.clip(scene.background * jitter(), 0, 1)
    ground = np.clip(scene.secondary * jitter() + 0.1, 0, 1)
    return background(height, width, sky, rng, horizon_color=ground)


def _add(parent: ET.Element, tag: str, text=None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = str(text)
    return element


def voc_annotation_xml(
    folder: str, filename: str, width: int, height: int, objects: Iterable[dict]
) -> bytes:
    """A VOC annotation. Each object: name, box (x0, y0, x1, y1 zero-based inclusive pixels),
    truncated, difficult, and optionally ``actions`` (name -> 0/1) for VOC2012 Action."""
    root = ET.Element("annotation")
    _add(root, "folder", folder)
    _add(root, "filename", filename)
    source = _add(root, "source")
    _add(source, "database", f"The {folder} Database (synthetic)")
    _add(source, "annotation", f"PASCAL {folder}")
    size = _add(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        _add(size, tag, value)
    _add(root, "segmented", 0)
    for obj in objects:
        element = _add(root, "object")
        _add(element, "name", obj["name"])
        _add(element, "pose", "Unspecified")
        _add(element, "truncated", int(obj["truncated"]))
        _add(element, "difficult", int(obj["difficult"]))
        box = _add(element, "bndbox")
        x0, y0, x1, y1 = obj["box"]
        # VOC pixel coordinates are one-based.
        for tag, value in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1 + 1), ("ymax", y1 + 1)):
            _add(box, tag, value)
        if "actions" in obj:
            actions = _add(element, "actions")
            for action, flag in obj["actions"].items():
                _add(actions, action, flag)
    ET.indent(root, "\t")
    return ET.tostring(root)
