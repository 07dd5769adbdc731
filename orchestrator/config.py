"""Command-line overrides + orchestrator/conf -> one validated run configuration, and its grid's points.

Grids are config files in Hydra config groups: ``grid=NAME`` picks conf/grid/NAME.yaml,
``scale=NAME`` conf/scale/NAME.yaml, and any key is overridable as ``key=value``. Keys are
strict: an unknown key is an error that names the nearest valid ones. The ``data`` section has one
key per dataset that pretraining or a registered task reads.

A grid point (``grid.points``) has a schema, ``POINT_KEYS``; a grid-level key of the same name is
the default of every point. Any value may be given per scale, ``{embedded: 3000, paper: 500000}``,
and the run's scale picks one. ``grid.pretrain_seeds`` repeats every point's pretraining (its images
and initialisation) once per seed. A grid names its figure (``grid.figure``) and the paper's
findings it checks (``grid.findings``, see ``grid_findings``) for the report. A union grid
(``grid.grids``) is several grids run as one: each member is an experiment of the run, with the
union's own keys (seeds, tasks, sizes set on the command line) over its own. Everything a point names (label set, task, model) is resolved here,
before Ray starts, so ``dry_run=true`` catches it. Nothing here imports training code.
"""

import difflib
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import GrammarParseError, OmegaConfBaseException

import synthetic
from formats.wordnet import UnknownClassError, synset_named
from models import check_model
from models.published import WeightsError, check_tag, check_weights
from models.published import image_size as published_image_size
from orchestrator.cost import throughput
from subsets.labels import UnknownLabelSetError, method_of
from tasks import TASKS, datasets

CONF_DIR = Path(__file__).parent / "conf"
# What a grid point may set; a grid-level key of the same name is every point's default.
POINT_KEYS = {
    "label_set": "the pretraining's label set (python -m subsets label-sets)",
    "images_per_class": "images of every kept class (all: every image)",
    "budget": "images in all, spread equally over the labels",
    "subset_seed": "the seed of the subset's sampling and random label sets",
    "extra_include_under": "extra_<N>: keep only candidates under these synsets",
    "extra_exclude_under": "extra_<N>: drop the candidates under these synsets",
    "model": "the network pretrained: a name (its args from model_args), or {name: ..., args: {...}}",
    "weights": "instead of a pretraining on a subset: the model's published ImageNet weights, by timm's tag (tv_in1k "
    "for resnet50.tv_in1k), from the published_weights folder",
    "pretrain": "overrides of the pretrain recipe",
    "finetune": "overrides of the finetune protocol's recipe",
    "detect": "overrides of the detect protocol's recipe",
    "probe": "overrides of the probe protocol's recipe",
    "fixed_features": "overrides of the fixed_features protocol's recipe",
    "finetune_search": "overrides of the finetune_search protocol's recipe",
    "scratch_search": "overrides of the scratch_search protocol's recipe",
}
GRID_KEYS = {"name", "points", "tasks", "protocol", "seeds", "pretrain_seeds", "grids", "figure", "findings",
             *POINT_KEYS}  # fmt: skip
FIGURE_AXES = {  # grid.figure.x: what the figure plots each task's metric against
    "images_per_class": "images per class (log scale): the paper's Fig 1",
    "labels": "the number of pretraining labels (log scale): the paper's Fig 2",
    "label_set": "one bar per label set",
    "imagenet_top1": "the pretrained network's ImageNet top-1, one point per network: Kornblith et al.'s figures",
}
FINDING_KEYS = {
    "claim": "the finding in words",
    "task": "the task whose metric is compared, or pretrain (the pretraining's validation top-1)",
    "compare": "the point whose metric is compared: a mapping of point keys that picks one grid point",
    "against": "the point it is compared against (the same form)",
    "trend": "instead of compare/against: the slope of the metric against log2 of images_per_class or labels, "
    "per doubling, over every point and replicate",
    "above": "the claim holds when compare - against > this many points (percent)",
    "below": "the claim holds when compare - against < this many points",
    "within": "the claim holds when |compare - against| < this many points (percent)",
    "paper": "the paper's own difference, in points, where ../shared/PAPERS.md confirms it",
}
PRETRAIN = "pretrain"  # a finding's task that names the pretraining's own validation top-1
MAX_SEED = 2**32 - 1  # the largest seed that numpy's legacy seeding, torch and the subset sampler all take


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Range:
    """The numbers a key may take, from low to high. The bounds keep out what no run means: past them a value is a
    typo that would never finish (epochs=1e30), diverge, or overflow the 64-bit integers of a result row."""

    low: float
    high: float
    whole: bool = True

    def check(self, value, where: str) -> None:
        kinds = (int,) if self.whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not self.low <= value <= self.high:
            kind = "a whole number" if self.whole else "a number"
            raise ConfigError(f"{where} must be {kind} >= {self.low} and <= {self.high}, not {value!r}")


