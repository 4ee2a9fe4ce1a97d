#!/usr/bin/env python3
"""Writes the model zoo the tests read (crates/flickertag-cli/tests/zoo/): small networks
of the families users bring (torchvision, timm, a channels-last "Keras-style" CNN, a
1-channel CNN), random weights, exported with both PyTorch exporters where they work,
and for each, from PyTorch itself, the oracle the tests compare flickertag with:

- `<model>.json`: `named_modules()` (every module path), the modules checked, and for
  each its amplitude spectrum file;
- `<model>.npz`: for each checked module, the per-channel amplitude spectrum |rfft|/N
  of the per-channel mean that a forward hook records on the 240 frames of the
  paper's stimulus (6 / 7.5 Hz, 120 fps) of `image.png`, `[C, 121]` float32.

Frames are built here, in numpy, from the stimulus definition (method.md), not by
flickertag. Every BatchNorm has non-trivial running statistics and affine parameters,
and the transformers' weights are drawn at a scale where activations are far from zero.
Needs torch, torchvision, timm, transformers, onnx, onnxscript, onnxruntime (`.venv`). The int8
copy of resnet18 is checked against onnxruntime-python instead of hooks. Usage:
    .venv/bin/python scripts/make-model-zoo.py [OUT_DIR] [--only=swin,levit]
(`--only` rewrites the named models and keeps the rest of the zoo as it is.)
"""
import json
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn

warnings.filterwarnings("ignore")
torch.manual_seed(0)
torch.set_num_threads(2)

ARGS = [a for a in sys.argv[1:] if not a.startswith("--only=")]
OUT = ARGS[0] if ARGS else "crates/flickertag-cli/tests/zoo"
# `--only=a,b`: (re)write these models only, keeping the rest of zoo.json.
ONLY = next((a.split("=", 1)[1].split(",") for a in sys.argv[1:] if a.startswith("--only=")), None)
FPS, N, F_L, F_R = 120.0, 240, 6.0, 7.5
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def test_image():
    """A 32x32 RGB test pattern with structure in both halves, as uint8."""
    y, x = np.mgrid[0:32, 0:32]
    r = 128 + 100 * np.sin(x / 3.0) * np.cos(y / 5.0)
    g = 128 + 90 * np.cos((x + y) / 4.0)
    b = 40 + 6 * ((x * 7 + y * 3) % 32)
    return np.stack([r, g, b]).clip(0, 255).astype(np.uint8)


def write_png(path, rgb):
    from PIL import Image

    Image.fromarray(np.transpose(rgb, (1, 2, 0))).save(path)


def frames(rgb, channels):
    """[N, C, 32, 32]: normalized image (luminance for 1 channel), left half x s_L(i),
    right half x s_R(i), s(i) = 0.75 + 0.25 sin(2 pi f i / fps)."""
    x = rgb.astype(np.float32) / 255.0
    if channels == 1:
        x = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2])[None].astype(np.float32)
        x = (x - MEAN[0]) / STD[0]
    else:
        x = (x - MEAN[:, None, None]) / STD[:, None, None]
    t = np.arange(N) / FPS
    s_l = (0.75 + 0.25 * np.sin(2 * np.pi * F_L * t)).astype(np.float32)
    s_r = (0.75 + 0.25 * np.sin(2 * np.pi * F_R * t)).astype(np.float32)
    out = np.repeat(x[None], N, axis=0)
    out[:, :, :, :16] *= s_l[:, None, None, None]
    out[:, :, :, 16:] *= s_r[:, None, None, None]
    return out


