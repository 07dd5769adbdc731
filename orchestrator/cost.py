"""What a plan costs before it runs: its training images, divided by the throughput the benchmarks measured
(``orchestrator/throughput.yaml``, one table per device kind), in device-hours of one worker's device (a GPU, or
a CPU core), and at ``cost.price_per_hour``, in money. Ideal scaling is assumed: DDP over N workers takes 1/N of
the time on N devices. What has no measured rate, or whose data is not here to count, is named as not costed.

Images per unit: a pretraining's budget (or images per class x classes) x epochs; a classifier fine-tuning's
training split x epochs (counted on the data: embedded data is generated for it, a real dataset must be here);
a detector's iterations x batch size. Probes run forward passes only and are not costed.
"""

import functools
from pathlib import Path

import numpy as np
import yaml
from omegaconf import DictConfig

import synthetic
from formats import DataFormatError
from formats.imagenet import class_list
from models import full_args
from tasks import TASKS

THROUGHPUT_FILE = Path(__file__).with_name("throughput.yaml")


@functools.cache
def throughput() -> dict:
    return yaml.safe_load(THROUGHPUT_FILE.read_text())


def device_kind(config: DictConfig) -> str | None:
    """The table the plan is costed with: ``cost.device``, else ``cpu`` for a CPU run; None for a GPU run that
    does not name its GPU."""
    return config.cost.device or (None if config.resources.use_gpu else "cpu")


def _rate(rows: list[dict], fields: dict) -> float | None:
    for row in rows:
        if all(
            fields.get(key) == value
            for key, value in row.items()
            if key not in ("images_per_s", "measured_by", "commit", "args")
        ):
            if all(fields["args"].get(key) == value for key, value in row.get("args", {}).items()):
                return row["images_per_s"]
    return None


FEATURE_PROTOCOLS = {"probe", "fixed_features"}  # one forward pass per image and a linear fit: not costed
SEARCH_PROTOCOLS = {"finetune_search", "scratch_search"}  # a hyper-parameter grid of trainings of a number of steps


def search_settings(recipe: dict) -> list[dict]:
    """A search protocol's grid: its (lr, weight_decay) settings, in a fixed order."""
    rates = np.logspace(np.log10(recipe["lr_min"]), np.log10(recipe["lr_max"]), recipe["lr_count"])
    decays = np.logspace(np.log10(recipe["weight_decay_min"]), np.log10(recipe["weight_decay_max"]),
                         recipe["weight_decay_count"])  # fmt: skip
    decays = [*([0.0] if recipe["weight_decay_zero"] else []), *decays]
    return [{"lr": float(lr), "weight_decay": float(decay)} for lr in rates for decay in decays]


@functools.cache
def _train_images(task: str, source: str, seed: int) -> int | None:
    dataset = TASKS[task].dataset
    if not source.startswith(synthetic.EMBEDDED) and not Path(source).expanduser().is_dir():
        return None
    try:
        return len(TASKS[task].read(synthetic.resolve(dataset, source), TASKS[task].splits[0], seed=seed).paths)
    except (DataFormatError, OSError):
        return None


def estimate(plan, config: DictConfig, finished: set[str]) -> str:
    """The unfinished units' device-hours (and price) on the configured device kind, in words."""
    kind = device_kind(config)
    if kind is None:
        return ("cost: name the GPU to cost the plan on, cost.device=<a device kind of orchestrator/throughput.yaml: "
                f"{', '.join(sorted(throughput()))}>")  # fmt: skip
    table = throughput()[kind]
    seconds, uncosted = {"pretraining": 0.0, "fine-tuning": 0.0, "detection": 0.0}, []

    def add(part: str, what: str, images: int | None, rate: float | None) -> None:
        if rate is None or not images:
            uncosted.append(f"{what} ({'no measured rate' if rate is None else 'its images are not counted here'})")
        else:
            seconds[part] += images / rate

    for pretraining in plan.pretrainings:
        subset, recipe = pretraining.subset, pretraining.recipe
        network = {"model": pretraining.model["name"], "args": full_args(**pretraining.model),
                   "image_size": recipe["image_size"]}  # fmt: skip
        classify = _rate(table.get("classify", []), network)
        if pretraining.unit_id not in finished and pretraining.weights is None:
            classes = len(subset.resolve_labels(class_list("imagenet1k")).labels)
            per_epoch = subset.budget or (subset.images_per_class or 0) * classes  # 0: every image, not counted
            add("pretraining", f"pretraining {pretraining.unit_id}", per_epoch * recipe["epochs"], classify)
        for unit in plan.finetunings_of(pretraining.unit_id):
            what = f"{unit.task} fine-tuning {unit.unit_id}"
            if unit.unit_id in finished or unit.protocol in FEATURE_PROTOCOLS:
                continue
            if unit.protocol == "detect":
                fields = {"args": network["args"], "image_scale": unit.recipe["image_scale"],
                          "rois_per_image": unit.recipe["rois_per_image"]}
                add("detection", what, unit.recipe["iterations"] * unit.recipe["batch_size"],
                    _rate(table.get("detect", []), fields))  # fmt: skip
            elif unit.protocol in SEARCH_PROTOCOLS:  # every setting, then the refit: steps of a batch each
                add("fine-tuning", what, (len(search_settings(unit.recipe)) + 1) * unit.recipe["steps"]
                    * unit.recipe["batch_size"], classify)  # fmt: skip
            else:
                count = _train_images(unit.task, unit.data_source, unit.seed)
                add("fine-tuning", what, count and count * unit.recipe["epochs"], classify)
    hours = sum(seconds.values()) / 3600
    price = config.cost.price_per_hour
    line = (f"cost on {kind} ({table['machine']}): {hours:.2f} device-hours ("
            + ", ".join(f"{name} {value / 3600:.2f}" for name, value in seconds.items()) + ")"
            + (f", {hours * price:,.2f} at {price} per device-hour" if price is not None else ""))  # fmt: skip
    if uncosted:
        line += f"; not costed: {len(uncosted)} unit(s), such as {uncosted[0]}"
    return line
