"""PASCAL VOC 2007 detection: a Faster R-CNN on the project's AlexNet, fine-tuned and tested through MMDetection.

The detector (``configs/faster_rcnn_alexnet_voc07.py``) is Fast R-CNN's AlexNet recipe with an RPN: conv1-conv5
(``AlexNetBackbone``) give one feature map at stride 16, the RPN proposes on it, RoIs are pooled to 6x6 like
AlexNet's pool5 so that the pretrained fc6 and fc7 become the box head's two fcs (``AlexNetBBoxHead``); only the
classification and box-regression layers start from scratch. The small variant (stride 4 trunk) works the same
way with RoIs and anchors at stride 4.

``finetune_detection`` trains on VOC2007 trainval and tests on VOC2007 test (11-point mAP at IoU 0.5, and each
class's AP), in the calling process: alone, or as one rank of a ``torch.distributed`` process group that the
caller (a Ray Train worker) has already started. The run is checkpointed into its work_dir and resumes from
there when called again.
"""

import json
import logging
import math
import multiprocessing
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import cv2
import mmcv
import torch
import torch.distributed as dist
from mmdet.evaluation.functional import eval_map
from mmdet.evaluation.metrics import VOCMetric
from mmdet.models.roi_heads.bbox_heads import Shared2FCBBoxHead
from mmdet.registry import METRICS, MODELS
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmengine.runner import CheckpointLoader, Runner
from torch import nn

from formats import DataFormatError
from formats.voc import VOC_CLASSES, list_voc_detection, voc_year_dir
from models import load_checkpoint
from models.alexnet import AlexNet, AlexNetConfig
from trainers import PROTOCOLS, Transfer

CONFIG = Path(__file__).parent / "configs" / "faster_rcnn_alexnet_voc07.py"
TRUNK_STRIDE = {"imagenet": 16, "small": 4}  # conv1-conv5, see models/alexnet.py
SPLITS = {"train": "trainval", "test": "test"}  # the data loader's split: VOC 2007's
log = logging.getLogger(__name__)


@MODELS.register_module()
class AlexNetBackbone(BaseModule):
    """conv1-conv5 of ``models.alexnet.AlexNet`` with their ReLUs, without pool5: one feature map.

    ``checkpoint``: a file of ``models.save_checkpoint`` whose conv weights this trunk starts from.
    The first ``frozen_convs`` convs keep them, as Fast R-CNN kept conv1 of its AlexNet-sized model. BatchNorm
    layers, where the network has them, keep their pretrained statistics (mmdet's ``norm_eval``): a detector's
    few images per batch would estimate them badly.
    """

    def __init__(self, variant="imagenet", width=1.0, batch_norm=False, checkpoint=None, frozen_convs=1, init_cfg=None):
        super().__init__(init_cfg)
        self.checkpoint = checkpoint
        self.trunk = AlexNet(1, AlexNetConfig(variant, width, batch_norm=batch_norm)).trunk
        for conv in [layer for layer in self.trunk if isinstance(layer, nn.Conv2d)][:frozen_convs]:
            conv.requires_grad_(False)

    def init_weights(self):
        super().init_weights()
        if self.checkpoint is not None:
            pretrained, _ = load_checkpoint(self.checkpoint)
            self.trunk.load_state_dict(pretrained.trunk.state_dict())

    def train(self, mode: bool = True):
        super().train(mode)
        for layer in self.trunk:
            if isinstance(layer, nn.BatchNorm2d):
                layer.eval()
        return self

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.trunk(images),)