def channel_mean(out, layout, frames):
    """[frames, C] from a hooked output with a known layout (`tokens:P`: the mean over
    the patch tokens after P extra tokens; `token:I`: token I alone; `rows`: channels
    last, the batch axis merged with windows or patches frame-major, `[frames·k, ..., C]`,
    the mean over each frame's block)."""
    if isinstance(out, (tuple, list)):
        out = out[0]
    if layout == "rows":
        return out.reshape(frames, -1, out.shape[-1]).mean(1)
    if layout.startswith("token:"):
        return out[:, int(layout.split(":")[1])].clone()
    if layout == "nchw":
        # (a copy: an in-place activation after the module would change it later)
        return out.flatten(2).mean(2) if out.dim() > 2 else out.clone()
    if layout == "nhwc":
        return out.mean(dim=(1, 2))
    if layout.startswith("tokens"):
        prefix = int(layout.split(":")[1])
        return out[:, prefix:].mean(1)
    raise ValueError(layout)


def oracle(model, x, checks):
    """Amplitude spectra [C, N/2 + 1] of the hooked per-channel means."""
    mods = dict(model.named_modules())
    rec = {}
    hooks = []
    half = next(model.parameters()).dtype == torch.float16
    frames = [0]  # frames in the batch being run
    for name, layout in checks.items():
        def hook(m, i, o, name=name, layout=layout):
            o = o[0] if isinstance(o, (tuple, list)) else o
            # Means in float64 (of float16 values as they are, for a half model).
            rec.setdefault(name, []).append(channel_mean(o.detach().double(), layout, frames[0]))
        # `module:token` checks hook the module and keep one extra token.
        hooks.append(mods[name.split(":")[0]].register_forward_hook(hook))
    with torch.inference_mode():
        for b in range(0, N, 80):
            xb = torch.from_numpy(x[b:b + 80])
            frames[0] = xb.shape[0]
            model(xb.half() if half else xb)
    for h in hooks:
        h.remove()
    spectra = {}
    for name, parts in rec.items():
        series = torch.cat(parts).double()  # [N, C]
        spectra[name] = (torch.fft.rfft(series, dim=0).abs() / N).T.float().numpy()
    return spectra


class KerasStyleCNN(nn.Module):
    """A channels-last model as tf2onnx exports Keras ones: input [N, H, W, C]."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.act2 = nn.ReLU()
        self.dense = nn.Linear(16, 10)

    def forward(self, x):
        x = x.permute(0, 3, 1, 2)
        x = self.act2(self.conv2(self.act1(self.conv1(x))))
        return self.dense(x.mean(dim=(2, 3)))


class GrayCNN(nn.Module):
    """A 1-channel model (MNIST-style)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.act1 = nn.SiLU()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.act2 = nn.Hardswish()
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.act2(self.conv2(self.act1(self.conv1(x))))
        return self.fc(x.mean(dim=(2, 3)))


