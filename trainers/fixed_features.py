"""The ``fixed_features`` protocol: Kornblith et al.'s (2019) fixed-feature transfer. The pretrained network's
penultimate features of a task's images, without augmentation, computed once; an l2-regularised logistic regression
(multinomial; one sigmoid per class for a multi-label task) fitted on them by L-BFGS for each of ``l2_count``
log-spaced penalties in [``l2_min``, ``l2_max``] (the paper's 45 in [1e-6, 1e5]) on the training split and scored on
the validation split by the task's metric; the best penalty refitted on train+val and scored on test
(``tasks.selection_splits``). No layer of the network changes.

The loss is the mean over images of the cross-entropy (for a multi-label task, of the sum over classes of each
sigmoid's) plus ``l2 / 2 * |W|^2`` (the bias is not penalised): that is scikit-learn's ``LogisticRegression`` with
``C = 1 / (l2 * images)`` (multi-label: one binary regression per class on the images that count for it, each with
that ``C``). The paper does not
say whether its loss is a mean or a sum over images; with a sum the same penalties reach further into weak
regularisation.
"""

import time

import numpy as np
import torch
import torch.nn.functional as F

from models import normalisation
from tasks import selection_splits
from tasks.metrics import IGNORED
from trainers import PROTOCOLS, Transfer, engine
from trainers.probe import penultimate


def penalties(recipe: dict) -> np.ndarray:
    """The l2 penalties searched, strongest first (each fit starts from the previous one's solution)."""
    return np.logspace(np.log10(recipe["l2_max"]), np.log10(recipe["l2_min"]), recipe["l2_count"])


def fit_logistic(features: torch.Tensor, targets: torch.Tensor, classes: int, l2: float, iterations: int,
                 multilabel: bool = False, start: tuple[torch.Tensor, torch.Tensor] | None = None):  # fmt: skip
    """Weights [dim, classes] and bias minimising the mean loss plus ``l2 / 2 * |W|^2`` by full-batch L-BFGS
    (strong Wolfe line search), from ``start`` or from zero. ``targets``: class indices, or multi-hot rows."""
    weight, bias = start if start is not None else (features.new_zeros(features.shape[1], classes),
                                                    features.new_zeros(classes))  # fmt: skip
    weight, bias = weight.clone().requires_grad_(), bias.clone().requires_grad_()
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=iterations, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-7, tolerance_change=1e-10, history_size=20)  # fmt: skip

    def loss():
        optimizer.zero_grad()
        logits = features @ weight + bias
        if multilabel:  # summed over the classes: each class's sigmoid is its own regression with this penalty
            counted = (targets != IGNORED).to(logits.dtype)  # an IGNORED target is in no class's regression
            value = F.binary_cross_entropy_with_logits(logits, targets.clamp(min=0), weight=counted,
                                                       reduction="sum") / len(features)  # fmt: skip
        else:
            value = F.cross_entropy(logits, targets)
        value = value + l2 / 2 * weight.pow(2).sum()
        value.backward()
        return value

    optimizer.step(loss)
    return weight.detach(), bias.detach()


def choose_and_refit(features: dict, targets: dict, classes: int, l2s, evaluate, metric: str, iterations: int,
                     multilabel: bool = False) -> dict:  # fmt: skip
    """The search: a fit on ``train`` per penalty, scored on ``val`` by ``evaluate(scores, targets)[metric]``; the
    best (the strongest penalty among equals) refitted on ``trainval`` and scored on ``test``. ``features`` and
    ``targets``: tensors by split. Returns the test metrics, the chosen penalty and every penalty's validation score."""
    start, scores = None, []
    for l2 in l2s:
        start = fit_logistic(features["train"], targets["train"], classes, float(l2), iterations, multilabel, start)
        logits = features["val"] @ start[0] + start[1]
        scores.append(evaluate(logits.cpu().numpy(), targets["val"].cpu().numpy())[metric])
    best = int(np.nanargmax(scores))
    weight, bias = fit_logistic(features["trainval"], targets["trainval"], classes, float(l2s[best]), iterations,
                                multilabel)  # fmt: skip
    test = evaluate((features["test"] @ weight + bias).cpu().numpy(), targets["test"].cpu().numpy())
    return {**test, "l2": float(l2s[best]), "val_" + metric: scores[best],
            "search": {"l2": [float(v) for v in l2s], f"val_{metric}": scores}}  # fmt: skip


@PROTOCOLS.register("fixed_features")
def fixed_features(transfer: Transfer) -> dict:
    task, recipe = transfer.task, transfer.recipe
    network = transfer.pretrained().to(transfer.device).eval()
    mean, std = normalisation(network)
    splits = selection_splits(task, transfer.data_root, transfer.seed)
    started = time.perf_counter()
    features, targets = {}, {}
    for split in ("trainval", "test"):  # train and val are parts of trainval: their features are computed once
        data = engine.example_batches(splits[split], transfer.image_size, False, recipe["batch_size"], transfer.seed,
                                      mean, std, transfer.device, transfer.loader_workers, task.multilabel,
                                      recipe["crop_pct"])  # fmt: skip
        found, labels = engine.predict(network, data, penultimate)
        features[split], targets[split] = torch.from_numpy(found), torch.from_numpy(labels)
        if len(found) != len(splits[split].paths):
            raise ValueError(f"{len(splits[split].paths) - len(found)} images of {task.name}'s {split} are unreadable: "
                             "fixed features need every image; repair or remove them")  # fmt: skip
    extracted_s = time.perf_counter() - started
    position = {path: k for k, path in enumerate(splits["trainval"].paths)}
    for split in ("train", "val"):
        rows = torch.as_tensor([position[path] for path in splits[split].paths])
        features[split], targets[split] = features["trainval"][rows], targets["trainval"][rows]
    features = {split: found.to(transfer.device) for split, found in features.items()}
    targets = {split: found.to(transfer.device) for split, found in targets.items()}
    started = time.perf_counter()
    result = choose_and_refit(features, targets, len(splits["test"].classes), penalties(recipe), task.evaluate,
                              task.metric, recipe["iterations"], task.multilabel)  # fmt: skip
    return {
        **result,
        "train_images": len(splits["trainval"].paths), "test_images": len(splits["test"].paths),
        "val_images": len(splits["val"].paths), "classes": len(splits["test"].classes),
        "feature_dim": features["test"].shape[1],
        "images_per_s": (len(splits["trainval"].paths) + len(splits["test"].paths)) / extracted_s,
        "search_s": time.perf_counter() - started,
    }  # fmt: skip
