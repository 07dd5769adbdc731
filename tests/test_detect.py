"""VOC 2007 detection through MMDetection: the AlexNet backbone and box head start from a project checkpoint of
any width, mmdet reads the VOC layout as the project does, the mAP is VOC's devkit definition, an interrupted run
resumes, and the ranks of a process group started before the call train and test together."""

import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing
from mmdet.registry import DATASETS, MODELS
from mmengine.dist import get_dist_info
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope
from mmengine.runner import CheckpointLoader, Runner
from omegaconf import OmegaConf

from formats import DataFormatError
from formats.voc import VOC_CLASSES, list_voc_detection
from models import create_model, load_checkpoint, save_checkpoint
from synthetic import voc
from trainers.detect import detector_config, finetune_detection

ROOT = Path(__file__).resolve().parents[1]
# Lean settings for 2 CPU cores: the tiny VOC at its own size (128 x 96 px), no data-loader processes.
FAST = dict(batch_size=2, image_scale=96, workers=0)


def fresh_alexnet(path: Path, **config) -> Path:
    torch.manual_seed(0)
    save_checkpoint(path, create_model("alexnet", 1000, config))
    return path


def config_for(checkpoint: Path, voc_root: Path, work_dir: Path):
    init_default_scope("mmdet")
    return detector_config(
        checkpoint, voc_root, work_dir, iterations=10, lr=0.01, seed=0, checkpoint_interval=5, **FAST
    )


@pytest.mark.parametrize("width", [0.125, 0.3])
def test_backbone_and_box_head_start_from_the_checkpoint(tmp_path, tiny_voc, width):
    checkpoint = fresh_alexnet(tmp_path / "alexnet.pt", width=width)
    pretrained, _ = load_checkpoint(checkpoint)
    detector = MODELS.build(config_for(checkpoint, tiny_voc, tmp_path).model)
    detector.init_weights()

    trunk = detector.backbone.trunk
    assert all(torch.equal(a, b) for a, b in zip(trunk.state_dict().values(), pretrained.trunk.state_dict().values()))
    head = detector.roi_head.bbox_head
    for fc, alexnet_fc in zip(head.shared_fcs, (pretrained.classifier[1], pretrained.classifier[4])):
        assert torch.equal(fc.weight, alexnet_fc.weight) and torch.equal(fc.bias, alexnet_fc.bias)
    assert head.fc_cls.out_features == 21 and head.fc_reg.out_features == 80  # 20 classes + background
    assert not trunk[0].weight.requires_grad and trunk[3].weight.requires_grad  # conv1 frozen, as Fast R-CNN's

    images = torch.zeros(2, 3, 224, 224)
    (features,) = detector.extract_feat(images)
    assert features.shape == pretrained.trunk(images).shape == (2, trunk[-2].out_channels, 13, 13)  # stride 16


def test_small_variant_detects_at_stride_4(tmp_path, tiny_voc):
    from mmdet.apis import inference_detector

    checkpoint = fresh_alexnet(tmp_path / "alexnet.pt", variant="small", width=0.125)
    cfg = config_for(checkpoint, tiny_voc, tmp_path)
    assert cfg.model.rpn_head.anchor_generator.strides == [4]
    assert cfg.model.roi_head.bbox_roi_extractor.featmap_strides == [4]
    detector = MODELS.build(cfg.model)
    detector.init_weights()
    detector.cfg = cfg
    image = next((tiny_voc / "VOC2007" / "JPEGImages").glob("*.jpg"))
    detections = inference_detector(detector, str(image)).pred_instances
    assert detections.bboxes.shape[1] == 4 and len(detections.scores) == len(detections.labels)
    assert detector.extract_feat(torch.zeros(1, 3, 64, 64))[0].shape[-1] == 15


