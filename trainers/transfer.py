"""The fine-tuning stage of a grid point's worker group (orchestrator.trial): a list of transfer units, one after
another, each run by its task's protocol (``trainers.PROTOCOLS``), so that Ray Train's start-up is paid once per
list rather than once per unit. Every Ray Train checkpoint holds the results finished so far and the current unit's
state (a classifier's after each epoch, the detector's mmengine checkpoint every ``checkpoint_interval``
iterations), so a restarted worker group resumes mid-list and mid-unit.
"""

import copy
import functools
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import ray.train
import ray.train.torch
import torch

import synthetic
from models import load_checkpoint
from tasks import TASKS
from trainers import PROTOCOLS, Transfer, engine

PROGRESS_FILE = "finetune_progress.pt"  # {"results": {unit_id: result}, "current": the unfinished unit's state}
UNIT_FILE = "unit_file"  # a file the current unit checkpointed with its state (the detector's weights)


def report_progress(metrics: dict, results: dict, current: dict | None, unit_file: Path | None = None) -> None:
    """Reports ``metrics`` with a checkpoint of the group's progress (and the current unit's file, if given)."""
    snapshot = {"results": results, "current": current}

    def save(directory: Path) -> None:
        torch.save(snapshot, directory / PROGRESS_FILE)
        if unit_file is not None:
            shutil.copyfile(unit_file, directory / UNIT_FILE)

    engine.report({**metrics, "finished": len(results)}, save)


def checkpoint_unit(unit_id: str, results: dict, metrics: dict, state: dict, file: Path | None = None) -> None:
    """A protocol's checkpoint of its unfinished unit: its state (and a file, if given) with the finished results."""
    report_progress({"unit_id": unit_id, **metrics}, results, {**state, "unit_id": unit_id}, file)


def run(config: dict, finished: Callable[[str, dict], None]) -> None:
    """Runs the units on every worker of the group, resuming from the group's latest fine-tuning checkpoint, and
    calls ``finished(unit_id, result)`` for each unit as it ends, before checkpointing past it.

    ``config``: units (list of {unit_id, task, protocol, seed, recipe, stage}), pretrained (a ray.train.Checkpoint
    with model.pt), data_sources ({task: embedded:<scale> or a path}), image_size (the pretraining's input),
    loader_workers, use_gpu."""
    device = ray.train.torch.get_device() if config["use_gpu"] else torch.device("cpu")
    if config["use_gpu"]:
        torch.cuda.set_device(device)  # mmengine puts the detector on the current device
    progress = {"results": {}, "current": None}
    with config["pretrained"].as_directory() as pretrained_dir, tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if (checkpoint := ray.train.get_checkpoint()) is not None:
            with checkpoint.as_directory() as directory:
                if (Path(directory) / PROGRESS_FILE).is_file():  # else the pretraining's: no unit checkpointed yet
                    progress = torch.load(Path(directory) / PROGRESS_FILE, map_location="cpu", weights_only=True)
                    if (Path(directory) / UNIT_FILE).exists():
                        shutil.copyfile(Path(directory) / UNIT_FILE, scratch / UNIT_FILE)
        pretrained_file = Path(pretrained_dir) / "model.pt"
        pretrained = functools.cache(lambda: load_checkpoint(pretrained_file)[0])  # only if a protocol needs it
        for unit in config["units"]:
            if unit["unit_id"] in progress["results"]:
                continue
            started, started_at = time.perf_counter(), time.time()
            task = TASKS[unit["task"]]
            current = progress["current"] if (progress["current"] or {}).get("unit_id") == unit["unit_id"] else None
            results = progress["results"]
            transfer = Transfer(
                unit_id=unit["unit_id"], task=task, seed=unit["seed"], recipe=unit["recipe"],
                data_root=synthetic.resolve(task.dataset, config["data_sources"][unit["task"]]),
                pretrained_file=pretrained_file, pretrained=lambda: copy.deepcopy(pretrained()),
                image_size=config["image_size"], loader_workers=config["loader_workers"], use_gpu=config["use_gpu"],
                device=device, scratch=scratch, resume=current,
                restored_file=scratch / UNIT_FILE if current is not None and (scratch / UNIT_FILE).exists() else None,
                checkpoint=functools.partial(checkpoint_unit, unit["unit_id"], results), stage=unit["stage"],
            )  # fmt: skip
            # The task's metric unless the protocol names another (a search setting's: on validation)
            result = {"metric": task.metric, **PROTOCOLS[unit["protocol"]](transfer),
                      "wall_time_s": time.perf_counter() - started, "started_at": started_at}  # fmt: skip
            result["value"] = result[result["metric"]]
            finished(unit["unit_id"], result)
            progress = {"results": {**results, unit["unit_id"]: result}, "current": None}
            report_progress({"unit_id": unit["unit_id"]}, progress["results"], None)