@dataclass(frozen=True)
class Flag:
    """A key that is true or false."""

    def check(self, value, where: str) -> None:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, not {value!r}")


EPOCHS, BATCH_SIZE = Range(1, 10_000), Range(1, 65_536)
LEARNING_RATE, MOMENTUM, WEIGHT_DECAY = Range(1e-8, 10, whole=False), Range(0, 1, whole=False), Range(0, 1, whole=False)
PENALTY = Range(1e-12, 1e12, whole=False)
STEPS = Range(1, 100_000_000)
CROP_PCT = Range(0.1, 1, whole=False)  # the share of the resized image's side that is read; past 1 is not a crop
RECIPE_RANGES = {  # every key of each recipe section of conf/config.yaml
    "pretrain": {"epochs": EPOCHS, "batch_size": BATCH_SIZE, "lr": LEARNING_RATE, "momentum": MOMENTUM,
                 "weight_decay": WEIGHT_DECAY, "lr_step_epochs": EPOCHS,
                 # 32 px: the embedded data's size; the model's own least input is checked by building it
                 "image_size": Range(32, 1024)},
    "finetune": {"epochs": EPOCHS, "batch_size": BATCH_SIZE, "lr": LEARNING_RATE, "momentum": MOMENTUM,
                 "weight_decay": WEIGHT_DECAY, "lr_step_epochs": EPOCHS},
    "probe": {"batch_size": BATCH_SIZE, "l2": Range(0, 1e6, whole=False), "iterations": Range(1, 1_000_000)},
    "fixed_features": {"batch_size": BATCH_SIZE, "iterations": Range(1, 1_000_000), "l2_min": PENALTY,
                       "l2_max": PENALTY, "l2_count": Range(1, 1000), "crop_pct": CROP_PCT},
    **{protocol: {"steps": STEPS, "batch_size": BATCH_SIZE, "momentum": MOMENTUM, "lr_min": LEARNING_RATE,
                  "lr_max": LEARNING_RATE, "lr_count": Range(1, 100), "weight_decay_min": WEIGHT_DECAY,
                  "weight_decay_max": WEIGHT_DECAY, "weight_decay_count": Range(0, 100), "weight_decay_zero": Flag(),
                  "checkpoint_steps": STEPS, "crop_pct": CROP_PCT}
       for protocol in ("finetune_search", "scratch_search")},
    "detect": {"iterations": Range(1, 10_000_000), "batch_size": Range(1, 1024), "lr": LEARNING_RATE,
               "image_scale": Range(32, 2048), "checkpoint_interval": Range(1, 10_000_000),
               "rois_per_image": Range(1, 4096), "test_proposals": Range(1, 100_000)},
}  # fmt: skip
RESOURCE_RANGES = {
    "num_workers": Range(1, 10_000),
    "cpus_per_worker": Range(1, 1024),
    "gpus_per_worker": Range(0.01, 64, whole=False),
    "max_failures": Range(-1, 1000),  # -1: Ray restarts a failed worker group for ever
    "loader_workers": Range(0, 256),
    "finetune_groups": Range(1, 1000),
    "settings_per_trial": Range(1, 100_000),
}
SEED = Range(0, MAX_SEED)
PRICE = Range(0, 1e6, whole=False)
IMAGES = Range(1, 10**9)  # images_per_class and budget ("all" for every image)
POINTS_DIFFERENCE = Range(-100, 100, whole=False)  # a finding's above, below, within and paper: percent points
# A run and a grid name folders and files of the store.
NAME = re.compile(r"[^./\\\x00-\x1f][^/\\\x00-\x1f]{0,199}")


