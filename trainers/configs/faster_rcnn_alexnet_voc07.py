# Faster R-CNN on the project's AlexNet, PASCAL VOC 2007 trainval -> test, as Fast R-CNN fine-tuned its
# AlexNet-sized ("S") model: conv1 frozen, fc6/fc7 from pretraining, 40k iterations of 2 images at lr 0.001,
# x0.1 after 30k, shorter side 600 px, horizontal flips, 11-point mAP at IoU 0.5.
#
# The values below are for a width-1 imagenet-variant AlexNet. `trainers.detect.detector_config` fills in
# what depends on the checkpoint (variant, width: channels, fc sizes, stride), the data root, the schedule and
# the distributed set-up; use it rather than this file alone.

custom_imports = dict(imports=["trainers.detect"], allow_failed_imports=False)
default_scope = "mmdet"

alexnet_checkpoint = None  # a file written by models.save_checkpoint
trunk_stride = 16  # conv1-conv5 of the imagenet variant; 4 for the small one
anchor_sizes = [32, 64, 128, 256, 512]  # pixels at image_scale 600 (detector_config scales them), 3 aspect ratios each

model = dict(
    type="FasterRCNN",
    # The project's AlexNet takes RGB images normalised as torchvision's ImageNet models.
    data_preprocessor=dict(
        type="DetDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=trunk_stride,
    ),
    backbone=dict(type="AlexNetBackbone", variant="imagenet", width=1.0, checkpoint=alexnet_checkpoint, frozen_convs=1),
    rpn_head=dict(
        type="RPNHead",
        in_channels=256,
        feat_channels=256,
        anchor_generator=dict(
            type="AnchorGenerator",
            scales=[size // trunk_stride for size in anchor_sizes],  # in units of the stride
            ratios=[0.5, 1.0, 2.0],
            strides=[trunk_stride],
        ),
        bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[1.0] * 4),
        loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type="L1Loss", loss_weight=1.0),
    ),
    roi_head=dict(
        type="StandardRoIHead",
        # 6x6 RoI features: the input of the pretrained fc6, as AlexNet's pool5.
        bbox_roi_extractor=dict(
            type="SingleRoIExtractor",
            roi_layer=dict(type="RoIAlign", output_size=6, sampling_ratio=0),
            out_channels=256,
            featmap_strides=[trunk_stride],
        ),
        bbox_head=dict(
            type="AlexNetBBoxHead",
            checkpoint=alexnet_checkpoint,
            dropout=0.5,
            in_channels=256,
            fc_out_channels=4096,
            roi_feat_size=6,
            num_classes=20,
            bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[0.1, 0.1, 0.2, 0.2]),
            reg_class_agnostic=False,
            loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type="L1Loss", loss_weight=1.0),
        ),
    ),
    train_cfg=dict(
        rpn=dict(
            assigner=dict(
                type="MaxIoUAssigner",
                pos_iou_thr=0.7,
                neg_iou_thr=0.3,
                min_pos_iou=0.3,
                match_low_quality=True,
                ignore_iof_thr=-1,
            ),
            sampler=dict(type="RandomSampler", num=256, pos_fraction=0.5, neg_pos_ub=-1, add_gt_as_proposals=False),
            allowed_border=-1,
            pos_weight=-1,
            debug=False,
        ),
        # The 2000 best-scored anchors go into the NMS, as in mmdet's Faster R-CNN configs: NMS on CPUs is
        # quadratic in them, and the C4 configs' 12000 made it three quarters of a CPU training step.
        rpn_proposal=dict(nms_pre=2000, max_per_img=1000, nms=dict(type="nms", iou_threshold=0.7), min_bbox_size=0),
        rcnn=dict(
            assigner=dict(
                type="MaxIoUAssigner",
                pos_iou_thr=0.5,
                neg_iou_thr=0.5,
                min_pos_iou=0.5,
                match_low_quality=False,
                ignore_iof_thr=-1,
            ),
            # 128 RoIs per image, a quarter of them objects, as in Fast and Faster R-CNN (mmdet's default is 512);
            # detector_config sets the recipe's rois_per_image.
            sampler=dict(type="RandomSampler", num=128, pos_fraction=0.25, neg_pos_ub=-1, add_gt_as_proposals=True),
            pos_weight=-1,
            debug=False,
        ),
    ),
    test_cfg=dict(
        # 300 proposals per test image, as the Faster R-CNN paper tested (mmdet: 1000); detector_config sets the
        # recipe's test_proposals.
        rpn=dict(nms_pre=1000, max_per_img=300, nms=dict(type="nms", iou_threshold=0.7), min_bbox_size=0),
        rcnn=dict(score_thr=0.05, nms=dict(type="nms", iou_threshold=0.5), max_per_img=100),
    ),
)

# VOCdevkit's layout. Difficult objects get mmdet's ignore flag: left out of training targets (as
# Fast R-CNN did) and neither hits nor misses in the mAP (as VOC's devkit does).
data_root = "data/VOCdevkit/"
image_scale = (1000, 600)  # longer side at most 1000 px, shorter side at most 600 px
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(type="Resize", scale=image_scale, keep_ratio=True),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackDetInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=image_scale, keep_ratio=True),
    # After the resize, so that ground-truth boxes stay in the original image's coordinates.
    dict(type="LoadAnnotations", with_bbox=True),
    dict(type="PackDetInputs", meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor")),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    batch_sampler=dict(type="AspectRatioBatchSampler"),
    dataset=dict(
        type="VOCDataset",
        data_root=data_root,
        ann_file="VOC2007/ImageSets/Main/trainval.txt",
        data_prefix=dict(sub_data_root="VOC2007/"),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline,
    ),
)
test_dataloader = dict(
    batch_size=1,  # detector_config sets the training batch size
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(
        type="VOCDataset",
        data_root=data_root,
        ann_file="VOC2007/ImageSets/Main/test.txt",
        data_prefix=dict(sub_data_root="VOC2007/"),
        test_mode=True,
        pipeline=test_pipeline,
    ),
)
# collect_device="gpu" gathers the ranks' detections with all_gather_object on the process group's own
# device (CPU for gloo): "cpu" would pass them through a temporary folder under the current directory,
# which the nodes of a cluster do not share.
test_evaluator = dict(type="VOCMetricPerClass", eval_mode="11points", collect_device="gpu")

max_iterations = 40000
train_cfg = dict(type="IterBasedTrainLoop", max_iters=max_iterations)
test_cfg = dict(type="TestLoop")
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="SGD", lr=0.001, momentum=0.9, weight_decay=0.0005),
    # The RPN and the box layers start from random weights; clipping keeps their first steps from
    # wrecking the pretrained features.
    clip_grad=dict(max_norm=35, norm_type=2),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type="MultiStepLR", by_epoch=False, begin=0, end=max_iterations, milestones=[30000], gamma=0.1),
]

default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=1000, max_keep_ckpts=2),
    sampler_seed=dict(type="DistSamplerSeedHook"),
)
log_processor = dict(type="LogProcessor", window_size=50, by_epoch=False)
log_level = "INFO"
randomness = dict(seed=0)
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0))
launcher = "none"
load_from = None
resume = True