def small_resnet18():
    import torchvision

    class R(torchvision.models.ResNet):
        def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
            return super()._make_layer(block, max(planes // 8, 8), blocks, stride, dilate)

    m = R(torchvision.models.resnet.BasicBlock, [2, 2, 2, 2], num_classes=10)
    m.fc = nn.Linear(64, 10)
    return m


def nontrivial_norms(model, seed=1):
    """Every BatchNorm gets running statistics and an affine transform far from the
    identity (a freshly initialised one is the identity at inference, which would hide
    a conv tap that holds its folded BatchNorm's output)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
                c = m.num_features
                m.running_mean.copy_(0.3 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=g))
                if m.affine:
                    m.weight.copy_(0.5 + torch.rand(c, generator=g))
                    m.bias.copy_(0.2 * torch.randn(c, generator=g))
    return model


def nontrivial_transformer(model, seed=2):
    """Transformer libraries initialise Linear weights at std 0.02 and tokens near 0:
    activations then sit near the floor of the comparison. Weights at 1/sqrt(fan_in),
    tokens and position embeddings at std 0.5, LayerNorm affine off the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2 and ("weight" in name.rsplit(".", 1)[-1]):
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
            elif any(k in name for k in ("token", "class_embedding", "pos_embed", "position_embedding")):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
        for m in model.modules():
            if isinstance(m, nn.LayerNorm) and m.elementwise_affine:
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
    return model


def transformers_models():
    """transformers' DINOv2 with registers and CLIP's vision tower, small."""
    from transformers import (CLIPVisionConfig, CLIPVisionModel, Dinov2WithRegistersConfig,
                              Dinov2WithRegistersModel)
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32,
                 patch_size=8)
    return (lambda: nontrivial_transformer(Dinov2WithRegistersModel(Dinov2WithRegistersConfig(
                num_register_tokens=4, **small))),
            lambda: nontrivial_transformer(CLIPVisionModel(CLIPVisionConfig(**small))))


def hf_swin():
    """transformers' Swin (4x4 windows on a 16x16 grid, shifted every second block, patch
    merging by four strided slices and a concat); the dynamo exporter cannot export it."""
    from transformers import SwinConfig, SwinModel

    return nontrivial_transformer(SwinModel(SwinConfig(image_size=32, patch_size=2, embed_dim=16, depths=[2, 2],
                                                       num_heads=[1, 2], window_size=4)))


def poolformer():
    """timm's PoolFormer (MetaFormer with pooling and GroupNorm1), one block per stage."""
    from timm.models.metaformer import GroupNorm1, MetaFormer

    m = MetaFormer(depths=[1, 1, 1, 1], dims=[8, 16, 24, 32], downsample_norm=None, mlp_act=nn.GELU, mlp_bias=True,
                   norm_layers=GroupNorm1, layer_scale_init_values=1.0, res_scale_init_values=None,
                   use_mlp_head=False, num_classes=10)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # GroupNorm affine off the identity
        for mod in m.modules():
            if isinstance(mod, nn.GroupNorm):
                mod.weight.copy_(0.5 + torch.rand(mod.weight.shape, generator=g))
                mod.bias.copy_(0.2 * torch.randn(mod.bias.shape, generator=g))
    return m


class TinyMobileViT(nn.Module):
    """A conv stem and one timm MobileViT block (2x2 patches unfolded to
    `[N·4, 64 patches, 16]`, a transformer, folded back), pooled to 10 classes."""

    def __init__(self):
        from timm.models.mobilevit import MobileVitBlock

        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 2, 1)
        self.act = nn.SiLU()
        self.block = MobileVitBlock(8, 8, transformer_dim=16, transformer_depth=1, patch_size=2, num_heads=2)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(self.block(self.act(self.stem(x))).mean((2, 3)))


def small_levit():
    """timm's LeViT with a 4x stem (8x8 tokens), one block per stage, and the
    subsampling attention between stages (4x4 tokens); BatchNorm1d on `[N·T, C]`."""
    from timm.models.levit import Levit

    stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.Hardswish(), nn.Conv2d(16, 16, 3, 2, 1))
    return Levit(img_size=32, num_classes=10, embed_dim=(16, 24), key_dim=8, depth=(1, 1), num_heads=(2, 3),
                 stem_backbone=stem, stem_stride=4)