def available(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _keys(node, prefix="") -> list[str]:
    if not isinstance(node, dict) or not node:
        return [prefix]
    return [k for key, value in node.items() for k in _keys(value, f"{prefix}.{key}" if prefix else key)]


def _compose(overrides: list[str]) -> DictConfig:
    # The data section is the registered tasks' datasets, so that a new task's dataset needs no edit here.
    ConfigStore.instance().store(name="datasets", node={"data": {name: "embedded:default" for name in datasets()}})
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        config = compose("config", overrides=overrides, return_hydra_config=True)
    scale = config.hydra.runtime.choices.scale
    with open_dict(config):
        del config["hydra"]
        config.scale = scale
    return config


def base_keys() -> list[str]:
    return _keys(OmegaConf.to_container(_compose([]), resolve=False))


def load(overrides: list[str]) -> DictConfig:
    """The run configuration for these ``key=value`` overrides, checked."""
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if not key:
            raise ConfigError(f"the override {override!r} names no key: write key=value (keys: --help)")
        if key in ("grid", "scale") and "=" in override and override.split("=", 1)[1] not in available(key):
            raise ConfigError(f"unknown {key} {override.split('=', 1)[1]!r}; available: {', '.join(available(key))}")
    try:
        config = _compose(_as_meant([_quoted_uri(o) for o in overrides]))
    except OverrideParseException as error:
        given = next((o for o in overrides if o.lstrip("+~") == error.override.lstrip("+~")), error.override)
        raise ConfigError(
            f"cannot read the override {given!r}: write key=value, and quote a value that holds spaces, "
            "non-ASCII letters or characters such as = , [ ] { } ( ) : ' \" (key='...')"
        ) from None
    except (ConfigCompositionException, MissingConfigException, OmegaConfBaseException) as error:
        raise ConfigError(_explain(error, overrides)) from None
    check(config)
    return config


def _quoted_uri(override: str) -> str:
    """``storage=`` or ``data.NAME=`` a URI, quoted for Hydra: a URI's query (``s3://bucket/runs?endpoint_override=
    HOST:PORT&scheme=http``) holds characters that Hydra's override grammar reads as its own."""
    key, _, value = override.partition("=")
    name = key.lstrip("+")
    if not (name == "storage" or name.startswith("data.")) or "://" not in value or value[:1] in ("'", '"'):
        return override
    escaped = value.replace("'", "\\'")
    return f"{key}='{escaped}'"


def _as_meant(overrides: list[str]) -> list[str]:
    """The overrides, with ``key=value`` for a key that the configuration gives per scale ({embedded: ...,
    paper: ...}) turned into a replacement of the whole mapping (``~key +key=value``): one value for every
    scale, which is what ``grid.seeds=[0]`` means on a grid whose seeds differ by scale; and a grid key the grid
    does not set (``grid.seeds=[0]`` on a union) added, as Hydra's ``+grid.seeds=[0]`` would."""
    plain = [o for o in overrides if "=" in o and not o.startswith(("+", "~")) and o.split("=", 1)[0] != "grid"]
    if not plain:
        return overrides
    try:
        base = _compose([o for o in overrides if o not in plain])
    except (OverrideParseException, ConfigCompositionException, MissingConfigException, OmegaConfBaseException):
        return overrides  # composing them as given names the error
    rewritten = []
    for override in overrides:
        key, _, value = override.partition("=")
        current = OmegaConf.select(base, key, default=None) if override in plain else None
        per_scale = isinstance(current, DictConfig) and current and set(current) <= set(available("scale"))
        grid_key = key.removeprefix("grid.") if key.startswith("grid.") else None
        absent_grid_key = override in plain and grid_key in GRID_KEYS and grid_key not in base.grid
        rewritten += (
            [f"~{key}", f"+{key}={value}"] if per_scale else [f"+{override}"] if absent_grid_key else [override]
        )
    return rewritten


def _explain(error: Exception, overrides: list[str]) -> str:
    message = str(error)
    merging = re.match(r"Error merging override (.+?)=(.*)", message)
    if merging:  # a list, a value given per scale ({embedded: ..., paper: ...}) or a mapping, set to another shape
        key, value = merging.groups()
        if isinstance(error.__cause__, GrammarParseError):
            return (
                f"cannot set {key} to {value}: ${{...}} in it is no interpolation OmegaConf reads; write \\${{ for a $"
            )
        if getattr(error.__cause__, "object_type", None) is list:
            return (
                f"cannot set {key} to {value}: {key} is a list here; give a list or replace it: ~{key} +{key}={value}"
            )
        return (
            f"cannot set {key} to {value}: in this configuration {key} is a mapping (a value per scale, or keys); "
            f"set one entry ({key}.{{scale}}={value}) or replace it whole with ~{key} +{key}={value}"
        )
    known = base_keys()
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key in ("grid", "scale") or key in known or any(k.startswith(key + ".") for k in known):
            continue
        close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
        return (
            f"unknown key {key!r}"
            + (f"; did you mean {', '.join(close)}?" if close else "")
            + (" Valid keys are listed by `python -m orchestrator.run --help`.")
        )
    return message


def _unknown_keys(keys, valid, where: str) -> None:
    for key in sorted(set(keys) - set(valid), key=str):
        close = difflib.get_close_matches(str(key), sorted(valid), n=3, cutoff=0.6)
        raise ConfigError(
            f"{where}: unknown key {key!r}" + (f"; did you mean {', '.join(close)}?" if close else "")
            + f" Valid keys: {', '.join(sorted(valid))}"
        )  # fmt: skip


def at_scale(value, scale: str, where: str):
    """``value`` with every per-scale mapping ({embedded: ..., paper: ...}) replaced by its entry for ``scale``."""
    if isinstance(value, dict) and value and set(value) <= set(available("scale")):
        if scale not in value:
            raise ConfigError(f"{where} has no value for scale {scale!r} (it has {', '.join(sorted(value))})")
        return at_scale(value[scale], scale, where)
    if isinstance(value, dict):
        return {key: at_scale(item, scale, f"{where}.{key}") for key, item in value.items()}
    return value


def check_recipe(section: str, recipe: dict, where: str) -> None:
    for key, value in recipe.items():
        RECIPE_RANGES[section][key].check(value, f"{where}.{key}")


def _names(value, where: str, example: str) -> list[str]:
    """``value``, a list of names, each once."""
    if not isinstance(value, list) or not all(isinstance(name, str) and name.strip() for name in value):
        raise ConfigError(f"{where} must be a list of names such as {example}, not {value!r}")
    _once_each(value, where)
    return value


def _seeds(value, where: str) -> list[int]:
    """``value``, a non-empty list of seeds, each once."""
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where} must be a non-empty list of whole numbers such as [0, 1], not {value!r}")
    for seed in value:
        SEED.check(seed, f"each of {where}")
    _once_each(value, where)
    return value


