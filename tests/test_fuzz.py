"""Fuzzed configuration and data: random and adversarial overrides (wrong types, negative and huge numbers, unknown
keys, unicode, empty lists, malformed syntax) and randomly corrupted images, annotations and split lists. Every
case ends as a clear error before Ray starts (a ConfigError or DataFormatError whose message is a sentence naming
what is wrong) or as a counted skip; never a traceback from inside a worker, never a plan or listing with garbage.
Hypothesis runs a fixed number of derandomized examples: every run tries the same cases."""

import contextlib
import dataclasses
import io
import json
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from mmdet.registry import DATASETS
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

import synthetic
from formats import DataFormatError
from formats.cache import COMPLETE_MARKER, data_dir
from formats.imagenet import imagenet1k_wnids
from formats.prepared import prepare_images, prepared_size
from formats.sun397 import list_sun397
from formats.voc import list_voc_action, list_voc_detection
from models import check_model
from orchestrator.config import MAX_SEED, RECIPE_RANGES, ConfigError, load
from orchestrator.plan import make_plan
from orchestrator.run import main
from tasks import TASKS
from trainers import engine
from trainers.detect import CONFIG, SPLITS, readable_split_lists, set_data

set_hypothesis_home_dir(data_dir() / "hypothesis")  # its caches, with the project's other generated data
FUZZ = settings(
    derandomize=True,
    database=None,  # nothing written into the checkout
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PROJECT = ("formats", "synthetic", "subsets", "tasks", "models", "trainers", "orchestrator")
# What a message must not be: an internal exception's repr (KeyError: 'x'), or OmegaConf's and Hydra's internals.
INTERNALS = re.compile(r"\b[A-Z]\w*(Error|Exception)\b|full_key:|object_type=|Traceback|<[\w.]+ object at 0x")


def assert_clear(error: BaseException, echoed: tuple[str, ...] = ()) -> None:
    """``error`` is a ValueError the project defines, whose message (less the values it ``echoed``) is a sentence
    rather than an internal exception's text."""
    assert isinstance(error, ValueError) and type(error).__module__.split(".")[0] in PROJECT, repr(error)
    message = str(error)
    for value in echoed:
        message = message.replace(value, "")
    assert message.strip() and not INTERNALS.search(message), str(error)


# Configuration --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def storage(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("storage")


def plan_or_error(overrides: list[str], storage: Path):
    """The plan of these overrides, checked sane, or the clear error that refused them."""
    try:
        plan = make_plan(load([f"storage={storage}", *overrides]))
    except ValueError as error:
        assert_clear(error, echoed=tuple(overrides))
        return error
    assert_sane(plan)
    return plan


def assert_sane(plan) -> None:
    """Every unit as a worker and the store take it: recipes within their ranges, networks that run at the
    pretraining's image size, seeds and sizes that fit a result row's 64-bit integers, and nothing JSON cannot
    hold (NaN, infinities)."""
    assert plan.pretrainings
    for pretraining in plan.pretrainings:
        for key, value in pretraining.recipe.items():
            RECIPE_RANGES["pretrain"][key].check(value, key)
        check_model(pretraining.model["name"], pretraining.model["args"], pretraining.recipe["image_size"])
        subset = pretraining.subset
        assert 0 <= subset.seed <= MAX_SEED
        assert all(size is None or 1 <= size < 2**63 for size in (subset.images_per_class, subset.budget))
    for finetuning in plan.finetunings:
        for key, value in finetuning.recipe.items():
            RECIPE_RANGES[finetuning.protocol][key].check(value, key)
        assert 0 <= finetuning.seed <= MAX_SEED
    json.dumps([dataclasses.asdict(unit) for unit in [*plan.pretrainings, *plan.finetunings]], allow_nan=False)


HUGE = "10000000000000000000000000000000000000000"  # 10**40
ADVERSARIAL = [  # overrides, and what the error says (None: the run plans)
    # wrong types
    (["pretrain.epochs=abc"], "pretrain.epochs must be a whole number >= 1"),
    (["pretrain.lr=[1]"], "pretrain.lr must be a number"),
    (["finetune.momentum={a:1}"], "finetune.momentum must be a number"),
    (["resources.use_gpu=5"], "resources.use_gpu must be true or false"),
    (["resources.num_workers=true"], "resources.num_workers must be a whole number"),
    (["dry_run=abc"], "dry_run must be true or false"),
    (["data.imagenet=[a]"], "data.imagenet must be a path"),
    (["data.imagenet=embedded:nope"], "the embedded imagenet is generated at the scales default, tiny"),
    (["data.sun397={a:1}"], "data.sun397 must be a path"),
    (["data.voc=5"], "data.voc must be a path"),
    (["storage=5"], "storage must be a path"),
    (["ray.address=5"], "ray.address must be a path"),
    (["run=[a]"], "run names folders and files"),
    (["grid.name=5"], "grid.name names folders and files"),
    (["grid.tasks=sun397"], "grid.tasks must be a list of names"),
    (["grid.tasks=[1]"], "grid.tasks must be a list of names"),
    (["grid.tasks=[[sun397]]"], "grid.tasks must be a list of names"),
    (["grid.seeds=5"], "grid.seeds must be a non-empty list"),
    (["grid.points=5"], "grid.points must be a list"),
    (["grid.points={a:1}"], "grid.points is a list here"),
    (["pretrain.epochs='${x'"], "no interpolation OmegaConf reads"),
    (["grid.points=[{label_set:[fine]}]"], "label_set must be the name of a label set"),
    (["grid.points=[{label_set:null}]"], "label_set must be the name of a label set"),
    (["grid.points=[{label_set:fine,model:{name:1}}]"], "model is a name or a mapping"),
    (["grid.points=[{label_set:fine,pretrain:5}]"], "pretrain must be a mapping"),
    (["grid.points=[{label_set:extra_100,extra_include_under:abc}]"], "extra_include_under must be a list of names"),
    (["grid.points=[{label_set:extra_100,extra_include_under:[5]}]"], "extra_include_under must be a list of names"),
    (["grid.points=[{label_set:extra_100,extra_exclude_under:[nope.n.01]}]"], "'nope.n.01' names no WordNet"),
    (["grid.points=[{label_set:fine,extra_include_under:[dog.n.01]}]"], "fine adds none"),
    (["grid.figure=5"], "grid.figure must be a mapping"),
    (["grid.figure.title=[a]"], "grid.figure.title must be text"),
    (["grid.findings=5"], "grid.findings must be a list"),
    (["grid.findings.0.task=5"], "grid.findings[1].task must be text"),
    (["grid.findings.0.above=abc"], "grid.findings[1].above must be a number"),
    (["grid=huh2016", "grid.grids=5"], "grid.grids must be a list of names"),
    (["pretrain=5"], "pretrain must be a mapping"),
    (["pretrain=null"], "pretrain must be a mapping"),
    (["finetune=[1]"], "cannot set finetune to [1]"),
    (["model=[a]"], "model is a name or a mapping"),
    (["model_args.alexnet=5"], "(model_args.alexnet) are a mapping"),
    (["model_args.alexnet.width=abc"], "AlexNet width must be a number"),
    (["model_args.alexnet.dropout=1"], "AlexNet dropout must be a number in [0, 1)"),
    (["grid.points=[{label_set:fine,model:{name:resnet18,args:{drop_rate:abc}}}]"], "cannot take 32 x 32 px images"),
    # negative, zero, huge, NaN and infinite numbers
    (["pretrain.epochs=-1"], "pretrain.epochs must be a whole number >= 1 and <= 10000, not -1"),
    (["pretrain.epochs=0"], "pretrain.epochs must be a whole number >= 1"),
    (["pretrain.epochs=1e30"], "pretrain.epochs must be a whole number >= 1"),
    ([f"pretrain.epochs={HUGE}"], "pretrain.epochs must be a whole number >= 1"),
    (["pretrain.epochs=nan"], "pretrain.epochs must be a whole number >= 1"),
    (["finetune.epochs=inf"], "finetune.epochs must be a whole number >= 1"),
    (["pretrain.lr=0"], "pretrain.lr must be a number >= 1e-08"),
    (["pretrain.lr=nan"], "pretrain.lr must be a number"),
    (["finetune.lr=inf"], "finetune.lr must be a number"),
    (["detect.lr=-0.1"], "detect.lr must be a number"),
    (["pretrain.weight_decay=-1"], "pretrain.weight_decay must be a number >= 0"),
    (["probe.l2=-1"], "probe.l2 must be a number >= 0"),
    (["pretrain.image_size=0"], "pretrain.image_size must be a whole number >= 32 and <= 1024"),
    (["pretrain.image_size=100000"], "pretrain.image_size must be a whole number >= 32"),
    (["model_args.alexnet.variant=imagenet"], "cannot take 32 x 32 px images"),  # the 224 px network at 32 px
    (["model_args.alexnet=null"], "cannot take 32 x 32 px images"),  # its defaults: the 224 px network
    (["detect.image_scale=1"], "detect.image_scale must be a whole number >= 32"),
    ([f"detect.iterations={HUGE}"], "detect.iterations must be a whole number >= 1"),
    (["detect.checkpoint_interval=0"], "detect.checkpoint_interval must be a whole number >= 1"),
    (["detect.rois_per_image=0"], "detect.rois_per_image must be a whole number >= 1"),
    (["detect.test_proposals=2.5"], "detect.test_proposals must be a whole number >= 1"),
    (["probe.iterations=-5"], "probe.iterations must be a whole number >= 1"),
    (["resources.num_workers=0"], "resources.num_workers must be a whole number >= 1"),
    (["resources.loader_workers=-1"], "resources.loader_workers must be a whole number >= 0"),
    (["resources.max_failures=-2"], "resources.max_failures must be a whole number >= -1"),
    (["resources.points_per_trial=0"], "resources.points_per_trial (or auto) must be a whole number >= 1"),
    (["resources.points_per_trial=most"], "resources.points_per_trial (or auto) must be a whole number"),
    (["resources.finetune_groups=2"], "resources.finetune_groups=2 runs a grid point's transfers in parallel worker "
                                      "groups, and resources.points_per_trial=auto runs several points"),
    (["ray.dashboard_port=70000"], "ray.dashboard_port must be a whole number >= 1 and <= 65535"),
    (["ray.max_concurrent_trials=0"], "ray.max_concurrent_trials must be a whole number >= 1"),
    (["grid.seeds=[-1]"], "each of grid.seeds must be a whole number >= 0"),
    ([f"grid.seeds=[{HUGE}]"], "each of grid.seeds must be a whole number >= 0"),
    (["grid=images_per_class", "grid.pretrain_seeds=[1e30]"], "each of grid.pretrain_seeds must be a whole number"),
    (["grid.budget=0"], "budget must be a whole number >= 1"),
    ([f"grid.budget={HUGE}"], "budget must be a whole number >= 1"),
    (["grid.subset_seed=-1"], "subset_seed must be a whole number >= 0"),
    (["grid.points=[{label_set:fine,images_per_class:0}]"], "images_per_class must be a whole number >= 1"),
    (["grid.points=[{label_set:random_0}]"], "label set random_0 has no classes"),
    (["grid.findings.0.above=nan"], "grid.findings[1].above must be a number"),
    # unknown keys, top-level and nested, and keys removed
    (["foo=1"], "unknown key 'foo'"),
    (["+foo=1"], "unknown key 'foo'"),
    (["pretrain.epoch=3"], "unknown key 'pretrain.epoch'; did you mean pretrain.epochs"),
    (["+pretrain.epoch=3"], "pretrain: unknown key 'epoch'; did you mean epochs"),
    (["+ray.adress=x"], "ray: unknown key 'adress'; did you mean address"),
    (["+grid.bugdet=5"], "grid: unknown key 'bugdet'; did you mean budget"),
    (["grid.points=[{label_set:fine,budgte:5}]"], "unknown key 'budgte'; did you mean budget"),
    (["data.nope=x"], "unknown key 'data.nope'"),
    (["+data.nope=x"], "data: unknown key 'nope'"),
    (["~pretrain"], "pretrain is missing"),
    (["~pretrain.epochs"], "pretrain.epochs is missing"),
    (["~data.imagenet"], "data.imagenet is missing"),
    (["~model_args"], "model_args is missing"),
    (["~grid.name"], "grid.name is missing"),
    # unicode and control characters
    (["grid.points=[{label_set:é}]"], "cannot read the override 'grid.points=[{label_set:é}]'"),
    (["grid.points=[{label_set:'é'}]"], "unknown label set 'é'"),
    (["grid.points=[{label_set:'fine\x00'}]"], "unknown label set 'fine\\x00'"),
    (["grid.tasks=['sun397\u202e']"], "unknown task(s) ['sun397\\u202e']"),
    (["run='a\nb'"], "run names folders and files"),
    (["run=../../etc"], "run names folders and files"),
    (["grid.name=a/b"], "grid.name names folders and files"),
    (["pretrain.epochs='\U0001f600'"], "pretrain.epochs must be a whole number"),
    # empty and repeated lists
    (["grid.points=[]"], "grid.points is empty"),
    (["~grid.points"], "grid.points is empty"),
    (["grid.seeds=[]"], "grid.seeds must be a non-empty list"),
    (["grid=images_per_class", "grid.pretrain_seeds=[]"], "grid.pretrain_seeds must be a non-empty list"),
    (["grid.tasks=[sun397,sun397]"], "grid.tasks lists sun397 more than once"),
    (["grid.seeds=[0,0]"], "grid.seeds lists 0 more than once"),
    (["grid.tasks=[]"], None),  # pretrainings only
    (["grid.findings=[]"], None),
    # malformed Hydra syntax
    (["a"], "cannot read the override 'a'"),
    (["=5"], "the override '=5' names no key"),
    (["=="], "names no key"),
    (["pretrain.epochs=["], "cannot read the override 'pretrain.epochs=['"),
    (["pretrain..epochs=1"], "cannot read the override"),
    (["pretrain.epochs==1"], "cannot read the override"),
    (["pretrain.epochs=1,2"], "pretrain.epochs=1,2"),
    (["+pretrain.epochs=3"], "An item is already at 'pretrain.epochs'"),
    (["pretrain.epochs=${nope}"], "pretrain.epochs: cannot resolve its value"),
    (["pretrain.epochs=${oc.env:TRANSFER_GRIDS_NO_SUCH_VARIABLE}"], "pretrain.epochs: cannot resolve its value"),
    (["grid.points=[{label_set:${nope}}]"], "grid.points[0].label_set: cannot resolve its value"),
    (["grid=nope"], "unknown grid 'nope'"),
    (["scale="], "unknown scale ''"),
    # what is sane plans
    (["model={name:alexnet,args:{variant:small,width:0.25}}"], None),
    (["pretrain.lr=1", "finetune.momentum=0", "pretrain.image_size=64", "grid.seeds=[4294967295]"], None),
    (["grid.points=[{label_set:'fine'}]", "grid.budget=1000000000"], None),
]


@pytest.mark.parametrize("overrides, message", ADVERSARIAL, ids=[" ".join(o) for o, _ in ADVERSARIAL])
def test_adversarial_overrides_plan_sanely_or_are_refused_naming_the_fault(overrides, message, storage):
    outcome = plan_or_error(overrides, storage)
    if message is None:
        assert not isinstance(outcome, Exception), outcome
    else:
        assert isinstance(outcome, ConfigError) and message in str(outcome)




@pytest.mark.parametrize(
    "label_set, message",
    [("random_5000", "choose between 1 and 1000 classes"), ("extra_100000", "candidate classes")],
)
def test_a_label_set_larger_than_its_classes_is_refused_naming_the_point(label_set, message, storage):
    outcome = plan_or_error([f"grid.points=[{{label_set:{label_set}}}]"], storage)
    assert isinstance(outcome, ConfigError) and message in str(outcome) and "grid point 1" in str(outcome)


# Keys of every section, and keys no section has.
KEYS = [
    *(f"{section}.{key}" for section, keys in RECIPE_RANGES.items() for key in keys),
    *(f"resources.{key}" for key in ("num_workers", "use_gpu", "cpus_per_worker", "gpus_per_worker", "max_failures",
                                     "loader_workers", "finetune_groups", "points_per_trial")),
    *(f"ray.{key}" for key in ("address", "dashboard_host", "dashboard_port", "max_concurrent_trials")),
    "run", "dry_run", "report", "published_weights", "model", "model_args.alexnet", "model_args.alexnet.width",
    "model_args.alexnet.variant", "model_args.alexnet.dropout", "grid.budget", "grid.subset_seed", "grid.seeds",
    "grid.tasks", "grid.points", "grid.name", "grid.protocol", "grid.figure", "grid.figure.title", "grid.findings",
    "grid.findings.0.above", "grid.findings.0.task", "grid.findings.0.compare",
    "pretrain.epoch", "foo", "grid.nope", "pretrain", "+pretrain.nope", "+grid.pretrain_seeds", "~grid.seeds",
]  # fmt: skip
SCALARS = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([0, -1, 1, 2, 31, 32, 64, 1024, 65_535, 2**31, 2**32, 2**63, 10**40]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=8),
)


