"""Classifiers. Normalisation lives inside every model, so evaluators always feed images in [0, 1].

Each model names the layers whose *outputs* a hidden-layer method (manifold mixup) may mix, through
``mixing_layers()``; methods mix there with a forward hook, so no method needs its own copy of a model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vicinal.core.registry import Registry

ModelFactory = Callable[..., "VicinalModel"]
MODELS: Registry[ModelFactory] = Registry("model", entry_point_group="vicinal.models")
register_model = MODELS.register


class Normalize(nn.Module):
    """Per-channel standardisation as the first layer of the model."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class VicinalModel(nn.Module):
    """A classifier over images in [0, 1] that names its mixable hidden layers."""

    def mixing_layers(self) -> dict[str, nn.Module]:
        """Ordered ``{name: module}`` whose outputs a hidden-layer mixing method may interpolate."""
        raise NotImplementedError


class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(VicinalModel):
    """Pre-activation ResNet (He et al., 2016) for 32-px inputs, as in the mixup and manifold-mixup papers."""

    def __init__(
        self,
        num_blocks: Sequence[int],
        num_classes: int,
        mean: Sequence[float],
        std: Sequence[float],
        width: int = 64,
    ):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        planes = [width, 2 * width, 4 * width, 8 * width]
        in_planes = width
        stages = []
        for i, (p, n) in enumerate(zip(planes, num_blocks, strict=True)):
            blocks = []
            for j in range(n):
                blocks.append(PreActBlock(in_planes, p, stride=2 if (i > 0 and j == 0) else 1))
                in_planes = p
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn = nn.BatchNorm2d(in_planes)
        self.linear = nn.Linear(in_planes, num_classes)
        # Channels-last: cuDNN's tensor-core convolutions and oneDNN's CPU ones both prefer it (see the
        # small CNN below); inputs are converted in forward, so callers feed plain NCHW.
        self.to(memory_format=torch.channels_last)

    def mixing_layers(self) -> dict[str, nn.Module]:
        return {"layer1": self.layer1, "layer2": self.layer2, "layer3": self.layer3}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.normalize(x).contiguous(memory_format=torch.channels_last))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.relu(self.bn(out))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


class SmallCNN(VicinalModel):
    """Three conv–BN–ReLU–pool stages and a linear head: a fast model for quick suites on a CPU."""

    def __init__(self, num_classes: int, mean: Sequence[float], std: Sequence[float], width: int = 32):
        super().__init__()
        self.normalize = Normalize(mean, std)

        def stage(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.stage1 = stage(3, width)
        self.stage2 = stage(width, 2 * width)
        self.stage3 = stage(2 * width, 4 * width)
        self.linear = nn.Linear(4 * width, num_classes)
        # oneDNN's CPU convolutions are ≈1.3× faster to train and ≈2× faster to evaluate in channels-last
        # (measured in BENCHMARKS.md); inputs are converted in forward, so callers feed plain NCHW.
        self.to(memory_format=torch.channels_last)

    def mixing_layers(self) -> dict[str, nn.Module]:
        return {"stage1": self.stage1, "stage2": self.stage2, "stage3": self.stage3}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x).contiguous(memory_format=torch.channels_last)
        out = self.stage3(self.stage2(self.stage1(x)))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register_model("preactresnet18")
def preactresnet18(num_classes: int, mean: Sequence[float], std: Sequence[float]) -> VicinalModel:
    return PreActResNet([2, 2, 2, 2], num_classes, mean, std)


@register_model("small-cnn")
def small_cnn(num_classes: int, mean: Sequence[float], std: Sequence[float]) -> VicinalModel:
    return SmallCNN(num_classes, mean, std)


@register_model("small-cnn-16")
def small_cnn_16(num_classes: int, mean: Sequence[float], std: Sequence[float]) -> VicinalModel:
    """The small CNN at half width (16/32/64, 73 k parameters): a third of the compute, enough for the
    digits suites, whose default run must fit in minutes on two CPU cores."""
    return SmallCNN(num_classes, mean, std, width=16)


def build_model(name: str, num_classes: int, mean: Sequence[float], std: Sequence[float]) -> VicinalModel:
    return MODELS.get(name)(num_classes=num_classes, mean=mean, std=std)
