"""Transformer building blocks with timm's parameter names, shared by the zoo.

Published ViT checkpoints (timm ``vit_*``) and our own use the names ``patch_embed.proj``,
``blocks.N.{norm1,attn,norm2,mlp.fc1,mlp.fc2}``; keeping them here lets every model load those
checkpoints strictly while its attention runs through :mod:`edge_iqa.models.layers.attention`.
"""

from __future__ import annotations

import torch
from torch import nn

from edge_iqa.models.layers.attention import MultiHeadAttention


class Mlp(nn.Module):
    """fc1 -> GELU -> (dropout) -> fc2 (timm ``Mlp`` names; dropout has no parameters)."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int | None = None,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden_features, out_features or in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.act(self.fc1(x))))


class PatchEmbed(nn.Module):
    """Non-overlapping patches -> (B, N, C) tokens: a strided conv ``proj`` (timm names)."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, C, h, w) -> (B, h*w, C)


class ViTBlock(nn.Module):
    """Pre-norm ViT block (timm ``Block`` names ``norm1/attn/norm2/mlp``), attention through the
    shared module in the ``qkv``/``proj`` layout."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiHeadAttention(dim, num_heads, layout="qkv")
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))
