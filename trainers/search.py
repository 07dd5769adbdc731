"""The ``finetune_search`` and ``scratch_search`` protocols: Kornblith et al.'s (2019) fine-tuning and training from
random initialisation, each with its hyper-parameter search. Every (learning rate, weight decay) setting of the grid
(``lr_count`` log-spaced rates in [``lr_min``, ``lr_max``] x ``weight_decay_count`` log-spaced decays in
[``weight_decay_min``, ``weight_decay_max``], plus a decay of 0 when ``weight_decay_zero``: orchestrator.cost's
``search_settings``) trains for ``steps`` SGD steps with Nesterov momentum on the training split and is scored on the
validation split by the task's metric; the best setting is trained again on train+val and scored on test
(``tasks.selection_splits``). Each setting and the refit is a job of its own (``Transfer.stage``), which the sweep
runs as Tune trials (orchestrator.stages).

As in the paper: batch-norm momentum max(1 - 10/s, 0.9) in TensorFlow's terms (s: steps per epoch; PyTorch's
momentum is one minus it), the weight decay divided by the learning rate, random crops with flips only, and
evaluation on the centred ``crop_pct`` of each image with its shorter side resized (224 px of 256). The learning
rate follows a cosine decay to zero over the steps: the project's choice (../shared/PAPERS.md does not confirm the
paper's schedule). ``finetune_search`` starts from the pretrained network with a new classifier;
``scratch_search`` from a fresh network of the same architecture. A unit checkpoints every ``checkpoint_steps``
steps, so a restarted worker group resumes mid-setting.
"""

import math
import time

import numpy as np
import torch
from torch import nn

from models import create_model, normalisation
from tasks import selection_splits
from trainers import PROTOCOLS, Transfer, engine


def batch_norm_momentum(steps_per_epoch: int) -> float:
    """PyTorch's momentum for the paper's running-average decay max(1 - 10/s, 0.9)."""
    return 1 - max(1 - 10 / steps_per_epoch, 0.9)


def choose(scores: list[float]) -> int:
    """The best setting: the highest validation score, the first among equals (NaN: a setting that diverged)."""
    if all(math.isnan(score) for score in scores):
        raise ValueError("every hyper-parameter setting diverged (NaN validation scores): lower lr_max")
    return int(np.nanargmax(scores))


def _network(transfer: Transfer, classes: int, scratch: bool) -> nn.Module:
    if not scratch:
        network = transfer.pretrained()
        network.reset_classifier(classes)
        return network
    spec = transfer.pretrained().spec
    return create_model(spec["name"], classes, spec["args"])


def _train(transfer, setting: dict, examples, scratch: bool, start: dict | None, report) -> nn.Module:
    """``setting`` trained for the recipe's steps on ``examples`` from ``start`` (a checkpointed state) or afresh;
    ``report(step, state)`` is called every ``checkpoint_steps``."""
    task, recipe = transfer.task, transfer.recipe
    torch.manual_seed(transfer.seed)
    network = _network(transfer, len(examples.classes), scratch)
    mean, std = normalisation(network)
    data = engine.example_batches(examples, transfer.image_size, True, recipe["batch_size"], transfer.seed, mean, std,
                                  transfer.device, transfer.loader_workers, task.multilabel)  # fmt: skip
    per_worker = len(data.rows) // engine.world()[1]
    if per_worker == 0:
        raise ValueError(f"{task.name}: {len(data.rows)} readable training images, fewer than the {engine.world()[1]} "
                         "workers")  # fmt: skip
    data.batch_size = min(recipe["batch_size"], per_worker)  # a split smaller than a batch: all of it every step
    steps_per_epoch = per_worker // data.batch_size
    for module in network.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = batch_norm_momentum(steps_per_epoch)
    model = engine.prepare(network, transfer.use_gpu)
    optimizer = torch.optim.SGD(model.parameters(), setting["lr"], momentum=recipe["momentum"], nesterov=True,
                                weight_decay=setting["weight_decay"] / setting["lr"])  # fmt: skip
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, recipe["steps"]) / recipe["steps"]))
    )
    step = 0
    if start is not None:
        network.load_state_dict(start["model"])
        optimizer.load_state_dict(start["optimizer"])
        schedule.load_state_dict(start["schedule"])
        step = start["step"]
    loss_fn = engine.multilabel_loss if task.multilabel else nn.CrossEntropyLoss()
    scaler = torch.amp.GradScaler(enabled=transfer.use_gpu)
    model.train()
    epoch, done_in_epoch = divmod(step, steps_per_epoch)
    while step < recipe["steps"]:
        data.set_epoch(epoch)
        for number, (images, targets) in enumerate(data):
            if number < done_in_epoch:  # resumed mid-epoch: the batches trained on before, with their augmentations
                continue
            with torch.autocast(transfer.device.type, enabled=transfer.use_gpu):
                loss = loss_fn(model(images), targets)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            step += 1
            if step % recipe["checkpoint_steps"] == 0 and step < recipe["steps"]:
                report(step, {"model": network.state_dict(), "optimizer": optimizer.state_dict(),
                              "schedule": schedule.state_dict(), "step": step})  # fmt: skip
            if step == recipe["steps"]:
                break
        epoch, done_in_epoch = epoch + 1, 0
    return model