def _once_each(values: list, where: str) -> None:
    repeated = sorted({str(value) for value in values if values.count(value) > 1})
    if repeated:
        raise ConfigError(f"{where} lists {', '.join(repeated)} more than once: list each once")


def _mapping(value, where: str, what: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be {what}, not {value!r}")
    return value


def grid_tasks(config: DictConfig) -> list[str]:
    """The grid's tasks at the run's scale (a list, or a list per scale); none: pretrainings only."""
    tasks = OmegaConf.to_container(config.grid, resolve=True).get("tasks") or []
    return list(_names(at_scale(tasks, config.scale, "grid.tasks"), "grid.tasks", "[sun397, voc_action]"))


def grid_protocol(config: DictConfig, task: str) -> str:
    """The protocol that transfers to ``task`` in this grid: the grid's ``protocol`` (every task of a Kornblith grid
    goes through one), or the task's own."""
    grid = OmegaConf.to_container(config.grid, resolve=True)
    protocol = at_scale(grid.get("protocol"), config.scale, "grid.protocol")
    return TASKS[task].protocol if protocol is None else protocol


def grid_seeds(config: DictConfig) -> list[int]:
    """The grid's fine-tuning seeds at the run's scale (default [0])."""
    seeds = at_scale(OmegaConf.to_container(config.grid, resolve=True).get("seeds", [0]), config.scale, "grid.seeds")
    return list(_seeds(seeds, "grid.seeds"))


def _pretrain_seeds(grid: dict, scale: str) -> list[int] | None:
    seeds = at_scale(grid.get("pretrain_seeds"), scale, "grid.pretrain_seeds")
    return None if seeds is None else list(_seeds(seeds, "grid.pretrain_seeds"))


def _check_label_set(point: dict, where: str) -> None:
    """The point's label set names one, and only extra_<N> sets have extra-class filters."""
    name = point["label_set"]
    if not isinstance(name, str):
        raise ConfigError(f"{where}: label_set must be the name of a label set, such as fine, not {name!r}")
    try:
        method, number = method_of(name)
    except UnknownLabelSetError as error:
        raise ConfigError(f"{where}: {error}") from None
    if number is not None and number < 1:
        raise ConfigError(f"{where}: label set {name} has no classes: its number counts them, from 1")
    for key in ("extra_include_under", "extra_exclude_under"):
        synsets = _names(point.get(key) or [], f"{where}: {key}", "[dog.n.01]")
        if synsets and not method.adds_extra_classes:
            raise ConfigError(f"{where}: {key} filters the classes extra_<N> label sets add; {name} adds none "
                              "(give it on the extra_<N> points only)")  # fmt: skip
        for synset in synsets:
            try:
                synset_named(synset)
            except UnknownClassError as error:
                raise ConfigError(f"{where}: {key}: {error}") from None


def _point_model(model, model_args: dict, where: str) -> dict:
    """``{name, args}`` of a point's model: a name (its args from model_args) or such a mapping."""
    model = {"name": model} if isinstance(model, str) else model
    if not isinstance(model, dict) or not isinstance(model.get("name"), str) or set(model) - {"name", "args"}:
        raise ConfigError(f"{where}: model is a name or a mapping {{name: ..., args: {{...}}}}, not {model!r}")
    args = model.get("args", model_args.get(model["name"]))
    if args is not None and not isinstance(args, dict):
        raise ConfigError(f"{where}: the arguments of model {model['name']} (model_args.{model['name']}) are a "
                          f"mapping such as {{width: 0.5}}, not {args!r}")  # fmt: skip
    return {"name": model["name"], "args": dict(args or {})}


def grid_points(config: DictConfig) -> list[dict]:
    """Every point of the grid with the grid's defaults and the run's scale applied: point (its number in
    grid.points), label_set, images_per_class, budget, subset_seed, extra_include_under, extra_exclude_under,
    model ({name, args}), weights (a published tag, or None) and the recipes (pretrain and each protocol's section,
    with the point's overrides); a point appears once per pretrain seed. Errors name the point and the key."""
    whole = OmegaConf.to_container(config, resolve=True)
    grid = whole["grid"]
    _unknown_keys(grid, GRID_KEYS, "grid")
    if grid.get("grids"):
        raise ConfigError(f"grid {grid.get('name')} is a union of grids: its points are its members' (experiments)")
    replicates = _pretrain_seeds(grid, config.scale)
    defaults = {key: value for key, value in grid.items() if key in POINT_KEYS}
    sections = set(RECIPE_RANGES)
    recipes = {section: at_scale(whole[section], config.scale, section) for section in sections}
    listed = at_scale(grid.get("points") or [], config.scale, "grid.points")  # a list, or a list per scale
    if not isinstance(listed, list):
        raise ConfigError(f"grid.points must be a list of points such as [{{label_set: fine}}], not {listed!r}")
    points = []
    for number, point in enumerate(listed, start=1):
        where = f"grid point {number} ({point})"
        if not isinstance(point, dict):
            raise ConfigError(f"{where}: a point is a mapping of {', '.join(POINT_KEYS)}")
        _unknown_keys(point, POINT_KEYS, where)
        if "images_per_class" in point and "budget" in point:
            raise ConfigError(f"{where}: give images_per_class or budget, not both")
        own_limit = {"images_per_class", "budget"} & set(point)
        merged = {k: v for k, v in defaults.items() if not (own_limit and k in ("images_per_class", "budget"))}
        merged = at_scale({**merged, **point}, config.scale, where)
        if merged.get("weights") is not None:
            points.append(_published_point(number, point, merged, whole, recipes, where))
            continue
        if "label_set" not in merged:
            raise ConfigError(f"{where}: no label_set (give one in the point or at grid level)")
        if replicates is not None and "subset_seed" in merged:
            raise ConfigError(f"{where}: give subset_seed or grid.pretrain_seeds, not both")
        _check_label_set(merged, where)
        if merged.get("images_per_class") == "all":
            merged["images_per_class"] = None
        resolved = {
            "point": number,
            "label_set": merged["label_set"],
            "images_per_class": merged.get("images_per_class"),
            "budget": None if merged.get("images_per_class") is not None else merged.get("budget"),
            "subset_seed": merged.get("subset_seed", 0),
            "extra_include_under": tuple(merged.get("extra_include_under") or ()),
            "extra_exclude_under": tuple(merged.get("extra_exclude_under") or ()),
            "model": _point_model(merged.get("model", whole["model"]), whole["model_args"], where),
        }
        for key, allowed in (("images_per_class", IMAGES), ("budget", IMAGES), ("subset_seed", SEED)):
            if resolved[key] is not None:
                allowed.check(resolved[key], f"{where}: {key}")
        resolved |= _recipes(merged, recipes, where)
        resolved["weights"] = None
        points += [{**resolved, "subset_seed": seed} for seed in replicates] if replicates is not None else [resolved]
    if not points:
        raise ConfigError("grid.points is empty: a grid needs at least one point")
    return points


SUBSET_KEYS = ("label_set", "images_per_class", "budget", "subset_seed", "extra_include_under", "extra_exclude_under")


def _published_point(number: int, point: dict, merged: dict, whole: dict, recipes: dict, where: str) -> dict:
    """A point whose network is published weights: no subset, the protocols' recipes, and an input size that is the
    weights' own (Kornblith et al. transfer each network at the size it was trained at)."""
    if given := sorted(set(point) & {*SUBSET_KEYS, "pretrain"}):
        raise ConfigError(f"{where}: a point with published weights has no pretraining; leave out {', '.join(given)}")
    model = _point_model(merged.get("model", whole["model"]), {}, where)
    if model["args"]:
        raise ConfigError(f"{where}: published weights fit the model's own architecture: give no args")
    try:
        check_tag(model["name"], merged["weights"])
    except WeightsError as error:
        raise ConfigError(f"{where}: {error}") from None
    resolved = {"point": number, "weights": merged["weights"], "model": model, "label_set": None,
                "images_per_class": None, "budget": None, "subset_seed": None, "extra_include_under": (),
                "extra_exclude_under": (),
                "pretrain": {"image_size": published_image_size(model["name"], merged["weights"])}}  # fmt: skip
    return resolved | _recipes(merged, {k: v for k, v in recipes.items() if k != "pretrain"}, where)


def _recipes(merged: dict, recipes: dict, where: str) -> dict:
    """Each recipe section with the point's overrides."""
    resolved = {}
    for section, base in recipes.items():
        override = _mapping(merged.get(section) or {}, f"{where}: {section}", f"a mapping of {section} keys")
        _unknown_keys(override, base, f"{where}: {section}")
        resolved[section] = {**base, **override}
        check_recipe(section, resolved[section], section if not override else f"{where}: {section}")
    return resolved


def experiments(config: DictConfig) -> list[DictConfig]:
    """The run's experiments, each a configuration with one grid: the grid itself or, for a union grid
    (``grid.grids``), each member grid with the union's own keys (seeds, tasks, sizes) over the member's."""
    union = OmegaConf.to_container(config.grid, resolve=True)
    if not union.get("grids"):
        return [config]
    if union.get("points"):
        raise ConfigError(f"grid {union['name']}: a union of grids (grid.grids) has no points of its own")
    shared = {key: value for key, value in union.items() if key not in ("name", "grids", "figure", "findings")}
    found = []
    for name in _names(union["grids"], "grid.grids", "[images_per_class, num_classes]"):
        if name not in available("grid"):
            raise ConfigError(
                f"grid {union['name']}: unknown member grid {name!r}; grids: {', '.join(available('grid'))}"
            )
        file = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "grid" / f"{name}.yaml"))
        # A member's grid is composed as Hydra composes it alone: its defaults (other grid files) included.
        member = OmegaConf.to_container(_compose([f"grid={name}"]).grid, resolve=True)
        if set(file) - {"grid", "defaults"} or member.get("grids"):
            raise ConfigError(f"grid {name} cannot be a member of {union['name']}: a member sets its grid section "
                              "only, and is not a union itself")  # fmt: skip
        experiment = config.copy()
        with open_dict(experiment):
            experiment.grid = {**member, **shared}
        found.append(experiment)
    return found


