"""Fine-tuning a pretrained AlexNet on the classification target tasks, one unit of a fine-tuning worker
group's list (trainers/finetune.py):

  sun397       SUN397 scene classification (train/test partition 1), top-1 accuracy
  voc_action   PASCAL VOC 2012 action classification of the given person boxes (train -> val),
               mean average precision over the 10 actions

fc8 is replaced by a fresh layer; the rest starts from the pretrained weights.
"""

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from trainers import engine
from trainers.data import VOC_ACTIONS, ImageDataset, list_sun397, list_voc_action, voc_crop
from trainers.metrics import mean_average_precision, top1

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


def finetune_classifier(unit, pretrained, root: str, config: dict, device, results: dict, current, report) -> dict:
    """One classification unit: fc8 replaced for the task, every layer trained; resumed from ``current`` (the
    state ``report`` checkpointed after an epoch) when given. Returns the test metrics and the run's figures."""
    recipe = unit["recipe"]
    torch.manual_seed(unit["seed"])
    task = TASKS[unit["task"]](root, config["image_size"])
    network = copy.deepcopy(pretrained)
    network.replace_fc8(task.outputs)
    model = engine.prepare(network, config["use_gpu"])
    optimizer = torch.optim.SGD(
        model.parameters(), recipe["lr"], momentum=recipe["momentum"], weight_decay=recipe["weight_decay"]
    )
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, recipe["lr_step_epochs"], gamma=0.1)
    first_epoch, images_per_s = 0, []
    if current:
        network.load_state_dict(current["model"])
        optimizer.load_state_dict(current["optimizer"])
        schedule.load_state_dict(current["schedule"])
        first_epoch, images_per_s = current["epoch"], current["images_per_s"]
    train = engine.loader(task.train, recipe["batch_size"], True, unit["seed"], config["loader_workers"])
    test = engine.loader(task.test, recipe["batch_size"], False, unit["seed"], config["loader_workers"])
    for epoch in range(first_epoch, recipe["epochs"]):
        epoch_metrics = engine.train_epoch(model, train, optimizer, task.loss, device, config["use_gpu"], epoch)
        schedule.step()
        images_per_s.append(epoch_metrics["images_per_s"])
        if epoch + 1 < recipe["epochs"]:  # the last epoch's state is the result, which the caller reports
            state = {
                "unit_id": unit["unit_id"], "epoch": epoch + 1, "images_per_s": images_per_s,
                "model": network.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
            }  # fmt: skip
            report({"unit_id": unit["unit_id"], "epoch": epoch + 1, **epoch_metrics}, results, state)
    scores, targets = engine.predict(model, test, device)
    return {
        **task.evaluate(scores, targets),
        "images_per_s": float(np.mean(images_per_s)),
        "epochs": recipe["epochs"],
        "train_images": len(task.train),
        "test_images": len(task.test),
    }
