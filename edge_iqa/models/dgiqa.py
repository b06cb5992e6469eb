"""DGIQA: depth-guided no-reference IQA (Ramesh et al., "DGIQA: Depth-guided Feature Attention and
Refinement for Generalizable Image Quality Assessment", uf-robopi/DGIQA).

Two Swin-T feature pyramids, one on the RGB image and one on its depth map, each stage bridged to a
CNN by a Transformer-CNN Bridge (TCB). The four TCB maps of each stream are resized to the coarsest
grid (7x7 at 224) and concatenated to 960 channels. Depth-CAR then lets the depth tokens query the
RGB tokens (cross-attention + FFN), refines the result with self-attention + FFN, and a dilated
conv stack, global average pool, a linear layer and a sigmoid give the score.

    rgb   -> Swin-T -> 4 NHWC maps -> TCB x4 -> resize 7x7 -> cat (960) --------------+
    depth -> Swin-T -> 4 NHWC maps -> TCB x4 -> resize 7x7 -> cat (960) -> query      |
                                               cross-attention(query=depth, key/value=rgb)
                                               -> self-attention -> dilated convs -> pool -> fc -> sigmoid

The state_dict names are the reference's, so its published checkpoints load unchanged. The Swin
backbones are timm's ``swin_tiny_patch4_window7_224`` (features_only, as the reference builds
them), with every window attention routed through :func:`scaled_dot_product` (relative-position
bias and shift mask as the additive bias), and both ``nn.MultiheadAttention`` of Depth-CAR are our
:class:`MultiHeadAttention` in its ``in_proj`` layout.
"""

from __future__ import annotations

import os

import timm
import torch
import torch.nn.functional as F
from timm.models.swin_transformer import WindowAttention
from torch import nn

from edge_iqa.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessSpec
from edge_iqa.errors import CheckpointError
from edge_iqa.models.layers import attention as shared_attention
from edge_iqa.models.layers.attention import MultiHeadAttention
from edge_iqa.models.registry import register_model

SWIN_VARIANT = "swin_tiny_patch4_window7_224"
SWIN_CHANNELS = (96, 192, 384, 768)
TCB_CHANNELS = (64, 128, 256, 512)
FUSED_DIM = sum(TCB_CHANNELS)  # 960
HEAD_DIM = 1024
NUM_HEADS = 16


# --- Swin window attention on the shared attention module ---------------------------------------
class SharedWindowAttention(WindowAttention):
    """timm's Swin ``WindowAttention`` (same parameters and buffers) computed by
    :func:`scaled_dot_product`, so the attention form is chosen by ``attention_form``.

    For shifted windows the per-window mask differs between windows but not between images, so the
    windows are folded into the head axis: q/k/v become (B, windows*heads, N, D) and the additive
    bias (relative position + shift mask) is (1, windows*heads, N, N), broadcast over the batch.
    That keeps the attention 4-D (one ONNX ``Attention`` node) without a batch-sized mask.
    """

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        windows_x_batch, tokens, _ = x.shape
        qkv = self.qkv(x).reshape(windows_x_batch, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B*nW, heads, N, head_dim)
        bias = self._get_rel_pos_bias()  # (1, heads, N, N)
        if mask is None:
            out = shared_attention.scaled_dot_product(q, k, v, bias=bias, scale=self.scale)
        else:
            num_windows, head_dim = mask.shape[0], q.shape[-1]
            folded = num_windows * self.num_heads
            bias = (bias + mask.unsqueeze(1)).reshape(1, folded, tokens, tokens)
            q, k, v = (t.reshape(-1, folded, tokens, head_dim) for t in (q, k, v))
            out = shared_attention.scaled_dot_product(q, k, v, bias=bias, scale=self.scale)
            out = out.reshape(windows_x_batch, self.num_heads, tokens, head_dim)
        # An explicit copy before merging the heads: eager CPU SDPA with a bias returns a
        # (B, N, heads, D)-strided tensor, so a reshape is traced as a view, which then fails on
        # the standard layout of torch.export's decomposed SDPA. (contiguous() is a no-op in eager
        # and would not be traced.)
        out = out.transpose(1, 2).clone(memory_format=torch.contiguous_format)
        out = out.reshape(windows_x_batch, tokens, -1)
        return self.proj_drop(self.proj(out))


