"""The CIFAR-10 ResNets of the pretrained checkpoints (ResNet-20/32/44/56, He et al.
2016, option-A shortcuts) as ``torch.nn.Module``s that Torch-Pruning can prune.

Option A's downsampling shortcut keeps the even rows and columns and zero-pads the
channels at both ends (``F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p))``, p = planes/4).
Torch-Pruning cannot follow channels through a pad, so here the shortcut is a 1 x 1
convolution of stride 2 with fixed 0/1 weights that computes exactly that (output
channel ``p + i`` is input channel ``i``; the others are zero): the same function, to float
rounding (test ``test_the_prunable_cifar_resnet_is_the_checkpoints_network``), whose
channels a pruner can remove like any conv's. It adds 16 x 32 x 16 x 16 + 32 x 64 x 8 x 8
= 0.26 M multiply-accumulates per image (0.2 % of ResNet-56) to what Torch-Pruning counts.
Module paths are the checkpoint's (``conv1``, ``layer1.0.conv1``, ..., ``linear``).
"""

from __future__ import annotations

import os
from typing import Optional

from ._errors import FlickertagError

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - only without torch
    raise FlickertagError("flickertag.cifar_resnet needs torch: pip install 'flickertag[pruning]'") from None

#: Depth of each name: blocks per stage n gives 6 n + 2 layers.
DEPTHS = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9}
#: The input normalization the checkpoints were trained with (ImageNet's statistics).
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class BasicBlock(nn.Module):
    """conv-bn-relu-conv-bn, plus the shortcut, then ReLU."""

    def __init__(self, cin: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != planes:
            # Option A as a fixed selection conv (see the module doc).
            self.shortcut = nn.Conv2d(cin, planes, 1, stride, 0, bias=False)
            with torch.no_grad():
                self.shortcut.weight.zero_()
                pad = planes // 4
                for i in range(cin):
                    self.shortcut.weight[pad + i, i, 0, 0] = 1.0
            self.shortcut.weight.requires_grad_(False)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))

class CifarResNet(nn.Module):
    """ResNet-(6n+2) for CIFAR-10, option-A shortcuts as fixed selection convs."""

    def __init__(self, n: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for planes, stride in [(16, 1), (32, 2), (64, 2)]:
            blocks = []
            for k in range(n):
                blocks.append(BasicBlock(cin, planes, stride if k == 0 else 1))
                cin = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = nn.Linear(64, 10)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(out.mean((2, 3)))


def cifar_resnet(name: str = "resnet56", data: Optional[str] = None, pretrained: bool = True):
    """The network ``name`` (``resnet20``, ``resnet32``, ``resnet44``, ``resnet56``) in
    eval mode, with the checkpoint's weights from ``data``/models (default
    ``FLICKERTAG_DATA``) unless ``pretrained=False``. Every tensor of the checkpoint is
    loaded and every parameter of the network comes from it (strict)."""
    if name not in DEPTHS:
        raise FlickertagError(f"invalid model: one of {', '.join(DEPTHS)} (got {name!r})")
    net = CifarResNet(DEPTHS[name])
    if pretrained:
        d = data or os.environ.get("FLICKERTAG_DATA")
        if not d:
            raise FlickertagError("invalid data: the data folder with models/ (set FLICKERTAG_DATA or pass data=)")
        path = os.path.join(d, "models", f"{name}-cifar10.th")
        ck = torch.load(path, map_location="cpu", weights_only=True)
        sd = {k.removeprefix("module."): v for k, v in ck.get("state_dict", ck).items()}
        # The fixed shortcut convs and BatchNorm's step counters (not saved by the
        # torch of 2018) are not in the checkpoint; every other tensor must be.
        own = net.state_dict()
        fixed = {k for k in own if ".shortcut." in k or k.endswith("num_batches_tracked")}
        missing = set(own) - set(sd) - fixed
        extra = set(sd) - set(own)
        if missing or extra:
            raise FlickertagError(f"invalid checkpoint {path}: missing {sorted(missing)[:5]}, unexpected {sorted(extra)[:5]}")
        sd.update({k: own[k] for k in fixed})
        net.load_state_dict(sd, strict=True)
    return net.eval()
