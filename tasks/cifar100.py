"""CIFAR-100 (Krizhevsky 2009), one of Kornblith et al.'s twelve datasets: 32 x 32 photos of 100 classes (the
"fine" labels; each is one of 20 "coarse" superclasses), the official train -> test split (500 / 100 images per
class), top-1 accuracy. A whole task in one file: its on-disk format (read by ``formats.cifar``, shared with
CIFAR-10), its synthetic twin and its registration.

    cifar-100-python/train    the 50,000 training images, a pickled dict: 'data' (uint8 [N, 3072], a row per image:
                              its red, green and blue 32 x 32 planes), 'fine_labels', 'coarse_labels', 'batch_label',
                              'filenames'
    cifar-100-python/test     the 10,000 test images, alike
    cifar-100-python/meta     'fine_label_names' (the classes in label order), 'coarse_label_names'

``data.cifar100`` is the folder holding cifar-100-python/ (torchvision's root) or that folder itself. Training reads
images from files, so the first read on a machine extracts every image once as a PNG: a split's examples are
``train/00017.png`` ... under the extracted folder, numbered in the file's order, as torchvision's CIFAR100 indexes
them. The classes are the fine labels, as torchvision's. CIFAR-100 has no validation split:
``tasks.selection_splits`` holds out a fifth of each training class.

The synthetic CIFAR-100 has the real layout (with coarse labels) and a slice of the real fine classes (every fifth
at the default scale: 20), each drawn with the look of one of ImageNet-1k's classes under a related WordNet synset
(a bear is a brown or a black bear, a pear another edible fruit), so ImageNet features transfer to it.
"""

from pathlib import Path

from formats.cifar import CIFAR100, read_split, write_pickle, write_split
from synthetic import GENERATORS, ensure_dataset
from synthetic.cifar import Scale, draw_splits
from synthetic.scenes import distinct_looks
from tasks import Examples, Task, register
from tasks.metrics import top1