def _route_window_attention(backbone: nn.Module) -> int:
    """Make every timm ``WindowAttention`` in ``backbone`` a :class:`SharedWindowAttention`.

    Only the class changes: parameters, buffers and attributes stay where timm put them (so the
    state_dict names and the derived ``relative_position_index`` are timm's, whatever its
    version's constructor signature). Returns how many modules were routed.
    """
    routed = 0
    for module in backbone.modules():
        if type(module) is WindowAttention:
            module.__class__ = SharedWindowAttention
            routed += 1
    if routed == 0:
        raise RuntimeError(f"no timm WindowAttention found in {type(backbone).__name__}; timm changed?")
    return routed


def swin_tiny_features(img_size: int = 224) -> nn.Module:
    """timm Swin-T as a 4-level feature extractor (NHWC maps of 96/192/384/768 channels)."""
    backbone = timm.create_model(SWIN_VARIANT, pretrained=False, features_only=True, img_size=img_size)
    _route_window_attention(backbone)
    return backbone


def swin_backbone_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A timm ``swin_tiny_patch4_window7_224`` classifier checkpoint -> the features_only names.

    ``layers.N.`` becomes ``layers_N.``; the final norm, the head and non-persistent buffers are
    dropped (the feature extractor has none of them).
    """
    converted: dict[str, torch.Tensor] = {}
    for name, tensor in state_dict.items():
        if name.startswith(("head.", "norm.")) or name.endswith(("relative_position_index", "attn_mask")):
            continue
        if name.startswith("layers."):
            _, index, rest = name.split(".", 2)
            name = f"layers_{index}.{rest}"
        converted[name] = tensor
    return converted


# --- DGIQA blocks ------------------------------------------------------------------------------
class TransformerCnnBlock(nn.Module):
    """TCB: 1x1 projection, per-pixel channel gate (1x1 bottleneck + sigmoid), 3x3 conv, BN, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, reduction: int = 16, drop_prob: float = 0.1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.attention = nn.Sequential(
            nn.Conv2d(out_channels, out_channels // reduction, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels // reduction, out_channels, kernel_size=1),
            nn.Sigmoid(),
        )
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_channels)
        self.drop = nn.Dropout2d(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = x * self.attention(x)
        return self.drop(F.relu(self.norm(self.conv2(x))))


def _feed_forward(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, dim * 4), nn.GELU(), nn.Linear(dim * 4, dim))


def _to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C), row-major tokens (the reference's '(h w)' order)."""
    return x.flatten(2).transpose(1, 2)


def _to_map(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, height, width)


class CrossSpatialAttentionBlock(nn.Module):
    """Depth-guided cross-attention: post-norm transformer layer whose queries come from one map
    and keys/values from another (DGIQA queries with depth, attends over RGB)."""

    def __init__(self, dim: int = FUSED_DIM, num_heads: int = NUM_HEADS, dropout_rate: float = 0.1):
        super().__init__()
        self.multihead_attn = MultiHeadAttention(dim, num_heads, layout="in_proj")
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc = _feed_forward(dim)
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, x_query: torch.Tensor, x_key_value: torch.Tensor) -> torch.Tensor:
        height, width = x_query.shape[-2:]
        query, context = _to_tokens(x_query), _to_tokens(x_key_value)
        x = self.norm1(query + self.dropout(self.multihead_attn(query, context)))
        x = self.norm2(x + self.dropout(self.fc(x)))
        return _to_map(x, height, width)


class SpatialAttentionBlock(nn.Module):
    """Refinement: the same post-norm layer as self-attention (the reference's parameter names)."""

    def __init__(self, dim: int = FUSED_DIM, num_heads: int = NUM_HEADS, dropout_rate: float = 0.1):
        super().__init__()
        self.multihead_attn_spatial = MultiHeadAttention(dim, num_heads, layout="in_proj")
        self.norm1_spatial = nn.LayerNorm(dim)
        self.norm2_spatial = nn.LayerNorm(dim)
        self.fc_spatial = _feed_forward(dim)
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        tokens = _to_tokens(x)
        x = self.norm1_spatial(tokens + self.dropout(self.multihead_attn_spatial(tokens)))
        x = self.norm2_spatial(x + self.dropout(self.fc_spatial(x)))
        return _to_map(x, height, width)


