"""What the synthetic target tasks share: looks taken from ImageNet classes (a look per class), photos of an
object saved as JPEGs, scene backgrounds, and VOC-style XML.

A target-task object is drawn with the look of a random ImageNet-1k class under its WordNet
synset (a VOC "bird" is one of ImageNet's birds), so features learned on synthetic ImageNet
transfer to the target tasks as real ones do.
"""

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from formats.imagenet import imagenet1k_wnids
from formats.wordnet import is_under, synset_named, synset_of
from synthetic.imagenet import look_of
from synthetic.render import TEXTURES, Look, background, object_image, random_look


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


def class_look(looks: list[Look], number: int, rng: np.random.Generator) -> Look:
    """The look of class ``number``: ``looks`` in turn, and once they are used up a variant of one, with its own
    markings (texture, secondary colour, a shifted main colour), as a 737-700 is one airliner among others."""
    look = looks[number % len(looks)]
    round_ = number // len(looks)
    if round_ == 0:
        return look
    markings = random_look(rng)
    return replace(look, color=0.7 * look.color + 0.3 * markings.color, secondary=markings.secondary,
                   texture=(look.texture + round_) % len(TEXTURES), frequency=markings.frequency,
                   angle=markings.angle)  # fmt: skip


def distinct_looks(synsets: Sequence[Sequence[str]]) -> list[Look]:
    """A look per class, each another, for classes given by their synsets (a class's own first, then related ones):
    the first ImageNet-1k look under its synsets that no class chosen before took (the classes with the fewest such
    looks choose first), else the look of its own synset."""
    candidates = [looks_under(names) for names in synsets]
    looks, taken = {}, set()
    for number in sorted(range(len(synsets)), key=lambda number: (len(candidates[number]), number)):
        unused = [look for look in candidates[number] if look_key(look) not in taken]
        looks[number] = unused[0] if unused else look_of(synset_named(synsets[number][0]))
        taken.add(look_key(looks[number]))
    return [looks[number] for number in range(len(synsets))]


def look_key(look: Look) -> tuple:
    """What tells two looks apart, hashable (a look holds arrays)."""
    return look.shape, look.texture, look.color.tobytes(), look.secondary.tobytes(), look.background.tobytes()


def save_object_images(paths: Iterable[Path], look: Look, size: int, rng: np.random.Generator) -> None:
    """A photo of one object of ``look`` (``object_image``) at each path, saved as the releases' JPEGs."""
    for path in paths:
        image, _ = object_image(look, size, rng)
        Image.fromarray(image).save(path, quality=90)


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
