"""AlexNet, the paper's network, in two input sizes, registered as the timm architecture ``alexnet``.

``variant="imagenet"`` is torchvision's AlexNet (224 px input, conv1 11x11 stride 4; the same
parameter names and shapes at width 1, so torchvision's weights load). ``variant="small"`` is the
same network for the embedded 32-64 px images: conv1 5x5 stride 1, everything else unchanged.
``width`` scales every conv's channels and fc6/fc7, so a CPU can train the embedded grids. ``batch_norm`` puts a
BatchNorm after every conv: the embedded stand-in learns within the few hundred steps a laptop affords with it
(val top-1 0.02 where chance is 0.001, on 3 images of each of 1000 synthetic classes after 8 epochs; 0.0006
without it), as the paper-era AlexNet, trained for days, did not need it.

conv1-conv5 (``features`` without its last max-pool) is the trunk that detection reuses: stride
16 for the imagenet variant, 4 for the small one. fc6 and fc7 are ``classifier[1]`` and
``classifier[4]``; fc8 is ``classifier[6]``, timm's "classifier", which ``reset_classifier``
replaces; ``forward_head(x, pre_logits=True)`` gives fc7, the features of probes.
"""

from dataclasses import dataclass

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn

from models import register_model

CONV_CHANNELS = (64, 192, 384, 256, 256)
FC_WIDTH = 4096
VARIANTS = ("imagenet", "small")


@dataclass(frozen=True)
class AlexNetConfig:
    variant: str = "imagenet"
    width: float = 1.0
    dropout: float = 0.5
    batch_norm: bool = False

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"AlexNet variant must be one of {VARIANTS}, not {self.variant!r}")
        if not _is_number(self.width) or not 0 < self.width <= 4:
            raise ValueError(f"AlexNet width must be a number in (0, 4], not {self.width!r}")
        if not _is_number(self.dropout) or not 0 <= self.dropout < 1:  # 1 would zero every activation
            raise ValueError(f"AlexNet dropout must be a number in [0, 1), not {self.dropout!r}")
        if not isinstance(self.batch_norm, bool):
            raise ValueError(f"AlexNet batch_norm must be true or false, not {self.batch_norm!r}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class AlexNet(nn.Module):
    def __init__(self, num_classes: int, config: AlexNetConfig = AlexNetConfig()):
        super().__init__()
        self.config = config
        self.num_classes = num_classes
        size = 224 if config.variant == "imagenet" else 32
        self.pretrained_cfg = {"mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD, "input_size": (3, size, size),
                               "interpolation": "bilinear", "crop_pct": 0.875}  # fmt: skip
        c1, c2, c3, c4, c5 = (max(8, round(n * config.width)) for n in CONV_CHANNELS)
        fc = max(64, round(FC_WIDTH * config.width))
        conv1 = nn.Conv2d(3, c1, 11, 4, 2) if config.variant == "imagenet" else nn.Conv2d(3, c1, 5, 1, 2)
        convs = [conv1, nn.Conv2d(c1, c2, 5, padding=2), nn.Conv2d(c2, c3, 3, padding=1),
                 nn.Conv2d(c3, c4, 3, padding=1), nn.Conv2d(c4, c5, 3, padding=1)]  # fmt: skip
        layers = []
        for number, conv in enumerate(convs, start=1):
            layers += [conv, *([nn.BatchNorm2d(conv.out_channels)] if config.batch_norm else []), nn.ReLU(inplace=True)]
            if number in (1, 2, 5):
                layers.append(nn.MaxPool2d(3, 2))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(config.dropout), nn.Linear(c5 * 36, fc), nn.ReLU(inplace=True),
            nn.Dropout(config.dropout), nn.Linear(fc, fc), nn.ReLU(inplace=True),
            nn.Linear(fc, num_classes),
        )  # fmt: skip

    @property
    def trunk(self) -> nn.Sequential:
        """conv1-conv5 with their ReLUs, without the last max-pool."""
        return self.features[:-1]

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.avgpool(self.features(images))

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """fc8's scores, or with ``pre_logits`` fc7's activations."""
        head = self.classifier[:-1] if pre_logits else self.classifier
        return head(torch.flatten(features, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(images))

    def get_classifier(self) -> nn.Linear:
        return self.classifier[-1]

    def reset_classifier(self, num_classes: int) -> None:
        """A freshly initialised fc8 for a new task (fine-tuning)."""
        old = self.classifier[-1]
        self.classifier[-1] = nn.Linear(old.in_features, num_classes).to(old.weight.device)
        self.num_classes = num_classes


@register_model
def alexnet(pretrained=False, pretrained_cfg=None, pretrained_cfg_overlay=None, cache_dir=None, *,
            num_classes: int = 1000, variant: str = "imagenet", width: float = 1.0, dropout: float = 0.5,
            batch_norm: bool = False) -> AlexNet:
    """AlexNet (``variant``: imagenet or small; ``width`` scales every layer; ``batch_norm`` after every conv). No
    published weights: this project pretrains it."""
    if pretrained:
        raise ValueError("alexnet has no published weights here: pretrain it on a subset (a grid's point)")
    return AlexNet(num_classes, AlexNetConfig(variant, width, dropout, batch_norm))
