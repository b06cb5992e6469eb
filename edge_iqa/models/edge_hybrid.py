"""Edge hybrid IQA: a MobileNetV2 pyramid read by top-down cross-scale attention.

Design (docs/design/edge_hybrid.md has the reasoning):

    image 384x384 -> MobileNetV2 (ImageNet) taps at stride 8 / 16 / 32
         c1 32@48x48 --avgpool2--> 24x24 --+
         c2 96@24x24 ----------------------+--> tokens, width d
         c3 320@12x12 -> global self-attention (semantics)
                 |  top-down: c3 queries attend to c2 tokens, then to c1 tokens (local distortions)
                 v
         attention pooling (one learned query) -> MLP -> quality score

From TOPIQ we take the top-down direction (high-level semantics decide *where* low-level
distortions matter, as cross-attention with semantic queries); from GlintIQA the progressive
integration (one scale at a time, coarse to fine, each with its own residual block). No position
embeddings: the CNN features carry position, and the head then accepts any input size, so
training crops and the deployment size share one set of weights.
"""

from __future__ import annotations

import os
from typing import Literal

import torch
from torch import nn

from edge_iqa.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessSpec
from edge_iqa.errors import CheckpointError
from edge_iqa.models.layers.attention import MultiHeadAttention
from edge_iqa.models.layers.transformer import Mlp
from edge_iqa.models.pretrained import load_backbone_state_dict
from edge_iqa.models.registry import register_model

MOBILENET_V2_FILE = "mobilenet_v2-b0353104.pth"
MOBILENET_V2_URL = "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth"
# Indices of torchvision's mobilenet_v2().features whose outputs we tap (strides 8, 16, 32).
MOBILENET_V2_TAPS = (6, 13, 17)
MOBILENET_V2_CHANNELS = (32, 96, 320)


class AttentionBlock(nn.Module):
    """Pre-norm transformer block; cross-attention when ``context`` is given."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 2.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, num_heads, layout="q_kv")
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dropout=dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        q = self.norm_q(x)
        kv = q if context is None else self.norm_kv(context)
        x = x + self.attn(q, kv)
        return x + self.mlp(self.norm_mlp(x))


class TokenProjection(nn.Module):
    """CNN map (B, C, H, W) -> tokens (B, H*W, d): 1x1 conv + BN (quantization-friendly) + GELU."""

    def __init__(self, in_channels: int, dim: int, pool: int = 1) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(pool) if pool > 1 else nn.Identity()
        self.proj = nn.Sequential(nn.Conv2d(in_channels, dim, 1, bias=False), nn.BatchNorm2d(dim), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.pool(x)).flatten(2).transpose(1, 2)


class EdgeHybridIQA(nn.Module):
    """MobileNetV2 pyramid + top-down cross-scale attention head. ``forward`` takes the
    ImageNet-normalised (B, 3, H, W) batch and returns (B,) quality scores (normalised MOS)."""

    def __init__(
        self,
        dim: int = 128,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        dropout: float = 0.1,
        backbone_weights: str | os.PathLike | Literal["imagenet"] | None = None,
    ) -> None:
        super().__init__()
        from torchvision.models import mobilenet_v2

        # Drop the 1280-channel last conv and the classifier: the head reads the stride-32 map.
        self.backbone = mobilenet_v2().features[: MOBILENET_V2_TAPS[-1] + 1]
        c1, c2, c3 = MOBILENET_V2_CHANNELS
        self.tokens_c1 = TokenProjection(c1, dim, pool=2)
        self.tokens_c2 = TokenProjection(c2, dim)
        self.tokens_c3 = TokenProjection(c3, dim)
        self.semantic = AttentionBlock(dim, num_heads, mlp_ratio, dropout)
        self.top_down_c2 = AttentionBlock(dim, num_heads, mlp_ratio, dropout)
        self.top_down_c1 = AttentionBlock(dim, num_heads, mlp_ratio, dropout)
        self.pool_query = nn.Parameter(torch.zeros(1, 1, dim))
        self.pool = AttentionBlock(dim, num_heads, mlp_ratio, dropout)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Dropout(dropout),
                                  nn.Linear(dim, 1))
        nn.init.trunc_normal_(self.pool_query, std=0.02)
        if backbone_weights is not None:
            self.load_imagenet_backbone(None if backbone_weights == "imagenet" else backbone_weights)

    def load_imagenet_backbone(self, path: str | os.PathLike | None = None) -> None:
        """Initialise the backbone from torchvision's ImageNet MobileNetV2 (every key must map)."""
        source = load_backbone_state_dict(MOBILENET_V2_FILE, path, MOBILENET_V2_URL)
        mapped = {k.removeprefix("features."): v for k, v in source.items() if k.startswith("features.")}
        own = self.backbone.state_dict()
        missing = sorted(set(own) - set(mapped))
        if missing:
            raise CheckpointError(f"ImageNet MobileNetV2 file lacks {len(missing)} backbone keys, e.g. {missing[:3]}")
        self.backbone.load_state_dict({k: mapped[k] for k in own}, strict=True)

    def equalizable_backbone(self) -> tuple[nn.Sequential, dict[int, nn.Module]]:
        """The MobileNetV2 blocks and, per tapped block, the 1x1 conv that reads the tap (after an
        average pool at most): export's activation equalization rescales the bottlenecks and these
        readers together (``edge_iqa.export.equalize``)."""
        readers = (self.tokens_c1, self.tokens_c2, self.tokens_c3)
        return self.backbone, {tap: tokens.proj[0] for tap, tokens in zip(MOBILENET_V2_TAPS, readers, strict=True)}

    def pyramid(self, x: torch.Tensor, start: int = 0) -> list[torch.Tensor]:
        """Backbone taps from block ``start`` on (``start > 0`` resumes from a cached stem output)."""
        taps = []
        for index in range(start, len(self.backbone)):
            x = self.backbone[index](x)
            if index in MOBILENET_V2_TAPS:
                taps.append(x)
        return taps

    def head_forward(self, c1: torch.Tensor, c2: torch.Tensor, c3: torch.Tensor) -> torch.Tensor:
        t3 = self.semantic(self.tokens_c3(c3))
        t3 = self.top_down_c2(t3, self.tokens_c2(c2))
        t3 = self.top_down_c1(t3, self.tokens_c1(c1))
        pooled = self.pool(self.pool_query.expand(t3.shape[0], -1, -1), t3)
        return self.head(pooled[:, 0]).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_forward(*self.pyramid(x))

    def forward_from_stem(self, stem: torch.Tensor) -> torch.Tensor:
        """Score from the cached output of backbone block ``MOBILENET_V2_TAPS[0]`` (the c1 tap),
        used by training recipes that freeze and cache the stem."""
        c2, c3 = self.pyramid(stem, start=MOBILENET_V2_TAPS[0] + 1)
        return self.head_forward(stem, c2, c3)


EDGE_HYBRID_PREPROCESS = PreprocessSpec(
    input_size=(384, 384), resize="shorter_side", crop="center",
    mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bilinear",
)


@register_model(
    "edge_hybrid_n",
    preprocess=EDGE_HYBRID_PREPROCESS,
    description="edge-iqa default: MobileNetV2 + top-down cross-scale attention, 384x384, ~2.6 M params",
    default_weights="weights/edge_hybrid_n.safetensors",
    family="edge",
    paper="this project (docs/design/edge_hybrid.md)",
)
def edge_hybrid_n(**kwargs: object) -> EdgeHybridIQA:
    return EdgeHybridIQA(dim=128, num_heads=4, **kwargs)
