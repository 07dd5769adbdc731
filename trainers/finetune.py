"""The ``finetune`` protocol: a classification task's classifier replaced by a fresh layer (``reset_classifier``),
every layer trained from the pretrained weights with SGD, the learning rate divided by 10 every
``lr_step_epochs``; the test split scored by the task's ``evaluate``. One unit of a fine-tuning group's list
(trainers/transfer.py), checkpointed after every epoch.
"""

import numpy as np
import torch
from torch import nn

from models import normalisation
from trainers import PROTOCOLS, Transfer, engine


@PROTOCOLS.register("finetune")
def finetune_classifier(transfer: Transfer) -> dict:
    """Returns the test metrics and the run's figures; resumed from the state checkpointed after an epoch."""
    task, recipe = transfer.task, transfer.recipe
    network = transfer.pretrained()
    torch.manual_seed(transfer.seed)
    mean, std = normalisation(network)
    train_examples, test_examples = (task.read(transfer.data_root, split, seed=transfer.seed) for split in task.splits)
    network.reset_classifier(len(train_examples.classes))
    model = engine.prepare(network, transfer.use_gpu)
    optimizer = torch.optim.SGD(
        model.parameters(), recipe["lr"], momentum=recipe["momentum"], weight_decay=recipe["weight_decay"]
    )
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, recipe["lr_step_epochs"], gamma=0.1)
    first_epoch, images_per_s = 0, []
    if state := transfer.resume:
        network.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        first_epoch, images_per_s = state["epoch"], state["images_per_s"]
    train, test = (
        engine.example_batches(examples, transfer.image_size, is_train, recipe["batch_size"], transfer.seed, mean, std,
                               transfer.device, transfer.loader_workers, task.multilabel)
        for examples, is_train in ((train_examples, True), (test_examples, False))
    )  # fmt: skip
    loss = engine.multilabel_loss if task.multilabel else nn.CrossEntropyLoss()
    for epoch in range(first_epoch, recipe["epochs"]):
        epoch_metrics = engine.train_epoch(model, train, optimizer, loss, transfer.device, transfer.use_gpu, epoch)
        schedule.step()
        images_per_s.append(epoch_metrics["images_per_s"])
        if epoch + 1 < recipe["epochs"]:  # the last epoch's state is the result, which the caller reports
            state = {
                "epoch": epoch + 1, "images_per_s": images_per_s,
                "model": network.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
            }  # fmt: skip
            transfer.checkpoint({"epoch": epoch + 1, **epoch_metrics}, state)
    scores, targets = engine.predict(model, test)
    return {
        **task.evaluate(scores, targets),
        "images_per_s": float(np.mean(images_per_s)),
        "epochs": recipe["epochs"],
        "train_images": len(train.rows),
        "test_images": len(test.rows),
    }
