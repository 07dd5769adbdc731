"""AlexNet, the paper's network, in two input sizes, and its checkpoints.

``variant="imagenet"`` is torchvision's AlexNet (224 px input, conv1 11x11 stride 4; the same
parameter names and shapes at width 1, so torchvision's weights load). ``variant="small"`` is the
same network for the embedded 32-64 px images: conv1 5x5 stride 1, everything else unchanged.
``width`` scales every conv's channels and fc6/fc7, so a CPU can train the embedded grids.

conv1-conv5 (``features`` without its last max-pool) is the trunk that detection reuses: stride
16 for the imagenet variant, 4 for the small one. fc6 and fc7 are ``classifier[1]`` and
``classifier[4]``; fc8 is ``classifier[6]``, which fine-tuning replaces.
"""

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

CONV_CHANNELS = (64, 192, 384, 256, 256)
FC_WIDTH = 4096
VARIANTS = ("imagenet", "small")


@dataclass(frozen=True)
class AlexNetConfig:
    variant: str = "imagenet"
    width: float = 1.0
    dropout: float = 0.5

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"AlexNet variant must be one of {VARIANTS}, not {self.variant!r}")
        if not 0 < self.width <= 4:
            raise ValueError(f"AlexNet width must be in (0, 4], not {self.width}")


class AlexNet(nn.Module):
    def __init__(self, num_classes: int, config: AlexNetConfig = AlexNetConfig()):
        super().__init__()
        self.config = config
        c1, c2, c3, c4, c5 = (max(8, round(n * config.width)) for n in CONV_CHANNELS)
        fc = max(64, round(FC_WIDTH * config.width))
        conv1 = nn.Conv2d(3, c1, 11, 4, 2) if config.variant == "imagenet" else nn.Conv2d(3, c1, 5, 1, 2)
        self.features = nn.Sequential(
            conv1, nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        )  # fmt: skip
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

    def penultimate(self, images: torch.Tensor) -> torch.Tensor:
        """fc7 activations: the features of linear and nearest-neighbour probes."""
        pooled = torch.flatten(self.avgpool(self.features(images)), 1)
        return self.classifier[:-1](pooled)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(images)), 1))

    def replace_fc8(self, num_classes: int) -> None:
        """A freshly initialised last layer for a new task (fine-tuning)."""
        old = self.classifier[-1]
        self.classifier[-1] = nn.Linear(old.in_features, num_classes).to(old.weight.device)


def save_checkpoint(path: Path, model: AlexNet, extra: dict | None = None) -> None:
    """Atomically: a half-written checkpoint never replaces a good one."""
    path = Path(path)
    state = {
        "model": model.state_dict(),
        "alexnet": asdict(model.config),
        "num_classes": model.classifier[-1].out_features,
        **(extra or {}),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> tuple[AlexNet, dict]:
    """The model and the rest of what was saved with it."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = AlexNet(state["num_classes"], AlexNetConfig(**state["alexnet"]))
    model.load_state_dict(state["model"])
    return model, state