def test_the_recipe_sets_the_box_heads_rois_the_test_proposals_and_the_test_batch(tmp_path, tiny_voc):
    checkpoint = fresh_alexnet(tmp_path / "alexnet.pt", variant="small", width=0.125)
    init_default_scope("mmdet")
    cfg = detector_config(checkpoint, tiny_voc, tmp_path, iterations=10, lr=0.01, seed=0, checkpoint_interval=5,
                          rois_per_image=16, test_proposals=20, **FAST)  # fmt: skip
    assert cfg.model.train_cfg.rcnn.sampler.num == 16 and cfg.model.test_cfg.rpn.max_per_img == 20
    assert cfg.test_dataloader.batch_size == cfg.train_dataloader.batch_size == FAST["batch_size"]
    assert "    " not in cfg.pretty_text.split("model = ", 1)[1].split("\n", 1)[0]  # left unformatted: yapf is slow


def test_test_images_in_a_batch_get_the_detections_they_get_alone(tmp_path, tiny_voc):
    """Test images go through the detector in batches of the training batch size; each image's detections must not
    depend on its batch (the synthetic images share a size, so nothing is padded)."""
    checkpoint = fresh_alexnet(tmp_path / "alexnet.pt", variant="small", width=0.125)
    cfg = config_for(checkpoint, tiny_voc, tmp_path)
    cfg.model.test_cfg.rcnn.score_thr = 0.0  # an untrained head scores every class near 1/21: keep them all
    detector = MODELS.build(cfg.model)
    detector.init_weights()
    detector.eval()
    batch = next(iter(Runner.build_dataloader(cfg.test_dataloader)))
    assert len(batch["inputs"]) == FAST["batch_size"]
    with torch.no_grad():
        together = detector.test_step(batch)
        alone = [detector.test_step({"inputs": [image], "data_samples": [sample]})[0]
                 for image, sample in zip(batch["inputs"], batch["data_samples"])]  # fmt: skip
    for in_batch, by_itself in zip(together, alone):
        assert in_batch.img_id == by_itself.img_id and len(in_batch.pred_instances) == len(by_itself.pred_instances) > 0
        top = lambda result: result.pred_instances.scores.sort(descending=True).values[:20]  # noqa: E731
        torch.testing.assert_close(top(in_batch), top(by_itself), rtol=0, atol=1e-4)


def test_mmdet_reads_the_voc_layout_as_the_project_reader(tmp_path, tiny_voc):
    checkpoint = fresh_alexnet(tmp_path / "alexnet.pt", width=0.125)
    dataset = DATASETS.build(config_for(checkpoint, tiny_voc, tmp_path).test_dataloader.dataset)
    ours = list_voc_detection(tiny_voc, "test")
    assert len(dataset) == len(ours) == 40
    assert dataset.metainfo["classes"] == VOC_CLASSES and dataset.metainfo["dataset_type"] == "VOC2007"
    for index, image in enumerate(ours):
        info = dataset.get_data_info(index)
        assert Path(info["img_path"]) == image.path
        # mmdet's boxes are VOC's minus one (zero-based), and difficult objects are ignored.
        theirs = [(tuple(o["bbox"]), VOC_CLASSES[o["bbox_label"]], bool(o["ignore_flag"])) for o in info["instances"]]
        expected = [(tuple(c - 1 for c in o.box), o.name, o.difficult) for o in image.objects]
        assert theirs == expected


# mAP ------------------------------------------------------------------------------------------------------------


def devkit_iou(a, b) -> float:
    """VOC devkit's overlap: boxes hold their last pixel, so a side is max - min + 1."""
    width = min(a[2], b[2]) - max(a[0], b[0]) + 1
    height = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if width <= 0 or height <= 0:
        return 0.0
    area = lambda box: (box[2] - box[0] + 1) * (box[3] - box[1] + 1)  # noqa: E731
    return width * height / (area(a) + area(b) - width * height)


