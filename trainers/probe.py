"""The ``probe`` protocol: fixed features. The pretrained network's penultimate features (``forward_head(...,
pre_logits=True)``: AlexNet's fc7) of a task's train and test images, without augmentation, scored two ways: by
nearest neighbour (the cosine-nearest training image's class) and by an l2-regularised multinomial logistic
regression fitted on them by L-BFGS. No layer of the network changes. The task's metrics (``top1``) are the
linear classifier's; the nearest neighbour's carry an ``nn_`` prefix.
"""

import time

import torch
import torch.nn.functional as F

from models import normalisation
from trainers import PROTOCOLS, Transfer, engine


def penultimate(network, images: torch.Tensor) -> torch.Tensor:
    return network.forward_head(network.forward_features(images), pre_logits=True)


def nearest_neighbour(
    train: torch.Tensor, train_targets: torch.Tensor, test: torch.Tensor, chunk: int = 1024
) -> torch.Tensor:
    """The class of each test feature's cosine-nearest training feature."""
    train = F.normalize(train, dim=1)
    nearest = [(F.normalize(block, dim=1) @ train.T).argmax(1) for block in test.split(chunk)]
    return train_targets[torch.cat(nearest)]


def logistic_regression(train: torch.Tensor, targets: torch.Tensor, classes: int, l2: float, iterations: int):
    """Weights and bias of a multinomial logistic regression minimising the mean cross-entropy plus
    ``l2 / 2 * |W|^2`` by full-batch L-BFGS (strong Wolfe line search)."""
    weight = torch.zeros(train.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=iterations, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-6, tolerance_change=1e-9, history_size=20)  # fmt: skip

    def loss():
        optimizer.zero_grad()
        value = F.cross_entropy(train @ weight + bias, targets) + l2 / 2 * weight.pow(2).sum()
        value.backward()
        return value

    optimizer.step(loss)
    return weight.detach(), bias.detach()


@PROTOCOLS.register("probe")
def probe(transfer: Transfer) -> dict:
    task, recipe = transfer.task, transfer.recipe
    network = transfer.pretrained().to(transfer.device).eval()
    mean, std = normalisation(network)
    started = time.perf_counter()
    extracted = []
    for split in task.splits:
        examples = task.read(transfer.data_root, split, seed=transfer.seed)
        data = engine.example_batches(examples, transfer.image_size, False, recipe["batch_size"], transfer.seed, mean,
                                      std, transfer.device, transfer.loader_workers)  # fmt: skip
        found, targets = engine.predict(network, data, penultimate)
        extracted.append((torch.from_numpy(found), torch.from_numpy(targets)))
    (train, train_targets), (test, test_targets) = extracted
    seconds = time.perf_counter() - started
    classes = len(examples.classes)
    weight, bias = logistic_regression(train, train_targets, classes, recipe["l2"], recipe["iterations"])
    linear = task.evaluate((test @ weight + bias).numpy(), test_targets.numpy())
    neighbour = task.evaluate(F.one_hot(nearest_neighbour(train, train_targets, test), classes).float().numpy(),
                              test_targets.numpy())  # fmt: skip
    return {
        **linear,  # the primary metrics are the linear probe's
        **{f"nn_{key}": value for key, value in neighbour.items()},
        "train_images": len(train), "test_images": len(test), "classes": classes, "feature_dim": train.shape[1],
        "images_per_s": (len(train) + len(test)) / seconds,
    }  # fmt: skip
