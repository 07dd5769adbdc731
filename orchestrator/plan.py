"""A run configuration -> the pretrainings and transfers it implies, each with a content hash.

A unit's hash covers every input that determines its result (data source, subset, network, recipe,
task, seed), so reruns recognise finished work and two grids that share a pretraining share its hash.
"""

import hashlib
import json
from dataclasses import dataclass

from omegaconf import DictConfig

from formats.imagenet import class_list
from models import full_args
from orchestrator.config import grid_points, grid_seeds, grid_tasks
from subsets.manifest import SubsetSpec
from tasks import TASKS


def content_hash(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Pretraining:
    unit_id: str
    subset: SubsetSpec
    model: dict  # {name, args}: models.create_model's
    recipe: dict  # the pretrain section


@dataclass(frozen=True)
class Finetuning:
    unit_id: str
    pretrain_id: str
    task: str
    protocol: str
    seed: int
    recipe: dict  # the protocol's section
    data_source: str


@dataclass(frozen=True)
class Plan:
    pretrainings: list[Pretraining]
    finetunings: list[Finetuning]

    def finetunings_of(self, pretrain_id: str) -> list[Finetuning]:
        return [f for f in self.finetunings if f.pretrain_id == pretrain_id]


def make_plan(config: DictConfig) -> Plan:
    """The units of the grid; every point's label set is resolved on ImageNet-1k's classes (errors name it)."""
    pretrainings, finetunings, seen = [], [], set()
    imagenet1k, seeds = class_list("imagenet1k"), grid_seeds(config)
    tasks = [TASKS[name] for name in grid_tasks(config)]
    for point in grid_points(config):
        subset = SubsetSpec(
            label_set=point["label_set"], images_per_class=point["images_per_class"], budget=point["budget"],
            seed=point["subset_seed"], source=config.data.imagenet,
            extra_include_under=point["extra_include_under"], extra_exclude_under=point["extra_exclude_under"],
        )  # fmt: skip
        subset.resolve_labels(imagenet1k)
        model = point["model"]
        # The network is part of the recipe, under its name: the ids of AlexNet units planned before models had
        # a registry, when the recipe held an "alexnet" section, stay the same.
        identity = {"subset": subset.identity(), "recipe": {**point["pretrain"], model["name"]: full_args(**model)}}
        pretrain_id = content_hash(identity)
        if pretrain_id in seen:
            continue  # two points that are the same pretraining
        seen.add(pretrain_id)
        pretrainings.append(Pretraining(pretrain_id, subset, model, point["pretrain"]))
        for task in tasks:
            source, recipe = config.data[task.dataset], point[task.protocol]
            for seed in seeds:
                unit = {"pretrain": pretrain_id, "task": task.name, "seed": seed, "recipe": recipe, "data": source}
                finetunings.append(
                    Finetuning(content_hash(unit), pretrain_id, task.name, task.protocol, seed, recipe, source)
                )
    return Plan(pretrainings, finetunings)


def describe(plan: Plan, config: DictConfig, finished: set[str]) -> str:
    """The plan in words, with what is already finished and a rough compute estimate."""
    lines = [f"grid {config.grid.name}: {len(plan.pretrainings)} pretrainings, {len(plan.finetunings)} fine-tunings"]
    for p in plan.pretrainings:
        limit = f"{p.subset.images_per_class}/class" if p.subset.images_per_class else f"budget {p.subset.budget}"
        limit = limit if p.subset.images_per_class or p.subset.budget else "every image"
        state = "done" if p.unit_id in finished else "to run"
        todo = sum(f.unit_id not in finished for f in plan.finetunings_of(p.unit_id))
        lines.append(
            f"  pretrain {p.unit_id}  {p.model['name']:10s} {p.subset.label_set:14s} {limit:14s} "
            f"{p.recipe['epochs']} epochs  [{state}]  fine-tunings: {len(plan.finetunings_of(p.unit_id))} ({todo} to run)"
        )
    passes, unknown = 0, 0
    for p in plan.pretrainings:
        if p.unit_id in finished:
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
    probes = [f for f in pending if f.protocol == "probe"]
    epochs = sorted({f.recipe["epochs"] for f in classifiers}) or [config.finetune.epochs]
    iterations = sorted({f.recipe["iterations"] for f in detections})
    lines.append(
        f"estimate: {passes:,} pretraining image passes"
        + (f" plus {unknown} pretraining(s) on every image of their classes" if unknown else "")
        + f"; {len(classifiers)} classifier fine-tunings of {'/'.join(map(str, epochs))} epochs"
        + (f", {len(detections)} detector fine-tunings of {'/'.join(map(str, iterations))} iterations"
           if detections else "")
        + (f", {len(probes)} fixed-feature probes" if probes else "")
        + f"; at most {2 * len(plan.pretrainings)} Ray Train worker-group starts"
    )  # fmt: skip
    return "\n".join(lines)