def containers(inner: st.SearchStrategy) -> st.SearchStrategy:
    """Lists and mappings of what ``inner`` draws."""
    return st.lists(inner, max_size=3) | st.dictionaries(
        st.from_regex(r"[a-z_]{1,8}", fullmatch=True), inner, max_size=2
    )


VALUES = st.recursive(SCALARS, containers, max_leaves=5)
NUMBERS = st.one_of(  # at and around the bounds of what keys take
    st.integers(-2, 100),
    st.integers(-2, 70_000),
    st.floats(-1, 20),
    st.sampled_from([2**32 - 1, 2**32, 2**63, 1e-9, 10.5]),
)


def hydra_value(value) -> str:
    """``value`` in Hydra's override syntax."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, (int, float)):
        return repr(value)  # nan, inf, -inf, 1e+30
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list):
        return "[" + ",".join(map(hydra_value, value)) + "]"
    return "{" + ",".join(f"{key}:{hydra_value(item)}" for key, item in value.items()) + "}"


OVERRIDES = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(KEYS), VALUES.map(hydra_value)).map("=".join),
        st.tuples(st.sampled_from(KEYS), NUMBERS.map(hydra_value)).map("=".join),
        st.tuples(st.sampled_from(KEYS), st.text(max_size=12)).map("=".join),  # unquoted: any syntax at all
        st.text(max_size=16),  # not even key=value
    ),
    min_size=1,
    max_size=3,
)


@settings(FUZZ, max_examples=80)
@given(overrides=OVERRIDES)
def test_random_overrides_plan_sanely_or_are_refused_clearly(overrides, storage):
    plan_or_error(overrides, storage)


NEAR_VALID = {  # what a grid point's keys take, at and around their bounds
    "label_set": st.sampled_from(["fine", "random_250", "up_down_127", "extra_100", "pascal_removed", "random_0"]),
    "images_per_class": NUMBERS | st.just("all"),
    "budget": NUMBERS,
    "subset_seed": NUMBERS,
    "extra_include_under": st.sampled_from([["dog.n.01"], ["dog.n.01", "cat.n.01"], [], "dog.n.01"]),
    "extra_exclude_under": st.sampled_from([["bird.n.01"], ["nope.n.01"]]),
    "model": st.sampled_from(
        ["alexnet", "resnet18", "vit_tiny_patch16_224", {"name": "alexnet", "args": {"variant": "small", "width": 2}}]
    ),
    **{
        section: st.dictionaries(st.sampled_from([*keys, "nope"]), NUMBERS, max_size=2)
        for section, keys in RECIPE_RANGES.items()
    },
}
PLAUSIBLE_POINTS = st.tuples(
    NEAR_VALID["label_set"],
    st.lists(
        st.sampled_from([k for k in NEAR_VALID if k != "label_set"]).flatmap(
            lambda key: NEAR_VALID[key].map(lambda value: (key, value))
        ),
        max_size=2,
    ),
).map(lambda point: {"label_set": point[0], **dict(point[1])})
ANY_POINTS = st.fixed_dictionaries(
    {"label_set": NEAR_VALID["label_set"] | st.text(max_size=6)},
    optional={**{key: strategy | VALUES for key, strategy in NEAR_VALID.items() if key != "label_set"}, "nope": VALUES},
)
POINTS = st.lists(PLAUSIBLE_POINTS | ANY_POINTS, min_size=1, max_size=2)  # fmt: skip


@settings(FUZZ, max_examples=40)
@given(points=POINTS, grid=st.sampled_from(["classes_vs_examples", "images_per_class", "coarse_vs_fine"]))
def test_random_grid_points_plan_sanely_or_are_refused_clearly(points, grid, storage):
    plan_or_error([f"grid={grid}", f"grid.points={hydra_value(points)}"], storage)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["pretrain.epochs=abc"], "pretrain.epochs must be a whole number"),
        (["grid.tasks=sun397"], "grid.tasks must be a list of names"),
        (["a"], "cannot read the override 'a'"),
        (["~pretrain"], "pretrain is missing"),
        (["run=../../etc"], "run names folders and files"),
        (["grid.points=[{label_set:'\u732b'}]"], "unknown label set '\u732b'"),
    ],
)
def test_the_driver_exits_2_with_one_error_line(overrides, message, storage, capsys):
    assert main([*overrides, "dry_run=true", f"storage={storage}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


# VOC annotations and split lists --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def voc(tmp_path_factory, tiny_voc) -> Path:
    """A copy of the tiny VOCdevkit for a test to corrupt (and restore: ``corrupted``)."""
    root = tmp_path_factory.mktemp("voc") / "VOCdevkit"
    shutil.copytree(tiny_voc, root, ignore=shutil.ignore_patterns(COMPLETE_MARKER))
    return root


@contextlib.contextmanager
def corrupted(path: Path, data: bytes | None):
    """Inside the block the file holds ``data`` (None: it is deleted); after it, its own bytes again."""
    original = path.read_bytes()
    if data is None:
        path.unlink()
    else:
        path.write_bytes(data)
    try:
        yield path
    finally:
        path.write_bytes(original)


def voc_task_outcome(root: Path, task: str, broken: Path) -> str:
    """``ok`` when the task's layout check passes and the readers list only sane images (each on disk, each box
    inside its image with its corners in order) that MMDetection's own reader also takes; else the clear error,
    which names the broken file."""
    try:
        TASKS[task].check_layout(root)
    except DataFormatError as error:
        assert_clear(error)
        assert broken.name in str(error), str(error)
        return str(error)
    if task == "pascal_det":
        images = [image for split in ("trainval", "test") for image in list_voc_detection(root, split)]
        assert mmdet_reads_as_we_do(root, images)
    else:
        images = [person.image for split in ("train", "val") for person in list_voc_action(root, split)]
    for image in images:
        assert image.path.is_file()
        for obj in image.objects:
            x0, y0, x1, y1 = obj.box
            assert 0 <= x0 <= x1 <= image.width and 0 <= y0 <= y1 <= image.height, (image, obj)
    return "ok"


def mmdet_reads_as_we_do(root: Path, images) -> bool:
    """MMDetection's VOC reader, on the split lists the detector gives it, reads every image and box as ours does
    (its boxes are VOC's minus one)."""
    init_default_scope("mmdet")
    cfg = Config.fromfile(CONFIG)
    split_lists, _ = readable_split_lists(root, root.parent / "detector")
    set_data(cfg, root, 96, 2, 0, split_lists)
    theirs = {}
    for loader in SPLITS:
        annotations_only = {"pipeline": [], "test_mode": True, "serialize_data": False}  # no gc.collect() per build
        dataset = DATASETS.build({**getattr(cfg, f"{loader}_dataloader").dataset, **annotations_only})
        for index in range(len(dataset)):
            info = dataset.get_data_info(index)
            theirs[info["img_id"]] = [tuple(o["bbox"]) for o in info["instances"]]
    ours = {image.image_id: [tuple(c - 1 for c in obj.box) for obj in image.objects] for image in images}
    return theirs == ours


def annotation(root: Path, year: str = "2007") -> Path:
    """The first annotation of the year's."""
    return sorted((root / f"VOC{year}" / "Annotations").glob("*.xml"))[0]


def replace_first(pattern: str, replacement: str):
    return lambda text: re.sub(pattern, replacement, text, count=1, flags=re.S)


XML_DEFECTS = {  # name: (how the first annotation is broken, what the error says; None: it reads)
    "truncated": (lambda text: text[: len(text) // 2], "not valid XML"),
    "empty": (lambda text: "", "not valid XML"),
    "garbled": (lambda text: text[:40] + "\x00<<&&" + text[45:], "not valid XML"),
    "no width": (replace_first(r"<width>.*?</width>", ""), "the image has no <size/width>"),
    "no object name": (replace_first(r"<name>.*?</name>", ""), "object 1 has no <name>"),
    "no xmin": (replace_first(r"<xmin>.*?</xmin>", ""), "object 1 has no <bndbox/xmin>"),
    "text coordinate": (replace_first(r"<xmin>.*?</xmin>", "<xmin>left</xmin>"), "non-numeric box coordinate"),
    "huge coordinate": (replace_first(r"<xmax>.*?</xmax>", "<xmax>1e400</xmax>"), "not a finite number"),
    "nan coordinate": (replace_first(r"<ymin>.*?</ymin>", "<ymin>nan</ymin>"), "not a finite number"),
    "negative coordinate": (replace_first(r"<xmin>.*?</xmin>", "<xmin>-5</xmin>"), "is not inside"),
    "box outside the image": (replace_first(r"<xmax>.*?</xmax>", "<xmax>5000</xmax>"), "is not inside"),
    "swapped corners": (
        lambda text: re.sub(
            r"<xmin>(.*?)</xmin>(.*?)<xmax>(.*?)</xmax>", r"<xmin>\3</xmin>\2<xmax>\1</xmax>", text, count=1, flags=re.S
        ),
        "xmin <= xmax",
    ),  # fmt: skip
    "fractional coordinate": (replace_first(r"<xmin>(\d+)</xmin>", r"<xmin>\1.7</xmin>"), None),
    "unknown class": (replace_first(r"<name>.*?</name>", "<name>chiar</name>"), "unknown class 'chiar'"),
    "unicode class": (replace_first(r"<name>.*?</name>", "<name>\u732b</name>"), "unknown class '\u732b'"),
    "class with spaces": (replace_first(r"<name>(.*?)</name>", r"<name> \1 </name>"), "unknown class ' "),
    "difficult not 0 or 1": (replace_first(r"<difficult>.*?</difficult>", "<difficult>yes</difficult>"), "0 or 1"),
    "no flags": (lambda text: re.sub(r"<(difficult|truncated)>.*?</\1>", "", text), None),
    "zero width": (replace_first(r"<width>.*?</width>", "<width>0</width>"), "not a whole number of pixels"),
    "fractional width": (replace_first(r"<width>(\d+)</width>", r"<width>\1.0</width>"), "not a whole number"),
    "image elsewhere": (replace_first(r"<filename>.*?</filename>", "<filename>../x.jpg</filename>"), "not a file"),
    "latin-1 declared": (
        lambda text: '<?xml version="1.0" encoding="ISO-8859-1"?>' + text.replace("Unspecified", "Unsp\xe9cified"),
        None,
    ),
    "windows line ends": (lambda text: text.replace("\n", "\r\n"), None),
    "unknown tags": (replace_first(r"<object>", "<object><colour>red</colour>"), None),
}


@pytest.mark.parametrize("defect", XML_DEFECTS)
def test_a_broken_voc_annotation_is_named_before_the_run(voc, defect):
    breaks, message = XML_DEFECTS[defect]
    path = annotation(voc)
    encoding = "latin-1" if defect == "latin-1 declared" else "utf-8"
    with corrupted(path, breaks(path.read_text()).encode(encoding)):
        outcome = voc_task_outcome(voc, "pascal_det", path)
    assert outcome == "ok" if message is None else message in outcome


@pytest.mark.parametrize(
    "defect, data, message",
    [
        ("undeclared latin-1", lambda data: data.replace(b"Unspecified", b"Unsp\xe9cified"), "not valid XML"),
        ("annotation missing", lambda data: None, "has no annotation"),
    ],
)
def test_an_annotation_in_another_encoding_or_missing_is_named(voc, defect, data, message):
    path = annotation(voc)
    with corrupted(path, data(path.read_bytes())):
        assert message in voc_task_outcome(voc, "pascal_det", path)


def test_a_missing_voc_image_is_named(voc):
    image = sorted((voc / "VOC2007" / "JPEGImages").glob("*.jpg"))[0]
    with corrupted(image, None):
        assert "is not a file in" in voc_task_outcome(voc, "pascal_det", annotation(voc))


def in_actions(pattern: str, replacement: str):
    """Replaces the first ``pattern`` inside an object's <actions>."""
    return lambda text: re.sub(r"<actions>.*?</actions>", lambda m: re.sub(pattern, replacement, m[0], count=1),
                               text, count=1, flags=re.S)  # fmt: skip


@pytest.mark.parametrize(
    "breaks, message",
    [
        (in_actions(r"<(\w+)>1</\1>", "<flying>1</flying>"), "unknown action(s) ['flying']"),
        (in_actions(r"<(\w+)>1</\1>", r"<\1>yes</\1>"), None),  # that person does nothing VOC names
        (lambda text: re.sub(r"<actions>.*?</actions>", "", text, flags=re.S), None),
    ],
    ids=["unknown action", "action flag in words", "no actions"],
)
def test_a_broken_action_annotation_is_named(voc, breaks, message):
    path = annotation(voc, "2012")
    with corrupted(path, breaks(path.read_text()).encode()):
        outcome = voc_task_outcome(voc, "voc_action", path)
    assert outcome == "ok" if message is None else message in outcome


SPLIT_DEFECTS = {  # name: (how a split list is broken, what the error says; None: it reads as before)
    "windows line ends": (lambda data: data.replace(b"\n", b"\r\n"), None),
    "blank lines and spaces": (lambda data: b"\n  \n" + data.replace(b"\n", b"  \n\n") + b"\n\n", None),
    "byte-order mark": (lambda data: b"\xef\xbb\xbf" + data, None),
    "no final line end": (lambda data: data.rstrip(b"\n"), None),
    "listed twice": (lambda data: data + data.split(b"\n")[0] + b"\n", "is listed again (first on line 1)"),
    "annotation missing": (lambda data: data + b"009999\n", "009999 has no annotation"),
    "a path": (lambda data: data + b"../../etc/passwd\n", "is not a VOC image id"),
    "NUL byte": (lambda data: b"000\x0001\n" + data, ":1: '000\\x0001' is not a VOC image id"),
    "not UTF-8": (lambda data: data + b"\xff\xfe\n", "not UTF-8 text"),
    "empty": (lambda data: b"", "lists no images"),
}


@pytest.mark.parametrize("task, listing", [("pascal_det", "VOC2007/ImageSets/Main/test.txt"),
                                           ("voc_action", "VOC2012/ImageSets/Action/train.txt")])  # fmt: skip
@pytest.mark.parametrize("defect", SPLIT_DEFECTS)
def test_a_broken_split_list_is_named_and_what_real_lists_hold_is_read(voc, task, listing, defect):
    breaks, message = SPLIT_DEFECTS[defect]
    path = voc / listing
    lister = list_voc_detection if task == "pascal_det" else list_voc_action
    split = path.stem
    before = lister(voc, split)
    with corrupted(path, breaks(path.read_bytes())):
        outcome = voc_task_outcome(voc, task, path)
        if message is None:
            assert outcome == "ok" and lister(voc, split) == before
        else:
            assert message in outcome and (":" in outcome.split(path.name, 1)[1] or "lists no" in message)


def byte_mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """``data`` truncated, with bytes replaced, inserted or cut."""
    position = st.integers(0, max(len(data) - 1, 0))
    noise = st.binary(min_size=1, max_size=6) | st.sampled_from([b"-", b"9", b"e400", b"nan", b"&", b"<x>", b"\r\n"])
    return st.one_of(
        position.map(lambda at: data[:at]),
        st.tuples(position, noise).map(lambda p: data[: p[0]] + p[1] + data[p[0] + len(p[1]) :]),
        st.tuples(position, noise).map(lambda p: data[: p[0]] + p[1] + data[p[0] :]),
        st.tuples(position, st.integers(1, 30)).map(lambda p: data[: p[0]] + data[p[0] + p[1] :]),
    )


@settings(FUZZ, max_examples=60)
@given(data=st.data())
def test_randomly_corrupted_voc_files_are_read_sanely_or_named(voc, data):
    task = data.draw(st.sampled_from(["pascal_det", "voc_action"]))
    year, lists, splits = (
        ("2007", "Main", ("trainval", "test")) if task == "pascal_det" else ("2012", "Action", ("train", "val"))
    )
    candidates = [
        *sorted((voc / f"VOC{year}" / "Annotations").glob("*.xml"))[:10],
        *(voc / f"VOC{year}" / "ImageSets" / lists / f"{split}.txt" for split in splits),
    ]  # fmt: skip
    path = data.draw(st.sampled_from(candidates))
    with corrupted(path, data.draw(byte_mutations(path.read_bytes()))):
        voc_task_outcome(voc, task, path)


# SUN397 and Food-101 ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sun(tmp_path_factory, tiny_sun397) -> Path:
    root = tmp_path_factory.mktemp("sun") / "SUN397"
    shutil.copytree(tiny_sun397, root, ignore=shutil.ignore_patterns(COMPLETE_MARKER))
    return root


def sun_outcome(root: Path, broken: Path) -> str:
    """``ok`` when the layout check passes and both splits list only images on disk, each in a class; else the
    clear error, which names the broken file."""
    try:
        TASKS["sun397"].check_layout(root)
    except DataFormatError as error:
        assert_clear(error)
        assert broken.name in str(error), str(error)
        return str(error)
    for split in ("train", "test"):
        samples, classes = list_sun397(root, split, 1)
        assert samples and len(set(classes)) == len(classes)
        assert all((root / path).is_file() and 0 <= label < len(classes) for path, label in samples)
        assert len({path for path, _ in samples}) == len(samples)
    return "ok"


SUN_DEFECTS = {  # name: (file, how it is broken, what the error says; None: it reads as before)
    "windows line ends": ("Testing_01.txt", lambda data: data.replace(b"\n", b"\r\n"), None),
    "blank lines": ("Training_01.txt", lambda data: b"\n\n" + data.replace(b"\n", b" \n\n"), None),
    "byte-order mark": ("ClassName.txt", lambda data: b"\xef\xbb\xbf" + data, None),
    "class listed twice": ("ClassName.txt", lambda data: data + data.split(b"\n")[0] + b"\n", "listed again"),
    "image listed twice": ("Testing_01.txt", lambda data: data + data.split(b"\n")[0] + b"\n", "listed again"),
    "unknown class": ("Testing_01.txt", lambda data: data + b"/k/kitchen/sun_x.jpg\n", "in no class"),
    "image missing": ("Training_01.txt", lambda data: data + data.split(b"\n")[0][:-4] + b"_gone.jpg\n", "missing"),
    "path out of the root": ("Testing_01.txt", lambda data: data + b"/a/abbey/../../../etc/passwd\n", "in no class"),
    "a folder": ("Testing_01.txt", lambda data: data + data.split(b"\n")[0].rsplit(b"/", 1)[0] + b"/..\n",
                 "missing"),
    "not UTF-8": ("ClassName.txt", lambda data: data + b"/a/\xe9glise\n", "not UTF-8 text"),
    "no classes": ("ClassName.txt", lambda data: b"\n", "lists no classes"),
    "no images": ("Testing_01.txt", lambda data: b"", "lists no images"),
}  # fmt: skip


@pytest.mark.parametrize("defect", SUN_DEFECTS)
def test_a_broken_sun397_partition_is_named_and_what_real_lists_hold_is_read(sun, defect):
    name, breaks, message = SUN_DEFECTS[defect]
    path = sun / "Partitions" / name
    before = [list_sun397(sun, split, 1) for split in ("train", "test")]
    with corrupted(path, breaks(path.read_bytes())):
        outcome = sun_outcome(sun, path)
        if message is None:
            assert outcome == "ok" and [list_sun397(sun, split, 1) for split in ("train", "test")] == before
        else:
            assert message in outcome


@settings(FUZZ, max_examples=60)
@given(data=st.data())
def test_randomly_corrupted_sun397_partitions_are_read_sanely_or_named(sun, data):
    path = sun / "Partitions" / data.draw(st.sampled_from(["ClassName.txt", "Training_01.txt", "Testing_01.txt"]))
    with corrupted(path, data.draw(byte_mutations(path.read_bytes()))):
        sun_outcome(sun, path)


@pytest.mark.parametrize(
    "name, breaks, message",
    [
        ("test.txt", lambda data: data.replace(b"\n", b"\r\n"), None),
        ("classes.txt", lambda data: data + data.split(b"\n")[0] + b"\n", "listed again"),
        ("train.txt", lambda data: data + data.split(b"\n")[0] + b"\n", "listed again"),
        ("train.txt", lambda data: data + data.split(b"\n")[0] + b"_gone\n", "missing"),
        ("train.txt", lambda data: data + b"not_a_dish/1\n", "is not '<class>/<id>'"),
        ("test.txt", lambda data: data + b"\xff\n", "not UTF-8 text"),
        ("test.txt", lambda data: b"", "lists no images"),
    ],
)
def test_a_broken_food101_list_is_named(tmp_path, name, breaks, message):
    root = tmp_path / "food-101"
    shutil.copytree(synthetic.resolve("food101", "embedded:tiny"), root)
    path = root / "meta" / name
    path.write_bytes(breaks(path.read_bytes()))
    if message is None:
        TASKS["food101"].check_layout(root)
        assert all((root / p).is_file() for p in TASKS["food101"].read(root, "test").paths)
    else:
        with pytest.raises(DataFormatError, match=re.escape(message)) as error:
            TASKS["food101"].check_layout(root)
        assert_clear(error.value)
        assert name in str(error.value)


# ImageNet's LOC_val_solution.csv (formats/imagenet.py) -------------------------------------------------------------



@pytest.fixture(scope="module")
def imagenet_val(tmp_path_factory, tiny_imagenet) -> Path:
    """The tiny ImageNet's flat val/ and LOC_val_solution.csv, without train/ (the induction probes read val)."""
    root = tmp_path_factory.mktemp("imagenet") / "imagenet"
    shutil.copytree(tiny_imagenet / "val", root / "val")
    (root / "train").mkdir()
    shutil.copy(tiny_imagenet / "LOC_val_solution.csv", root)
    return root


def first_row(data: bytes) -> bytes:
    return data.split(b"\n")[1]


@pytest.mark.parametrize(
    "defect, breaks, message",
    [
        ("windows line ends", lambda data: data.replace(b"\n", b"\r\n"), None),
        ("blank lines", lambda data: data.replace(b"\n", b"\n\n"), None),
        ("no header", lambda data: data.split(b"\n", 1)[1], "expected 'ImageId,<wnid> ...'"),
        ("image missing", lambda data: data + b"ILSVRC2012_val_99999999,n01440764 1 1 2 2\n", "no image"),
        ("no label", lambda data: data + first_row(data).split(b",")[0] + b",\n", "expected 'ImageId,<wnid> ...'"),
        ("not UTF-8", lambda data: data + b"\xff\n", "not UTF-8"),
        ("no rows", lambda data: data.split(b"\n")[0] + b"\n", "LOC_val_solution.csv"),
        ("not a wnid", lambda data: data.replace(first_row(data).split(b",")[1][:9], b"nxyz", 1), "nxyz"),
        ("an image labelled twice", lambda data: data + first_row(data).split(b",")[0] + b",n01443537\n", "ILSVRC2012_val_00000001"),
    ],
)  # fmt: skip
def test_a_broken_imagenet_val_solution_is_named(imagenet_val, defect, breaks, message):
    path = imagenet_val / "LOC_val_solution.csv"
    with corrupted(path, breaks(path.read_bytes())):
        for task in ("imagenet_fine", "imagenet_coarse"):
            if message is None:
                TASKS[task].check_layout(imagenet_val)
                examples = TASKS[task].read(imagenet_val, "held_out_test")
                assert examples.paths and all((examples.root / p).is_file() for p in examples.paths)
                assert task == "imagenet_coarse" or set(examples.classes) <= set(imagenet1k_wnids())
            else:
                with pytest.raises(DataFormatError, match=re.escape(message)) as error:
                    TASKS[task].check_layout(imagenet_val)
                assert_clear(error.value)


# Images ---------------------------------------------------------------------------------------------------------


def encoded(mode: str = "RGB", fmt: str = "JPEG") -> bytes:
    """A 20 x 16 px noise image of ``mode`` as a ``fmt`` file's bytes."""
    pixels = np.random.default_rng(0).integers(0, 256, (16, 20, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).convert("L" if mode == "I;16" else "RGB").convert(mode).save(out, format=fmt)
    return out.getvalue()


JPEG = encoded()
DECODES = {  # what is in a file named .JPEG, and whether it decodes (real ImageNet has PNG, CMYK and greyscale)
    "jpeg": (JPEG, True),
    "png": (encoded("RGB", "PNG"), True),
    "cmyk": (encoded("CMYK"), True),
    "greyscale": (encoded("L"), True),
    "palette png": (encoded("P", "PNG"), True),
    "rgba png": (encoded("RGBA", "PNG"), True),
    "16-bit png": (encoded("I;16", "PNG"), True),
    "tiff": (encoded("RGB", "TIFF"), True),
    "zero bytes": (b"", False),
    "garbage": (bytes(range(256)) * 4, False),
    "text": (b"not an image\n", False),
    "header only": (JPEG[:100], False),
    "truncated scan": (JPEG[: len(JPEG) - 200], False),
    "jpeg start only": (b"\xff\xd8\xff", False),
    "garbled ppm header": (b"P6\n2\x936 16\n255\n" + bytes(960), False),  # ValueError in Pillow
    "billions of pixels": (b"P6\n100000 100000\n255\n", False),  # DecompressionBombError in Pillow
}


def load_all(folder: Path, files: dict[str, bytes]) -> tuple[int, int]:
    """Every file through the training path (prepared once, then training batches, which leave out the
    unreadable): (images that came out, images skipped)."""
    for name, data in files.items():
        (folder / name).write_bytes(data)
    names = sorted(files)
    prepared = prepare_images(folder, names, prepared_size(32))
    batches = engine.Batches([(prepared, np.arange(len(names)))], torch.arange(len(names)), image_size=32, train=True,
                             batch_size=1, seed=0, mean=(0.5,) * 3, std=(0.25,) * 3, device=torch.device("cpu"))  # fmt: skip
    loaded = 0
    for images, targets in batches:
        assert images.shape[1:] == (3, 32, 32) and torch.isfinite(images).all()
        loaded += len(targets)
    return loaded, batches.skipped


def test_every_kind_of_image_file_decodes_or_is_skipped_and_counted(tmp_path):
    files = {f"{n:02d}.JPEG": data for n, (data, _) in enumerate(DECODES.values())}
    readable = sum(decodes for _, decodes in DECODES.values())
    assert load_all(tmp_path, files) == (readable, len(DECODES) - readable)


def pillow_decodes(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.convert("RGB")
    except Exception:  # what the loader counts as unreadable: anything Pillow cannot decode
        return False
    return True


@settings(FUZZ, max_examples=40)
@given(files=st.lists(st.sampled_from([JPEG, DECODES["png"][0], DECODES["cmyk"][0]]).flatmap(byte_mutations),
                      min_size=1, max_size=6))  # fmt: skip
def test_randomly_corrupted_images_decode_or_are_counted_exactly(tmp_path, files):
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    readable = sum(map(pillow_decodes, files))
    assert load_all(folder, {f"{n}.JPEG": data for n, data in enumerate(files)}) == (readable, len(files) - readable)


def test_the_detector_leaves_out_and_counts_the_images_it_cannot_decode(tmp_path, tiny_voc):
    """MMDetection fails the worker on an image it cannot decode (in the test split it cannot even skip one): the
    detector gives it lists of the images that decode, and every item of both data loaders then loads."""
    root = tmp_path / "VOCdevkit"
    shutil.copytree(tiny_voc, root, ignore=shutil.ignore_patterns(COMPLETE_MARKER))
    images = root / "VOC2007" / "JPEGImages"
    trainval = (root / "VOC2007/ImageSets/Main/trainval.txt").read_text().split()
    test = (root / "VOC2007/ImageSets/Main/test.txt").read_text().split()
    unreadable = {trainval[0]: b"", trainval[1]: b"garbage", test[0]: JPEG[:100]}
    readable = {trainval[2]: DECODES["png"][0], test[1]: DECODES["cmyk"][0], test[2]: DECODES["greyscale"][0]}
    for image_id, data in {**unreadable, **readable}.items():
        (images / f"{image_id}.jpg").write_bytes(data)

    split_lists, skipped = readable_split_lists(root, tmp_path / "work")
    assert skipped == len(unreadable)
    listed = {loader: path.read_text().split() for loader, path in split_lists.items()}
    assert listed == {
        "train": [i for i in trainval if i not in unreadable],
        "test": [i for i in test if i not in unreadable],
    }

    init_default_scope("mmdet")
    cfg = Config.fromfile(CONFIG)
    set_data(cfg, root, 96, 2, 0, split_lists)
    for loader in SPLITS:
        dataset = DATASETS.build(getattr(cfg, f"{loader}_dataloader").dataset)
        items = [dataset[index] for index in range(len(dataset))]
        assert all(item["inputs"].shape[0] == 3 for item in items)
    assert len(items) == len(test) - 1
