"""The target tasks' metrics."""

import numpy as np


def top1(scores: np.ndarray, labels: np.ndarray) -> float:
    return float((scores.argmax(1) == labels).mean())


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """VOC (2010 and later) average precision: the area under the precision-recall curve, with
    precision made monotonically decreasing. ``positives``: 1 for a positive, 0 otherwise."""
    order = np.argsort(-scores, kind="stable")
    hits = positives[order].astype(bool)
    if not hits.any():
        return float("nan")
    true_positives = np.cumsum(hits)
    precision = true_positives / np.arange(1, len(hits) + 1)
    recall = true_positives / hits.sum()
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    recall_steps = np.diff(np.r_[0.0, recall])
    return float((precision * recall_steps).sum())


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> tuple[float, list[float]]:
    """Mean over columns (classes) of ``average_precision``; also the per-class values."""
    per_class = [average_precision(scores[:, c], targets[:, c]) for c in range(targets.shape[1])]
    return float(np.nanmean(per_class)), per_class
