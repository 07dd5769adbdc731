"""Fine-tuning a pretrained AlexNet on the classification target tasks: the loop every Ray Train
worker runs.

  sun397       SUN397 scene classification (train/test partition 1), top-1 accuracy
  voc_action   PASCAL VOC 2012 action classification of the given person boxes (train -> val),
               mean average precision over the 10 actions

One worker group runs a list of fine-tunings (task, seed) one after another, so that Ray Train's
start-up is paid once per list rather than once per fine-tuning. fc8 is replaced by a fresh
layer for each; the rest starts from the pretrained weights. A checkpoint after every epoch
holds the results finished so far and the current fine-tuning's state, so a restarted worker
group resumes mid-list.
"""

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ray.train
import ray.train.torch
import torch
from torch import nn

from embedded import sources
from trainers import engine
from trainers.data import VOC_ACTIONS, ImageDataset, list_sun397, list_voc_action, voc_crop
from trainers.metrics import mean_average_precision, top1
from trainers.models import load_checkpoint

PROGRESS_FILE = "finetune_progress.pt"
ACTION_CONTEXT = 0.5  # person boxes grow by half their size on each side: the props are around them


@dataclass(frozen=True)
class TaskData:
    train: ImageDataset
    test: ImageDataset
    outputs: int
    loss: nn.Module
    evaluate: Callable[[np.ndarray, np.ndarray], dict]


def sun397(root: str, image_size: int) -> TaskData:
    train, classes = list_sun397(root, "train", 1)
    test, _ = list_sun397(root, "test", 1)
    dataset = lambda rows, is_train: ImageDataset(  # noqa: E731
        root, [p for p, _ in rows], [c for _, c in rows], engine.image_transform(image_size, is_train)
    )
    return TaskData(
        dataset(train, True), dataset(test, False), len(classes), nn.CrossEntropyLoss(),
        lambda scores, labels: {"top1": top1(scores, labels)},
    )  # fmt: skip


def voc_action(root: str, image_size: int) -> TaskData:
    def dataset(split, is_train):
        people = list_voc_action(root, split)
        targets = [torch.tensor([float(a in p.actions) for a in VOC_ACTIONS]) for p in people]
        crops = [voc_crop(p.box, ACTION_CONTEXT) for p in people]
        transform = engine.image_transform(image_size, is_train)
        return ImageDataset("/", [str(p.image.path) for p in people], targets, transform, crops)

    def evaluate(scores, targets):
        mean_ap, per_action = mean_average_precision(scores, targets)
        return {"map": mean_ap, **{f"ap_{action}": ap for action, ap in zip(VOC_ACTIONS, per_action)}}

    return TaskData(dataset("train", True), dataset("val", False), len(VOC_ACTIONS), nn.BCEWithLogitsLoss(), evaluate)


TASKS = {"sun397": sun397, "voc_action": voc_action}
TASK_DATASET = {"sun397": "sun397", "voc_action": "voc"}  # the embedded.sources name of each task's data
PRIMARY_METRIC = {"sun397": "top1", "voc_action": "map"}


def finetune_fn_per_worker(config: dict) -> None:
    """``config``: units (list of {unit_id, task, seed}), pretrained (a ray.train.Checkpoint),
    data_sources ({task: embedded:<scale> or a path}), image_size, epochs, batch_size, lr, momentum, weight_decay,
    lr_step_epochs, loader_workers, use_gpu."""
    device = ray.train.torch.get_device() if config["use_gpu"] else torch.device("cpu")
    with config["pretrained"].as_directory() as directory:
        pretrained, _ = load_checkpoint(Path(directory) / "model.pt")
    progress = (engine.restore([PROGRESS_FILE]) or {PROGRESS_FILE: {"results": {}, "current": None}})[PROGRESS_FILE]
    for unit in config["units"]:
        if unit["unit_id"] not in progress["results"]:
            progress["results"][unit["unit_id"]] = _finetune(unit, pretrained, config, device, progress)
            progress["current"] = None


def _finetune(unit: dict, pretrained, config: dict, device, progress: dict) -> dict:
    started = time.perf_counter()
    torch.manual_seed(unit["seed"])
    root = sources.resolve(TASK_DATASET[unit["task"]], config["data_sources"][unit["task"]])
    task = TASKS[unit["task"]](str(root), config["image_size"])
    network = copy.deepcopy(pretrained)
    network.replace_fc8(task.outputs)
    model = engine.prepare(network, config["use_gpu"])
    optimizer = torch.optim.SGD(
        model.parameters(), config["lr"], momentum=config["momentum"], weight_decay=config["weight_decay"]
    )
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, config["lr_step_epochs"], gamma=0.1)
    first_epoch, images_per_s = 0, []
    current = progress["current"]
    if current and current["unit_id"] == unit["unit_id"]:
        network.load_state_dict(current["model"])
        optimizer.load_state_dict(current["optimizer"])
        schedule.load_state_dict(current["schedule"])
        first_epoch, images_per_s = current["epoch"], current["images_per_s"]
    train = engine.loader(task.train, config["batch_size"], True, unit["seed"], config["loader_workers"])
    test = engine.loader(task.test, config["batch_size"], False, unit["seed"], config["loader_workers"])
    for epoch in range(first_epoch, config["epochs"]):
        epoch_metrics = engine.train_epoch(model, train, optimizer, task.loss, device, config["use_gpu"], epoch)
        schedule.step()
        images_per_s.append(epoch_metrics["images_per_s"])
        last = epoch + 1 == config["epochs"]
        results = dict(progress["results"])
        if last:
            scores, targets = engine.predict(model, test, device)
            metrics = task.evaluate(scores, targets)
            results[unit["unit_id"]] = {
                **metrics,
                "metric": PRIMARY_METRIC[unit["task"]],
                "value": metrics[PRIMARY_METRIC[unit["task"]]],
                "images_per_s": float(np.mean(images_per_s)),
                "wall_time_s": time.perf_counter() - started,
                "epochs": config["epochs"],
                "train_images": len(task.train),
                "test_images": len(task.test),
            }
        progress["current"] = None if last else {
            "unit_id": unit["unit_id"], "epoch": epoch + 1, "images_per_s": images_per_s,
            "model": network.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
        }  # fmt: skip
        snapshot = {"results": results, "current": progress["current"]}
        engine.report(
            {"unit_id": unit["unit_id"], "epoch": epoch + 1, "finished": len(results), **epoch_metrics},
            lambda directory, snapshot=snapshot: torch.save(snapshot, directory / PROGRESS_FILE),
        )
    return results[unit["unit_id"]]
