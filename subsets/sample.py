"""Which images of the kept classes a pretraining sees.

Every image gets a rank key: a keyed hash of its path (the key is the seed). Within a class, or
within a merged label, images are taken in key order, so a selection is deterministic, does not
depend on which other images are listed, and is nested: the 250 images per class of a seed are
among its 500.
"""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from subsets.labels import LabelSet


class SamplingError(ValueError):
    pass


def rank_keys(paths: list[str] | np.ndarray, seed: int) -> np.ndarray:
    if not 0 <= seed < 10**16:
        raise SamplingError(f"seed must be between 0 and 10**16, not {seed}")
    return pd.util.hash_array(np.asarray(paths, dtype=object), hash_key=f"{seed:016d}", categorize=False)


def relabel(listing: pa.Table, label_set: LabelSet) -> pd.DataFrame:
    """The listed images (``path``, ``wnid`` and any other column) of the label set's classes with ``label``
    (index) and ``label_wnid``; wnids are categorical, so that 1.28M rows relabel in a blink."""
    encoded = pc.dictionary_encode(listing["wnid"]).combine_chunks()
    classes = encoded.dictionary.to_pylist()
    index, labels = label_set.label_index, label_set.labels
    label_of_class = np.array([index[labels[w]] if w in labels else -1 for w in classes], dtype=np.int32)
    codes = encoded.indices.to_numpy()
    label = label_of_class[codes]
    keep = label >= 0
    return listing.drop_columns("wnid").filter(pa.array(keep)).to_pandas().assign(
        wnid=pd.Categorical.from_codes(codes[keep], classes),
        label=label[keep],
        label_wnid=pd.Categorical.from_codes(label[keep], label_set.label_wnids),
    )


def select(
    listing: pa.Table,
    label_set: LabelSet,
    seed: int,
    images_per_class: int | None = None,
    budget: int | None = None,
) -> tuple[pd.DataFrame, dict]:
    """The training images of a subset, and facts about the selection.

    ``images_per_class``: that many images of every kept class (all of them when neither limit
    is given). ``budget``: that many images in all, spread equally over the label set's labels;
    a label holding fewer images than its share gives what it has, and the shortfall is reported.
    """
    if images_per_class is not None and budget is not None:
        raise SamplingError("give images_per_class or budget, not both")
    for name, value in (("images_per_class", images_per_class), ("budget", budget)):
        if value is not None and value < 1:
            raise SamplingError(f"{name} must be at least 1, not {value}")
    frame = relabel(listing, label_set)
    counts = frame["wnid"].value_counts().reindex(list(label_set.labels), fill_value=0)  # the set's classes only
    absent = counts.index[counts == 0].tolist()
    if absent:
        raise SamplingError(
            f"{len(absent)} class(es) of label set {label_set.name!r} have no images in the data: "
            f"{', '.join(absent[:5])}{' ...' if len(absent) > 5 else ''}. Use data that holds them, "
            "or another label set."
        )
    frame["key"] = rank_keys(frame["path"].to_numpy(), seed)
    facts = {"shortfall": 0}
    if images_per_class is not None:
        smallest = counts.sort_values().head(3)
        if smallest.iloc[0] < images_per_class:
            held = ", ".join(f"{w} holds {n}" for w, n in smallest.items() if n < images_per_class)
            raise SamplingError(
                f"images_per_class={images_per_class} asks more than some classes hold ({held}). "
                f"Use images_per_class <= {smallest.iloc[0]}, or a budget, or all images."
            )
        frame = _first_in_key_order(frame, frame["wnid"].cat.codes.to_numpy(), images_per_class)
    elif budget is not None:
        labels = label_set.num_labels
        share = np.full(labels, budget // labels)
        share[: budget % labels] += 1  # the remainder goes to the first labels in index order
        held = frame["label"].value_counts().reindex(range(labels), fill_value=0).to_numpy()
        frame = _first_in_key_order(frame, frame["label"].to_numpy(), share)
        facts = {"shortfall": int(np.maximum(share - held, 0).sum()), "budget": budget}
    return frame.drop(columns="key").reset_index(drop=True), facts


def _first_in_key_order(frame: pd.DataFrame, groups: np.ndarray, quota) -> pd.DataFrame:
    """The first ``quota`` rows of each group in key order, ordered by (group, key). ``groups``:
    an integer per row; ``quota``: a number, or an array indexed by group."""
    order = np.lexsort((frame["key"].to_numpy(), groups))
    grouped = groups[order]
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    limit = quota if np.isscalar(quota) else np.asarray(quota)[grouped]
    return frame.iloc[order[rank < limit]]