def devkit_ap(ground_truths: dict, detections: list, name: str) -> float:
    """VOCevaldet's average precision of one class, 11-point (VOC 2007): detections in falling score order;
    one hits the object it overlaps most if IoU >= 0.5 and the object is not yet found, counts for nothing if
    that object is difficult, and is a false positive otherwise. NaN without a non-difficult object."""
    objects = {image: [(box, hard) for box, n, hard in items if n == name] for image, items in ground_truths.items()}
    positives = sum(not difficult for items in objects.values() for _, difficult in items)
    if not positives:
        return float("nan")
    found = {image: [False] * len(items) for image, items in objects.items()}
    hits, misses = [], []
    for image, _, box in sorted((d for d in detections if d[1] == name), key=lambda d: -d[2][4]):
        overlaps = [devkit_iou(box, gt) for gt, _ in objects[image]]
        best = int(np.argmax(overlaps)) if overlaps else None
        if best is not None and overlaps[best] >= 0.5:
            if objects[image][best][1]:
                continue
            hit = not found[image][best]
            found[image][best] = True
        else:
            hit = False
        hits.append(hit)
        misses.append(not hit)
    true_positives, false_positives = np.cumsum(hits), np.cumsum(misses)
    recall = true_positives / positives
    precision = true_positives / np.maximum(true_positives + false_positives, 1)
    return sum(max(precision[recall >= t], default=0.0) for t in np.arange(0, 1.1, 0.1)) / 11


# Per image: (box, class, difficult); boxes zero-based, inclusive, as mmdet holds VOC's.
GROUND_TRUTHS = {
    "a": [((10, 10, 49, 49), "cat", False), ((60, 10, 99, 59), "dog", False),
          ((0, 50, 29, 89), "person", True), ((100, 0, 139, 79), "person", False)],
    "b": [((0, 0, 19, 19), "cat", False), ((50, 50, 89, 89), "cat", False), ((0, 0, 99, 49), "bus", False)],
    "c": [((20, 20, 59, 59), "dog", False), ((10, 10, 49, 89), "person", False)],
}  # fmt: skip
# (image, class, (box, score))
DETECTIONS = [
    ("a", "cat", (10, 10, 49, 49, 0.9)),  # hit
    ("a", "cat", (12, 12, 50, 50, 0.8)),  # the same cat again: false positive
    ("c", "cat", (10, 10, 49, 49, 0.7)),  # no cat there
    ("b", "cat", (0, 0, 19, 9, 0.6)),  # IoU exactly 0.5 with VOC's +1 sides (0.47 without): hit
    ("b", "cat", (50, 50, 89, 89, 0.3)),  # hit
    ("c", "dog", (30, 20, 69, 59, 0.95)),  # IoU 0.6: hit
    ("c", "dog", (40, 40, 79, 79, 0.85)),  # IoU 0.14: false positive
    ("a", "dog", (60, 10, 99, 59, 0.5)),  # hit
    ("a", "person", (0, 50, 29, 89, 0.99)),  # the difficult person: neither hit nor miss
    ("c", "person", (0, 0, 9, 9, 0.9)),  # false positive
    ("a", "person", (100, 0, 139, 79, 0.4)),  # hit
    ("c", "person", (10, 10, 49, 89, 0.2)),  # hit
    ("b", "train", (0, 0, 50, 50, 0.5)),  # no train anywhere: the class has no AP
]


def as_data_sample(image: str) -> dict:
    def instances(items):
        boxes = torch.tensor([box for box, _, _ in items], dtype=torch.float32).reshape(-1, 4)
        return {"bboxes": boxes, "labels": torch.tensor([VOC_CLASSES.index(n) for _, n, _ in items], dtype=torch.long)}

    mine = [d for d in DETECTIONS if d[0] == image]
    return {
        "gt_instances": instances([o for o in GROUND_TRUTHS[image] if not o[2]]),
        "ignored_instances": instances([o for o in GROUND_TRUTHS[image] if o[2]]),
        "pred_instances": {
            "bboxes": torch.tensor([d[2][:4] for d in mine], dtype=torch.float32).reshape(-1, 4),
            "scores": torch.tensor([d[2][4] for d in mine], dtype=torch.float32),
            "labels": torch.tensor([VOC_CLASSES.index(d[1]) for d in mine], dtype=torch.long),
        },
    }


