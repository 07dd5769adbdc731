"""Pretraining a network (a registered model: AlexNet, or any timm architecture) on a subset: the first stage of
the loop every Ray Train worker of a grid point runs (orchestrator.trial).

The subset is a Parquet manifest (subsets.manifest): training rows give images and labels,
validation rows the subset's own relabelled validation set; each row's path lies in its source's folder
(ImageNet's, or the extra data's for the added classes of extra_<N>). The recipe is the paper era's: SGD
with momentum and weight decay, the learning rate divided by 10 every ``lr_step_epochs``. A
checkpoint after every epoch lets Ray Train resume a restarted worker group where it stopped.
"""

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import ray.train.torch
import torch
from torch import nn

import synthetic
from formats.imagenet import class_list, imagenet_image_root, list_imagenet
from formats.prepared import SOURCE_IMAGES, prepare_images, prepared_size
from models import create_model, normalisation, save_checkpoint
from models.published import PUBLISHED_TOP1, load_published, weights_name
from subsets.manifest import IMAGENET, IMAGENET_EXTRA, read_manifest
from tasks.metrics import top1
from trainers import engine

MODEL_FILE, STATE_FILE = "model.pt", "train_state.pt"


@dataclass(frozen=True)
class PretrainConfig:
    manifest: str  # the subset's manifest.parquet (a path or a pyarrow filesystem URI)
    data_source: str  # embedded:<scale> or the ImageNet root the manifest's paths are relative to
    num_labels: int
    extra_source: str | None = None  # extra_<N>: embedded:<scale> or the folder of the extra rows' paths
    model: dict = field(default_factory=lambda: {"name": "alexnet", "args": {}})  # models.create_model's name, args
    image_size: int = 224
    epochs: int = 90
    batch_size: int = 128  # per worker
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_step_epochs: int = 30
    loader_workers: int = 4  # processes that prepare the images, the first time a node reads them
    use_gpu: bool = False
    seed: int = 0
    unit_id: str = ""  # the pretraining's: a worker group that runs several (resources.points_per_trial) checkpoints each


def run(config: dict) -> tuple[nn.Module, list[dict]]:
    """Trains on every worker of the group (resuming from the group's latest pretraining checkpoint) and returns
    the trained network and each epoch's metrics."""
    cfg = PretrainConfig(**config)
    started_at = time.time()
    torch.manual_seed(cfg.seed)
    device = ray.train.torch.get_device() if cfg.use_gpu else torch.device("cpu")
    manifest = read_manifest(cfg.manifest, ["split", "path", "source", "label"])
    sources = {IMAGENET: cfg.data_source, IMAGENET_EXTRA: cfg.extra_source}
    network = create_model(cfg.model["name"], cfg.num_labels, cfg.model["args"])
    mean, std = normalisation(network)
    prepared = {}  # every image of each source the manifest reads, prepared once on this node for every trial
    for source in manifest["source"].unique():
        folder, paths = SOURCE_IMAGES[source](synthetic.resolve(source, sources[source]))
        prepared[source] = prepare_images(folder, paths, prepared_size(cfg.image_size), workers=cfg.loader_workers)
    batches = {}
    for split in ("train", "val"):
        parts = list(manifest[manifest["split"] == split].groupby("source", observed=True))
        batches[split] = engine.Batches(
            [(prepared[source], prepared[source].rows(part["path"].tolist())) for source, part in parts],
            np.concatenate([part["label"].to_numpy(np.int64) for _, part in parts]),
            image_size=cfg.image_size, train=split == "train", batch_size=cfg.batch_size, seed=cfg.seed,
            mean=mean, std=std, device=device,
        )  # fmt: skip
    train, val = batches["train"], batches["val"]

    model = engine.prepare(network, cfg.use_gpu)
    optimizer = torch.optim.SGD(model.parameters(), cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, cfg.lr_step_epochs, gamma=0.1)
    history, first_epoch = [], 0
    restored = engine.restore([MODEL_FILE, STATE_FILE])
    if restored and restored[STATE_FILE].get("unit_id", cfg.unit_id) != cfg.unit_id:
        restored = None  # another pretraining's of the same worker group, which ended (checkpoints before ids: one)
    if restored:
        network.load_state_dict(restored[MODEL_FILE]["model"])
        optimizer.load_state_dict(restored[STATE_FILE]["optimizer"])
        schedule.load_state_dict(restored[STATE_FILE]["schedule"])
        history = restored[STATE_FILE]["history"]
        first_epoch = len(history)

    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(first_epoch, cfg.epochs):
        metrics = engine.train_epoch(model, train, optimizer, loss_fn, device, cfg.use_gpu, epoch)
        schedule.step()
        metrics |= {"epoch": epoch + 1, "lr": schedule.get_last_lr()[0]}
        if restored and epoch == first_epoch:  # the history shows where an interrupted pretraining went on
            metrics["resumed_after_epoch"] = first_epoch
        if epoch + 1 == cfg.epochs:  # the validation set can outsize a small subset: once, at the end
            scores, labels = engine.predict(model, val)
            metrics["val_top1"] = top1(scores, labels)
            # The span of this worker loop (its last attempt's), which the orchestration overhead is measured against
            metrics |= {"trainer_started_at": started_at, "trainer_finished_at": time.time()}
        history.append(metrics)

        def save(directory: Path) -> None:
            save_checkpoint(directory / MODEL_FILE, network, {"pretrain": asdict(cfg)})
            state = {"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "history": history,
                     "unit_id": cfg.unit_id}  # fmt: skip
            torch.save(state, directory / STATE_FILE)

        engine.report(metrics, save)
    return network, history


