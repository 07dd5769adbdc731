"""A run configuration -> the pretrainings and fine-tunings it implies, each with a content hash.

A unit's hash covers every input that determines its result (data source, subset, recipe, task,
seed), so reruns recognise finished work and two grids that share a pretraining share its hash.
"""

import hashlib
import json
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from subsets.manifest import SubsetSpec
from subsets.wordnet import class_list
from trainers.finetune import TASK_DATASET, TASKS


def content_hash(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Pretraining:
    unit_id: str
    subset: SubsetSpec
    recipe: dict  # the pretrain section


@dataclass(frozen=True)
class Finetuning:
    unit_id: str
    pretrain_id: str
    task: str
    seed: int
    recipe: dict  # the finetune section; finetune.detection for pascal_det
    data_source: str


@dataclass(frozen=True)
class Plan:
    pretrainings: list[Pretraining]
    finetunings: list[Finetuning]

    def finetunings_of(self, pretrain_id: str) -> list[Finetuning]:
        return [f for f in self.finetunings if f.pretrain_id == pretrain_id]


def make_plan(config: DictConfig) -> Plan:
    grid = config.grid
    pretrain = OmegaConf.to_container(config.pretrain, resolve=True)
    finetune = OmegaConf.to_container(config.finetune, resolve=True)
    # How fast, not what: loader processes and groups are not part of a unit's identity.
    for how in ("loader_workers", "groups"):
        finetune.pop(how)
    pretrain.pop("loader_workers")
    recipes = {"pascal_det": finetune.pop("detection")} | {task: finetune for task in TASKS if task != "pascal_det"}
    pretrainings, finetunings = [], []
    for point in grid.points:
        point = OmegaConf.to_container(point, resolve=True)
        subset = SubsetSpec(
            label_set=point["label_set"],
            images_per_class=point.get("images_per_class"),
            budget=point.get("budget", grid.get("budget") if point.get("images_per_class") is None else None),
            seed=point.get("subset_seed", grid.get("subset_seed", 0)),
            source=config.data.imagenet,
        )
        pretrain_id = content_hash({"subset": subset.__dict__, "recipe": pretrain})
        pretrainings.append(Pretraining(pretrain_id, subset, pretrain))
        for task in grid.tasks:
            source = config.data[TASK_DATASET[task]]
            for seed in grid.seeds:
                unit = {"pretrain": pretrain_id, "task": task, "seed": seed, "recipe": recipes[task], "data": source}
                finetunings.append(Finetuning(content_hash(unit), pretrain_id, task, seed, recipes[task], source))
    return Plan(pretrainings, finetunings)


def describe(plan: Plan, config: DictConfig, finished: set[str]) -> str:
    """The plan in words, with what is already finished and a rough compute estimate."""
    lines = [f"grid {config.grid.name}: {len(plan.pretrainings)} pretrainings, {len(plan.finetunings)} fine-tunings"]
    pre = config.pretrain
    for p in plan.pretrainings:
        limit = f"{p.subset.images_per_class}/class" if p.subset.images_per_class else f"budget {p.subset.budget}"
        state = "done" if p.unit_id in finished else "to run"
        todo = sum(f.unit_id not in finished for f in plan.finetunings_of(p.unit_id))
        lines.append(
            f"  pretrain {p.unit_id}  {p.subset.label_set:14s} {limit:14s} {pre.epochs} epochs  [{state}]"
            f"  fine-tunings: {len(plan.finetunings_of(p.unit_id))} ({todo} to run)"
        )
    passes, unknown = 0, 0
    for p in plan.pretrainings:
        if p.unit_id in finished:
            continue
        if p.subset.budget:
            passes += p.subset.budget * pre.epochs
        elif p.subset.images_per_class:
            classes = len(p.subset.resolve_labels(class_list("imagenet1k")).labels)
            passes += p.subset.images_per_class * classes * pre.epochs
        else:
            unknown += 1
    pending = [f for f in plan.finetunings if f.unit_id not in finished]
    detections = sum(f.task == "pascal_det" for f in pending)
    lines.append(
        f"estimate: {passes:,} pretraining image passes"
        + (f" plus {unknown} pretraining(s) on every image of their classes" if unknown else "")
        + f"; {len(pending) - detections} classifier fine-tunings of {config.finetune.epochs} epochs"
        + (f", {detections} detector fine-tunings of {config.finetune.detection.iterations} iterations"
           if detections else "")
        + f"; at most {2 * len(plan.pretrainings)} Ray Train worker-group starts"
    )  # fmt: skip
    return "\n".join(lines)
