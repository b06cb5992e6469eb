"""Params and MACs of edge_hybrid_n at its deployment size (docs/design/edge_hybrid.md).

Usage: python scripts/count_edge_hybrid.py [SIZE]
MACs = FLOPs / 2 from torch.utils.flop_counter (convolutions, linear layers and the attention
matmuls; the attention is forced to its explicit MatMul-Softmax-MatMul form so every product is
counted). Element-wise ops (BN, GELU, softmax, LayerNorm) are not counted, as is customary.
"""

from __future__ import annotations

import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

from edge_iqa.models import create_model
from edge_iqa.models.layers.attention import attention_form


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 384
    torch.set_num_threads(1)
    model = create_model("edge_hybrid_n")
    params = sum(p.numel() for p in model.parameters())
    backbone = sum(p.numel() for p in model.backbone.parameters())
    x = torch.zeros(1, 3, size, size)
    with attention_form("matmul_softmax"), FlopCounterMode(display=False) as counter:
        model(x)
    total = counter.get_total_flops() / 2
    with FlopCounterMode(display=False) as backbone_counter:
        model.backbone(x)
    backbone_macs = backbone_counter.get_total_flops() / 2
    print(f"edge_hybrid_n @ {size}x{size}: {params / 1e6:.3f} M params "
          f"(backbone {backbone / 1e6:.3f} M, head {(params - backbone) / 1e6:.3f} M)")
    head_macs = total - backbone_macs
    print(f"MACs: {total / 1e9:.3f} G (backbone {backbone_macs / 1e9:.3f} G, head {head_macs / 1e9:.3f} G)")


if __name__ == "__main__":
    main()
