"""Torchvision-style networks written out as plain ``nn.Module``s (no torchvision, no weights), the MAC
count torch's own hooks give, and the NAS-Bench-Macro skeleton: fixtures of tests/test_from_torch.py and
benchmarks/from_torch.py.

Example
-------
>>> net = macro_net("01200000")
>>> sum(p.numel() for p in net.parameters()) > 0
True
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["LRASPP", "MODELS", "MacroNet", "MobileNetV2", "MobileNetV3", "ResNet", "SSDLite", "hook_macs",
           "macro_net"]


def _cbr(c_in, c_out, k=3, stride=1, groups=1, act=nn.ReLU6):
    layers = [nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
    return nn.Sequential(*layers, act(inplace=True)) if act else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, c_in, c_out, stride, t):
        super().__init__()
        hidden = c_in * t
        layers = [_cbr(c_in, hidden, 1)] if t != 1 else []
        self.conv = nn.Sequential(*layers, _cbr(hidden, hidden, 3, stride, hidden), _cbr(hidden, c_out, 1, act=None))
        self.res = stride == 1 and c_in == c_out

    def forward(self, x):
        return x + self.conv(x) if self.res else self.conv(x)


_MBV2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


class MobileNetV2(nn.Module):
    """torchvision's MobileNetV2 (width 1.0); ``features`` exposes the stages for detection heads."""

    def __init__(self, classes=1000):
        super().__init__()
        layers, c = [_cbr(3, 32, 3, 2)], 32
        for t, c_out, n, s in _MBV2:
            for i in range(n):
                layers.append(InvertedResidual(c, c_out, s if i == 0 else 1, t))
                c = c_out
        self.features = nn.Sequential(*layers, _cbr(c, 1280, 1))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, classes))

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


