"""GlintIQA: global-local progressive integration for NR-IQA (SYSU-Video/GlintIQA).

Two feature extractors see the same 224x224 crop:

* VGFE (global): a ViT-S/16 (timm ``vit_small_patch16_224`` names). The token outputs of blocks
  6, 7, 8, 9 (0-based) without the CLS token give four (B, 196, 384) global maps.
* CLFE (local): ResNet-50 ``conv1 .. layer3`` (56/28/14 px maps of 256/512/1024 channels), each
  turned into 14x14 = 196 tokens of 384 by a strided ``PatchEmbed`` conv (patch 4/2/1).

The three local maps are concatenated (B, 196, 1152), mixed by a channel-wise self-attention
(CWSA, the 1152 channels attend to each other, each described by its 196 spatial values) and
projected to 384. Then four progressive stages, one per ViT level::

    feature = SIEM_i(CWSA_i(cat(vit_level_i, feature)))      # (B,196,768) -> (B,196,384)

where SIEM is a 3x3 convolution over the 14x14 token grid (768 -> 384). The tokens of the last
stage are averaged and a Linear-GELU-Dropout-Linear head gives the score, shape (B,).

Faithfulness notes (see ``docs/models/glintiqa.md``):

* CWSA uses cosine-normalised queries/keys with scale ``196 ** -0.5`` and, like the reference,
  reads its attention output back with ``transpose(1, 2).reshape(B, channels, 196)``: a
  reinterpretation of memory (not a transpose back), which we keep because the trained weights
  depend on it.
* The reference runs all 12 ViT blocks, the final norm and the 1000-class head and then uses only
  blocks 6-9. We keep those parameters (so published checkpoints load strictly) but stop after
  block 9: the output is bit-identical and the network is ~17 % cheaper in the ViT.

Every attention (10 ViT self-attentions and 5 CWSAs per forward) goes through
:func:`edge_iqa.models.layers.attention.scaled_dot_product`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import Bottleneck

from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.models.layers.attention import scaled_dot_product
from edge_iqa.models.layers.transformer import PatchEmbed, ViTBlock
from edge_iqa.models.registry import register_model

__all__ = ["GlintIQA", "ChannelWiseSelfAttention", "SpatialInteractionEnhancement", "convert_legacy_state_dict"]

# Reference defaults (scripts/evaluate.py, glintiqa/configs/defaults.py).
IMG_SIZE = 224
VIT_PATCH_SIZE = 16
EMBED_DIM = 384
VIT_DEPTH = 12
VIT_HEADS = 6
VIT_MLP_RATIO = 4
VIT_NUM_CLASSES = 1000
VGFE_BLOCKS = (6, 7, 8, 9)
GRID = IMG_SIZE // VIT_PATCH_SIZE  # 14: every token map is 14x14 = 196 tokens
NUM_TOKENS = GRID * GRID
CWSA_DROPOUT = 0.5
GLINTIQA_MEAN = (0.5, 0.5, 0.5)
GLINTIQA_STD = (0.5, 0.5, 0.5)


# --- ViT-S/16 with timm's parameter names (blocks from layers/transformer.py) ---------------------------
class _VisionTransformer(nn.Module):
    """timm ``vit_small_patch16_224`` parameters; runs only as many blocks as asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(3, EMBED_DIM, VIT_PATCH_SIZE)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, EMBED_DIM))
        self.pos_embed = nn.Parameter(torch.zeros(1, NUM_TOKENS + 1, EMBED_DIM))
        self.blocks = nn.ModuleList(ViTBlock(EMBED_DIM, VIT_HEADS, VIT_MLP_RATIO) for _ in range(VIT_DEPTH))
        # Never executed by GlintIQA (only block outputs 6-9 are used); kept so that checkpoints of
        # the reference (which holds a complete timm ViT) load strictly.
        self.norm = nn.LayerNorm(EMBED_DIM, eps=1e-6)
        self.head = nn.Linear(EMBED_DIM, VIT_NUM_CLASSES)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)

    def block_outputs(self, x: torch.Tensor, indices: Sequence[int]) -> list[torch.Tensor]:
        """Outputs (B, 1 + 196, C) of the blocks ``indices``; blocks after the last one are skipped."""
        tokens = self.patch_embed(x)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat((cls, tokens), dim=1) + self.pos_embed
        outputs: dict[int, torch.Tensor] = {}
        for index, block in enumerate(self.blocks[: max(indices) + 1]):
            tokens = block(tokens)
            outputs[index] = tokens
        return [outputs[i] for i in indices]


