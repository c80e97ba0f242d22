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


def export(model: nn.Module, shape, name: str, opset: int, keep_initializers_as_inputs: bool = False, out: str = OUT, dynamic_size: bool = False) -> None:
    """The export a user runs: constant folding on (the default), dynamic batch (and height and width if asked)."""
    model.eval()
    path = os.path.join(out, name)
    size_axes = {2: "height", 3: "width"} if dynamic_size else {}
    torch.onnx.export(
        model,
        torch.rand(*shape),
        path,
        input_names=["images"],
        output_names=["features"],
        dynamic_axes={"images": {0: "batch", **size_axes}, "features": {0: "batch"}},
        opset_version=opset,
        do_constant_folding=True,
        keep_initializers_as_inputs=keep_initializers_as_inputs,
    )
    print(f"{name}: {os.path.getsize(path)} bytes", file=sys.stderr)


# ---- torchvision's own architectures, at reduced width where that keeps the files small ----
# (torch 1.13's exporter writes opsets up to 17: opset_version=18 fails with "Unsupported ONNX opset version: 18".)


def narrow_resnet18(divisor: int = 16) -> nn.Module:
    """torchvision's ResNet-18 (BasicBlock ×[2, 2, 2, 2]) with every width divided by `divisor`, fc = Identity."""
    from torchvision.models import resnet

    original = resnet.ResNet._make_layer

    def make_layer(self, block, planes, blocks, stride=1, dilate=False):
        if self.inplanes == 64:  # the first stage: the stem's width shrinks with the rest
            self.inplanes = 64 // divisor
        return original(self, block, planes // divisor, blocks, stride, dilate)

    resnet.ResNet._make_layer = make_layer
    try:
        model = resnet.ResNet(resnet.BasicBlock, [2, 2, 2, 2])
    finally:
        resnet.ResNet._make_layer = original
    model.conv1 = nn.Conv2d(3, 64 // divisor, 7, 2, 3, bias=False)
    model.bn1 = nn.BatchNorm2d(64 // divisor)
    model.fc = nn.Identity()
    return model


def small_mobilenet_v3() -> nn.Module:
    """torchvision's MobileNet-V3 small at width 0.25 (Conv with groups, HardSwish, HardSigmoid, squeeze-excite)."""
    from torchvision.models import mobilenet_v3_small

    model = mobilenet_v3_small(weights=None, width_mult=0.25)
    model.classifier = nn.Identity()
    return model


def tiny_vit() -> nn.Module:
    """torchvision's VisionTransformer at 32 px, patch 8, 2 layers, 2 heads, width 32: the class token's features."""
    from torchvision.models.vision_transformer import VisionTransformer

    model = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64)
    model.heads = nn.Identity()
    return model


class DinoAttention(nn.Module):
    """timm's Attention as DINO's vision_transformer.py writes it: one qkv Linear, reshape, permute, q·kᵀ·scale."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        batch, tokens, channels = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, channels // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attention = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        x = (attention @ v).transpose(1, 2).reshape(batch, tokens, channels)
        return self.proj(x)


class DinoBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = DinoAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * mlp_ratio), nn.GELU(), nn.Linear(dim * mlp_ratio, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DinoVit(nn.Module):
    """A timm-style DINO ViT-S/16 (patch embedding, class token, learned positions, pre-norm blocks, final norm,
    the class token as features), made small: 32 px, patch 8, width 32, depth 2, 2 heads. timm is not in Debian."""

    def __init__(self, image_px: int = 32, patch_px: int = 8, dim: int = 32, depth: int = 2, heads: int = 2):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch_px, patch_px)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, (image_px // patch_px) ** 2 + 1, dim) * 0.02)
        self.blocks = nn.ModuleList([DinoBlock(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 0]


def randomize_layer_norms(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.LayerNorm):
            module.weight.data = torch.rand(module.normalized_shape) + 0.5
            module.bias.data = torch.randn(module.normalized_shape) * 0.2


def to_opset18(path: str) -> None:
    """Rewrites an opset-13 export as opset 18 writes it (the reductions' axes become an input), since torch 1.13's
    exporter stops at 17: the importer must read both forms."""
    import onnx
    from onnx import helper, numpy_helper
    import numpy as np

    model = onnx.load(path)
    reductions = {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"}
    for position, node in enumerate(model.graph.node):
        axes = [attribute for attribute in node.attribute if attribute.name == "axes"]
        if node.op_type in reductions and axes:
            name = f"reduction_axes_{position}"
            model.graph.initializer.append(numpy_helper.from_array(np.array(list(axes[0].ints), dtype=np.int64), name))
            node.input.append(name)
            node.attribute.remove(axes[0])
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = 18
    model.ir_version = 9
    onnx.save(model, path)
    print(f"{os.path.basename(path)}: rewritten as opset 18", file=sys.stderr)


def torchvision_fixtures(out: str = OUT) -> None:
    torch.manual_seed(1)
    resnet = narrow_resnet18()
    randomize_batch_norms(resnet)
    # The CNNs reduce 32-fold: any size for one, a fixed 64 px (a 2 × 2 last map) for the other.
    export(resnet, (2, 3, 64, 64), "tv_resnet18_narrow.onnx", 17, out=out, dynamic_size=True)
    export(resnet, (2, 3, 64, 64), "tv_resnet18_narrow_opset13_inputs.onnx", 13, keep_initializers_as_inputs=True, out=out)
    mobilenet = small_mobilenet_v3()
    randomize_batch_norms(mobilenet)
    export(mobilenet, (2, 3, 64, 64), "tv_mobilenet_v3_small.onnx", 17, out=out, dynamic_size=True)
    vit = tiny_vit()
    randomize_layer_norms(vit)
    export(vit, (2, 3, 32, 32), "tv_vit_tiny.onnx", 17, out=out)
    dino = DinoVit()
    randomize_layer_norms(dino)
    export(dino, (2, 3, 32, 32), "dino_vit_tiny.onnx", 17, keep_initializers_as_inputs=True, out=out)
    # Before opset 17 LayerNorm is decomposed (ReduceMean, Sub, Pow, Sqrt, Div): the same ViT at opset 13.
    export(vit, (2, 3, 32, 32), "tv_vit_tiny_opset13.onnx", 13, out=out)
    export(dino, (2, 3, 32, 32), "dino_vit_tiny_opset18.onnx", 13, out=out)
    to_opset18(os.path.join(out, "dino_vit_tiny_opset18.onnx"))


def dino_vits16_full(out: str) -> None:
    """The timm-style DINO ViT at ViT-S/16 size (224 px, patch 16, width 384, depth 12, 6 heads), random weights."""
    torch.manual_seed(3)
    os.makedirs(out, exist_ok=True)
    export(DinoVit(image_px=224, patch_px=16, dim=384, depth=12, heads=6), (1, 3, 224, 224), "dino_vits16.onnx", 17, out=out)


def resnet50_full(out: str) -> None:
    """The full-size torchvision ResNet-50 (random weights, 224 px) for the bench; too big to commit."""
    from torchvision.models import resnet50

    torch.manual_seed(2)
    model = resnet50(weights=None)
    model.fc = nn.Identity()
    os.makedirs(out, exist_ok=True)
    export(model, (1, 3, 224, 224), "resnet50.onnx", 17, out=out)


def main() -> None:
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    resnet = TinyResNet()
    randomize_batch_norms(resnet)
    export(resnet, (2, 3, 16, 16), "resnet_tiny.onnx", 17)
    export(TinyConvMlp(), (2, 1, 8, 8), "conv_mlp_tiny.onnx", 13)
    export(WithUnsupportedOp(), (2, 3, 8, 8), "unsupported_sin.onnx", 13)
    torchvision_fixtures()


if __name__ == "__main__":
    # --resnet50 FOLDER / --dino-vits16 FOLDER write only a full-size model for the bench (not committed).
    if len(sys.argv) == 3 and sys.argv[1] == "--resnet50":
        resnet50_full(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "--dino-vits16":
        dino_vits16_full(sys.argv[2])
    else:
        main()