def _one_point(selector, points: list[dict], where: str) -> int | None:
    """The number of the one grid point that ``selector`` (label_set, images_per_class, budget) picks; None when
    it picks none or several (the grid's points were overridden: the finding does not apply to them)."""
    if not isinstance(selector, dict) or not selector:
        raise ConfigError(f"{where} picks a grid point by its keys, like {{images_per_class: 500}}, not {selector!r}")
    _unknown_keys(selector, ("label_set", "images_per_class", "budget"), where)
    wanted = {key: None if value == "all" else value for key, value in selector.items()}
    matched = sorted({p["point"] for p in points if all(p[key] == value for key, value in wanted.items())})
    return matched[0] if len(matched) == 1 else None


def grid_findings(config: DictConfig, points: list[dict] | None = None) -> list[dict]:
    """The paper's findings the grid checks, at the run's scale: claim, task, trend (None, or the key whose log2
    the metric's slope is taken against), compare and against (grid point numbers; None for a trend, and where
    the run's points have no single such point), above, below or within (points, percent; one is set) and paper
    (the paper's difference, or None)."""
    points = points or grid_points(config)
    listed = OmegaConf.to_container(config.grid, resolve=True).get("findings") or []
    if not isinstance(listed, list):
        raise ConfigError(f"grid.findings must be a list of findings (mappings of {', '.join(FINDING_KEYS)}), "
                          f"not {listed!r}")  # fmt: skip
    findings = []
    for number, finding in enumerate(listed, 1):
        where = f"grid.findings[{number}]"
        if not isinstance(finding, dict):
            raise ConfigError(f"{where} is a mapping of {', '.join(FINDING_KEYS)}")
        _unknown_keys(finding, FINDING_KEYS, where)
        finding = at_scale(finding, config.scale, where)
        pair = {"compare", "against"}
        missing = sorted({"claim", "task"} - set(finding)) + ([] if "trend" in finding else sorted(pair - set(finding)))
        if missing:
            raise ConfigError(f"{where} needs {', '.join(missing)}")
        if "trend" in finding and pair & set(finding):
            raise ConfigError(f"{where}: a trend finding compares no two points; give trend or compare/against")
        if finding.get("trend", "images_per_class") not in ("images_per_class", "labels"):
            raise ConfigError(f"{where}.trend is images_per_class or labels, not {finding['trend']!r}")
        if len({"above", "below", "within"} & set(finding)) != 1:
            raise ConfigError(f"{where}: give one of above (compare - against > X), below (compare - against < X) "
                              "or within (|compare - against| < X)")  # fmt: skip
        for key in ("above", "below", "within", "paper"):
            if finding.get(key) is not None:
                POINTS_DIFFERENCE.check(finding[key], f"{where}.{key}")
        for key in ("claim", "task"):
            if not isinstance(finding[key], str) or not finding[key].strip():
                raise ConfigError(f"{where}.{key} must be text ({FINDING_KEYS[key]}), not {finding[key]!r}")
        if finding["task"] != PRETRAIN and finding["task"] not in TASKS:
            close = difflib.get_close_matches(finding["task"], [*TASKS.names(), PRETRAIN], n=2)
            raise ConfigError(
                f"{where}: unknown task {finding['task']!r}" + (f"; did you mean {', '.join(close)}?" if close else "")
            )
        findings.append({
            "claim": finding["claim"], "task": finding["task"], "trend": finding.get("trend"),
            "compare": None if "trend" in finding else _one_point(finding["compare"], points, f"{where}.compare"),
            "against": None if "trend" in finding else _one_point(finding["against"], points, f"{where}.against"),
            "above": finding.get("above"), "below": finding.get("below"), "within": finding.get("within"),
            "paper": finding.get("paper"),
        })  # fmt: skip
    return findings