def published(config: dict) -> tuple[nn.Module, list[dict]]:
    """The stage of a pretraining that is published weights (``config["published"]``: model, tag, folder, imagenet):
    the network, and a history of one entry holding its ImageNet top-1: measured on the real ImageNet's validation
    set where the run has one, else the top-1 timm publishes for the weights (``models.published.PUBLISHED_TOP1``)."""
    weights = config["published"]
    network = load_published(weights["model"], weights["tag"], weights["folder"])
    name = weights_name(weights["model"], weights["tag"])
    if weights["imagenet"] is None:
        top1_value = PUBLISHED_TOP1.get(name)
        entry = {"val_top1": None if top1_value is None else top1_value / 100, "images_per_s": None,
                 "imagenet_top1_source": "published (timm's results-imagenet.csv)" if top1_value else "unknown"}  # fmt: skip
        return network, [entry]
    device = ray.train.torch.get_device() if config["use_gpu"] else torch.device("cpu")
    root = Path(weights["imagenet"])
    listing = list_imagenet(root, "val")
    index = {wnid: k for k, wnid in enumerate(class_list("imagenet1k"))}  # the order of timm's ImageNet-1k heads
    size, crop_pct = config["image_size"], network.pretrained_cfg["crop_pct"]  # timm's evaluation of the weights
    images = prepare_images(imagenet_image_root(root), listing["path"].to_pylist(), size,
                            workers=config["loader_workers"], centre_crop_pct=crop_pct)  # fmt: skip
    mean, std = normalisation(network)
    data = engine.Batches([(images, np.arange(len(images.paths)))], [index[w] for w in listing["wnid"].to_pylist()],
                          image_size=size, train=False, batch_size=config["batch_size"], seed=0, mean=mean, std=std,
                          device=device)  # fmt: skip
    started = time.perf_counter()
    scores, labels = engine.predict(network.to(device), data)
    return network.cpu(), [{"val_top1": top1(scores, labels), "images_per_s": len(labels) / (time.perf_counter() - started),
                            "imagenet_top1_source": f"measured on {root}"}]  # fmt: skip
