"""CPU cost of one training step of edge_hybrid_n for each freezing choice (docs/training.md).

Usage: python scripts/bench_train_step.py [CROP_PX] [BATCH]
Reports process CPU seconds per AdamW step, and per image for building the stem cache, on 1 torch
thread (stable on a shared machine, unlike wall time), with the frozen part's output given as a
cached input, as the stem-cache recipe does.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import torch

from edge_iqa.models import create_model


def cpu_seconds(step: Callable[[], None], repeats: int = 3) -> float:
    step()  # warm-up
    start = time.process_time()
    for _ in range(repeats):
        step()
    return (time.process_time() - start) / repeats


def main() -> None:
    crop = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = create_model("edge_hybrid_n").train()
    c1 = torch.randn(batch, 32, crop // 8, crop // 8)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-4)

    def finish(score: torch.Tensor) -> None:
        score.sum().backward()
        optimizer.step()
        optimizer.zero_grad()

    def train_from_block7() -> None:  # --freeze-through 6
        finish(model.forward_from_stem(c1))

    def train_from_block14() -> None:  # --freeze-through 13 (the default)
        with torch.no_grad():
            c2 = model.backbone[7:14](c1)
        c3 = model.pyramid(c2, start=14)[0]
        finish(model.head_forward(c1, c2, c3))

    with torch.no_grad():
        c2_fixed = model.backbone[7:14](c1)
        c3_fixed = model.backbone[14:18](c2_fixed)

    def train_head_only() -> None:  # --freeze-through 17 equivalent (not offered: no backbone adaptation)
        finish(model.head_forward(c1, c2_fixed, c3_fixed))

    print(f"crop {crop} px, batch {batch}, 1 thread, CPU s/step:")
    for name, step in (("blocks 7..17 + head", train_from_block7), ("blocks 14..17 + head", train_from_block14),
                       ("head only", train_head_only)):
        print(f"  {name:22s} {cpu_seconds(step):.3f}")

    # The one-off cost per image that every stem-cache run pays first: blocks 0..6 on one 384 x 384
    # view (a 512 x 512 BIQ2021 photo after the spec's resize; decoding adds about 2-3 ms).
    stem = model.backbone[:7].eval()
    view = torch.randn(1, 3, 384, 384)

    def stem_view() -> None:
        with torch.no_grad():
            stem(view)

    print(f"stem cache, blocks 0..6 on one 384 px view, CPU s/image: {cpu_seconds(stem_view):.3f}")


if __name__ == "__main__":
    main()
