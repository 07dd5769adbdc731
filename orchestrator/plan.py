"""A run configuration -> the pretrainings and transfers it implies, each with a content hash.

A unit's hash covers every input that determines its result (data source and what it holds, subset, network,
recipe, task, seed), so reruns recognise finished work, a changed dataset is new work, and two grids that share a pretraining share its hash:
a union grid runs it once. The plan also records each experiment (grid) of the run as the report reads
it: its figure, findings, and which units measure each of its points (``record``, written to
``<run>/plans/<grid>.json``).
"""

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass

from omegaconf import DictConfig

import synthetic
from formats.imagenet import class_list
from models import full_args
from models.published import weights_file, weights_name
from orchestrator.config import (
    ConfigError,
    experiments,
    grid_figure,
    grid_findings,
    grid_points,
    grid_protocol,
    grid_seeds,
    grid_tasks,
)
from orchestrator.cost import FEATURE_PROTOCOLS, SEARCH_PROTOCOLS, search_settings
from orchestrator.store import filesystem_of, join, write_whole
from subsets.labels import adds_extra_classes
from subsets.manifest import SubsetSpec
from tasks import TASKS


def content_hash(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Pretraining:
    """A network to transfer: trained on a subset, or (``weights``) published weights with no subset."""

    unit_id: str
    subset: SubsetSpec | None
    model: dict  # {name, args}: models.create_model's
    recipe: dict  # the pretrain section (published weights: their image_size only)
    weights: dict | None = None  # {tag, folder, imagenet (a real ImageNet to measure top-1 on, or None)}


@dataclass(frozen=True)
class Finetuning:
    unit_id: str
    pretrain_id: str
    task: str
    protocol: str
    seed: int
    recipe: dict  # the protocol's section
    data_source: str
    data_fingerprint: str  # what the data source held when planned: synthetic.fingerprint


@dataclass(frozen=True)
class Experiment:
    """One grid of the run: its figure and findings (orchestrator.config.grid_figure, grid_findings), tasks, the
    protocol that transfers to each task, seeds, and points, each {point, label_set, images_per_class, budget,
    classes, labels, model (its name), pretrainings (the unit ids of its replicates), finetunings ({task: unit
    ids})}."""

    name: str
    figure: dict
    findings: list[dict]
    tasks: list[str]
    seeds: list[int]
    points: list[dict]
    protocols: dict[str, str]


@dataclass(frozen=True)
class Plan:
    pretrainings: list[Pretraining]
    finetunings: list[Finetuning]
    experiments: list[Experiment]

    def finetunings_of(self, pretrain_id: str) -> list[Finetuning]:
        return [f for f in self.finetunings if f.pretrain_id == pretrain_id]


def make_plan(config: DictConfig) -> Plan:
    """The units of the run's experiments, each unit once; every point's label set is resolved on ImageNet-1k's
    classes (errors name it)."""
    pretrainings, finetunings, imagenet1k = {}, {}, class_list("imagenet1k")
    fingerprint_of = functools.cache(synthetic.fingerprint)  # each data source is listed once per plan
    planned = [_plan_experiment(e, imagenet1k, fingerprint_of, pretrainings, finetunings) for e in experiments(config)]
    return Plan(list(pretrainings.values()), list(finetunings.values()), planned)


def _plan_experiment(
    config: DictConfig, imagenet1k: list[str], fingerprint_of, pretrainings: dict, finetunings: dict
) -> Experiment:
    """Adds the grid's units to ``pretrainings`` and ``finetunings`` (unit id -> unit) and returns the grid."""
    seeds = grid_seeds(config)
    tasks = [TASKS[name] for name in grid_tasks(config)]
    points, measured = grid_points(config), {}
    for number, point in enumerate(points, start=1):
        if point["weights"] is not None:
            pretraining = _published(point, config, fingerprint_of)
            pretrainings.setdefault(pretraining.unit_id, pretraining)
            _add_transfers(config, tasks, seeds, point, pretraining.unit_id, None, fingerprint_of, measured, finetunings)
            continue
        subset = SubsetSpec(
            label_set=point["label_set"], images_per_class=point["images_per_class"], budget=point["budget"],
            seed=point["subset_seed"], source=config.data.imagenet,
            extra_include_under=point["extra_include_under"], extra_exclude_under=point["extra_exclude_under"],
            extra_source=config.data.imagenet_extra if adds_extra_classes(point["label_set"]) else None,
        )  # fmt: skip
        try:
            labels = subset.resolve_labels(imagenet1k)
        except ValueError as error:  # a label set the classes cannot make: random_5000 of 1000
            raise ConfigError(f"grid {config.grid.name}, grid point {number}: {error}") from None
        subset = subset.fingerprinted(fingerprint_of)
        model = point["model"]
        # The network is part of the recipe, under its name: the ids of AlexNet units planned before models had
        # a registry, when the recipe held an "alexnet" section, stay the same.
        identity = {"subset": subset.identity(), "recipe": {**point["pretrain"], model["name"]: full_args(**model)}}
        pretrain_id = content_hash(identity)
        pretrainings.setdefault(pretrain_id, Pretraining(pretrain_id, subset, model, point["pretrain"]))
        _add_transfers(config, tasks, seeds, point, pretrain_id, labels, fingerprint_of, measured, finetunings)
    return Experiment(config.grid.name, grid_figure(config), grid_findings(config, points), [t.name for t in tasks],
                      seeds, list(measured.values()), {t.name: grid_protocol(config, t.name) for t in tasks})  # fmt: skip


def _published(point: dict, config: DictConfig, fingerprint_of) -> Pretraining:
    """The pretraining unit of published weights: their file (what it holds, by size and time) and the real ImageNet
    their top-1 is measured on, if the run has one, are its identity."""
    model, tag, folder = point["model"]["name"], point["weights"], config.published_weights
    held = "timm cache"
    if folder is not None:
        path = weights_file(folder, model, tag)
        held = f"{path.stat().st_size}:{path.stat().st_mtime_ns}" if path.is_file() else "absent"
    source = config.data.imagenet
    imagenet = None if source.startswith(synthetic.EMBEDDED) else source
    identity = {"published": weights_name(model, tag), "weights": held,
                "imagenet": imagenet and fingerprint_of("imagenet", imagenet)}  # fmt: skip
    weights = {"tag": tag, "folder": folder, "imagenet": imagenet}
    return Pretraining(content_hash(identity), None, point["model"], point["pretrain"], weights)


def _add_transfers(config, tasks, seeds, point, pretrain_id, labels, fingerprint_of, measured, finetunings) -> None:
    """Adds the point's transfer units (each task, each seed) to ``finetunings`` and the point's summary, with its
    pretraining, to ``measured``."""
    published = point["weights"] is not None
    summary = measured.setdefault(point["point"], {
        "point": point["point"], "label_set": point["label_set"], "images_per_class": point["images_per_class"],
        "budget": point["budget"], "classes": 1000 if published else len(labels.labels),
        "labels": 1000 if published else labels.num_labels, "model": point["model"]["name"],
        "weights": point["weights"], "pretrainings": [], "finetunings": {task.name: [] for task in tasks},
    })  # fmt: skip
    if pretrain_id in summary["pretrainings"]:
        return  # two points that are the same pretraining
    summary["pretrainings"].append(pretrain_id)
    for task in tasks:
        protocol = grid_protocol(config, task.name)
        source, recipe = config.data[task.dataset], point[protocol]
        held = fingerprint_of(task.dataset, source)
        for seed in seeds:
            unit = {"pretrain": pretrain_id, "task": task.name, "seed": seed, "recipe": recipe, "data": source,
                    "data_fingerprint": held}  # fmt: skip
            if protocol != task.protocol:  # units of a task's own protocol keep the ids they had before grids chose
                unit["protocol"] = protocol
            unit_id = content_hash(unit)
            finetunings.setdefault(
                unit_id, Finetuning(unit_id, pretrain_id, task.name, protocol, seed, recipe, source, held)
            )
            summary["finetunings"][task.name].append(unit_id)


def record(plan: Plan, config: DictConfig) -> dict:
    """The plan as the report reads it (JSON): the run's grid and scale, each experiment, and each
    pretraining's subset and model by unit id."""
    return {
        "grid": config.grid.name, "scale": config.scale,
        "experiments": [dataclasses.asdict(experiment) for experiment in plan.experiments],
        "pretrainings": {p.unit_id: {"subset": p.subset and p.subset.identity(), "model": p.model,
                                     "weights": p.weights and p.weights["tag"]} for p in plan.pretrainings},
    }  # fmt: skip


def save(plan: Plan, config: DictConfig, run_dir: str) -> None:
    """Writes ``record`` to ``<run_dir>/plans/<grid>.json``: one file per grid run under the run's name, all of
    which the report reads, so that runs of several grids under one name combine."""
    filesystem, path = filesystem_of(join(run_dir, "plans"))
    filesystem.create_dir(path, recursive=True)
    write_whole(filesystem, join(path, f"{config.grid.name}.json"), json.dumps(record(plan, config), indent=1).encode())


def describe(plan: Plan, config: DictConfig, finished: set[str]) -> str:
    """The plan in words, with what is already finished and a rough compute estimate."""
    lines = [f"grid {config.grid.name}: {len(plan.pretrainings)} pretrainings, {len(plan.finetunings)} fine-tunings"]
    if len(plan.experiments) > 1:
        listed = sum(len(point["pretrainings"]) for e in plan.experiments for point in e.points)
        lines.append(
            "experiments: " + ", ".join(f"{e.name} ({sum(len(p['pretrainings']) for p in e.points)} pretrainings)"
                                        for e in plan.experiments)
            + f"; {listed - len(plan.pretrainings)} of their pretrainings are shared and run once"
        )  # fmt: skip
    for p in plan.pretrainings:
        state = "done" if p.unit_id in finished else "to run"
        todo = sum(f.unit_id not in finished for f in plan.finetunings_of(p.unit_id))
        if p.weights is not None:
            what = f"published weights {p.weights['tag']:14s} at {p.recipe['image_size']} px"
        else:
            limit = f"{p.subset.images_per_class}/class" if p.subset.images_per_class else f"budget {p.subset.budget}"
            limit = limit if p.subset.images_per_class or p.subset.budget else "every image"
            what = f"{p.subset.label_set:14s} {limit:14s} {p.recipe['epochs']} epochs"
        lines.append(f"  pretrain {p.unit_id}  {p.model['name']:10s} {what}  [{state}]  fine-tunings: "
                     f"{len(plan.finetunings_of(p.unit_id))} ({todo} to run)")  # fmt: skip
    for experiment in plan.experiments:
        for finding in experiment.findings:
            if not finding["trend"] and None in (finding["compare"], finding["against"]):
                lines.append(f"  not judged here ({experiment.name}: the points it compares are not single points "
                             f"of this grid): {finding['claim']}")  # fmt: skip
    passes, unknown = 0, 0
    for p in plan.pretrainings:
        if p.unit_id in finished or p.weights is not None:
            continue
        if p.subset.budget:
            passes += p.subset.budget * p.recipe["epochs"]
        elif p.subset.images_per_class:
            classes = len(p.subset.resolve_labels(class_list("imagenet1k")).labels)
            passes += p.subset.images_per_class * classes * p.recipe["epochs"]
        else:
            unknown += 1
    pending = [f for f in plan.finetunings if f.unit_id not in finished]
    classifiers = [f for f in pending if f.protocol == "finetune"]
    detections = [f for f in pending if f.protocol == "detect"]
    probes = [f for f in pending if f.protocol in FEATURE_PROTOCOLS]
    searches = [f for f in pending if f.protocol in SEARCH_PROTOCOLS]
    settings = sorted({len(search_settings(f.recipe)) for f in searches})
    steps = sorted({f.recipe["steps"] for f in searches})
    epochs = sorted({f.recipe["epochs"] for f in classifiers})
    iterations = sorted({f.recipe["iterations"] for f in detections})
    per_trial = config.resources.settings_per_trial
    lines.append(
        f"estimate: {passes:,} pretraining image passes"
        + (f" plus {unknown} pretraining(s) on every image of their classes" if unknown else "")
        + "; " + (", ".join(part for part in (
            classifiers and f"{len(classifiers)} classifier fine-tunings of {'/'.join(map(str, epochs))} epochs",
            detections and f"{len(detections)} detector fine-tunings of {'/'.join(map(str, iterations))} iterations",
            probes and f"{len(probes)} fixed-feature probes",
            searches and f"{len(searches)} hyper-parameter searches of {'/'.join(map(str, settings))} settings x "
                         f"{'/'.join(map(str, steps))} steps",
        ) if part) or "no transfers to run")
        + f"; {_worker_groups(plan, config)}"
        + (f" plus {_search_trials(plan, searches, per_trial)} Tune trials of searches (settings and refits, "
           f"resources.settings_per_trial={per_trial})" if searches else "")
    )  # fmt: skip
    return "\n".join(lines)


def _worker_groups(plan: Plan, config: DictConfig) -> str:
    """How many Ray Train worker groups the grid points start (``resources.points_per_trial`` to a trial, each trial
    ``resources.finetune_groups`` groups), or how they are dealt where that depends on the cluster."""
    per_trial = config.resources.points_per_trial
    if per_trial == "auto":
        return (f"{len(plan.pretrainings)} grid points dealt over as many Ray Train worker groups as fit at once "
                "(resources.points_per_trial=auto)")  # fmt: skip
    groups = -(-len(plan.pretrainings) // per_trial) * config.resources.finetune_groups
    return f"{groups} Ray Train worker-group starts for {len(plan.pretrainings)} grid points"


def _search_trials(plan: Plan, searches: list[Finetuning], per_trial: int) -> int:
    """The Tune trials that train the searches' settings and refits, ``per_trial`` jobs each, a pretraining's apart
    (orchestrator.stages)."""
    trials = 0
    for pretraining in plan.pretrainings:
        own = [unit for unit in searches if unit.pretrain_id == pretraining.unit_id]
        trials += -(-sum(len(search_settings(unit.recipe)) for unit in own) // per_trial) + -(-len(own) // per_trial)
    return trials