CLASSES = """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can
castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin elephant
flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree
motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy
porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel
streetcar sunflower sweet_pepper table tank telephone television tiger tractor train trout tulip turtle wardrobe whale
willow_tree wolf woman worm""".split()
SUPERCLASSES = {
    "aquatic_mammals": "beaver dolphin otter seal whale",
    "fish": "aquarium_fish flatfish ray shark trout",
    "flowers": "orchid poppy rose sunflower tulip",
    "food_containers": "bottle bowl can cup plate",
    "fruit_and_vegetables": "apple mushroom orange pear sweet_pepper",
    "household_electrical_devices": "clock keyboard lamp telephone television",
    "household_furniture": "bed chair couch table wardrobe",
    "insects": "bee beetle butterfly caterpillar cockroach",
    "large_carnivores": "bear leopard lion tiger wolf",
    "large_man-made_outdoor_things": "bridge castle house road skyscraper",
    "large_natural_outdoor_scenes": "cloud forest mountain plain sea",
    "large_omnivores_and_herbivores": "camel cattle chimpanzee elephant kangaroo",
    "medium_mammals": "fox porcupine possum raccoon skunk",
    "non-insect_invertebrates": "crab lobster snail spider worm",
    "people": "baby boy girl man woman",
    "reptiles": "crocodile dinosaur lizard snake turtle",
    "small_mammals": "hamster mouse rabbit shrew squirrel",
    "trees": "maple_tree oak_tree palm_tree pine_tree willow_tree",
    "vehicles_1": "bicycle bus motorcycle pickup_truck train",
    "vehicles_2": "lawn_mower rocket streetcar tank tractor",
}
COARSE_CLASSES = list(SUPERCLASSES)  # the coarse labels' order, the release's
COARSE_LABEL = {name: COARSE_CLASSES.index(coarse) for coarse, names in SUPERCLASSES.items() for name in names.split()}
# Each class's own WordNet synset, then related ones: its look is one of the ImageNet-1k classes under them.
LOOKS = {
    "apple": ("apple.n.01", "edible_fruit.n.01"),
    "aquarium_fish": ("goldfish.n.01", "spiny-finned_fish.n.01"),
    "baby": ("baby.n.01", "person.n.01"),
    "bear": ("bear.n.01",),
    "beaver": ("beaver.n.07",),
    "bed": ("bed.n.01",),
    "bee": ("bee.n.01",),
    "beetle": ("beetle.n.01",),
    "bicycle": ("bicycle.n.01",),
    "bottle": ("bottle.n.01",),
    "bowl": ("bowl.n.03",),
    "boy": ("male_child.n.01", "person.n.01"),
    "bridge": ("bridge.n.01",),
    "bus": ("bus.n.01",),
    "butterfly": ("butterfly.n.01",),
    "camel": ("camel.n.01",),
    "can": ("can.n.01",),
    "castle": ("castle.n.02",),
    "caterpillar": ("caterpillar.n.01", "lepidopterous_insect.n.01"),
    "cattle": ("cattle.n.01",),
    "chair": ("chair.n.01",),
    "chimpanzee": ("chimpanzee.n.01",),
    "clock": ("clock.n.01",),
    "cloud": ("cloud.n.02", "geological_formation.n.01"),
    "cockroach": ("cockroach.n.01",),
    "couch": ("sofa.n.01",),
    "crab": ("crab.n.01",),
    "crocodile": ("crocodilian_reptile.n.01",),
    "cup": ("cup.n.01", "coffee_mug.n.01"),
    "dinosaur": ("dinosaur.n.01",),
    "dolphin": ("dolphin.n.02",),
    "elephant": ("elephant.n.01",),
    "flatfish": ("flatfish.n.02", "soft-finned_fish.n.01"),
    "forest": ("forest.n.01", "geological_formation.n.01"),
    "fox": ("fox.n.01",),
    "girl": ("girl.n.01", "person.n.01"),
    "hamster": ("hamster.n.01",),
    "house": ("house.n.01", "dwelling.n.01"),
    "kangaroo": ("kangaroo.n.01",),
    "keyboard": ("computer_keyboard.n.01",),
    "lamp": ("lamp.n.02",),
    "lawn_mower": ("lawn_mower.n.01",),
    "leopard": ("leopard.n.02",),
    "lion": ("lion.n.01",),
    "lizard": ("lizard.n.01",),
    "lobster": ("lobster.n.02",),
    "man": ("man.n.01", "person.n.01"),
    "maple_tree": ("maple.n.02", "seed.n.01"),
    "motorcycle": ("motorcycle.n.01",),
    "mountain": ("mountain.n.01", "geological_formation.n.01"),
    "mouse": ("mouse.n.01", "rodent.n.01"),
    "mushroom": ("mushroom.n.05", "fungus.n.01"),
    "oak_tree": ("oak.n.02", "acorn.n.01"),
    "orange": ("orange.n.01",),
    "orchid": ("orchid.n.01",),
    "otter": ("otter.n.02",),
    "palm_tree": ("palm.n.03", "seed.n.01"),
    "pear": ("pear.n.01", "edible_fruit.n.01"),
    "pickup_truck": ("pickup.n.01",),
    "pine_tree": ("pine.n.01", "seed.n.01"),
    "plain": ("plain.n.01", "geological_formation.n.01"),
    "plate": ("plate.n.04", "crockery.n.01"),
    "poppy": ("poppy.n.01", "flower.n.01"),
    "porcupine": ("porcupine.n.01",),
    "possum": ("opossum.n.02", "marsupial.n.01"),
    "rabbit": ("rabbit.n.01",),
    "raccoon": ("raccoon.n.02", "procyonid.n.01"),
    "ray": ("ray.n.07",),
    "road": ("road.n.01", "street_sign.n.01", "traffic_light.n.01"),
    "rocket": ("rocket.n.01",),
    "rose": ("rose.n.01", "flower.n.01"),
    "sea": ("sea.n.01", "shore.n.01"),
    "seal": ("seal.n.09",),
    "shark": ("shark.n.01",),
    "shrew": ("shrew.n.02", "rodent.n.01"),
    "skunk": ("skunk.n.04",),
    "skyscraper": ("skyscraper.n.01", "building.n.01"),
    "snail": ("snail.n.01",),
    "snake": ("snake.n.01",),
    "spider": ("spider.n.01",),
    "squirrel": ("squirrel.n.01",),
    "streetcar": ("streetcar.n.01",),
    "sunflower": ("sunflower.n.01", "flower.n.01"),
    "sweet_pepper": ("sweet_pepper.n.02",),
    "table": ("table.n.02",),
    "tank": ("tank.n.01",),
    "telephone": ("telephone.n.01",),
    "television": ("television_receiver.n.01", "television.n.02", "screen.n.03"),
    "tiger": ("tiger.n.02",),
    "tractor": ("tractor.n.01",),
    "train": ("train.n.01",),
    "trout": ("trout.n.02", "soft-finned_fish.n.01"),
    "tulip": ("tulip.n.01", "flower.n.01"),
    "turtle": ("turtle.n.02",),
    "wardrobe": ("wardrobe.n.01",),
    "whale": ("whale.n.02",),
    "willow_tree": ("willow.n.01", "seed.n.01"),
    "wolf": ("wolf.n.01",),
    "woman": ("woman.n.01", "person.n.01"),
    "worm": ("worm.n.01",),
}


