"""The fixed_features protocol (Kornblith et al.'s logistic regression on fixed features, its penalty chosen on
validation and refitted on train+val) against scikit-learn's LogisticRegression on the same features, and end to end
on a tiny synthetic task."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score

import synthetic
from models import create_model, load_checkpoint, save_checkpoint
from tasks import TASKS
from tasks.metrics import IGNORED, mean_average_precision, mean_per_class_accuracy, top1
from trainers import PROTOCOLS, Transfer
from trainers.fixed_features import choose_and_refit, fit_logistic, penalties

PAPER_SEARCH = {"l2_min": 1e-6, "l2_max": 1e5, "l2_count": 45}


def noisy_features(images: int, classes: int, seed: int, multilabel: bool = False):
    """More dimensions than a fit can use without a penalty: a few carry the classes, the rest are noise, so the
    validation score peaks at an intermediate penalty."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(classes, 40)) * 0.6
    if multilabel:
        targets = (rng.random((images, classes)) < 0.3).astype(np.float32)
        signal = targets @ centres
        targets[rng.random((images, classes)) < 0.05] = IGNORED  # neither positive nor negative (VOC's difficult)
    else:
        targets = rng.integers(0, classes, images)
        signal = centres[targets]
    features = np.concatenate([signal + rng.normal(size=(images, 40)), rng.normal(size=(images, 60))], axis=1)
    return torch.tensor(features, dtype=torch.float64), torch.tensor(targets)


def sklearn_search(features, targets, l2s, multilabel):
    """The same search with scikit-learn: C = 1 / (l2 * images), one binary regression per class when multi-label."""

    def fit(x, y, l2):
        def one(labels):
            return LogisticRegression(C=1 / (l2 * len(x)), max_iter=10_000, tol=1e-10).fit(x, labels)

        if not multilabel:
            model = one(y)
            return lambda z: model.predict_proba(z)
        def one_class(k):  # the images that count for class k, penalised as if all were there
            counted = y[:, k] != IGNORED
            return LogisticRegression(C=1 / (l2 * len(x)), max_iter=10_000, tol=1e-10).fit(x[counted], y[counted, k])

        models = [one_class(k) for k in range(y.shape[1])]
        return lambda z: np.stack([m.decision_function(z) for m in models], axis=1)

    def score(scores, y):
        return mean_average_precision(scores, y, eleven_point=True)[0] if multilabel else top1(scores, y)

    x, y = {k: v.numpy() for k, v in features.items()}, {k: v.numpy() for k, v in targets.items()}
    val = [score(fit(x["train"], y["train"], l2)(x["val"]), y["val"]) for l2 in l2s]
    best = int(np.nanargmax(val))
    return l2s[best], score(fit(x["trainval"], y["trainval"], l2s[best])(x["test"]), y["test"]), val


@pytest.mark.parametrize("multilabel", [False, True], ids=["multinomial", "multilabel"])
def test_the_search_chooses_scikit_learns_penalty_and_matches_its_accuracy(multilabel):
    classes = 5
    features, targets = {}, {}
    for seed, (split, images) in enumerate((("train", 60 if multilabel else 120), ("val", 400), ("test", 400))):
        features[split], targets[split] = noisy_features(images, classes, seed, multilabel)
    features["trainval"] = torch.cat([features["train"], features["val"]])
    targets["trainval"] = torch.cat([targets["train"], targets["val"]])
    if multilabel:
        targets = {split: found.double() for split, found in targets.items()}
    l2s = penalties({"l2_min": 1e-4, "l2_max": 1e1, "l2_count": 11})

    def evaluate(scores, labels):
        if multilabel:
            return {"map": mean_average_precision(scores, labels, eleven_point=True)[0]}
        return {"top1": top1(scores, labels)}

    metric = "map" if multilabel else "top1"
    ours = choose_and_refit(features, targets, classes, l2s, evaluate, metric, iterations=2000, multilabel=multilabel)
    chosen, test, val = sklearn_search(features, targets, l2s, multilabel)
    assert ours["search"][f"val_{metric}"] == pytest.approx(val, abs=0.01)
    # The validation score peaks inside the range: the penalty matters here, so choosing it is tested.
    assert 0 < int(np.argmax(val)) < len(l2s) - 1 and max(val) > min(val) + 0.01
    assert ours["l2"] == pytest.approx(chosen)
    assert ours[metric] == pytest.approx(test, abs=0.01)


def test_each_fit_is_scikit_learns_solution():
    features, targets = noisy_features(150, 4, seed=3)
    for l2 in (1e-3, 1e-1, 10.0):
        weight, bias = fit_logistic(features, targets, 4, l2, iterations=2000)
        ours = torch.softmax(features @ weight + bias, 1).numpy()
        theirs = LogisticRegression(C=1 / (l2 * 150), max_iter=10_000, tol=1e-10).fit(features, targets)
        np.testing.assert_allclose(ours, theirs.predict_proba(features.numpy()), atol=2e-3)


def test_mean_per_class_accuracy_is_scikit_learns_balanced_accuracy():
    rng = np.random.default_rng(0)
    labels = rng.choice(7, size=300, p=[0.4, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05])
    scores = rng.normal(size=(300, 7)) + 1.5 * np.eye(7)[labels]
    assert mean_per_class_accuracy(scores, labels) == pytest.approx(balanced_accuracy_score(labels, scores.argmax(1)))
    assert mean_per_class_accuracy(scores, labels) != pytest.approx(top1(scores, labels))  # the classes are unbalanced


def test_the_papers_penalties():
    l2s = penalties(PAPER_SEARCH)
    assert len(l2s) == 45 and l2s[0] == pytest.approx(1e5) and l2s[-1] == pytest.approx(1e-6)
    np.testing.assert_allclose(sorted(l2s), np.logspace(-6, 5, 45))


def test_fixed_features_on_a_tiny_synthetic_task(tmp_path):
    torch.manual_seed(0)
    checkpoint = tmp_path / "model.pt"
    save_checkpoint(checkpoint, create_model("alexnet", 10, {"variant": "small", "width": 0.125}))
    task = TASKS["food101"]
    transfer = Transfer(
        unit_id="u", task=task, seed=0, recipe={"batch_size": 64, "iterations": 100, **PAPER_SEARCH, "l2_count": 6,
                                                 "crop_pct": 1.0},
        data_root=synthetic.resolve("food101", "embedded:tiny"), pretrained_file=checkpoint,
        pretrained=lambda: load_checkpoint(checkpoint)[0], image_size=32, loader_workers=0, use_gpu=False,
        device=torch.device("cpu"), scratch=tmp_path, resume=None, restored_file=None, checkpoint=None,
    )  # fmt: skip
    result = PROTOCOLS["fixed_features"](transfer)
    train = task.read(transfer.data_root, "train")
    assert result["train_images"] == len(train.paths) and result["test_images"] == len(task.read(
        transfer.data_root, "test").paths)  # fmt: skip
    assert 0 < result["val_images"] < result["train_images"]
    assert len(result["search"]["l2"]) == 6 and result["l2"] in result["search"]["l2"]
    assert result["val_top1"] == max(result["search"]["val_top1"])
    assert 0 <= result["top1"] <= 1 and result["feature_dim"] == 512