def grid_figure(config: DictConfig) -> dict:
    """The grid's figure: x (a key of FIGURE_AXES) and title."""
    figure = at_scale(
        OmegaConf.to_container(config.grid, resolve=True).get("figure") or {}, config.scale, "grid.figure"
    )
    _mapping(figure, "grid.figure", "a mapping such as {x: labels, title: ...}")
    _unknown_keys(figure, ("x", "title"), "grid.figure")
    x, title = figure.get("x", "label_set"), figure.get("title", config.grid.name)
    if x not in FIGURE_AXES:
        raise ConfigError(f"grid.figure.x must be one of {', '.join(FIGURE_AXES)}, not {x!r}")
    if not isinstance(title, str):
        raise ConfigError(f"grid.figure.title must be text, not {title!r}")
    return {"x": x, "title": title}


def check(config: DictConfig) -> None:
    """Values no schema catches: every section's keys, the run's settings, tasks, the models, the grid's points and
    findings, numbers and their ranges."""
    try:
        missing = sorted(OmegaConf.missing_keys(config))
        whole = OmegaConf.to_container(config, resolve=True)
    except OmegaConfBaseException as error:
        reason = re.sub(r"^\w+ raised while resolving interpolation: ", "", str(error).splitlines()[0])
        raise ConfigError(f"{getattr(error, 'full_key', 'a key')}: cannot resolve its value: {reason}") from None
    if missing:
        raise ConfigError(f"these keys need a value: {', '.join(missing)}")
    _check_sections(whole)
    _check_settings(whole)
    checked = set()
    for experiment in experiments(config):
        checked |= _check_experiment(experiment, checked)


