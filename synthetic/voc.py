"""Synthetic PASCAL VOC 2007 detection and VOC 2012 action classification, in VOCdevkit's layout.

    <root>/VOC2007/Annotations/<id>.xml              objects with name, bndbox, truncated, difficult
    <root>/VOC2007/JPEGImages/<id>.jpg
    <root>/VOC2007/ImageSets/Main/{train,val,trainval,test}.txt and <class>_<split>.txt
    <root>/VOC2012/Annotations/<id>.xml              person objects with <actions>
    <root>/VOC2012/JPEGImages/<id>.jpg
    <root>/VOC2012/ImageSets/Action/{train,val,trainval}.txt and <action>_<split>.txt

``<root>`` plays the part of ``VOCdevkit``.
"""

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from formats.voc import PASCAL_CLASS_SYNSETS, VOC_ACTIONS, VOC_CLASSES
from synthetic import GENERATORS, ensure_dataset, run_parallel
from synthetic.render import draw_object, mask_box, to_uint8
from synthetic.scenes import looks_under, scene_background, voc_annotation_xml

# The object each action is seen with; the pose-only actions have none.
ACTION_PROP_SYNSETS = {
    "phoning": ("cellular_telephone.n.01",),
    "playinginstrument": ("musical_instrument.n.01",),
    "reading": ("book_jacket.n.01", "comic_book.n.01"),
    "ridingbike": ("bicycle.n.01",),
    "ridinghorse": ("horse.n.01",),
    "takingphoto": ("camera.n.01",),
    "usingcomputer": ("computer.n.01",),
}


@dataclass(frozen=True)
class Scale:
    width: int
    height: int
    detection_trainval: int
    detection_test: int
    action_train: int
    action_val: int


SCALES = {
    "tiny": Scale(128, 96, detection_trainval=40, detection_test=40, action_train=40, action_val=40),
    "default": Scale(224, 168, 600, 300, 300, 300),
}


@GENERATORS.register("voc")
def ensure(scale: str = "default", seed: int = 0, workers: int | None = None) -> Path:
    """A synthetic VOCdevkit (VOC2007 detection + VOC2012 action) of this scale and seed."""
    return ensure_dataset("VOCdevkit", SCALES, scale, seed, generate, workers)


def generate(out: Path, scale: Scale, seed: int, workers: int | None = None) -> dict:
    return {
        "dataset": "VOCdevkit",
        "seed": seed,
        **_generate_detection(out / "VOC2007", scale, seed, workers),
        **_generate_action(out / "VOC2012", scale, seed, workers),
    }


def _make_dirs(year_dir: Path, image_sets: str) -> None:
    for sub in ("Annotations", "JPEGImages", f"ImageSets/{image_sets}"):
        (year_dir / sub).mkdir(parents=True)


