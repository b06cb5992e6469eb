"""Where INT8 rounding moves the default model's scores: a PyTorch simulation, one tensor at a time.

Each row rounds ONE activation tensor of the MobileNetV2 backbone the way a per-tensor INT8
quantizer does (min-max range over the calibration photos, 8 bits, unsigned after ReLU6) and
reports how far that alone moves the scores of the export's validation photos (|dscore|, MOS
points). Rows marked "per channel" give the same tensor one scale per channel: the bound on what
evening out its channel ranges can buy (``edge_iqa.export.equalize``). Weights stay in float: this
locates the activations whose rounding the network amplifies, it is not a model of the INT8 build.

    python scripts/int8_noise_sensitivity.py --out bench/reports/quantization/noise_sensitivity.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edge_iqa.export import calibration
from edge_iqa.export.pipeline import load_model_for_export
from edge_iqa.export.targets import load_target

BATCH = 16


def tensors(model: nn.Module) -> dict[str, nn.Module]:
    """Every backbone block's output and every ReLU6 inside a block, by name."""
    found = {}
    for index, block in enumerate(model.backbone):
        found[f"block {index} output"] = block
        for name, module in block.named_modules():
            if isinstance(module, nn.ReLU6) and index > 0:  # block 0's ReLU6 *is* its output
                found[f"block {index} {name} (ReLU6)"] = module
    return found


def observe(model: nn.Module, modules: dict[str, nn.Module], rows: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per tensor, each channel's (min, max) over ``rows``: shape (2, channels)."""
    seen: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def record(_m: nn.Module, _i: object, out: torch.Tensor) -> None:
            now = torch.stack([out.amin(dim=(0, 2, 3)), out.amax(dim=(0, 2, 3))])
            old = seen.get(name, now)
            seen[name] = torch.stack([torch.minimum(old[0], now[0]), torch.maximum(old[1], now[1])])
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in modules.items()]
    with torch.no_grad():
        for start in range(0, len(rows), BATCH):
            model(rows[start:start + BATCH])
    for handle in handles:
        handle.remove()
    return seen


def rounded(tensor: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """INT8 rounding with the range (lo, hi): scalars per tensor, or per channel (shape C)."""
    shape = (1, -1, 1, 1) if lo.dim() else ()
    lo, hi = lo.reshape(shape), hi.reshape(shape)
    if bool((lo >= 0).all()):
        step = hi.clamp_min(1e-12) / 255
        return torch.clamp(torch.round(tensor / step), 0, 255) * step
    step = torch.maximum(-lo, hi).clamp_min(1e-12) / 127
    return torch.clamp(torch.round(tensor / step), -128, 127) * step


def scores(model: nn.Module, rows: torch.Tensor, module: nn.Module | None = None,
           lo: torch.Tensor | None = None, hi: torch.Tensor | None = None) -> np.ndarray:
    handle = module.register_forward_hook(lambda _m, _i, out: rounded(out, lo, hi)) if module is not None else None
    with torch.no_grad():
        out = torch.cat([model(rows[s:s + BATCH]) for s in range(0, len(rows), BATCH)]).numpy()
    if handle is not None:
        handle.remove()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="edge_hybrid_n")
    parser.add_argument("--target", default="cpu", help="the profile whose calibration / validation split is used")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, spec, transform, _ = load_model_for_export(args.model)
    model.eval()
    split = calibration.profile_split(load_target(args.target))
    cal = torch.from_numpy(calibration.prepare_images(split.calibration, spec).rows())
    val = torch.from_numpy(calibration.prepare_images(split.validation, spec).rows())
    modules = tensors(model)
    ranges = observe(model, modules, cal)
    reference = scores(model, val)
    scale = float(transform["scale"])
    rows = []
    for name, module in modules.items():
        lo, hi = ranges[name]
        per_tensor = (lo.min(), hi.max())
        peak = torch.maximum(lo.abs(), hi.abs())
        for how, (low, high) in (("per tensor", per_tensor), ("per channel", (lo, hi))):
            if how == "per channel" and not name.endswith("output"):
                continue  # the bound for the equalizable (linear bottleneck) tensors only
            moved = np.abs(scores(model, val, module, low, high) - reference) * scale
            rows.append({"tensor": name, "rounding": how, "channels": int(lo.numel()),
                         "range": [round(float(lo.min()), 3), round(float(hi.max()), 3)],
                         "channel_range_ratio": round(float(peak.max() / peak.median().clamp_min(1e-12)), 2),
                         "mean_abs_dscore": round(float(moved.mean()), 3),
                         "p99_abs_dscore": round(float(np.percentile(moved, 99)), 3),
                         "max_abs_dscore": round(float(moved.max()), 3)})
            print(json.dumps(rows[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": shlex.join(sys.argv), "model": args.model,
                                    "calibration_photos": len(cal), "validation_photos": len(val),
                                    "score_scale_mos_per_raw": scale, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