def test_map_is_the_devkit_11_point_average_precision(tmp_path, tiny_voc):
    checkpoint = fresh_alexnet(tmp_path / "alexnet.pt", width=0.125)
    evaluator = Evaluator(config_for(checkpoint, tiny_voc, tmp_path).test_evaluator)  # the run's own metric
    evaluator.dataset_meta = {"classes": VOC_CLASSES, "dataset_type": "VOC2007"}
    evaluator.process([as_data_sample(image) for image in GROUND_TRUTHS])
    metrics = evaluator.evaluate(len(GROUND_TRUTHS))

    expected = {name: devkit_ap(GROUND_TRUTHS, DETECTIONS, name) for name in VOC_CLASSES}
    assert expected["cat"] == pytest.approx((4 * 1 + 3 * 0.6 + 4 * 0.6) / 11)  # worked by hand
    assert expected["bus"] == 0 and np.isnan(expected["train"]) and np.isnan(expected["sheep"])
    for name in VOC_CLASSES:
        assert metrics[f"pascal_voc/AP_{name}"] == pytest.approx(expected[name], nan_ok=True), name
    assert metrics["pascal_voc/mAP"] == pytest.approx(np.nanmean(list(expected.values())))


# Runs -----------------------------------------------------------------------------------------------------------


def test_missing_inputs_are_named_before_training(tmp_path, tiny_voc):
    checkpoint = fresh_alexnet(tmp_path / "alexnet.pt", width=0.125)
    with pytest.raises(FileNotFoundError, match=r"no-such\.pt.*save_checkpoint"):
        finetune_detection(tmp_path / "no-such.pt", tiny_voc, tmp_path / "run", iterations=1)
    with pytest.raises(DataFormatError, match=r"no-voc-here.*VOCdevkit.*python -m synthetic generate"):
        finetune_detection(checkpoint, tmp_path / "no-voc-here", tmp_path / "run", iterations=1)
    assert not (tmp_path / "run").exists()


def test_resumes_an_interrupted_run_from_its_work_dir(tmp_path, tiny_voc):
    checkpoint = fresh_alexnet(tmp_path / "alexnet.pt", width=0.125)
    run = tmp_path / "run"
    first = finetune_detection(checkpoint, tiny_voc, run, iterations=4, checkpoint_interval=2, **FAST)
    assert (first["iterations"], first["resumed_from"]) == (4, 0)
    assert {p.name for p in run.glob("*.pth")} == {"iter_2.pth", "iter_4.pth"}
    at_4 = torch.load(run / "iter_4.pth", weights_only=False)["state_dict"]

    second = finetune_detection(checkpoint, tiny_voc, run, iterations=6, checkpoint_interval=2, **FAST)
    assert (second["iterations"], second["resumed_from"]) == (6, 4)
    at_6 = torch.load(run / "iter_6.pth", weights_only=False)
    assert at_6["meta"]["iter"] == 6
    changed = [k for k, v in at_6["state_dict"].items() if not torch.equal(v, at_4[k])]
    assert "roi_head.bbox_head.fc_cls.weight" in changed and "backbone.trunk.0.weight" not in changed  # frozen
    assert json.loads((run / "result.json").read_text())["iterations"] == 6

    # Full unpickling is for this run's own work_dir only: the same file elsewhere gets torch's safe loader.
    elsewhere = tmp_path / "elsewhere" / "iter_6.pth"
    elsewhere.parent.mkdir()
    shutil.copy(run / "iter_6.pth", elsewhere)
    assert CheckpointLoader.load_checkpoint(str(run.resolve() / "iter_6.pth"))["meta"]["iter"] == 6
    with pytest.raises(Exception, match="Weights only load failed"):
        CheckpointLoader.load_checkpoint(str(elsewhere.resolve()))


