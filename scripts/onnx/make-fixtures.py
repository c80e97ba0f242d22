#!/usr/bin/env python3
"""Writes the small ONNX backbones the importer tests use, into test/fixtures/onnx/.

Needs PyTorch (Debian: apt-get install python3-torch; run with /usr/bin/python3). The product never
needs it: the .onnx files are committed. Weights and BatchNorm statistics are random but seeded, and
far from the identity, so a wrong BatchNorm or padding in the importer shows in the outputs.
"""
import os
import sys

import torch
from torch import nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test", "fixtures", "onnx")


def randomize_batch_norms(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            channels = module.num_features
            module.weight.data = torch.rand(channels) + 0.5
            module.bias.data = torch.randn(channels) * 0.2
            module.running_mean = torch.randn(channels) * 0.3
            module.running_var = torch.rand(channels) + 0.5


class BasicBlock(nn.Module):
    def __init__(self, inputs: int, outputs: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs))
            if stride != 1 or inputs != outputs
            else nn.Identity()
        )
        # A BatchNorm after the residual sum is not next to a Conv, so the exporter keeps it as BatchNormalization.
        self.post = nn.BatchNorm2d(outputs)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(self.post(out + self.shortcut(x)))


class TinyResNet(nn.Module):
    """Conv, BatchNormalization, Relu, MaxPool, Add, GlobalAveragePool, Flatten, Gemm."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        self.layer1 = BasicBlock(8, 8, 1)
        self.layer2 = BasicBlock(8, 16, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 12)
        self.bn = nn.BatchNorm1d(12)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.bn(self.fc(torch.flatten(self.pool(x), 1)))


class TinyConvMlp(nn.Module):
    """Conv (stride 2, bias), Relu, Reshape, Gemm, MatMul, ReduceMean, Add, on grey 8 × 8 images."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, 2, 1)
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 10)
        self.side = nn.Parameter(torch.randn(4, 10) * 0.5)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        flat = h.reshape(-1, 64)
        return self.fc2(torch.relu(self.fc1(flat))) + torch.matmul(h.mean(dim=(2, 3)), self.side)


class WithUnsupportedOp(nn.Module):
    """Conv, then Sin: an operator the importer does not convert."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, 1, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return torch.flatten(self.pool(torch.sin(self.conv(x))), 1)


def export(model: nn.Module, shape, name: str, opset: int) -> None:
    model.eval()
    path = os.path.join(OUT, name)
    torch.onnx.export(
        model,
        torch.rand(*shape),
        path,
        input_names=["images"],
        output_names=["features"],
        dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
        opset_version=opset,
        do_constant_folding=True,
    )
    print(f"{name}: {os.path.getsize(path)} bytes", file=sys.stderr)


def main() -> None:
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    resnet = TinyResNet()
    randomize_batch_norms(resnet)
    export(resnet, (2, 3, 16, 16), "resnet_tiny.onnx", 17)
    export(TinyConvMlp(), (2, 1, 8, 8), "conv_mlp_tiny.onnx", 13)
    export(WithUnsupportedOp(), (2, 3, 8, 8), "unsupported_sin.onnx", 13)


if __name__ == "__main__":
    main()