def _split(ids: list[str], first: int, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    order = rng.permutation(len(ids))
    return sorted(ids[i] for i in order[:first]), sorted(ids[i] for i in order[first:])


def _write_image_sets(folder: Path, splits: dict[str, list[str]], names, rows_of) -> None:
    """``<split>.txt``, and ``<name>_<split>.txt`` for each class or action with the rows
    ``rows_of(name, image_id)``: "<id> 1|-1|0" per image (0: only difficult instances), or
    "<id> <person> 1|-1" per person."""
    for split, ids in splits.items():
        (folder / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
        for name in names:
            rows = "".join(f"{row}\n" for i in ids for row in rows_of(name, i))
            (folder / f"{name}_{split}.txt").write_text(rows)


def _generate_detection(year_dir: Path, scale: Scale, seed: int, workers) -> dict:
    _make_dirs(year_dir, "Main")
    # Each class borrows the looks of the ImageNet-1k classes under the synset it names.
    looks = [looks_under([PASCAL_CLASS_SYNSETS[name]]) for name in VOC_CLASSES]
    ids = [f"{n:06d}" for n in range(1, scale.detection_trainval + scale.detection_test + 1)]
    tasks = [(year_dir, image_id, scale, seed, looks) for image_id in ids]
    objects = dict(zip(ids, run_parallel(_write_detection_image, tasks, "synthetic VOC2007", workers)))
    rng = np.random.default_rng([seed, 2007])
    trainval, test = _split(ids, scale.detection_trainval, rng)
    train, val = _split(trainval, len(trainval) // 2, rng)

    def class_rows(name, image_id):
        mine = [o for o in objects[image_id] if o["name"] == name]
        label = 0 if mine and all(o["difficult"] for o in mine) else 1 if mine else -1
        return [f"{image_id} {label:2d}"]

    splits = {"train": train, "val": val, "trainval": trainval, "test": test}
    _write_image_sets(year_dir / "ImageSets" / "Main", splits, VOC_CLASSES, class_rows)
    return {
        "detection_images": len(ids),
        "detection_objects": sum(len(o) for o in objects.values()),
        "detection_size": [scale.width, scale.height],
    }


def _write_detection_image(task) -> list[dict]:
    year_dir, image_id, scale, seed, looks = task
    rng = np.random.default_rng([seed, 7, int(image_id)])
    width, height = scale.width, scale.height
    canvas = scene_background(width, height, rng)
    drawn = []
    for _ in range(rng.integers(1, 5)):
        class_index = int(rng.integers(len(VOC_CLASSES)))
        look = looks[class_index][rng.integers(len(looks[class_index]))]
        half = rng.uniform(0.12, 0.3) * min(width, height) * (look.size / 0.6)
        aspect = look.aspect * rng.uniform(0.8, 1.25)
        center = (rng.uniform(0.05, 0.95) * width, rng.uniform(0.1, 0.95) * height)
        half_size = (half * np.sqrt(aspect), half / np.sqrt(aspect))
        mask = draw_object(canvas, look, center, half_size, rng.normal(0, 0.1), rng)
        for _, earlier in drawn:
            earlier &= ~mask  # occluded by the new object
        drawn.append((VOC_CLASSES[class_index], mask))
    objects = []
    for name, visible in drawn:
        box = mask_box(visible)
        if box is None:  # entirely hidden: VOC does not annotate what cannot be seen
            continue
        x0, y0, x1, y1 = box
        objects.append({
            "name": name,
            "box": box,
            "truncated": x0 == 0 or y0 == 0 or x1 == width - 1 or y1 == height - 1,
            "difficult": min(x1 - x0, y1 - y0) < 8 or visible.sum() < 0.35 * (x1 - x0 + 1) * (y1 - y0 + 1),
        })  # fmt: skip
    Image.fromarray(to_uint8(canvas, rng)).save(year_dir / "JPEGImages" / f"{image_id}.jpg", quality=90)
    xml = voc_annotation_xml("VOC2007", f"{image_id}.jpg", width, height, objects)
    (year_dir / "Annotations" / f"{image_id}.xml").write_bytes(xml)
    return objects


def _generate_action(year_dir: Path, scale: Scale, seed: int, workers) -> dict:
    _make_dirs(year_dir, "Action")
    person_looks = looks_under([PASCAL_CLASS_SYNSETS["person"]])
    prop_looks = {action: looks_under(names) for action, names in ACTION_PROP_SYNSETS.items()}
    ids = [f"2012_{n:06d}" for n in range(1, scale.action_train + scale.action_val + 1)]
    tasks = [(year_dir, image_id, scale, seed, person_looks, prop_looks) for image_id in ids]
    actions = dict(zip(ids, run_parallel(_write_action_image, tasks, "synthetic VOC2012 Action", workers)))
    train, val = _split(ids, scale.action_train, np.random.default_rng([seed, 2012]))

    def action_rows(action, image_id):
        return [
            f"{image_id} {person:2d} {1 if done == action else -1:2d}"
            for person, done in enumerate(actions[image_id], start=1)
        ]

    splits = {"train": train, "val": val, "trainval": sorted(ids)}
    _write_image_sets(year_dir / "ImageSets" / "Action", splits, VOC_ACTIONS, action_rows)
    return {"action_images": len(ids), "action_people": sum(len(a) for a in actions.values())}


def _write_action_image(task) -> list[str]:
    year_dir, image_id, scale, seed, person_looks, prop_looks = task
    rng = np.random.default_rng([seed, 12, int(image_id.split("_")[1])])
    width, height = scale.width, scale.height
    canvas = scene_background(width, height, rng)
    people = []
    slots = rng.permutation(2)[: rng.integers(1, 3)]  # one or two people, left and/or right half
    for slot in slots:
        action = VOC_ACTIONS[rng.integers(len(VOC_ACTIONS))]
        person = person_looks[rng.integers(len(person_looks))]
        half_h = rng.uniform(0.22, 0.32) * height
        half_w = half_h * 0.45
        cx = (slot + rng.uniform(0.3, 0.7)) * width / 2
        cy = height * 0.62
        tilt = {"running": 0.45, "walking": 0.15}.get(action, 0.0) * rng.choice([-1, 1])
        if action in ("jumping", "ridingbike", "ridinghorse"):
            cy -= half_h * 0.5
        if action == "jumping":  # a shadow on the ground below the feet
            dark = person.background * 0.4
            shadow = dataclasses.replace(person, shape=0, texture=0, color=dark, secondary=dark)
            draw_object(canvas, shadow, (cx, height * 0.62 + half_h), (half_w, half_h * 0.12), 0, rng)
        prop = None
        if action in prop_looks:
            prop = prop_looks[action][rng.integers(len(prop_looks[action]))]
            riding = action.startswith("riding")
            scale_of_prop = 1.1 if riding else 0.3
            prop_center = (cx + (0 if riding else half_w * 0.9), cy + (half_h * 0.9 if riding else -half_h * 0.2))
            prop_half = (half_h * scale_of_prop * 1.2, half_h * scale_of_prop * 0.7)
        if prop is not None and riding:
            draw_object(canvas, prop, prop_center, prop_half, 0.0, rng)
        mask = draw_object(canvas, person, (cx, cy), (half_w, half_h), tilt, rng)
        if prop is not None and not riding:
            mask &= ~draw_object(canvas, prop, prop_center, prop_half, rng.normal(0, 0.2), rng)
        people.append((action, mask))
    objects = []
    for action, mask in people:
        box = mask_box(mask)
        objects.append({
            "name": "person", "box": box, "truncated": False, "difficult": False,
            "actions": {a: int(a == action) for a in (*VOC_ACTIONS, "other")},
        })  # fmt: skip
    Image.fromarray(to_uint8(canvas, rng)).save(year_dir / "JPEGImages" / f"{image_id}.jpg", quality=90)
    xml = voc_annotation_xml("VOC2012", f"{image_id}.jpg", width, height, objects)
    (year_dir / "Annotations" / f"{image_id}.xml").write_bytes(xml)
    return [action for action, _ in people]