@functools.cache
def _config_file() -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / "config.yaml"))


def _check_sections(whole: dict) -> None:
    """Every section has the keys conf/config.yaml gives it: no more (a key added with +key=... is as unknown as
    a misspelt one, and would reach a worker as an argument it does not take) and no fewer (one removed with ~)."""
    base = _config_file()
    sections = {key: set(value) for key, value in base.items() if isinstance(value, dict) and key != "model_args"}
    sections["data"] = set(datasets())
    expected = {*base, "data", "grid", "scale"} - {"defaults"}
    _unknown_keys(whole, expected, "the configuration")
    for key in sorted(expected - set(whole)):
        raise ConfigError(f"{key} is missing: the run needs it (was it removed with ~{key}?)")
    for section, keys in sections.items():
        _mapping(whole[section], section, f"a mapping of {', '.join(sorted(keys))}")
        _unknown_keys(whole[section], keys, section)
        for key in sorted(keys - set(whole[section])):
            raise ConfigError(f"{section}.{key} is missing: the run needs it (was it removed with ~{section}.{key}?)")
    _mapping(whole["model_args"], "model_args", "a mapping of model names to their arguments")
    grid = _mapping(whole["grid"], "grid", f"a mapping of {', '.join(sorted(GRID_KEYS))}")
    if "name" not in grid:
        raise ConfigError("grid.name is missing: a grid has a name (was it removed with ~grid.name?)")