def _score(transfer, model, examples) -> dict:
    mean, std = normalisation(model.module if hasattr(model, "module") else model)
    data = engine.example_batches(examples, transfer.image_size, False, transfer.recipe["batch_size"], transfer.seed,
                                  mean, std, transfer.device, transfer.loader_workers, transfer.task.multilabel,
                                  transfer.recipe["crop_pct"])  # fmt: skip
    scores, targets = engine.predict(model, data)
    return transfer.task.evaluate(scores, targets)


def search(transfer: Transfer, scratch: bool) -> dict:
    """Runs (or resumes) the job ``transfer.stage``: {"setting": {lr, weight_decay}} trains that setting on the
    training split and returns its validation metrics; {"refit": {"settings": [...], "scores": [...]}} trains the
    setting with the best validation score on train+val and returns its test metrics, the chosen setting and every
    setting's validation score."""
    task, recipe, stage = transfer.task, transfer.recipe, transfer.stage
    splits = selection_splits(task, transfer.data_root, transfer.seed)
    resumed = transfer.resume["training"] if transfer.resume is not None else None
    started = time.perf_counter()

    def checkpoint(step: int, training: dict) -> None:
        transfer.checkpoint({"step": step}, {"training": training})

    if "setting" in stage:
        model = _train(transfer, stage["setting"], splits["train"], scratch, resumed, checkpoint)
        validation = {f"val_{key}": value for key, value in _score(transfer, model, splits["val"]).items()}
        result = {"metric": f"val_{task.metric}", **validation, **stage["setting"], "search_of": stage["search_of"],
                  "train_images": len(splits["train"].paths), "val_images": len(splits["val"].paths)}  # fmt: skip
    else:
        grid, scores = stage["refit"]["settings"], stage["refit"]["scores"]
        best = choose(scores)
        model = _train(transfer, grid[best], splits["trainval"], scratch, resumed, checkpoint)
        result = {**_score(transfer, model, splits["test"]), **grid[best], f"val_{task.metric}": scores[best],
                  "search": {"settings": grid, f"val_{task.metric}": scores},
                  "train_images": len(splits["trainval"].paths), "val_images": len(splits["val"].paths),
                  "test_images": len(splits["test"].paths)}  # fmt: skip
    images = recipe["steps"] * recipe["batch_size"]
    return result | {"steps": recipe["steps"], "images_per_s": images / (time.perf_counter() - started)}


@PROTOCOLS.register("finetune_search")
def finetune_search(transfer: Transfer) -> dict:
    return search(transfer, scratch=False)


@PROTOCOLS.register("scratch_search")
def scratch_search(transfer: Transfer) -> dict:
    return search(transfer, scratch=True)