def test_resumes_from_a_checkpoint_saved_elsewhere_and_reports_each_checkpoint(tmp_path, tiny_voc):
    """As in a sweep: each saved checkpoint is handed to the caller, who stores it (in Ray Train's storage); a
    restarted worker resumes from that copy in a fresh work_dir."""
    checkpoint = fresh_alexnet(tmp_path / "alexnet.pt", width=0.125)
    saved = []
    keep = lambda iteration, path: saved.append((iteration, path, shutil.copy(path, tmp_path / path.name)))  # noqa: E731
    finetune_detection(checkpoint, tiny_voc, tmp_path / "a", iterations=4, checkpoint_interval=3, on_checkpoint=keep,
                       **FAST)  # fmt: skip
    assert [(i, p.name) for i, p, _ in saved] == [(3, "iter_3.pth"), (4, "iter_4.pth")]  # every 3rd, and the last

    resumed = finetune_detection(checkpoint, tiny_voc, tmp_path / "b", iterations=6, checkpoint_interval=3,
                                 resume_from=tmp_path / "iter_3.pth", **FAST)  # fmt: skip
    assert (resumed["resumed_from"], resumed["iterations"]) == (3, 6)


@pytest.mark.slow  # the embedded recipe's 300 iterations and the default synthetic VOC: about 2 minutes on 2 cores
def test_training_on_the_synthetic_voc_beats_an_untrained_detector(tmp_path):
    """The embedded scale's detection recipe, from a randomly initialised small trunk (the embedded pretraining's
    network): its training alone must take the detector from chance to finding objects."""
    recipe = OmegaConf.load(ROOT / "orchestrator" / "conf" / "scale" / "embedded.yaml").detect
    settings = {key: recipe[key] for key in ("batch_size", "lr", "image_scale", "rois_per_image", "test_proposals")}
    checkpoint = fresh_alexnet(tmp_path / "alexnet.pt", variant="small", width=0.25, dropout=0.0)
    voc_root = voc.ensure("default")
    untrained = finetune_detection(
        checkpoint, voc_root, tmp_path / "untrained", iterations=0, checkpoint_interval=1, workers=0, **settings
    )
    trained = finetune_detection(
        checkpoint, voc_root, tmp_path / "trained", iterations=recipe.iterations,
        checkpoint_interval=recipe.iterations, workers=0, **settings,
    )  # fmt: skip
    assert untrained["iterations"] == 0 and untrained["map"] < 0.002
    assert trained["iterations"] == recipe.iterations and trained["map"] > 0.02
    assert sum(ap > 0.1 for ap in trained["ap_per_class"].values()) >= 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_as_rank(rank: int, world_size: int, port: int, checkpoint: Path, voc_root: Path, work_dir: Path):
    """One worker as Ray Train starts it: the gloo group and LOCAL_RANK exist before the training function runs."""
    torch.set_num_threads(1)
    os.environ["LOCAL_RANK"] = str(rank)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    result = finetune_detection(checkpoint, voc_root, work_dir, iterations=4, checkpoint_interval=2, **FAST)
    seen = {"rank_and_size": list(get_dist_info()), "still_initialized": dist.is_initialized()}
    (work_dir.parent / f"rank{rank}.json").write_text(json.dumps({**result, **seen}))
    dist.destroy_process_group()


def test_two_ranks_of_an_existing_gloo_group_train_and_agree(tmp_path, tiny_voc):
    checkpoint = fresh_alexnet(tmp_path / "alexnet.pt", width=0.125)
    run = tmp_path / "run"
    torch.multiprocessing.spawn(train_as_rank, args=(2, free_port(), checkpoint, tiny_voc, run), nprocs=2)

    results = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["rank_and_size"] for r in results] == [[0, 2], [1, 2]]
    assert all(r["still_initialized"] and r["iterations"] == 4 for r in results)
    assert results[0]["map"] == results[1]["map"] and results[0]["ap_per_class"] == results[1]["ap_per_class"]
    (log,) = run.glob("*/*.log")
    assert "Distributed launcher: pytorch" in log.read_text() and "Distributed training: True" in log.read_text()
    assert {p.name for p in run.glob("*.pth")} == {"iter_2.pth", "iter_4.pth"}  # rank 0 saves