@MODELS.register_module()
class AlexNetBBoxHead(Shared2FCBBoxHead):
    """The box head of Fast R-CNN on AlexNet: 6x6 RoI features through fc6 and fc7 (``shared_fcs``, each after
    a dropout as in AlexNet), which start from the checkpoint's fc6 and fc7; classification and box regression
    start fresh."""

    def __init__(self, checkpoint=None, dropout=0.5, **kwargs):
        super().__init__(**kwargs)
        self.checkpoint = checkpoint
        self.dropout = nn.Dropout(dropout)

    def init_weights(self):
        super().init_weights()
        if self.checkpoint is not None:
            pretrained, _ = load_checkpoint(self.checkpoint)
            fc6, fc7 = pretrained.classifier[1], pretrained.classifier[4]
            self.shared_fcs[0].load_state_dict(fc6.state_dict())
            self.shared_fcs[1].load_state_dict(fc7.state_dict())

    def forward(self, rois: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = rois.flatten(1)
        for fc in self.shared_fcs:
            x = self.relu(fc(self.dropout(x)))
        return self.fc_cls(x), self.fc_reg(x)


@METRICS.register_module()
class VOCMetricPerClass(VOCMetric):
    """mmdet's VOCMetric (AP at IoU 0.5, difficult objects ignored, VOC's +1 pixel box sizes) that also returns
    each class's AP as ``AP_<class>``. A class without a (non-difficult) object in the test set has no AP (NaN)
    and no part in the mAP, as in mmdet."""

    def __init__(self, eval_mode="11points", collect_device="cpu", prefix=None):
        super().__init__(iou_thrs=0.5, metric="mAP", eval_mode=eval_mode, collect_device=collect_device, prefix=prefix)

    def compute_metrics(self, results: list) -> dict:
        annotations, detections = zip(*results)
        classes = self.dataset_meta["classes"]
        mean_ap, per_class = eval_map(
            detections,
            annotations,
            iou_thr=0.5,
            dataset=classes,
            logger=MMLogger.get_current_instance(),
            eval_mode=self.eval_mode,
            use_legacy_coordinate=True,
            nproc=1,  # no process pool inside a training worker
        )
        aps = {f"AP_{name}": float(c["ap"]) if c["num_gts"] else math.nan for name, c in zip(classes, per_class)}
        return {"mAP": float(mean_ap), **aps}


class AfterCheckpoint(Hook):
    """Calls ``callback(iteration, path)`` on every rank right after the CheckpointHook saved a checkpoint;
    ``path`` is the saved file on rank 0, None on the others. The CheckpointHook records each checkpoint it saves
    as the message hub's ``last_ckpt`` on every rank; this hook has a lower priority, so it runs after it."""

    def __init__(self, callback: Callable[[int, Path | None], None]):
        self.callback = callback
        self.handed = None

    def before_train(self, runner):
        self.handed = runner.message_hub.get_info("last_ckpt")  # the one resumed from, if any

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        saved = runner.message_hub.get_info("last_ckpt")
        if saved != self.handed:
            self.handed = saved
            self.callback(runner.iter + 1, Path(saved) if runner.rank == 0 else None)


class TrainingTimer(Hook):
    """Where this call's training started (the resumed iteration) and its images per second over all ranks,
    timed from the end of its first iteration (which also starts the data loader and warms up)."""

    def __init__(self):
        self.first_iteration = 0
        self.images = 0
        self.started = None
        self.elapsed = 0.0

    def before_train(self, runner):
        self.first_iteration = runner.iter

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.started is None:
            self.started = time.perf_counter()
            return
        self.images += len(data_batch["inputs"]) * runner.world_size
        self.elapsed = time.perf_counter() - self.started

    @property
    def images_per_second(self) -> float:
        return self.images / self.elapsed if self.elapsed else math.nan


def load_from_work_dir(filename: str, map_location=None) -> dict:
    return torch.load(filename, map_location=map_location, weights_only=False)


def trust_own_checkpoints(work_dir: str) -> None:
    """Let mmengine read the checkpoints under ``work_dir`` (and nowhere else) with torch.load's full unpickler.

    torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10.7 calls ``torch.load`` without
    saying otherwise, so resuming fails on what mmengine saves next to the weights: the message hub's
    ``HistoryBuffer`` of logged scalars pickles its bound methods through ``getattr``. Allowing ``getattr`` in
    the safe unpickler would let any file reach attributes of whatever it unpickles, weakening every load;
    instead only the files that this function's own runs wrote into their work_dir are trusted, through a
    checkpoint-loader scheme whose prefix is that folder. Everything else, pretrained AlexNet checkpoints
    included, still loads with ``weights_only=True``.
    """
    CheckpointLoader.register_scheme(re.escape(work_dir + os.sep), load_from_work_dir, force=True)


def check_inputs(checkpoint: Path, voc_root: Path) -> Path:
    """The VOCdevkit folder, once it and the checkpoint are known to exist; errors name the path and the fix before
    mmengine starts (``readable_split_lists`` reads the splits)."""
    if not checkpoint.is_file():
        raise FileNotFoundError(
            f"AlexNet checkpoint {checkpoint} does not exist: pass a file written by "
            f"models.save_checkpoint (a pretraining's output)."
        )
    return voc_year_dir(voc_root, "2007").parent


def decodes(path: Path) -> bool:
    """Whether MMDetection's image loading (mmcv's OpenCV decoder) decodes the file."""
    try:
        return mmcv.imfrombytes(path.read_bytes(), flag="color", backend="cv2") is not None
    except (OSError, cv2.error):  # a file gone, or one OpenCV refuses outright (an empty one)
        return False


def readable_split_lists(data_root: Path, work_dir: Path) -> tuple[dict[str, Path], int]:
    """For each data loader, the ids of its VOC 2007 split's images that decode, in a list written into
    ``work_dir`` for MMDetection to read instead of the split's own; and how many images were left out.
    MMDetection fails the worker on an image it cannot decode (in the test split it could not even skip it), so
    each such image is logged, left out and counted here. Malformed annotations are DataFormatErrors naming
    the file, raised before anything is written."""
    year_dir = data_root / "VOC2007"
    listed = {loader: [i.image_id for i in list_voc_detection(data_root, split)] for loader, split in SPLITS.items()}
    work_dir.mkdir(parents=True, exist_ok=True)
    lists, skipped = {}, 0
    for loader, ids in listed.items():
        readable = [i for i in ids if decodes(year_dir / "JPEGImages" / f"{i}.jpg")]  # the path MMDetection reads
        for image_id in sorted(set(ids) - set(readable)):
            log.warning("skipping unreadable image %s", year_dir / "JPEGImages" / f"{image_id}.jpg")
        if not readable:
            raise DataFormatError(f"no image of VOC 2007 {SPLITS[loader]} in {year_dir / 'JPEGImages'} decodes")
        skipped += len(ids) - len(readable)
        lists[loader] = work_dir / f"{SPLITS[loader]}_readable.txt"
        partial = lists[loader].with_name(f".{lists[loader].name}.{os.getpid()}")  # ranks may share the work_dir
        partial.write_text("".join(f"{image_id}\n" for image_id in readable))
        partial.replace(lists[loader])
    return lists, skipped


def distributed_launch() -> dict:
    """Runner settings that run this process as one rank of the caller's process group, when there is one.

    mmengine's Runner only calls ``init_dist`` when ``torch.distributed.is_initialized()`` is False, so with
    launcher "pytorch" it takes the existing group as it is (backend, ranks). Its DDP wrapper takes the LOCAL_RANK
    variable as device id, which is wrong on CPU (DDP takes no device ids for CPU modules); the ids are given
    here: the current CUDA device, which the caller chose (Ray Train sets it per worker), or none. mmengine still
    reads LOCAL_RANK first, so it must be set, as Ray Train and torchrun do.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return {"launcher": "none"}
    if "LOCAL_RANK" not in os.environ:
        raise RuntimeError(
            "torch.distributed is initialised but LOCAL_RANK is not set: mmengine reads it in a distributed run. "
            "Set LOCAL_RANK to this process's rank on its node (Ray Train and torchrun set it)."
        )
    return {
        "launcher": "pytorch",
        "model_wrapper_cfg": dict(
            type="MMDistributedDataParallel",
            device_ids=[torch.cuda.current_device()] if torch.cuda.is_available() else None,
            broadcast_buffers=False,
            find_unused_parameters=False,
        ),
    }


def learning_rate_schedule(iterations: int) -> list[dict]:
    """Linear warm-up over the first tenth (at most 500 iterations), then x0.1 for the last quarter."""
    warmup = min(500, iterations // 10)
    schedule = [dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=warmup)] if warmup else []
    if iterations:
        schedule.append(dict(type="MultiStepLR", by_epoch=False, end=iterations, milestones=[iterations * 3 // 4]))
    return schedule


def set_data(
    cfg: Config, data_root: Path, image_scale: int, batch_size: int, workers: int, split_lists: dict | None
) -> None:
    scale = (round(image_scale * 5 / 3), image_scale)  # Fast R-CNN's 1000 x 600 px box at 600
    for name, loader in (("train", cfg.train_dataloader), ("test", cfg.test_dataloader)):
        loader.dataset.data_root = str(data_root)
        if split_lists is not None:
            loader.dataset.ann_file = str(split_lists[name].resolve())
        loader.num_workers = workers
        loader.persistent_workers = workers > 0
        for step in loader.dataset.pipeline:
            if step.type == "Resize":
                step.scale = scale
    # Test images in batches too: one at a time, mmdet's per-call overhead was half of an embedded unit's test
    cfg.train_dataloader.batch_size = cfg.test_dataloader.batch_size = batch_size


def set_alexnet(cfg: Config, checkpoint: Path, image_scale: int) -> None:
    """Channels, fc sizes and stride from the AlexNet stored in the checkpoint, so that any width loads; anchors
    as many pixels at ``image_scale`` as the config's ``anchor_sizes`` are at 600 px, so that they cover the same
    share of the image at any scale."""
    alexnet, _ = load_checkpoint(checkpoint)
    if not isinstance(alexnet, AlexNet):
        raise ValueError(
            f"{checkpoint} holds a {alexnet.spec['name']}: the detector is built on AlexNet's conv1-conv5 and "
            "fc6/fc7 (Fast R-CNN's recipe), so detection transfers AlexNet pretrainings only"
        )
    config = alexnet.config
    channels = [layer for layer in alexnet.trunk if isinstance(layer, nn.Conv2d)][-1].out_channels  # conv5
    stride = TRUNK_STRIDE[config.variant]
    model = cfg.model
    model.data_preprocessor.pad_size_divisor = stride
    model.backbone.update(
        variant=config.variant, width=config.width, batch_norm=config.batch_norm, checkpoint=str(checkpoint)
    )
    model.rpn_head.update(in_channels=channels, feat_channels=channels)
    sizes = [size * image_scale / 600 for size in cfg.anchor_sizes]
    model.rpn_head.anchor_generator.update(strides=[stride], scales=[size / stride for size in sizes])
    model.roi_head.bbox_roi_extractor.update(out_channels=channels, featmap_strides=[stride])
    model.roi_head.bbox_head.update(
        in_channels=channels,
        fc_out_channels=alexnet.classifier[4].out_features,
        dropout=config.dropout,
        checkpoint=str(checkpoint),
    )


def detector_config(
    checkpoint: Path,
    data_root: Path,
    work_dir: Path,
    *,
    iterations: int,
    lr: float,
    batch_size: int,
    seed: int,
    image_scale: int,
    checkpoint_interval: int,
    workers: int,
    rois_per_image: int = 128,
    test_proposals: int = 300,
    split_lists: dict[str, Path] | None = None,
) -> Config:
    """The config file with everything that depends on this run filled in; ``split_lists`` (``train``, ``test``):
    lists of image ids that the data loaders read instead of VOC 2007's trainval and test lists."""
    # Unformatted: mmengine writes the config into the log, the work_dir and every checkpoint, and yapf's formatting
    # of it took 0.6 s a time, seconds of every embedded detection unit
    cfg = Config.fromfile(CONFIG, format_python_code=False)
    set_alexnet(cfg, checkpoint, image_scale)
    set_data(cfg, data_root, image_scale, batch_size, workers, split_lists)
    cfg.train_cfg.max_iters = iterations
    cfg.model.train_cfg.rcnn.sampler.num = rois_per_image
    cfg.model.test_cfg.rpn.max_per_img = test_proposals
    cfg.param_scheduler = learning_rate_schedule(iterations)
    cfg.optim_wrapper.optimizer.lr = lr
    cfg.default_hooks.checkpoint.interval = checkpoint_interval
    cfg.randomness = dict(seed=seed)
    # mmengine sets the start method of every later multiprocessing call; keep the caller's.
    cfg.env_cfg.mp_cfg.mp_start_method = multiprocessing.get_start_method(allow_none=True) or "fork"
    cfg.work_dir = os.path.abspath(work_dir)  # as the Runner makes it, for trust_own_checkpoints
    # Logger and visualizer are process-wide singletons looked up by this name: a unique one keeps two runs
    # in one process (a test, a sweep worker's next trial) from writing into each other's folders.
    cfg.experiment_name = f"{work_dir.name}-{uuid.uuid4().hex[:8]}"
    cfg.merge_from_dict(distributed_launch())
    return cfg


def finetune_detection(
    checkpoint: str | Path,
    voc_root: str | Path,
    work_dir: str | Path,
    *,
    iterations: int = 40000,
    lr: float = 0.001,
    batch_size: int = 2,
    seed: int = 0,
    image_scale: int = 600,
    checkpoint_interval: int = 1000,
    rois_per_image: int = 128,
    test_proposals: int = 300,
    workers: int = 2,
    resume_from: str | Path | None = None,
    on_checkpoint: Callable[[int, Path | None], None] | None = None,
) -> dict:
    """Fine-tune a Faster R-CNN from an AlexNet checkpoint on VOC2007 trainval, then test it on VOC2007 test.

    ``voc_root``: the VOCdevkit folder (or its VOC2007 folder). ``batch_size`` is per process; ``image_scale``
    the shorter image side (the longer at most 5/3 of it). ``rois_per_image``: the RoIs sampled per training image
    for the box head (Fast R-CNN's 128); ``test_proposals``: the RPN's proposals per test image (the Faster R-CNN
    paper's 300). Run as a rank of an initialised process group, every rank calls this with the same arguments and
    gets the same result.

    ``work_dir`` receives mmengine's checkpoints (``iter_<n>.pth``, the last two and the final one, with
    ``last_checkpoint``), a folder of logs per call, and ``result.json`` (the returned dict). Called again on
    the same work_dir, the run resumes from its latest checkpoint, also to go on to more iterations; a finished
    run is only tested again. ``resume_from``: a checkpoint of this same run saved elsewhere (e.g. restored from
    Ray Train's storage onto another node), to resume from when work_dir holds none. ``on_checkpoint(iteration,
    path)`` is called on every rank after each checkpoint is saved; ``path`` is the file on rank 0, None elsewhere.

    Returns ``map`` (11-point, IoU 0.5), ``ap_per_class`` (NaN for classes absent from the test set),
    ``images_per_second`` (training, all ranks; NaN when this call trained fewer than 2 iterations),
    ``iterations`` (trained in total), ``resumed_from`` (the iteration this call started at), ``train_images``
    and ``test_images`` (trainval images with an object to learn from, test images) and ``unreadable_skipped``
    (images of either split that cannot be decoded, left out of both).
    """
    checkpoint, work_dir = Path(checkpoint), Path(work_dir)
    data_root = check_inputs(checkpoint, Path(voc_root))
    split_lists, unreadable = readable_split_lists(data_root, work_dir)
    cfg = detector_config(
        checkpoint,
        data_root,
        work_dir,
        iterations=iterations,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        image_scale=image_scale,
        checkpoint_interval=checkpoint_interval,
        workers=workers,
        rois_per_image=rois_per_image,
        test_proposals=test_proposals,
        split_lists=split_lists,
    )
    trust_own_checkpoints(cfg.work_dir)
    if resume_from is not None and not (work_dir / "last_checkpoint").exists():
        work_dir.mkdir(parents=True, exist_ok=True)
        cfg.load_from = str(Path(cfg.work_dir) / "resumed_from.pth")  # in the work_dir, which is trusted
        shutil.copyfile(resume_from, cfg.load_from)
    runner = Runner.from_cfg(cfg)
    if on_checkpoint is not None:
        runner.register_hook(AfterCheckpoint(on_checkpoint), priority="LOWEST")
    timer = TrainingTimer()
    runner.register_hook(timer, priority="LOWEST")
    runner.train()
    # The test loop alone: Runner.test() would resume from the work_dir again, reloading what training just
    # left in memory, and on ranks > 0 possibly from a checkpoint that rank 0 is still writing.
    metrics = runner.test_loop.run()
    result = {
        "map": metrics["pascal_voc/mAP"],
        "ap_per_class": {name: metrics[f"pascal_voc/AP_{name}"] for name in VOC_CLASSES},
        "images_per_second": timer.images_per_second,
        "iterations": runner.iter,
        "resumed_from": timer.first_iteration,
        "train_images": len(runner.train_dataloader.dataset),
        "test_images": len(runner.test_dataloader.dataset),
        "unreadable_skipped": unreadable,
    }
    if runner.rank == 0:
        (work_dir / "result.json").write_text(json.dumps(result, indent=1))
    return result


@PROTOCOLS.register("detect")
def detect_unit(transfer: Transfer) -> dict:
    """The ``detect`` protocol: one pascal_det unit of a fine-tuning group, resumed from the detector checkpoint
    restored with its state; every saved mmengine checkpoint goes into a Ray Train checkpoint."""

    def checkpointed(iteration: int, detector_file: Path | None) -> None:
        transfer.checkpoint({"iteration": iteration}, {"iteration": iteration}, detector_file)

    outcome = finetune_detection(
        transfer.pretrained_file, transfer.data_root, transfer.scratch / transfer.unit_id, **transfer.recipe,
        seed=transfer.seed, workers=transfer.loader_workers, resume_from=transfer.restored_file,
        on_checkpoint=checkpointed,
    )  # fmt: skip
    # Classes without a test object have no AP: null, not NaN, in the results' JSON.
    per_class = {f"ap_{name}": None if math.isnan(ap) else ap for name, ap in outcome["ap_per_class"].items()}
    return {
        "map": outcome["map"], **per_class, "images_per_s": outcome["images_per_second"],
        **{key: outcome[key] for key in ("iterations", "resumed_from", "train_images", "test_images",
                                         "unreadable_skipped")},
    }  # fmt: skip
