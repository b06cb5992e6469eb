"""A deliberately degraded bundle, to prove the regression check fails when it should.

``degrade_head`` copies an ONNX Runtime bundle and quantizes the weights of the network's last
``layers`` Gemm/MatMul/Conv layers (the regression head) to three levels ``{-m, 0, +m}``, the way a
badly calibrated INT8 head would destroy them. Float weights and integer weights behind a
``DequantizeLinear`` (QDQ INT8 models) are both handled. The copy is a valid bundle (fresh
checksums) whose manifest says ``"degraded"``, so nobody mistakes it for a real export.

    python -m edge_iqa.bench.degrade BUNDLE OUT [--layers 1]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from edge_iqa.errors import BundleError
from edge_iqa.runtime.bundle import MANIFEST_NAME, read_manifest, write_bundle

_LINEAR_OPS = ("Gemm", "MatMul", "Conv")  # weighted layers, walked back from the output


def ternary(weights: np.ndarray) -> np.ndarray:
    """round(w / max|w|) * max|w|: every weight becomes -m, 0 or +m (same dtype)."""
    peak = float(np.abs(weights).max())
    if peak == 0:
        return weights.copy()
    return (np.round(weights.astype(np.float64) / peak) * peak).astype(weights.dtype)


def head_weights(model: Any, layers: int) -> list[str]:
    """Initializer names of the weights of the last ``layers`` Gemm/MatMul nodes before the output."""
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    initializers = {init.name for init in graph.initializer}
    found: list[str] = []
    frontier = [o.name for o in graph.output]
    seen: set[int] = set()  # node names may be empty: track the nodes themselves
    while frontier and len(found) < layers:
        name = frontier.pop(0)
        node = producers.get(name)
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if node.op_type in _LINEAR_OPS:
            weight = _weight_initializer(node.input[1], producers, initializers)
            if weight is not None:
                found.append(weight)
                frontier = [node.input[0]]
                # Forget the branches abandoned above: with a residual stream, the skip branch was
                # visited first, and keeping it "seen" ended the walk at the next Add (4 layers max).
                seen = {id(node)}
                continue
        frontier.extend(i for i in node.input if i and i not in initializers)
    return found


def _weight_initializer(name: str, producers: dict[str, Any], initializers: set[str]) -> str | None:
    if name in initializers:
        return name
    node = producers.get(name)
    if node is not None and node.op_type == "DequantizeLinear" and node.input[0] in initializers:
        return node.input[0]
    return None


def degrade_head(bundle_dir: str | Path, out_dir: str | Path, layers: int = 1) -> Path:
    import onnx
    from onnx import numpy_helper

    bundle_dir = Path(bundle_dir)
    manifest = read_manifest(bundle_dir)
    if not manifest.model_file.endswith(".onnx"):
        raise BundleError(f"{bundle_dir}: degrade_head edits ONNX bundles (onnxruntime runtime), this one holds "
                          f"{manifest.model_file}")
    model = onnx.load(str(bundle_dir / manifest.model_file))
    names = head_weights(model, layers)
    if not names:
        raise BundleError(f"{bundle_dir}: found no Gemm/MatMul weight before the output to degrade")
    for init in model.graph.initializer:
        if init.name in names:
            init.CopyFrom(numpy_helper.from_array(ternary(numpy_helper.to_array(init)), init.name))

    def populate(staging: Path) -> dict[str, Any]:
        for name in manifest.files:
            if name != manifest.model_file:
                (staging / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(bundle_dir / name, staging / name)
        onnx.save(model, str(staging / manifest.model_file))
        new = manifest.to_dict()
        new["degraded"] = {"from": str(bundle_dir), "ternary_weights": names,
                           "note": "deliberately degraded by edge_iqa.bench.degrade for regression-check tests"}
        return new

    return write_bundle(out_dir, populate)


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a copy of an ONNX bundle with its head weights ruined.")
    parser.add_argument("bundle", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--layers", type=int, default=1, help="How many of the last Gemm/MatMul layers to degrade.")
    args = parser.parse_args()
    path = degrade_head(args.bundle, args.out, args.layers)
    print(json.dumps(json.loads((path / MANIFEST_NAME).read_text())["degraded"], indent=2))


if __name__ == "__main__":
    main()