class SqueezeExcite(nn.Module):
    def __init__(self, c, squeeze):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, squeeze, 1), nn.Conv2d(squeeze, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        s = F.hardsigmoid(self.fc2(F.relu(self.fc1(s))), inplace=True)
        return s * x


class V3Block(nn.Module):
    def __init__(self, c_in, k, hidden, c_out, se, act, stride):
        super().__init__()
        layers = [_cbr(c_in, hidden, 1, act=act)] if hidden != c_in else []
        layers.append(_cbr(hidden, hidden, k, stride, hidden, act=act))
        if se:
            layers.append(SqueezeExcite(hidden, (hidden // 4 + 7) // 8 * 8))
        self.block = nn.Sequential(*layers, _cbr(hidden, c_out, 1, act=None))
        self.res = stride == 1 and c_in == c_out

    def forward(self, x):
        y = self.block(x)
        if self.res:
            y += x
        return y


_V3 = {"small": ([(16, 3, 16, 16, 1, "RE", 2), (16, 3, 72, 24, 0, "RE", 2), (24, 3, 88, 24, 0, "RE", 1),
                  (24, 5, 96, 40, 1, "HS", 2), (40, 5, 240, 40, 1, "HS", 1), (40, 5, 240, 40, 1, "HS", 1),
                  (40, 5, 120, 48, 1, "HS", 1), (48, 5, 144, 48, 1, "HS", 1), (48, 5, 288, 96, 1, "HS", 2),
                  (96, 5, 576, 96, 1, "HS", 1), (96, 5, 576, 96, 1, "HS", 1)], 1024),
       "large": ([(16, 3, 16, 16, 0, "RE", 1), (16, 3, 64, 24, 0, "RE", 2), (24, 3, 72, 24, 0, "RE", 1),
                  (24, 5, 72, 40, 1, "RE", 2), (40, 5, 120, 40, 1, "RE", 1), (40, 5, 120, 40, 1, "RE", 1),
                  (40, 3, 240, 80, 0, "HS", 2), (80, 3, 200, 80, 0, "HS", 1), (80, 3, 184, 80, 0, "HS", 1),
                  (80, 3, 184, 80, 0, "HS", 1), (80, 3, 480, 112, 1, "HS", 1), (112, 3, 672, 112, 1, "HS", 1),
                  (112, 5, 672, 160, 1, "HS", 2), (160, 5, 960, 160, 1, "HS", 1), (160, 5, 960, 160, 1, "HS", 1)],
                 1280)}


class MobileNetV3(nn.Module):
    """torchvision's MobileNetV3 small / large: squeeze-excite gates, hardswish, hardsigmoid."""

    def __init__(self, size="small", classes=1000):
        super().__init__()
        cfg, last = _V3[size]
        layers = [_cbr(3, 16, 3, 2, act=nn.Hardswish)]
        for c_in, k, hidden, c_out, se, act, s in cfg:
            layers.append(V3Block(c_in, k, hidden, c_out, se, nn.ReLU if act == "RE" else nn.Hardswish, s))
        layers.append(_cbr(cfg[-1][3], cfg[-1][3] * 6, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(cfg[-1][3] * 6, last), nn.Hardswish(inplace=True),
                                        nn.Dropout(0.2, inplace=True), nn.Linear(last, classes))

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).view(x.size(0), -1))


class Bottleneck(nn.Module):
    def __init__(self, c_in, width, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c_in, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, width * 4, 1, bias=False), nn.BatchNorm2d(width * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or c_in != width * 4:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, width * 4, 1, stride, bias=False),
                                            nn.BatchNorm2d(width * 4))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """torchvision's bottleneck ResNet (ResNet-50 with ``layers=(3, 4, 6, 3)``)."""

    def __init__(self, layers=(3, 4, 6, 3), classes=1000):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64)
        self.relu, self.maxpool = nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
        stages, c = [], 64
        for i, n in enumerate(layers):
            width = 64 * 2 ** i
            blocks = [Bottleneck(c if j == 0 else width * 4, width, 2 if i and j == 0 else 1) for j in range(n)]
            stages.append(nn.Sequential(*blocks))
            c = width * 4
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool, self.fc = nn.AdaptiveAvgPool2d((1, 1)), nn.Linear(c, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class SSDLite(nn.Module):
    """SSDLite on a MobileNetV2 backbone: depthwise-separable box and class heads on six feature maps (two
    backbone taps, four extra stride-2 blocks); returns every head's raw map (12 outputs)."""

    def __init__(self, classes=91, anchors=6):
        super().__init__()
        feats = MobileNetV2().features
        self.stage1, self.stage2 = feats[:14], feats[14:]
        self.extra = nn.ModuleList(self._extra(c_in, c_out)
                                   for c_in, c_out in ((1280, 512), (512, 256), (256, 256), (256, 128)))
        chans = (96, 1280, 512, 256, 256, 128)
        self.cls = nn.ModuleList(self._head(c, anchors * classes) for c in chans)
        self.box = nn.ModuleList(self._head(c, anchors * 4) for c in chans)

    @staticmethod
    def _extra(c_in, c_out):
        half = c_out // 2
        return nn.Sequential(_cbr(c_in, half, 1), _cbr(half, half, 3, 2, half), _cbr(half, c_out, 1))

    @staticmethod
    def _head(c, out):
        return nn.Sequential(_cbr(c, c, 3, 1, c), nn.Conv2d(c, out, 1))

    def forward(self, x):
        maps = [self.stage1(x)]
        maps.append(self.stage2(maps[0]))
        for block in self.extra:
            maps.append(block(maps[-1]))
        return [h(m) for m, h in zip(maps, self.cls)] + [h(m) for m, h in zip(maps, self.box)]


class LRASPP(nn.Module):
    """LR-ASPP segmentation head on a MobileNetV3-large backbone (torchvision's layout)."""

    def __init__(self, classes=21, inter=128):
        super().__init__()
        feats = MobileNetV3("large").features
        self.low, self.high = feats[:4], feats[4:]
        self.cbr = _cbr(960, inter, 1, act=nn.ReLU)
        self.scale = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(960, inter, 1, bias=False), nn.Sigmoid())
        self.low_classifier, self.high_classifier = nn.Conv2d(24, classes, 1), nn.Conv2d(inter, classes, 1)

    def forward(self, x):
        low = self.low(x)
        high = self.high(low)
        y = self.cbr(high) * self.scale(high)
        y = F.interpolate(y, size=low.shape[-2:], mode="bilinear", align_corners=False)
        y = self.low_classifier(low) + self.high_classifier(y)
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


#: name -> (constructor, input shape) of the test models
MODELS = {"mobilenet_v2": (MobileNetV2, (3, 224, 224)),
          "mobilenet_v3_small": (lambda: MobileNetV3("small"), (3, 224, 224)),
          "mobilenet_v3_large": (lambda: MobileNetV3("large"), (3, 224, 224)),
          "resnet50": (ResNet, (3, 224, 224)),
          "ssdlite_mobilenet_v2": (SSDLite, (3, 320, 320)),
          "lraspp_mobilenet_v3": (LRASPP, (3, 256, 256))}


def hook_macs(module: nn.Module, input_shape) -> int:
    """Conv, transposed-conv and linear multiply-accumulates of one forward pass, counted by forward hooks
    (the reference :func:`zeroshot.spaces.tracing.from_torch` must equal)."""
    total = [0]

    def hook(m, inputs, out):
        if isinstance(m, nn.Conv2d):
            total[0] += m.weight.numel() * out.shape[2] * out.shape[3]
        elif isinstance(m, nn.ConvTranspose2d):
            total[0] += m.weight.numel() * inputs[0].shape[2] * inputs[0].shape[3]
        elif isinstance(m, nn.Linear):
            total[0] += m.weight.numel() * (out.numel() // out.shape[-1])

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    try:
        with torch.no_grad():
            module.eval()(torch.zeros(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
    return total[0]


class MacroBlock(nn.Module):
    """One NAS-Bench-Macro layer: identity (digit 0; a 1x1 stride-2 conv + BN when it downsamples) or an
    MBConv (digit 1: expansion 3 kernel 3; digit 2: expansion 6 kernel 5), ReLU, residual at stride 1."""

    def __init__(self, digit, c_in, c_out, stride):
        super().__init__()
        self.res = digit != "0" and stride == 1 and c_in == c_out
        if digit == "0":
            self.body = (nn.Identity() if stride == 1 else
                         nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)))
            return
        t, k = (3, 3) if digit == "1" else (6, 5)
        hidden = c_in * t
        self.body = nn.Sequential(_cbr(c_in, hidden, 1, act=nn.ReLU), _cbr(hidden, hidden, k, stride, hidden,
                                                                         act=nn.ReLU), _cbr(hidden, c_out, 1, act=None))

    def forward(self, x):
        return x + self.body(x) if self.res else self.body(x)


class MacroNet(nn.Module):
    """The NAS-Bench-Macro skeleton (shared data README) for an 8-digit architecture string."""

    def __init__(self, arch: str, classes=10):
        super().__init__()
        blocks, c, i = [], 32, 0
        for n in (2, 3, 3):
            for j in range(n):
                blocks.append(MacroBlock(arch[i], c, 2 * c if j == 0 else c, 2 if j == 0 else 1))
                c, i = (2 * c if j == 0 else c), i + 1
        self.stem = _cbr(3, 32, 3, act=nn.ReLU)
        self.blocks = nn.Sequential(*blocks)
        self.head = _cbr(256, 1280, 1, act=nn.ReLU)
        self.fc = nn.Linear(1280, classes)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(x.mean((2, 3)))


def macro_net(arch: str) -> MacroNet:
    return MacroNet(arch)