class DGIQA(nn.Module):
    """DGIQA network. ``forward(x_rgb, x_depth) -> (B,)`` scores in (0, 1).

    Args (of forward):
        x_rgb: (B, 3, H, W) RGB, ImageNet-normalised.
        x_depth: (B, 3, H, W) depth map in [0, 1] repeated to 3 channels, then ImageNet-normalised
            per channel like an RGB image (see ``edge_iqa.models.depth``).
    """

    def __init__(self, img_size: int = 224, drop_rate: float = 0.1) -> None:
        super().__init__()
        self.backbone = swin_tiny_features(img_size)
        self.depth_backbone = swin_tiny_features(img_size)
        for level, (cin, cout) in enumerate(zip(SWIN_CHANNELS, TCB_CHANNELS, strict=True), start=1):
            setattr(self, f"tcb{level}", TransformerCnnBlock(cin, cout, drop_prob=drop_rate))
        for level, (cin, cout) in enumerate(zip(SWIN_CHANNELS, TCB_CHANNELS, strict=True), start=1):
            setattr(self, f"tcb{level}_depth", TransformerCnnBlock(cin, cout, drop_prob=drop_rate))
        self.depth_guided_cross_attention = CrossSpatialAttentionBlock(FUSED_DIM, NUM_HEADS, drop_rate)
        self.refinement_attention = SpatialAttentionBlock(FUSED_DIM, NUM_HEADS, drop_rate)
        self.dilated_stack = nn.Sequential(
            nn.Conv2d(FUSED_DIM, HEAD_DIM, kernel_size=3, padding=2, dilation=2),
            nn.BatchNorm2d(HEAD_DIM),
            nn.ReLU(inplace=True),
            nn.Conv2d(HEAD_DIM, HEAD_DIM, kernel_size=3, padding=4, dilation=4),
            nn.BatchNorm2d(HEAD_DIM),
            nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(HEAD_DIM, 1)

    def _bridge(self, features: list[torch.Tensor], suffix: str) -> torch.Tensor:
        """NHWC Swin maps -> TCBs -> resized to the coarsest grid -> (B, 960, h, w)."""
        maps = [getattr(self, f"tcb{level}{suffix}")(f.permute(0, 3, 1, 2))
                for level, f in enumerate(features, start=1)]
        size = (min(m.shape[-2] for m in maps), min(m.shape[-1] for m in maps))
        # Plain bilinear, no antialias: a 56->7 resize reads only the 2x2 pixels around each
        # sample point (rows/cols 8i+3, 8i+4), exactly as the reference does.
        maps = [F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in maps]
        return torch.cat(maps, dim=1)

    def forward(self, x_rgb: torch.Tensor, x_depth: torch.Tensor) -> torch.Tensor:
        fused_rgb = self._bridge(self.backbone(x_rgb), "")
        fused_depth = self._bridge(self.depth_backbone(x_depth), "_depth")
        fused = self.depth_guided_cross_attention(fused_depth, fused_rgb)
        fused = self.refinement_attention(fused)
        pooled = self.dilated_stack(fused).mean(dim=(2, 3))
        return torch.sigmoid(self.fc(pooled)).view(-1)


# The reference's test protocol (single_image_inference.py): shorter side to 384 (albumentations
# SmallestMaxSize, bilinear), ImageNet normalisation of image and depth alike, then 224x224 crops at
# the same positions in both, averaged (10 random crops there; a deterministic 3x3 grid here).
DGIQA_PREPROCESS = PreprocessSpec(
    input_size=(224, 224),
    resize="shorter_side",
    resize_to=384,
    crop="grid",
    grid=(3, 3),
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    interpolation="bilinear",
)


@register_model(
    "dgiqa",
    preprocess=DGIQA_PREPROCESS,
    description="DGIQA: RGB + depth Swin-T, Transformer-CNN bridges, depth-guided cross-attention (seed)",
    inputs=("image", "depth"),
    output_range=(0.0, 1.0),
    family="seed",
    paper="Ramesh et al., DGIQA: Depth-guided Feature Attention and Refinement for Generalizable "
    "Image Quality Assessment, 2025 (github.com/uf-robopi/DGIQA)",
)
def dgiqa(
    img_size: int = 224,
    drop_rate: float = 0.1,
    backbone_weights: str | os.PathLike | None = None,
) -> DGIQA:
    """Build DGIQA with random weights.

    Args:
        img_size: Swin input size (the reference trains and tests at 224).
        drop_rate: dropout of the TCBs and Depth-CAR (training only).
        backbone_weights: optional timm ``swin_tiny_patch4_window7_224`` ImageNet checkpoint
            (.safetensors/.pth) loaded into both backbones, as the reference initialises them
            before training. Not needed to load a trained DGIQA checkpoint.
    """
    model = DGIQA(img_size=img_size, drop_rate=drop_rate)
    if backbone_weights is not None:
        from edge_iqa.models.checkpoint import load_state_dict_file

        state = swin_backbone_state_dict(load_state_dict_file(backbone_weights))
        for backbone in (model.backbone, model.depth_backbone):
            missing, unexpected = backbone.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise CheckpointError(
                    f"{backbone_weights}: not a timm {SWIN_VARIANT} checkpoint "
                    f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
                )
    return model