def check_layout(root: Path) -> None:
    """Reads both splits as the worker will: every pickle present and well-formed, every image extracted."""
    for split in ("train", "test"):
        read(root, split)


def read(root: Path, split: str, seed: int = 0) -> Examples:
    """The split's images (``train`` or ``test``) as PNG files extracted once, with their fine labels; errors name
    the file: a missing root, train, test or meta, a truncated or corrupt pickle, rows that are not 3072 uint8
    values, a label outside the classes."""
    folder, paths, targets, classes = read_split(root, split, CIFAR100)
    return Examples(folder, paths, targets, classes)


# The synthetic twin ----------------------------------------------------------------------------------------------


SCALES = {"tiny": Scale(5, 5, 2), "default": Scale(20, 40, 10)}


@GENERATORS.register("cifar100")
def ensure(scale: str = "default", seed: int = 0, workers: int | None = None) -> Path:
    """A synthetic CIFAR-100 root (holding cifar-100-python/) of this scale and seed, generated on first use."""
    return ensure_dataset("cifar-100", SCALES, scale, seed, generate, workers)


def scale_classes(scale: Scale) -> list[str]:
    """The real fine classes a scale keeps: a systematic slice, in label order."""
    return CLASSES[:: len(CLASSES) // scale.classes][: scale.classes]


def generate(out: Path, scale: Scale, seed: int, workers: int | None = None) -> dict:
    classes = scale_classes(scale)
    looks = distinct_looks([LOOKS[name] for name in classes])
    splits = draw_splits(scale, seed, classes, looks, "synthetic CIFAR-100 classes", workers)
    folder = out / CIFAR100.folder
    folder.mkdir(parents=True)
    for split, (images, labels, filenames) in splits.items():
        coarse = [COARSE_LABEL[classes[label]] for label in labels]
        write_split(folder, CIFAR100, split, images, labels, filenames, extra={"coarse_labels": coarse})
    write_pickle(folder / CIFAR100.meta, {"fine_label_names": classes, "coarse_label_names": COARSE_CLASSES})
    return {"dataset": "cifar100", "classes": len(classes), "train_images": scale.classes * scale.train_per_class,
            "test_images": scale.classes * scale.test_per_class, "seed": seed}  # fmt: skip


register(
    Task(
        name="cifar100",
        dataset="cifar100",
        protocol="finetune",
        metric="top1",
        check_layout=check_layout,
        description="CIFAR-100 objects at 32 px (fine labels), train -> test; top-1",
        read=read,
        splits=("train", "test"),
        validation=None,
        evaluate=lambda scores, labels: {"top1": top1(scores, labels)},
    )
)