def zoo():
    import timm
    import torchvision
    from torchvision.models import efficientnet as tv_eff
    from torchvision.models import mobilenetv3 as tv_mnv3
    from torchvision.models import regnet as tv_regnet

    eff_setting, eff_last = tv_eff._efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.25)
    mnv3_setting, mnv3_last = tv_mnv3._mobilenet_v3_conf("mobilenet_v3_small", width_mult=0.25)
    dinov2, clip = transformers_models()
    regnet_params = tv_regnet.BlockParams.from_init_params(depth=4, w_0=8, w_a=8.0, w_m=2.0, group_width=8, se_ratio=0.25)
    # name: (constructor, input channels, layout of input, checks {module: layout})
    return {
        "resnet18": (small_resnet18, 3, "nchw", {
            "conv1": "nchw", "bn1": "nchw", "layer1.0.conv1": "nchw", "layer2.0.downsample.0": "nchw",
            "layer3.1": "nchw", "layer4.1.bn2": "nchw", "fc": "nchw"}),
        "mobilenet_v3_small": (lambda: tv_mnv3.MobileNetV3(mnv3_setting, mnv3_last, num_classes=10), 3, "nchw", {
            "features.0.0": "nchw", "features.0.2": "nchw", "features.1.block.1.fc1": "nchw",
            "features.4.block.0.2": "nchw", "features.4": "nchw", "classifier.0": "nchw"}),
        "efficientnet_b0": (lambda: tv_eff.EfficientNet(eff_setting, 0.2, last_channel=eff_last, num_classes=10), 3,
                            "nchw", {"features.0.0": "nchw", "features.0.2": "nchw", "features.2.0.block.1.0": "nchw",
                                     "features.8": "nchw", "classifier.1": "nchw"}),
        "densenet121": (lambda: torchvision.models.DenseNet(8, (2, 2, 2, 2), 16, num_classes=10), 3, "nchw", {
            "features.conv0": "nchw", "features.denseblock1.denselayer1.conv2": "nchw",
            "features.transition1.conv": "nchw", "classifier": "nchw"}),
        "regnet_y_400mf": (lambda: torchvision.models.RegNet(regnet_params, num_classes=10), 3, "nchw", {
            "stem.0": "nchw", "trunk_output.block1.block1-0.f.a.0": "nchw", "trunk_output.block2": "nchw",
            "fc": "nchw"}),
        "vit_b_16": (lambda: torchvision.models.VisionTransformer(32, 8, 2, 2, 32, 64, num_classes=10), 3, "nchw", {
            "conv_proj": "nchw", "encoder.layers.encoder_layer_0.ln_1": "tokens:1",
            "encoder.layers.encoder_layer_0.mlp.0": "tokens:1", "encoder.layers.encoder_layer_0.mlp.1": "tokens:1",
            "encoder.layers.encoder_layer_1": "tokens:1"}),
        "convnext_atto": (lambda: timm.create_model("convnext_atto", num_classes=10, dims=(8, 16, 32, 64), conv_mlp=False,
                                                    depths=(1, 1, 1, 1)), 3, "nchw", {
            "stem.0": "nchw", "stages.0.blocks.0.conv_dw": "nchw", "stages.0.blocks.0.norm": "nhwc",
            "stages.0.blocks.0.mlp.fc1": "nhwc", "stages.0.blocks.0.mlp.act": "nhwc", "stages.1.blocks.0": "nchw"}),
        "convnext_atto_conv_mlp": (lambda: timm.create_model("convnext_atto", num_classes=10, dims=(8, 16, 32, 64),
                                                             depths=(1, 1, 1, 1), conv_mlp=True), 3, "nchw", {
            "stem.0": "nchw", "stages.0.blocks.0.mlp.fc1": "nchw", "stages.0.blocks.0.mlp.act": "nchw",
            "stages.2.blocks.0": "nchw"}),
        "vit_tiny": (lambda: timm.create_model("vit_tiny_patch16_224", num_classes=10, img_size=32, patch_size=8,
                                               depth=2, embed_dim=32, num_heads=2), 3, "nchw", {
            "patch_embed.proj": "nchw", "blocks.0.norm1": "tokens:1", "blocks.0.attn.qkv": "tokens:1",
            "blocks.0.mlp.fc1": "tokens:1", "blocks.0.mlp.act": "tokens:1", "blocks.1": "tokens:1"}),
        # Extra tokens: 4 registers (timm), a distillation token (timm DeiT), registers
        # inserted after the class token (transformers DINOv2), CLIP's class embedding.
        "vit_reg": (lambda: nontrivial_transformer(timm.create_model(
            "vit_tiny_patch16_224", num_classes=10, img_size=32, patch_size=8, depth=2, embed_dim=32, num_heads=2,
            reg_tokens=4)), 3, "nchw", {
            "patch_embed.proj": "nchw", "blocks.0.norm1": "tokens:5", "blocks.0.norm1:cls": "token:0",
            "blocks.0.norm1:reg0": "token:1", "blocks.0.norm1:reg3": "token:4", "blocks.0.attn.proj": "tokens:5",
            "blocks.1.mlp.fc2": "tokens:5", "blocks.1.mlp.fc2:reg2": "token:3"}),
        "deit_distilled": (lambda: nontrivial_transformer(timm.create_model(
            "deit_tiny_distilled_patch16_224", num_classes=10, img_size=32, patch_size=8, depth=2, embed_dim=32,
            num_heads=2)), 3, "nchw", {
            "blocks.0.norm1": "tokens:2", "blocks.0.norm1:cls": "token:0", "blocks.0.norm1:dist": "token:1",
            "blocks.1.attn.qkv": "tokens:2", "blocks.1.attn.qkv:dist": "token:1"}),
        "dinov2_registers": (dinov2, 3, "nchw", {
            "embeddings.patch_embeddings.projection": "nchw", "encoder.layer.0.norm1": "tokens:5",
            "encoder.layer.0.norm1:cls": "token:0", "encoder.layer.0.norm1:reg0": "token:1",
            "encoder.layer.0.norm1:reg3": "token:4", "encoder.layer.0.attention.o_proj": "tokens:5",
            "encoder.layer.1.mlp.fc1": "tokens:5", "encoder.layer.1.mlp.fc1:reg1": "token:2",
            "layernorm": "tokens:5"}),
        "clip_vision": (clip, 3, "nchw", {
            "embeddings.patch_embedding": "nchw", "pre_layrnorm": "tokens:1", "pre_layrnorm:cls": "token:0",
            "encoder.layers.0.self_attn.out_proj": "tokens:1", "encoder.layers.1.mlp.fc2": "tokens:1",
            "encoder.layers.1.mlp.fc2:cls": "token:0"}),
        # GroupNorm with one group, decomposed by both exporters into a reshape to
        # [N, 1, C*H*W], InstanceNormalization, a reshape back and the affine.
        "poolformer": (poolformer, 3, "nchw", {
            "stem.conv": "nchw", "stages.0.blocks.0.norm1": "nchw", "stages.0.blocks.0.token_mixer": "nchw",
            "stages.1.blocks.0.norm2": "nchw", "stages.2.blocks.0": "nchw"}),
        # timm's BatchNormAct2d: `bn1` is the BatchNorm and its activation (`bn1.act`)
        # in one module, so a hook on `bn1` sees the activation's output.
        "timm_efficientnet": (lambda: timm.models.efficientnet._gen_efficientnet(
            "efficientnet_b0", channel_multiplier=0.25, depth_multiplier=0.25, num_classes=10), 3, "nchw", {
            "bn1": "nchw", "blocks.0.0.bn1": "nchw", "blocks.1.0.conv_pwl": "nchw", "bn2": "nchw"}),
        # Windowed attention (4x4 windows on a 16x16 grid, every second block shifted
        # by 2 with a mask): attention runs on [N·16 windows, 16, C].
        "swin": (lambda: timm.create_model("swin_tiny_patch4_window7_224", num_classes=10, img_size=32,
                                           patch_size=2, window_size=4, embed_dim=16, depths=(2, 2),
                                           num_heads=(1, 2)), 3, "nchw", {
            "patch_embed.proj": "nchw", "layers.0.blocks.0.attn.qkv": "rows", "layers.0.blocks.0.attn.proj": "rows",
            "layers.0.blocks.1.attn.qkv": "rows", "layers.0.blocks.1.attn": "rows", "layers.0.blocks.1": "nhwc",
            "layers.1.downsample.norm": "nhwc", "layers.1.blocks.1.attn.proj": "rows",
            "layers.1.blocks.1.mlp.fc1": "tokens:0"}),
        "hf_swin": (hf_swin, 3, "nchw", {
            "encoder.layers.0.blocks.1.attention.q_proj": "rows", "encoder.layers.0.blocks.1.attention.o_proj": "rows",
            "encoder.layers.0.blocks.1": "tokens:0", "encoder.layers.0.downsample.norm": "tokens:0",
            "encoder.layers.0.downsample": "tokens:0", "encoder.layers.1.blocks.0.attention.v_proj": "rows"}),
        # Unfolded patches: the transformer runs on [N·4 pixels of a patch, 64 patches, C].
        "mobilevit": (TinyMobileViT, 3, "nchw", {
            "block.conv_1x1": "nchw", "block.transformer.0.norm1": "rows", "block.transformer.0.attn.qkv": "rows",
            "block.transformer.0.attn": "rows", "block.transformer.0.mlp.fc2": "rows", "block.norm": "rows",
            "block.conv_proj": "nchw", "block": "nchw"}),
        # A shrinking grid (8x8 tokens subsampled to 4x4) and BatchNorm1d on [N·T, C].
        "levit": (small_levit, 3, "nchw", {
            "stages.0.blocks.0.attn.qkv.bn": "rows", "stages.0.blocks.0.attn.qkv": "tokens:0",
            "stages.0.blocks.0.attn.proj": "tokens:0", "stages.1.downsample.attn_downsample.q.down": "tokens:0",
            "stages.1.downsample.attn_downsample.q": "tokens:0", "stages.1.downsample.attn_downsample": "tokens:0",
            "stages.1.blocks.0": "tokens:0"}),
        # Channel shuffle ([N, 2, C/2, H, W] transposed) after each block, and chunks.
        "shufflenet": (lambda: torchvision.models.ShuffleNetV2([2, 2, 2], [8, 16, 32, 64, 128], num_classes=10), 3,
                       "nchw", {"conv1": "nchw", "stage2.0": "nchw", "stage2.1.branch2.7": "nchw", "stage2.1": "nchw",
                                "stage3.1": "nchw", "stage4.1": "nchw"}),
        "gray_cnn": (GrayCNN, 1, "nchw", {"conv1": "nchw", "act1": "nchw", "act2": "nchw", "fc": "nchw"}),
        "keras_style_nhwc": (KerasStyleCNN, 3, "nhwc", {"conv1": "nchw", "act2": "nchw", "dense": "nchw"}),
    }


