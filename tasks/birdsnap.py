"""Birdsnap (Berg et al. 2014), one of Kornblith et al.'s twelve datasets: 500 North American bird species, the
official test list against the rest, top-1 accuracy. A whole task in one file: its on-disk format, its synthetic twin
and its registration. torchvision has no Birdsnap class.

The release (birdsnap.tgz, v1.1) is metadata and a download script; ``get_birdsnap.py``, run in the release folder,
fetches each image from its Flickr URL into ``download/images/<path>`` (its ``--output_dir`` defaults to
``download``; it also writes ``download/success.txt`` and ``download/fail.txt``, "<url>\\t<path>" per image):

    birdsnap/species.txt           tab-separated, a header line (id, common, scientific, dir), one species a line,
                                   ids 1..500
    birdsnap/images.txt            tab-separated, a header line (url, md5, path, species_id, bb_x1, bb_y1, bb_x2,
                                   bb_y2, then <part>_x, <part>_y for 17 parts: back, beak, ..., throat), one image
                                   a line; path: "<species dir>/<file>.jpg"
    birdsnap/test_images.txt       a header line "path", then the path (as in images.txt) of each test image
    birdsnap/download/images/<path>

Confirmed from the release's own readme.txt (v1.1: "test_images.txt ... has a header line, then the 'path' (from
images.txt) of each test image, one per line"; species.txt and images.txt "tab-delimited with the first line giving
field names") and its get_birdsnap.py (``--output_dir`` default ``download``, images under ``<output_dir>/images``,
every line of images.txt as many tab-separated fields as the header), both as copied into public repositories
(jonathantcallahan/birdboy birdsnap_content/readme.txt, rohitrango/ICLR get_birdsnap.py), and from
continuum's Birdsnap reader (Continvvm/continuum continuum/datasets/birdsnap.py: test = the paths of
test_images.txt, train = every other image of images.txt, species_id - 1 the label, images that failed to
download skipped). Fields are found by the header's names, not by position.

Splits: ``test`` is test_images.txt (2443 images, about 5 a species), ``train`` every other image of images.txt;
there is no validation split (``selection_splits`` holds out a seeded fifth of train). Classes: the species in the
order of their ids in species.txt, named by the ``common`` field. Many Flickr URLs are dead, so a real copy lacks
images: an image listed in images.txt but not on disk is left out of its split, with one logged warning per read
naming how many and the first few; a split left with no image, or a species left with no training image, is a
``DataFormatError``. The bounding boxes are not used (Kornblith et al. train on whole images).

The synthetic Birdsnap has the real layout, real species names (a short list of species that ImageNet-1k has a bird
class for, their directory named by the release's rule: the common name with spaces and hyphens made underscores
and apostrophes removed), image files numbered across the dataset as the real ones (``Coopers_Hawk/0561.jpg``),
real MD5s of the written files, and about one listed image in twenty "not downloaded" (absent, and named in
download/fail.txt) as in a real copy; each species is drawn with the look of the ImageNet-1k bird it names.
"""

import hashlib
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from formats import GENERATE_HINT, DataFormatError, read_lines
from synthetic import GENERATORS, TrainTestScale, ensure_dataset, run_parallel
from synthetic.render import object_image
from synthetic.scenes import looks_under
from tasks import Examples, Task, register
from tasks.metrics import top1

SPLITS = ("train", "test")
IMAGE_DIR = "download/images"  # get_birdsnap.py's default --output_dir, and its images/ folder
PARTS = ("back", "beak", "belly", "breast", "crown", "forehead", "left_cheek", "left_eye", "left_leg", "left_wing",
         "nape", "right_cheek", "right_eye", "right_leg", "right_wing", "tail", "throat")  # fmt: skip
IMAGES_HEADER = ("url", "md5", "path", "species_id", "bb_x1", "bb_y1", "bb_x2", "bb_y2",
                 *(f"{part}_{axis}" for part in PARTS for axis in "xy"))  # fmt: skip
SHOWN_MISSING = 5  # how many left-out images the warning names

log = logging.getLogger(__name__)


