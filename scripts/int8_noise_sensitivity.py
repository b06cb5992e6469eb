"""Where INT8 rounding moves the default model's scores: a PyTorch simulation, one tensor at a time.

Each row rounds ONE activation tensor of the MobileNetV2 backbone the way a per-tensor INT8
quantizer does (min-max range over the calibration photos, 8 bits, unsigned after ReLU6) and
reports how far that alone moves the scores of the export's validation photos (|dscore|, MOS
points). Rows marked "per channel" give the same tensor one scale per channel: the bound on what
evening out its channel ranges can buy (``edge_iqa.export.equalize``). Weights stay in float: this
locates the activations whose rounding the network amplifies, it is not a model of the INT8 build.

    python scripts/int8_noise_sensitivity.py --out bench/reports/quantization/noise_sensitivity.json

``--regions`` instead rounds, per region of the network, the input of every layer the profile quantizes
(``edge_iqa.train.int8_noise.quantized_layers``: Conv2d / Linear outside ``keep_fp``; per-tensor,
asymmetric, min-max over the calibration photos), the way the INT8 build does: where the error comes
from, block by block (docs/training.md, "Training against INT8 noise").

    python scripts/int8_noise_sensitivity.py --regions --out bench/reports/quantization/noise_regions.json
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


def observe(model: nn.Module, modules: dict[str, nn.Module], rows: torch.Tensor,
            inputs: bool = False) -> dict[str, torch.Tensor]:
    """Per module, the (min, max) over ``rows`` of its output, per channel (shape (2, channels)), or
    with ``inputs`` of its input, per tensor (shape (2,))."""
    seen: dict[str, torch.Tensor] = {}

    def record(name: str, tensor: torch.Tensor) -> None:
        now = torch.stack([tensor.min(), tensor.max()]) if inputs else \
            torch.stack([tensor.amin(dim=(0, 2, 3)), tensor.amax(dim=(0, 2, 3))])
        old = seen.get(name, now)
        seen[name] = torch.stack([torch.minimum(old[0], now[0]), torch.maximum(old[1], now[1])])

    handles = [m.register_forward_pre_hook(lambda _m, args, n=n: record(n, args[0])) if inputs else
               m.register_forward_hook(lambda _m, _i, out, n=n: record(n, out)) for n, m in modules.items()]
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


REGIONS = {"blocks 2-6 (the stem cache)": range(2, 7), "blocks 7-13 (frozen at ImageNet)": range(7, 14)}
TRAINED = "blocks 14-17 and the attention head (trained)"  # every other quantized layer


def region_of(name: str) -> str:
    """Which region a layer (module path) belongs to."""
    block = int(name.split(".")[1]) if name.startswith("backbone.") else None
    return next((region for region, blocks in REGIONS.items() if block in blocks), TRAINED)


def asymmetric_rounded(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Per-tensor asymmetric INT8 (a zero point), as NNCF's mixed preset does for activations."""
    lo, hi = lo.clamp_max(0), hi.clamp_min(0)
    step = (hi - lo).clamp_min(1e-12) / 255
    zero = torch.round(-lo / step)
    return (torch.clamp(torch.round(x / step) + zero, 0, 255) - zero) * step


def region_rows(model: nn.Module, profile, cal: torch.Tensor, val: torch.Tensor, scale: float) -> list[dict]:  # noqa: ANN001
    from edge_iqa.train.int8_noise import quantized_layers

    layers = quantized_layers(model, profile.keeps_fp)
    ranges = observe(model, layers, cal, inputs=True)
    reference = scores(model, val)
    rows = []
    for region in [*REGIONS, TRAINED, "all quantized layers"]:
        chosen = {n: m for n, m in layers.items() if region == "all quantized layers" or region_of(n) == region}
        handles = [m.register_forward_pre_hook(lambda _m, args, n=n: (asymmetric_rounded(args[0], *ranges[n]),))
                   for n, m in chosen.items()]
        moved = np.abs(scores(model, val) - reference) * scale
        for handle in handles:
            handle.remove()
        rows.append({"region": region, "layers": len(chosen), "mean_abs_dscore": round(float(moved.mean()), 3),
                     "p99_abs_dscore": round(float(np.percentile(moved, 99)), 3),
                     "max_abs_dscore": round(float(moved.max()), 3)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="edge_hybrid_n")
    parser.add_argument("--target", default="cpu", help="the profile whose calibration / validation split is used")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--regions", action="store_true",
                        help="round every quantized layer's input, per region, instead of one tensor at a time")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, spec, transform, _ = load_model_for_export(args.model)
    model.eval()
    split = calibration.profile_split(load_target(args.target))
    cal = torch.from_numpy(spec.normalize_pixels(calibration.prepare_images(split.calibration, spec).rows()))
    val = torch.from_numpy(spec.normalize_pixels(calibration.prepare_images(split.validation, spec).rows()))
    scale = float(transform["scale"])
    if args.regions:
        rows = region_rows(model, load_target(args.target), cal, val, scale)
        _write(args, len(cal), len(val), scale, rows)
        return
    modules = tensors(model)
    ranges = observe(model, modules, cal)
    reference = scores(model, val)
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
    _write(args, len(cal), len(val), scale, rows)


def _write(args: argparse.Namespace, calibration_photos: int, validation_photos: int, scale: float,
           rows: list[dict]) -> None:
    from edge_iqa.models.checkpoint import resolve_weights

    args.out.parent.mkdir(parents=True, exist_ok=True)
    weights = resolve_weights(args.model, None).record.get("sha256")
    args.out.write_text(json.dumps({"command": shlex.join(sys.argv), "model": args.model, "weights_sha256": weights,
                                    "calibration_photos": calibration_photos, "validation_photos": validation_photos,
                                    "score_scale_mos_per_raw": scale, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