class VGFE(nn.Module):
    """ViT-based global feature extractor: block outputs 6-9 without the CLS token."""

    def __init__(self, feature_indices: Sequence[int] = VGFE_BLOCKS) -> None:
        super().__init__()
        if max(feature_indices) >= VIT_DEPTH:
            raise ValueError(f"ViT-S/16 has {VIT_DEPTH} blocks; got feature indices {tuple(feature_indices)}")
        self.backbone = _VisionTransformer()
        self.feature_indices = tuple(feature_indices)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(out[:, 1:] for out in self.backbone.block_outputs(x, self.feature_indices))


# --- CLFE: ResNet-50 conv1..layer3 + patch embeddings -------------------------------------------------
class _ResNetToLayer3(nn.Module):
    """torchvision ResNet-50 names, stem + layer1..layer3 only; returns the three stage maps."""

    def __init__(self, layers: Sequence[int] = (3, 4, 6)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self._inplanes = 64
        self.layer1 = self._make_layer(64, layers[0], stride=1)
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        out = planes * Bottleneck.expansion
        downsample = None
        if stride != 1 or self._inplanes != out:
            downsample = nn.Sequential(
                nn.Conv2d(self._inplanes, out, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(out)
            )
        # torchvision's Bottleneck strides its 3x3 conv, as the reference's does.
        stage = [Bottleneck(self._inplanes, planes, stride, downsample)]
        self._inplanes = out
        stage += [Bottleneck(out, planes) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x1 = self.layer1(x)
        x2 = self.layer2(x1)
        return x1, x2, self.layer3(x2)


class CLFE(nn.Module):
    """CNN-based local feature extractor: 56/28/14 px maps -> 3 x (B, 196, 384) tokens."""

    def __init__(self, embed_dim: int = EMBED_DIM) -> None:
        super().__init__()
        self.backbone = _ResNetToLayer3()
        self.patch_embed1 = PatchEmbed(256, embed_dim, VIT_PATCH_SIZE // 4)
        self.patch_embed2 = PatchEmbed(512, embed_dim, VIT_PATCH_SIZE // 8)
        self.patch_embed3 = PatchEmbed(1024, embed_dim, VIT_PATCH_SIZE // 16)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f1, f2, f3 = self.backbone(x)
        return self.patch_embed1(f1), self.patch_embed2(f2), self.patch_embed3(f3)


# --- fusion modules -------------------------------------------------------------------------------------
class ChannelWiseSelfAttention(nn.Module):
    """CWSA: single-head attention among channels, each channel a ``dim``(=196)-vector of tokens.

    Input and output (B, channels, dim). Queries and keys are L2-normalised (cosine attention)
    and scaled by ``dim ** -0.5``. The attention output is read back with
    ``transpose(1, 2).reshape(B, channels, dim)`` exactly as the reference does (a memory
    reinterpretation the trained weights rely on), then Dropout -> LayerNorm -> + input.
    """

    def __init__(self, dim: int = NUM_TOKENS, drop: float = CWSA_DROPOUT) -> None:
        super().__init__()
        self.c_q = nn.Linear(dim, dim)
        self.c_k = nn.Linear(dim, dim)
        self.c_v = nn.Linear(dim, dim)
        self.scale = dim**-0.5
        self.proj_drop = nn.Dropout(drop)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, dim = x.shape
        # One head: (B, 1, channels, dim), the 4-D layout that exports to one ONNX Attention op.
        q = F.normalize(self.c_q(x), dim=-1).unsqueeze(1)
        k = F.normalize(self.c_k(x), dim=-1).unsqueeze(1)
        v = self.c_v(x).unsqueeze(1)
        out = scaled_dot_product(q, k, v, scale=self.scale).squeeze(1)
        out = out.transpose(1, 2).reshape(batch, channels, dim)
        return self.norm(self.proj_drop(out)) + x


class SpatialInteractionEnhancement(nn.Module):
    """SIEM: a 3x3 conv over the 14x14 token grid; (B, 2*embed, 196) -> (B, 196, embed)."""

    def __init__(self, embed_dim: int = EMBED_DIM, grid: int = GRID, input_multiplier: int = 2) -> None:
        super().__init__()
        self.grid = grid
        self.conv = nn.Conv2d(embed_dim * input_multiplier, embed_dim, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], x.shape[1], self.grid, self.grid)
        return self.conv(x).flatten(2).transpose(1, 2)


class QualityRegressionHead(nn.Module):
    def __init__(self, embed_dim: int = EMBED_DIM) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(embed_dim, embed_dim), nn.GELU(), nn.Dropout(), nn.Linear(embed_dim, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).flatten()


class GlintIQA(nn.Module):
    """GlintIQA with the reference's state_dict layout.

    ``forward(x)``: x (B, 3, 224, 224) RGB normalised with mean = std = 0.5 (i.e. ``2 * x01 - 1``);
    returns the quality scores, shape (B,). The input size is fixed: CWSA's width and SIEM's
    grid are tied to the 14x14 token grid of a 224x224 input.
    """

    def __init__(self) -> None:
        super().__init__()
        self.vgfe = VGFE()
        self.clfe = CLFE()
        self.local_cwsa = ChannelWiseSelfAttention()
        self.local_projection = nn.Linear(EMBED_DIM * 3, EMBED_DIM)
        self.cwsa1 = ChannelWiseSelfAttention()
        self.cwsa2 = ChannelWiseSelfAttention()
        self.cwsa3 = ChannelWiseSelfAttention()
        self.cwsa4 = ChannelWiseSelfAttention()
        self.siem1 = SpatialInteractionEnhancement()
        self.siem2 = SpatialInteractionEnhancement()
        self.siem3 = SpatialInteractionEnhancement()
        self.siem4 = SpatialInteractionEnhancement()
        self.quality_head = QualityRegressionHead()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (IMG_SIZE, IMG_SIZE):
            raise ValueError(f"GlintIQA takes {IMG_SIZE}x{IMG_SIZE} crops, got {tuple(x.shape[-2:])}")
        global_levels = self.vgfe(x)
        local = torch.cat(self.clfe(x), dim=-1)  # (B, 196, 1152)
        feature = self.local_projection(self.local_cwsa(local.transpose(1, 2)).transpose(1, 2))
        stages = zip(global_levels, (self.cwsa1, self.cwsa2, self.cwsa3, self.cwsa4),
                     (self.siem1, self.siem2, self.siem3, self.siem4), strict=True)
        for level, cwsa, siem in stages:
            feature = siem(cwsa(torch.cat((level, feature), dim=-1).transpose(1, 2)))
        return self.quality_head(feature.mean(dim=1))


# --- checkpoints ----------------------------------------------------------------------------------------
# Older GlintIQA checkpoints use the names of the paper's first code release; the reference's
# engine/checkpoint.py renames them with these prefixes (first match wins, after "module.").
_LEGACY_PREFIXES: tuple[tuple[str, str], ...] = (
    ("transformer.", "vgfe.backbone."),
    ("cnn.", "clfe.backbone."),
    ("patch_embed1.", "clfe.patch_embed1."),
    ("patch_embed2.", "clfe.patch_embed2."),
    ("patch_embed3.", "clfe.patch_embed3."),
    ("att_cnn.", "local_cwsa."),
    ("proj.", "local_projection."),
    ("fusion1.", "cwsa1."),
    ("fusion2.", "cwsa2."),
    ("fusion3.", "cwsa3."),
    ("fusion4.", "cwsa4."),
    ("conv1.", "siem1.conv."),
    ("conv2.", "siem2.conv."),
    ("conv3.", "siem3.conv."),
    ("conv4.", "siem4.conv."),
    ("out.", "quality_head.layers."),
)


def convert_legacy_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a legacy GlintIQA state dict (``transformer.``, ``cnn.``, ``fusion1.`` ...) to ours.

    Names that are already current pass through unchanged, so it is safe on any GlintIQA
    checkpoint. Save the result with ``safetensors.torch.save_file`` and pass that file as
    ``create_model("glintiqa", checkpoint=...)``.
    """
    converted: dict[str, torch.Tensor] = {}
    for name, value in state_dict.items():
        name = name.removeprefix("module.")
        for legacy, current in _LEGACY_PREFIXES:
            if name.startswith(legacy):
                name = current + name[len(legacy):]
                break
        converted[name] = value
    return converted


# --- registry -------------------------------------------------------------------------------------------
# The reference scores an image as the mean over 25 RandomCrop(224) crops taken at the image's
# stored resolution (no resize for CLIVE/KonIQ-512x384/LIVE/CSIQ/TID/KADID/SPAQ); we take the
# deterministic equivalent, an evenly spaced 5x5 grid of 224x224 crops, averaged after the model.
GLINTIQA_PREPROCESS = PreprocessSpec(
    input_size=(IMG_SIZE, IMG_SIZE),
    resize="none",
    crop="grid",
    grid=(5, 5),
    mean=GLINTIQA_MEAN,
    std=GLINTIQA_STD,
)


@register_model(
    "glintiqa",
    preprocess=GLINTIQA_PREPROCESS,
    description="GlintIQA: ViT-S/16 + ResNet-50 (conv1..layer3), CWSA/SIEM progressive fusion; 25 crops",
    family="seed",
    output_range=(0.0, 100.0),
    paper="GlintIQA, SYSU-Video (https://github.com/SYSU-Video/GlintIQA)",
    extra={"reference": "SYSU-Video/GlintIQA@34c8936826af786d538992c4b287ecb1a21f4f42"},
)
def glintiqa() -> GlintIQA:
    """GlintIQA with random weights; pass ``checkpoint=`` to ``create_model`` for trained ones."""
    return GlintIQA()