def _check_settings(whole: dict) -> None:
    """The run's own settings: its name, storage, Ray, resources and data sources."""
    for key, value in (("dry_run", whole["dry_run"]), ("report", whole["report"]),
                       ("resources.use_gpu", whole["resources"]["use_gpu"])):  # fmt: skip
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, not {value!r}")
    if whole["published_weights"] is not None and not (isinstance(whole["published_weights"], str)
                                                       and whole["published_weights"].strip()):  # fmt: skip
        raise ConfigError(f"published_weights must be a folder, or null for timm's cache, not "
                          f"{whole['published_weights']!r}")  # fmt: skip
    texts = {"storage": whole["storage"], "ray.dashboard_host": whole["ray"]["dashboard_host"],
             **{f"data.{name}": source for name, source in whole["data"].items()}}  # fmt: skip
    if whole["ray"]["address"] is not None:
        texts["ray.address"] = whole["ray"]["address"]
    for key, value in texts.items():
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{key} must be a path, URI or name, not {value!r}")
    for name, source in whole["data"].items():
        if source.startswith(synthetic.EMBEDDED) and source.removeprefix(synthetic.EMBEDDED) not in synthetic.scales(
            name
        ):
            raise ConfigError(f"data.{name}={source}: the embedded {name} is generated at the scales "
                              f"{', '.join(synthetic.scales(name))} (data.{name}=embedded:<scale>), or give a folder")  # fmt: skip
    for key, name in (("run", whole["run"]), ("grid.name", whole["grid"]["name"])):
        if name is not None and not (isinstance(name, str) and NAME.fullmatch(name)):
            raise ConfigError(f"{key} names folders and files of the store: up to 200 characters, no / or \\ or "
                              f"control characters, not starting with a dot; not {name!r}")  # fmt: skip
    Range(1, 65_535).check(whole["ray"]["dashboard_port"], "ray.dashboard_port")
    if whole["ray"]["max_concurrent_trials"] is not None:
        Range(1, 100_000).check(whole["ray"]["max_concurrent_trials"], "ray.max_concurrent_trials")
    for key, allowed in RESOURCE_RANGES.items():
        allowed.check(whole["resources"][key], f"resources.{key}")
    points_per_trial = whole["resources"]["points_per_trial"]
    if points_per_trial != "auto":
        Range(1, 100_000).check(points_per_trial, "resources.points_per_trial (or auto)")
    if points_per_trial != 1 and whole["resources"]["finetune_groups"] != 1:
        raise ConfigError(
            f"resources.finetune_groups={whole['resources']['finetune_groups']} runs a grid point's transfers in "
            f"parallel worker groups, and resources.points_per_trial={points_per_trial} runs several points one after "
            "another in one: choose one (resources.points_per_trial=1 with finetune_groups, on a cluster with workers "
            "to spare; points_per_trial with finetune_groups=1, on a small machine)"
        )
    device, price = whole["cost"]["device"], whole["cost"]["price_per_hour"]
    if device is not None and device not in throughput():
        raise ConfigError(f"cost.device={device!r} has no measured throughput; device kinds of "
                          f"orchestrator/throughput.yaml: {', '.join(sorted(throughput()))}")  # fmt: skip
    if price is not None:
        PRICE.check(price, "cost.price_per_hour")


def _check_experiment(config: DictConfig, checked_models: set[str]) -> set[str]:
    """Checks one grid; returns the models it checked, with their input sizes (each distinct network is built
    once: even on the meta device, building one costs)."""
    where = f"grid {config.grid.name}: "
    tasks = grid_tasks(config)
    grid_seeds(config)
    unknown_tasks = [t for t in tasks if t not in TASKS]
    if unknown_tasks:
        close = sorted({c for t in unknown_tasks for c in difflib.get_close_matches(t, TASKS.names(), n=2, cutoff=0.5)})
        raise ConfigError(
            f"{where}unknown task(s) {unknown_tasks}" + (f"; did you mean {', '.join(close)}?" if close else "")
            + f" Tasks: {', '.join(TASKS.names())}"
        )  # fmt: skip
    grid = OmegaConf.to_container(config.grid, resolve=True)
    if (protocol := at_scale(grid.get("protocol"), config.scale, "grid.protocol")) is not None:
        if protocol not in RECIPE_RANGES or protocol == "pretrain":
            raise ConfigError(f"{where}unknown protocol {protocol!r} (grid.protocol); protocols: "
                              f"{', '.join(sorted(set(RECIPE_RANGES) - {'pretrain'}))}")  # fmt: skip
        for task in tasks:
            if TASKS[task].read is None:
                raise ConfigError(f"{where}task {task} ({TASKS[task].protocol}) is no classification task: the grid's "
                                  f"protocol {protocol} cannot transfer to it; leave it out of grid.tasks")  # fmt: skip
    points = grid_points(config)
    grid_findings(config, points)
    grid_figure(config)
    for tagged in {(p["model"]["name"], p["weights"]) for p in points if p["weights"] is not None}:
        try:
            check_weights(*tagged, config.published_weights)
        except WeightsError as error:
            raise ConfigError(f"{where}{error}") from None
    models = {json.dumps([p["model"], p["pretrain"]["image_size"]], sort_keys=True): p for p in points}
    for key, point in models.items():
        model = point["model"]
        if key not in checked_models:
            try:
                check_model(model["name"], model["args"], image_size=point["pretrain"]["image_size"])
            except ValueError as error:
                raise ConfigError(str(error)) from None
        for task in tasks:
            needed = TASKS[task].requires_model
            if needed and model["name"] != needed:
                raise ConfigError(f"{where}task {task} transfers {needed} pretrainings only, not {model['name']}")
    return set(models)


def run_name(config: DictConfig) -> str:
    return config.run or config.grid.name