def check_root(root: Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(
            f"Birdsnap root {root} does not exist. Point data.birdsnap at the birdsnap folder (holding species.txt, "
            f"images.txt, test_images.txt and the {IMAGE_DIR}/ that get_birdsnap.py fills), or {GENERATE_HINT}."
        )
    return root


def check_layout(root: Path) -> None:
    """Reads both splits as the worker will: every file parsed, the images on disk counted."""
    for split in SPLITS:
        read(root, split)


def read(root: Path, split: str, seed: int = 0) -> Examples:
    """The split's images that are on disk, in images.txt's order; errors name the file and line: a species or image
    listed twice, a line without the header's fields, an unknown species id, a test image not in images.txt. Listed
    images not on disk are left out, with one warning."""
    if split not in SPLITS:
        raise ValueError(f"Birdsnap has the splits {', '.join(SPLITS)}, not {split!r}")
    root = check_root(root)
    species = _species(root / "species.txt")
    index = {species_id: k for k, species_id in enumerate(sorted(species))}
    listed = _images(root / "images.txt", index)
    test = _test_paths(root / "test_images.txt", listed)
    chosen = [(path, target) for path, target in listed.items() if (path in test) == (split == "test")]
    if not chosen:
        raise DataFormatError(
            f"{root / 'images.txt'} lists no image for the Birdsnap {split} split (test: the paths of "
            f"{root / 'test_images.txt'}, train: the others); re-extract birdsnap.tgz"
        )
    paths, targets, missing = [], [], []
    for path, target in chosen:
        if (root / IMAGE_DIR / path).is_file():
            paths.append(f"{IMAGE_DIR}/{path}")
            targets.append(target)
        else:
            missing.append(path)
    if missing and len(missing) < len(chosen):
        log.warning(
            "Birdsnap %s: %d of the %d images that %s lists for it are not under %s (their URLs failed when "
            "get_birdsnap.py ran) and are left out: %s", split, len(missing), len(chosen), root / "images.txt",
            root / IMAGE_DIR, _first(missing),
        )  # fmt: skip
    if not paths:
        raise DataFormatError(
            f"none of the {len(chosen)} images that {root / 'images.txt'} lists for the Birdsnap {split} split is "
            f"under {root / IMAGE_DIR}; run get_birdsnap.py in {root} to download them"
        )
    classes = [species[species_id] for species_id in sorted(species)]
    if split == "train":
        empty = sorted(set(range(len(classes))) - set(targets))
        if empty:
            raise DataFormatError(
                f"{len(empty)} species of {root / 'species.txt'} have no training image under {root / IMAGE_DIR} "
                f"({_first([classes[k] for k in empty])}); run get_birdsnap.py in {root} again to fetch the images "
                "it failed on"
            )
    return Examples(root, paths, targets, classes)


def _first(names: list[str]) -> str:
    return ", ".join(names[:SHOWN_MISSING]) + (", ..." if len(names) > SHOWN_MISSING else "")


def _header(lines: list[tuple[int, str]], listing: Path, needed: tuple[str, ...]) -> list[str]:
    if not lines:
        raise DataFormatError(f"{listing} is empty; re-extract birdsnap.tgz")
    number, line = lines[0]
    names = line.split("\t")
    absent = [name for name in needed if name not in names]
    if absent:
        raise DataFormatError(
            f"{listing}:{number}: the header line {line!r} has no field {', '.join(absent)}; the first line names "
            f"the tab-separated fields ({', '.join(needed)}, ...): re-extract birdsnap.tgz"
        )
    return names


def _fields(line: str, names: list[str], listing: Path, number: int) -> dict[str, str]:
    values = line.split("\t")
    if len(values) != len(names):
        raise DataFormatError(
            f"{listing}:{number}: {len(values)} tab-separated fields where the header names {len(names)}; "
            "re-extract birdsnap.tgz"
        )
    return dict(zip(names, values))


def _species(listing: Path) -> dict[int, str]:
    """species id -> common name."""
    lines = read_lines(listing, "Birdsnap species.txt")
    names = _header(lines, listing, ("id", "common", "dir"))
    species, first_seen = {}, {}
    for number, line in lines[1:]:
        fields = _fields(line, names, listing, number)
        if not fields["id"].isdigit() or not fields["common"].strip():
            raise DataFormatError(f"{listing}:{number}: {line!r} has no whole-number id and common name")
        species_id = int(fields["id"])
        if species_id in first_seen:
            raise DataFormatError(
                f"{listing}:{number}: species id {species_id} is listed again (first on line "
                f"{first_seen[species_id]}); list each species once"
            )
        first_seen[species_id] = number
        species[species_id] = fields["common"].strip()
    if not species:
        raise DataFormatError(f"{listing} lists no species")
    return species


def _images(listing: Path, index: dict[int, int]) -> dict[str, int]:
    """path -> class index, in images.txt's order."""
    lines = read_lines(listing, "Birdsnap images.txt")
    names = _header(lines, listing, ("path", "species_id"))
    images, first_seen = {}, {}
    for number, line in lines[1:]:
        fields = _fields(line, names, listing, number)
        path, species_id = fields["path"], fields["species_id"]
        if not species_id.isdigit() or int(species_id) not in index:
            raise DataFormatError(f"{listing}:{number}: species_id {species_id!r} is no id of species.txt")
        if path.startswith("/") or "/" not in path or ".." in path.split("/"):
            raise DataFormatError(f"{listing}:{number}: path {path!r} is not '<species dir>/<file>'")
        if path in first_seen:
            raise DataFormatError(
                f"{listing}:{number}: {path} is listed again (first on line {first_seen[path]}); list each image once"
            )
        first_seen[path] = number
        images[path] = index[int(species_id)]
    if not images:
        raise DataFormatError(f"{listing} lists no images")
    return images


def _test_paths(listing: Path, listed: dict[str, int]) -> set[str]:
    lines = read_lines(listing, "Birdsnap test_images.txt")
    if not lines or lines[0][1] != "path":
        where = f"{listing}:{lines[0][0]}" if lines else str(listing)
        raise DataFormatError(f"{where}: the first line is the header 'path'; re-extract birdsnap.tgz (v1.1)")
    first_seen = {}
    for number, path in lines[1:]:
        if path not in listed:
            raise DataFormatError(f"{listing}:{number}: the test image {path} is not a path of images.txt")
        if path in first_seen:
            raise DataFormatError(
                f"{listing}:{number}: {path} is listed again (first on line {first_seen[path]}); list each image once"
            )
        first_seen[path] = number
    if not first_seen:
        raise DataFormatError(f"{listing} lists no test images")
    return set(first_seen)


# The synthetic twin ----------------------------------------------------------------------------------------------

# Birdsnap species that ImageNet-1k has a bird class for: (common name, scientific name, the ImageNet-1k synset whose
# look the species is drawn with), in the alphabetical order of the common names. The names are the species'
# usual English and Latin names, not copied from species.txt.
SPECIES = (
    ("American Bittern", "Botaurus lentiginosus", "bittern.n.01"),
    ("American Coot", "Fulica americana", "american_coot.n.01"),
    ("American Dipper", "Cinclus mexicanus", "water_ouzel.n.01"),
    ("American Goldfinch", "Spinus tristis", "goldfinch.n.02"),
    ("American Oystercatcher", "Haematopus palliatus", "oystercatcher.n.01"),
    ("American Robin", "Turdus migratorius", "robin.n.02"),
    ("Bald Eagle", "Haliaeetus leucocephalus", "bald_eagle.n.01"),
    ("Black-billed Magpie", "Pica hudsonia", "magpie.n.01"),
    ("Black-capped Chickadee", "Poecile atricapillus", "chickadee.n.01"),
    ("Blue Jay", "Cyanocitta cristata", "jay.n.02"),
    ("Brown Pelican", "Pelecanus occidentalis", "pelican.n.01"),
    ("California Quail", "Callipepla californica", "quail.n.02"),
    ("Canada Goose", "Branta canadensis", "goose.n.01"),
    ("Dark-eyed Junco", "Junco hyemalis", "junco.n.01"),
    ("Dunlin", "Calidris alpina", "red-backed_sandpiper.n.01"),
    ("Great Egret", "Ardea alba", "american_egret.n.01"),
    ("Great Gray Owl", "Strix nebulosa", "great_grey_owl.n.01"),
    ("Greater Prairie-Chicken", "Tympanuchus cupido", "prairie_chicken.n.01"),
    ("House Finch", "Haemorhous mexicanus", "house_finch.n.01"),
    ("Indigo Bunting", "Passerina cyanea", "indigo_bunting.n.01"),
    ("Limpkin", "Aramus guarauna", "limpkin.n.01"),
    ("Little Blue Heron", "Egretta caerulea", "little_blue_heron.n.01"),
    ("Mallard", "Anas platyrhynchos", "drake.n.02"),
    ("Mississippi Kite", "Ictinia mississippiensis", "kite.n.04"),
    ("Red-breasted Merganser", "Mergus serrator", "red-breasted_merganser.n.01"),
    ("Ruby-throated Hummingbird", "Archilochus colubris", "hummingbird.n.01"),
    ("Ruddy Turnstone", "Arenaria interpres", "ruddy_turnstone.n.01"),
    ("Ruffed Grouse", "Bonasa umbellus", "ruffed_grouse.n.01"),
    ("Sandhill Crane", "Grus canadensis", "crane.n.05"),
    ("Short-billed Dowitcher", "Limnodromus griseus", "dowitcher.n.01"),
    ("Turkey Vulture", "Cathartes aura", "vulture.n.01"),
    ("Willow Ptarmigan", "Lagopus lagopus", "ptarmigan.n.01"),
)
MISSING_RATE = 0.05  # of the listed images a synthetic copy "failed to download" (never a species' first train or
# test image)


def species_dir(common: str) -> str:
    """The release's directory of a species: "Cooper's Hawk" -> Coopers_Hawk, "Sharp-shinned Hawk" ->
    Sharp_shinned_Hawk."""
    return common.replace("'", "").replace("-", "_").replace(" ", "_")


# train_per_class and test_per_class count the images that images.txt lists, before the ones "not downloaded".
SCALES = {"tiny": TrainTestScale(5, 32, 6, 3), "default": TrainTestScale(20, 64, 32, 12)}


@GENERATORS.register("birdsnap")
def ensure(scale: str = "default", seed: int = 0, workers: int | None = None) -> Path:
    """A synthetic birdsnap folder of this scale and seed, generated on first use."""
    return ensure_dataset("birdsnap", SCALES, scale, seed, generate, workers)


def generate(out: Path, scale: TrainTestScale, seed: int, workers: int | None = None) -> dict:
    chosen = SPECIES[:: len(SPECIES) // scale.classes][: scale.classes]
    rng = np.random.default_rng([seed, 500])
    per_class = scale.train_per_class + scale.test_per_class
    # images.txt lists the species in an order of its own (the real one is not by id), numbering the files across it.
    order = rng.permutation(len(chosen))
    looks = [looks_under([synset])[0] for _, _, synset in chosen]
    tasks = [(out, scale, seed, int(k), chosen[k][0], looks[k], 1 + position * per_class)
             for position, k in enumerate(order)]  # fmt: skip
    (out / IMAGE_DIR).mkdir(parents=True)
    rows = [row for rows in run_parallel(_write_species, tasks, "synthetic Birdsnap species", workers) for row in rows]
    (out / "species.txt").write_text(
        "id\tcommon\tscientific\tdir\n"
        + "".join(f"{k + 1}\t{common}\t{latin}\t{species_dir(common)}\n" for k, (common, latin, _) in enumerate(chosen))
    )
    (out / "images.txt").write_text("\t".join(IMAGES_HEADER) + "\n" + "".join(row["line"] + "\n" for row in rows))
    (out / "test_images.txt").write_text("path\n" + "".join(f"{row['path']}\n" for row in rows if row["test"]))
    for name, downloaded in (("success.txt", True), ("fail.txt", False)):
        (out / "download" / name).write_text(
            "".join(f"{row['url']}\t{row['path']}\n" for row in rows if row["downloaded"] == downloaded)
        )
    return {"dataset": "birdsnap", "classes": len(chosen), "listed_images": len(rows),
            "not_downloaded": sum(not row["downloaded"] for row in rows), "seed": seed}  # fmt: skip


def _write_species(task) -> list[dict]:
    out, scale, seed, number, common, look, first_file = task
    rng = np.random.default_rng([seed, number])
    folder = out / IMAGE_DIR / species_dir(common)
    folder.mkdir(parents=True)
    per_class = scale.train_per_class + scale.test_per_class
    test = np.zeros(per_class, dtype=bool)
    test[rng.choice(per_class, scale.test_per_class, replace=False)] = True
    kept = rng.random(per_class) >= MISSING_RATE
    kept[np.argmax(~test)] = kept[np.argmax(test)] = True  # each split keeps one image of every species
    rows = []
    for k in range(per_class):
        path = f"{species_dir(common)}/{first_file + k:04d}.jpg"
        image, box = object_image(look, scale.image_size, rng)
        x0, y0, x1, y1 = box or (0, 0, scale.image_size - 1, scale.image_size - 1)
        target = out / IMAGE_DIR / path
        Image.fromarray(image).save(target, quality=90)
        md5 = hashlib.md5(target.read_bytes()).hexdigest()
        if not kept[k]:
            target.unlink()  # its URL was dead when get_birdsnap.py ran
        parts = [int(v) for _ in PARTS for v in (rng.integers(x0, x1 + 1), rng.integers(y0, y1 + 1))]
        url = f"https://synthetic.invalid/birdsnap/{seed}/{first_file + k}.jpg"
        fields = [url, md5, path, str(number + 1), *map(str, (x0, y0, x1, y1)), *map(str, parts)]
        rows.append({"line": "\t".join(fields), "path": path, "url": url, "test": bool(test[k]),
                     "downloaded": bool(kept[k])})  # fmt: skip
    return rows


register(
    Task(
        name="birdsnap",
        dataset="birdsnap",
        protocol="finetune",
        metric="top1",
        check_layout=check_layout,
        description="Birdsnap's 500 bird species, train (images.txt less the test list) -> test; top-1",
        read=read,
        splits=("train", "test"),
        validation=None,
        evaluate=lambda scores, labels: {"top1": top1(scores, labels)},
    )
)