def batchnorm_after(model, checks):
    """For each checked Conv2d followed (in module order, same parent) by a BatchNorm2d
    of its output channels: that BatchNorm's name."""
    names = [n for n, _ in model.named_modules()]
    mods = dict(model.named_modules())
    out = {}
    for c in checks:
        if not isinstance(mods.get(c), nn.Conv2d) or c not in names:
            continue
        parent = c.rsplit(".", 1)[0] if "." in c else ""
        for n in names[names.index(c) + 1:]:
            if (n.rsplit(".", 1)[0] if "." in n else "") != parent:
                continue
            m = mods[n]
            if isinstance(m, nn.BatchNorm2d) and m.num_features == mods[c].out_channels:
                out[c] = n
            break
    return out


def export(model, x, path, dynamo):
    import inspect

    kw = dict(input_names=["image"], output_names=["logits"])
    if dynamo:
        arg = next(iter(inspect.signature(model.forward).parameters))  # `x`, `pixel_values`
        torch.onnx.export(model, (x,), path, dynamo=True, external_data=False,
                          dynamic_shapes={arg: {0: torch.export.Dim("batch", min=1, max=4096)}}, **kw)
    else:
        torch.onnx.export(model, (x,), path, dynamo=False, opset_version=17,
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, **kw)


def quantized_resnet18(rgb, named_modules):
    """resnet18.legacy.onnx quantized to int8 by ONNX Runtime's own tool (QDQ format,
    static calibration on 48 of the stimulus frames), and its oracle from
    onnxruntime-python on that graph: per check, the tensor found by the quantizer's
    naming convention, not by flickertag's rules. A conv whose ReLU the quantizer
    removed writes the ReLU's tensor name (`/relu/Relu_output_0`): the conv is that
    tensor, the ReLU its DequantizeLinear output; any other module is the
    DequantizeLinear output of its node's output (what the next layer reads)."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    x = frames(rgb, 3)
    pre, path = f"{OUT}/resnet18_qdq.pre.onnx", f"{OUT}/resnet18_qdq.legacy.onnx"
    quant_pre_process(f"{OUT}/resnet18.legacy.onnx", pre)

    class Frames(CalibrationDataReader):
        def __init__(self):
            self.it = iter({"image": x[i:i + 1]} for i in range(0, 240, 5))

        def get_next(self):
            return next(self.it, None)

    quantize_static(pre, path, Frames(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8)
    os.remove(pre)
    m = onnx.load(path)
    by_name = {n.name: n for n in m.graph.node}
    dq_of = {n.input[0].removesuffix("_QuantizeLinear_Output"): n.output[0]
             for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0].endswith("_QuantizeLinear_Output")}
    tensors = {
        "conv1": by_name["/conv1/Conv"].output[0],                   # its ReLU removed: the conv's own output
        "relu": dq_of["/relu/Relu_output_0"],                         # the removed ReLU: the dequantized output
        "layer1.0.conv2": dq_of[by_name["/layer1/layer1.0/conv2/Conv"].output[0]],
        "layer1.0.add": by_name["/layer1/layer1.0/Add"].output[0],
        "layer1.0": dq_of["/layer1/layer1.0/relu_1/Relu_output_0"],   # the block: its last (removed) ReLU
        "layer2.0.downsample.0": dq_of[by_name["/layer2/layer2.0/downsample/downsample.0/Conv"].output[0]],
        "fc": by_name["/fc/Gemm"].output[0],
    }
    m.metadata_props.add(key="flickertag.mean", value=",".join(str(v) for v in MEAN))
    m.metadata_props.add(key="flickertag.std", value=",".join(str(v) for v in STD))
    for t in tensors.values():
        m.graph.output.append(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None))
    s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    names = list(tensors.values())
    outs = [s.run(names, {"image": x[b:b + 80]}) for b in range(0, N, 80)]
    spectra = {}
    for k, (check, t) in enumerate(tensors.items()):
        series = np.concatenate([o[k] for o in outs]).astype(np.float64)
        series = series.reshape(N, series.shape[1], -1).mean(2) if series.ndim > 2 else series
        spectra[check] = (np.abs(np.fft.rfft(series, axis=0)) / N).T.astype(np.float32)
    del m.graph.output[1:]
    onnx.save(m, path)
    order = list(tensors)
    np.save(f"{OUT}/resnet18_qdq.npy", np.ascontiguousarray(np.concatenate([spectra[k] for k in order])))
    offsets, at = {}, 0
    for k in order:
        offsets[k] = [at, spectra[k].shape[0]]
        at += spectra[k].shape[0]
    print("resnet18_qdq", {k: v.shape for k, v in spectra.items()})
    # Against onnxruntime-python on the same graph: float32 rounding (measured: 5e-8 of
    # each tap's largest amplitude), except the logits after 20 quantized layers, where
    # float32 rounding differences of the two sessions flip some int8 roundings
    # (measured: 1.0e-3).
    return {"files": {"legacy": "resnet18_qdq.legacy.onnx"}, "channels": 3, "input_layout": "nchw",
            "named_modules": named_modules, "checks": order, "bn_of": {}, "foldable_bns": [],
            "spectra": offsets, "tolerance": 1e-6, "tolerance_of": "tap", "tolerance_by_check": {"fc": 2e-3},
            "oracle": "onnxruntime"}


def main():
    import onnx

    os.makedirs(OUT, exist_ok=True)
    rgb = test_image()
    write_png(f"{OUT}/image.png", rgb)
    index = {}
    if ONLY:
        with open(f"{OUT}/zoo.json") as f:
            index = json.load(f)
    models = zoo()
    # Float16 copies (`model.half()` before export, as from a GPU): computed in float16
    # by both PyTorch and ONNX Runtime, so they agree to float16 rounding only.
    for base in ("resnet18", "vit_tiny"):
        make, channels, in_layout, checks = models[base]
        models[f"{base}_half"] = (lambda make=make: make().half(), channels, in_layout, checks)
    for name, (make, channels, in_layout, checks) in models.items():
        if ONLY and name not in ONLY:
            continue
        half = name.endswith("_half")
        model = nontrivial_norms(make()).eval()
        x = frames(rgb, channels)
        fed = np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1))) if in_layout == "nhwc" else x
        # An exporter may fold a BatchNorm into the conv before it: that conv's output
        # is then the BatchNorm's, so the BatchNorm is hooked too.
        bn_of = batchnorm_after(model, checks)
        hooked = dict(checks, **{bn: "nchw" for bn in bn_of.values()})
        spectra = oracle(model, fed, hooked)
        order = list(hooked)
        np.save(f"{OUT}/{name}.npy", np.concatenate([spectra[k] for k in order]).astype(np.float32))
        offsets, at = {}, 0
        for k in order:
            offsets[k] = [at, spectra[k].shape[0]]
            at += spectra[k].shape[0]
        files = {}
        example = torch.from_numpy(fed[:2]).half() if half else torch.from_numpy(fed[:2])
        for exporter, dynamo in (("legacy", False), ("dynamo", True)):
            path = f"{OUT}/{name}.{exporter}.onnx"
            try:
                export(model, example, path, dynamo)
                m = onnx.load(path)
                m.metadata_props.add(key="flickertag.mean", value=",".join(str(v) for v in MEAN))
                m.metadata_props.add(key="flickertag.std", value=",".join(str(v) for v in STD))
                onnx.save(m, path)
                files[exporter] = os.path.basename(path)
            except Exception as e:  # an exporter that cannot export this model
                print(f"{name}: {exporter} export failed: {type(e).__name__}: {str(e)[:200]}")
                if os.path.exists(path):
                    os.remove(path)
        index[name] = {
            "files": files,
            "channels": channels,
            "input_layout": in_layout,
            "named_modules": [n for n, _ in model.named_modules() if n],
            "checks": list(checks),
            "bn_of": bn_of,
            # BatchNorms right after a conv: an exporter may fold them away.
            "foldable_bns": sorted(batchnorm_after(model, [n for n, m in model.named_modules()
                                                           if isinstance(m, nn.Conv2d)]).values()),
            "spectra": offsets,
            # Agreement asked of flickertag, relative to each channel's largest amplitude.
            # (Float16 rounding is at the scale of the whole tensor, so a float16 model
            # is held to its tap's largest amplitude, not each channel's.)
            "tolerance": 5e-3 if half else 1e-4,
            "tolerance_of": "tap" if half else "channel",
        }
        print(name, files, {k: v.shape for k, v in spectra.items()})
    if not ONLY:
        index["resnet18_qdq"] = quantized_resnet18(rgb, index["resnet18"]["named_modules"])
        # A plain default export: weights in a .data file beside the model, batch fixed at 1.
        m = GrayCNN().eval()
        os.makedirs(f"{OUT}/external", exist_ok=True)
        torch.onnx.export(m, (torch.zeros(1, 1, 32, 32),), f"{OUT}/external/default.onnx", external_data=True)
        index["default_export"] = {"files": {"dynamo": "external/default.onnx"}, "channels": 1,
                                   "named_modules": [n for n, _ in m.named_modules() if n]}
    with open(f"{OUT}/zoo.json", "w") as f:
        json.dump(index, f, indent=1)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"zoo: {total / 1e6:.1f} MB in {OUT}")


if __name__ == "__main__":
    main()
