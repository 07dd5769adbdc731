"""The target tasks' metrics."""

import numpy as np

# A multi-label target's value for an image that is neither positive nor negative for a class (VOC's "difficult"
# only): left out of that class's ranking, as the VOC devkit does, and out of the training loss.
IGNORED = -1.0


def top1(scores: np.ndarray, labels: np.ndarray) -> float:
    return float((scores.argmax(1) == labels).mean())


def mean_per_class_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """The mean over the classes present in ``labels`` of the share of their images classified right."""
    predicted = scores.argmax(1)
    return float(np.mean([(predicted[labels == c] == c).mean() for c in np.unique(labels)]))


def mean_per_class_and_top1(scores: np.ndarray, labels: np.ndarray) -> dict:
    """The metrics of a task scored by mean per-class accuracy (Kornblith et al.'s metric on some datasets), with
    top-1 beside it."""
    return {"mean_per_class": mean_per_class_accuracy(scores, labels), "top1": top1(scores, labels)}


def precision_recall(scores: np.ndarray, positives: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Precision and recall at each rank of falling score (``positives``: 1 for a positive, 0 for a negative, or
    ``IGNORED``: left out of the ranking); None when there is no positive."""
    counted = positives != IGNORED
    hits = positives[counted][np.argsort(-scores[counted], kind="stable")] == 1
    if not hits.any():
        return None
    true_positives = np.cumsum(hits)
    return true_positives / np.arange(1, len(hits) + 1), true_positives / hits.sum()


def eleven_point_average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """VOC 2007 average precision: the mean, over recall thresholds 0, 0.1, ..., 1, of the highest precision at a
    recall at least that high (0 where none reaches it); NaN without positives."""
    if (curve := precision_recall(scores, positives)) is None:
        return float("nan")
    precision, recall = curve
    return float(np.mean([precision[recall >= t].max(initial=0.0) for t in np.linspace(0, 1, 11)]))


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """VOC (2010 and later) average precision: the area under the precision-recall curve, with precision made
    monotonically decreasing; NaN without positives."""
    if (curve := precision_recall(scores, positives)) is None:
        return float("nan")
    precision, recall = curve
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    return float((precision * np.diff(np.r_[0.0, recall])).sum())


def mean_average_precision(
    scores: np.ndarray, targets: np.ndarray, eleven_point: bool = False
) -> tuple[float, list[float]]:
    """Mean over columns (classes) of ``average_precision`` (``eleven_point``: VOC 2007's); also the per-class
    values."""
    precision_of = eleven_point_average_precision if eleven_point else average_precision
    per_class = [precision_of(scores[:, c], targets[:, c]) for c in range(targets.shape[1])]
    return float(np.nanmean(per_class)), per_class
