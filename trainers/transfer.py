"""Fine-tuning a pretrained AlexNet on the target tasks: the loop every fine-tuning worker group runs.

  sun397       SUN397 scene classification (train/test partition 1), top-1 accuracy     trainers/classify.py
  voc_action   PASCAL VOC 2012 action classification of the given person boxes          trainers/classify.py
               (train -> val), mean average precision over the 10 actions
  pascal_det   PASCAL VOC 2007 detection (trainval -> test), Faster R-CNN through       trainers/detect.py
               MMDetection, 11-point mean average precision over the 20 classes

One worker group runs a list of fine-tunings (units: task, seed, recipe) one after another, so that Ray Train's
start-up is paid once per list rather than once per fine-tuning. Every Ray Train checkpoint holds the results
finished so far and the current unit's state (a classifier's after each epoch, the detector's mmengine checkpoint
every ``checkpoint_interval`` iterations), so a restarted worker group resumes mid-list and mid-unit.
"""

import math
import shutil
import tempfile
import time
from pathlib import Path

import ray.train
import ray.train.torch
import torch

from embedded import sources
from trainers import classify, detect, engine
from trainers.data import check_voc_splits, list_sun397
from trainers.models import load_checkpoint

PROGRESS_FILE = "finetune_progress.pt"  # {"results": {unit_id: result}, "current": the unfinished unit's state}
DETECTOR_FILE = "detector.pth"  # the current pascal_det unit's latest mmengine checkpoint
TASK_DATASET = {"sun397": "sun397", "voc_action": "voc", "pascal_det": "voc"}  # embedded.sources names
PRIMARY_METRIC = {"sun397": "top1", "voc_action": "map", "pascal_det": "map"}
TASKS = tuple(TASK_DATASET)
# A quick look at the lists each task reads (its readers check every file later, in the workers).
LAYOUT_CHECKS = {
    "sun397": lambda root: list_sun397(root, "test", 1),
    "voc_action": lambda root: check_voc_splits(root, "2012", "Action", ("train", "val")),
    "pascal_det": lambda root: check_voc_splits(root, "2007", "Main", ("trainval", "test")),
}


def check_task_data(task: str, root: str | Path) -> None:
    """Raises DataFormatError, naming the missing folder or list, unless ``root`` has the layout ``task`` reads."""
    LAYOUT_CHECKS[task](root)


def report_progress(metrics: dict, results: dict, current: dict | None, detector_file: Path | None = None) -> None:
    """Reports ``metrics`` with a checkpoint of the group's progress (and the detector's state, if given)."""
    snapshot = {"results": results, "current": current}

    def save(directory: Path) -> None:
        torch.save(snapshot, directory / PROGRESS_FILE)
        if detector_file is not None:
            shutil.copyfile(detector_file, directory / DETECTOR_FILE)

    engine.report({**metrics, "finished": len(results)}, save)


def finetune_fn_per_worker(config: dict) -> None:
    """``config``: units (list of {unit_id, task, seed, recipe}), pretrained (a ray.train.Checkpoint with
    model.pt), data_sources ({task: embedded:<scale> or a path}), image_size (the classifiers' input),
    loader_workers, use_gpu. A classifier recipe holds epochs, batch_size, lr, momentum, weight_decay,
    lr_step_epochs; a detector recipe the arguments of ``trainers.detect.finetune_detection``."""
    device = ray.train.torch.get_device() if config["use_gpu"] else torch.device("cpu")
    if config["use_gpu"]:
        torch.cuda.set_device(device)  # mmengine puts the detector on the current device
    progress = {"results": {}, "current": None}
    with config["pretrained"].as_directory() as pretrained_dir, tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if checkpoint := ray.train.get_checkpoint():
            with checkpoint.as_directory() as directory:
                progress = torch.load(Path(directory) / PROGRESS_FILE, map_location="cpu", weights_only=True)
                if (Path(directory) / DETECTOR_FILE).exists():
                    shutil.copyfile(Path(directory) / DETECTOR_FILE, scratch / DETECTOR_FILE)
        pretrained_file = Path(pretrained_dir) / "model.pt"
        pretrained, _ = load_checkpoint(pretrained_file)
        for unit in config["units"]:
            if unit["unit_id"] in progress["results"]:
                continue
            started = time.perf_counter()
            root = str(sources.resolve(TASK_DATASET[unit["task"]], config["data_sources"][unit["task"]]))
            current = progress["current"] if (progress["current"] or {}).get("unit_id") == unit["unit_id"] else None
            if unit["task"] == "pascal_det":
                result = _detect(unit, pretrained_file, root, config, progress["results"], current, scratch)
            else:
                result = classify.finetune_classifier(
                    unit, pretrained, root, config, device, progress["results"], current, report_progress
                )
            result |= {"metric": PRIMARY_METRIC[unit["task"]], "wall_time_s": time.perf_counter() - started}
            result["value"] = result[result["metric"]]
            progress = {"results": {**progress["results"], unit["unit_id"]: result}, "current": None}
            report_progress({"unit_id": unit["unit_id"]}, progress["results"], None)


def _detect(unit, pretrained_file: Path, voc_root: str, config: dict, results, current, scratch: Path) -> dict:
    """One pascal_det unit, resumed from the restored detector checkpoint when it is this unit's; every saved
    mmengine checkpoint goes into a Ray Train checkpoint."""
    restored = scratch / DETECTOR_FILE
    resume_from = restored if current is not None and restored.exists() else None

    def checkpointed(iteration: int, detector_file: Path | None) -> None:
        state = {"unit_id": unit["unit_id"], "iteration": iteration}
        report_progress({"unit_id": unit["unit_id"], "iteration": iteration}, results, state, detector_file)

    outcome = detect.finetune_detection(
        pretrained_file, voc_root, scratch / unit["unit_id"], **unit["recipe"], seed=unit["seed"],
        workers=config["loader_workers"], resume_from=resume_from, on_checkpoint=checkpointed,
    )  # fmt: skip
    # Classes without a test object have no AP: null, not NaN, in the results' JSON.
    per_class = {f"ap_{name}": None if math.isnan(ap) else ap for name, ap in outcome["ap_per_class"].items()}
    return {
        "map": outcome["map"], **per_class, "images_per_s": outcome["images_per_second"],
        **{key: outcome[key] for key in ("iterations", "resumed_from", "train_images", "test_images")},
    }  # fmt: skip
