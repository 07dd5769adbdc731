"""The WordNet hierarchy is in the synthetic ImageNet's pixels: a small CNN trained briefly on
coarse WordNet labels recognises them on fine classes it never saw, far above chance."""

import collections

import numpy as np
import torch
from torch import nn

from formats.imagenet import imagenet1k_wnids, list_imagenet
from formats.prepared import prepare_images
from formats.wordnet import root_first_path, synset_of

COARSE_DEPTH = 6  # animal.n.01, container.n.01, clothing.n.01, device.n.01, ...
MIN_CLASSES, MAX_CLASSES = 12, 24


def coarse_groups() -> dict[str, list[str]]:
    """Ancestor at COARSE_DEPTH on each class's first hypernym path -> its ImageNet classes."""
    members = collections.defaultdict(list)
    for wnid in imagenet1k_wnids():
        path = root_first_path(synset_of(wnid))
        if len(path) > COARSE_DEPTH:
            members[path[COARSE_DEPTH].name()].append(wnid)
    return {name: wnids for name, wnids in sorted(members.items()) if len(wnids) >= MIN_CLASSES}


def load(root, wnid_to_label: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
    paths, labels = [], []
    for split in ("train", "val"):
        table = list_imagenet(root, split)
        for path, wnid in zip(table["path"].to_pylist(), table["wnid"].to_pylist()):
            if wnid in wnid_to_label:
                paths.append(path)
                labels.append(wnid_to_label[wnid])
    pixels = prepare_images(root, paths, 32).pixels
    return torch.from_numpy(np.array(pixels)).permute(0, 3, 1, 2).float() / 255, torch.tensor(labels)


def test_coarse_labels_transfer_to_unseen_fine_classes(tiny_imagenet):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    groups = coarse_groups()
    assert len(groups) >= 10
    seen, unseen = {}, {}
    for label, wnids in enumerate(groups.values()):
        chosen = rng.permutation(wnids)[:MAX_CLASSES]
        seen |= {w: label for w in chosen[: len(chosen) // 2]}
        unseen |= {w: label for w in chosen[len(chosen) // 2 :]}
    train_x, train_y = load(tiny_imagenet, seen)
    test_x, test_y = load(tiny_imagenet, unseen)

    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(64, len(groups)),
    )  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(15):
        for batch in torch.randperm(len(train_x)).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(train_x[batch]), train_y[batch]).backward()
            optimizer.step()
    with torch.no_grad():
        predicted = model(test_x).argmax(1)
    per_group = [(predicted[test_y == g] == g).float().mean().item() for g in range(len(groups))]
    balanced_accuracy, chance = float(np.mean(per_group)), 1 / len(groups)
    assert balanced_accuracy > 2.5 * chance, (balanced_accuracy, chance)
