"""Tiny, fully known networks written as real bundles, so the runtime tests need no export code.

The network: Conv(3->4, 3x3, stride 4, pad 1) -> ReLU -> global average pool -> Gemm(4->1) ->
Flatten to ``(batch,)``. It is built with ``onnx.helper`` from numpy weights, so the same weights
give an exact float64 numpy reference and a torch module for ``TorchScorer``. :class:`TinyDepthNet`
is the two-input (``image`` + ``depth``, like DGIQA) version: one such branch per input, summed.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.runtime.bundle import MANIFEST_NAME, write_bundle

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CLIVE_IMAGES = SHARED / "datasets" / "clive" / "images"
PRISTINE_IMAGES = SHARED / "datasets" / "pristine" / "images"
CALIBRATION_IMAGES = Path(__file__).resolve().parents[1] / "calibration_data" / "images"

SPEC = PreprocessSpec(input_size=(96, 96), resize="shorter_side", resize_to=112, crop="center")
GRID_SPEC = PreprocessSpec(input_size=(64, 64), resize="shorter_side", resize_to=96, crop="grid", grid=(2, 3))
TRANSFORM = {"scale": 10.0, "offset": 50.0}


def _listing(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def clive_photos(count: int) -> list[Path]:
    """``count`` real photos: CLIVE (500x500 JPEG/WebP) plus a quarter non-square pristine photos
    (512x384); empty when ../shared is absent (callers skip)."""
    clive, pristine = _listing(CLIVE_IMAGES), _listing(PRISTINE_IMAGES)
    if not clive:
        return []
    return clive[: count - len(pristine[: count // 4])] + pristine[: count // 4]


def clive_photos_or_skip(count: int) -> list[Path]:
    """:func:`clive_photos`, or skip the test when ../shared is absent."""
    found = clive_photos(count)
    if not found:
        import pytest

        pytest.skip("real photos not found: ../shared/datasets/clive is absent")
    return found


def any_photos(count: int) -> list[Path]:
    """Real photos from ../shared, else the committed calibration photos (always present)."""
    return clive_photos(count) or _listing(CALIBRATION_IMAGES)[:count]


@dataclass(frozen=True)
class TinyNet:
    conv_w: np.ndarray  # (4, 3, 3, 3)
    conv_b: np.ndarray  # (4,)
    fc_w: np.ndarray  # (1, 4)
    fc_b: np.ndarray  # (1,)

    inputs = ("image",)

    @classmethod
    def random(cls, seed: int = 0) -> TinyNet:
        rng = np.random.default_rng(seed)
        return cls(rng.normal(0, 0.4, (4, 3, 3, 3)).astype(np.float32), rng.normal(0, 0.1, 4).astype(np.float32),
                   rng.normal(0, 1.0, (1, 4)).astype(np.float32), rng.normal(0, 0.1, 1).astype(np.float32))

    # --- references -----------------------------------------------------------------------------
    def forward_numpy(self, batch: np.ndarray) -> np.ndarray:
        """Float64 forward pass: (N, 3, H, W) -> (N,)."""
        x = np.pad(batch.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
        n, _, h, w = x.shape
        oh, ow = (h - 3) // 4 + 1, (w - 3) // 4 + 1
        patches = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))[:, :, ::4, ::4][:, :, :oh, :ow]
        conv = np.einsum("nchwij,kcij->nkhw", patches, self.conv_w.astype(np.float64))
        conv += self.conv_b.astype(np.float64)[None, :, None, None]
        pooled = np.maximum(conv, 0).mean(axis=(2, 3))
        return (pooled @ self.fc_w.T.astype(np.float64) + self.fc_b.astype(np.float64))[:, 0]

    def torch_module(self) -> Any:
        import torch
        from torch import nn

        net = self

        class Tiny(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.conv = nn.Conv2d(3, 4, 3, stride=4, padding=1)
                self.fc = nn.Linear(4, 1)
                with torch.no_grad():
                    self.conv.weight.copy_(torch.from_numpy(net.conv_w))
                    self.conv.bias.copy_(torch.from_numpy(net.conv_b))
                    self.fc.weight.copy_(torch.from_numpy(net.fc_w))
                    self.fc.bias.copy_(torch.from_numpy(net.fc_b))

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3))).flatten()

        return Tiny().eval()

    # --- the ONNX graph ---------------------------------------------------------------------------
    def onnx_nodes(self, source: str, out: str, prefix: str = "") -> tuple[list[Any], list[Any]]:
        """The graph from input ``source`` to the (batch,) output ``out``; names get ``prefix``."""
        from onnx import helper, numpy_helper

        n = {name: prefix + name for name in ("c", "r", "p", "f", "g", "conv_w", "conv_b", "fc_w", "fc_b", "flat")}
        nodes = [
            helper.make_node("Conv", [source, n["conv_w"], n["conv_b"]], [n["c"]], strides=[4, 4],
                             pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
            helper.make_node("Relu", [n["c"]], [n["r"]]),
            helper.make_node("GlobalAveragePool", [n["r"]], [n["p"]]),
            helper.make_node("Flatten", [n["p"]], [n["f"]], axis=1),
            helper.make_node("Gemm", [n["f"], n["fc_w"], n["fc_b"]], [n["g"]], transB=1),
            helper.make_node("Reshape", [n["g"], n["flat"]], [out]),
        ]
        inits = [numpy_helper.from_array(self.conv_w, n["conv_w"]), numpy_helper.from_array(self.conv_b, n["conv_b"]),
                 numpy_helper.from_array(self.fc_w, n["fc_w"]), numpy_helper.from_array(self.fc_b, n["fc_b"]),
                 numpy_helper.from_array(np.array([-1], dtype=np.int64), n["flat"])]
        return nodes, inits

    def onnx_model(self, batch: int | str, size: tuple[int, int], pixel_spec: PreprocessSpec | None = None) -> Any:
        """The graph on float rows, or with ``pixel_spec`` on (batch, H, W, 3) uint8 pixels that the graph
        normalises itself the way :meth:`PreprocessSpec.normalize_pixels` does (a schema-2 bundle)."""
        if pixel_spec is None:
            nodes, inits = self.onnx_nodes("image", "score")
            return _model(nodes, inits, ["image"], batch, size)
        from onnx import TensorProto, helper, numpy_helper

        front = [  # as export's ScoreWrapper: normalise on the pixels' own layout, then NCHW
            helper.make_node("Cast", ["image"], ["as_float"], to=TensorProto.FLOAT),
            helper.make_node("Div", ["as_float", "v255"], ["unit"]),
            helper.make_node("Sub", ["unit", "mean"], ["centred"]),
            helper.make_node("Div", ["centred", "std"], ["nhwc"]),
            helper.make_node("Transpose", ["nhwc"], ["rows"], perm=[0, 3, 1, 2]),
        ]
        constants = [numpy_helper.from_array(np.array(255.0, np.float32), "v255"),
                     numpy_helper.from_array(np.array(pixel_spec.mean, np.float32), "mean"),
                     numpy_helper.from_array(np.array(pixel_spec.std, np.float32), "std")]
        nodes, inits = self.onnx_nodes("rows", "score")
        return _model(front + nodes, constants + inits, ["image"], batch, size, pixels=True)


@dataclass(frozen=True)
class TinyDepthNet:
    """Two inputs like DGIQA: score = rgb_branch(image) + depth_branch(depth), different weights per
    branch, so a swapped or missing depth changes the score. ``inputs`` is the graph's (and the
    manifest's) input order."""

    rgb: TinyNet
    depth: TinyNet
    inputs: tuple[str, ...] = ("image", "depth")

    @classmethod
    def random(cls, seed: int = 0, inputs: tuple[str, ...] = ("image", "depth")) -> TinyDepthNet:
        return cls(TinyNet.random(seed), TinyNet.random(seed + 1000), inputs)

    def forward_numpy(self, image: np.ndarray, depth: np.ndarray) -> np.ndarray:
        return self.rgb.forward_numpy(image) + self.depth.forward_numpy(depth)

    def torch_module(self) -> Any:
        from torch import nn

        class TinyDepth(nn.Module):
            def __init__(self, rgb: nn.Module, depth: nn.Module) -> None:
                super().__init__()
                self.rgb, self.depth = rgb, depth

            def forward(self, image: Any, depth: Any) -> Any:
                return self.rgb(image) + self.depth(depth)

        return TinyDepth(self.rgb.torch_module(), self.depth.torch_module()).eval()

    def onnx_model(self, batch: int | str, size: tuple[int, int]) -> Any:
        from onnx import helper

        rgb_nodes, rgb_inits = self.rgb.onnx_nodes("image", "rgb_score", "rgb_")
        depth_nodes, depth_inits = self.depth.onnx_nodes("depth", "depth_score", "depth_")
        nodes = [*rgb_nodes, *depth_nodes, helper.make_node("Add", ["rgb_score", "depth_score"], ["score"])]
        return _model(nodes, rgb_inits + depth_inits, list(self.inputs), batch, size)


def _model(nodes: list[Any], inits: list[Any], inputs: list[str], batch: int | str, size: tuple[int, int],
           pixels: bool = False) -> Any:
    import onnx
    from onnx import TensorProto, helper

    value_type, shape = (TensorProto.UINT8, [batch, *size, 3]) if pixels else (TensorProto.FLOAT, [batch, 3, *size])
    graph = helper.make_graph(
        nodes, "tiny_iqa",
        [helper.make_tensor_value_info(name, value_type, shape) for name in inputs],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [batch])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def build_bundle(out_dir: Path, net: TinyNet | TinyDepthNet, *, runtime: str = "onnxruntime",
                 spec: PreprocessSpec = SPEC, fixed_batch: int | None = None, max_batch: int | None = None,
                 transform: dict[str, float] = TRANSFORM, target: dict[str, Any] | None = None,
                 extra: dict[str, Any] | None = None, pixels: bool = False) -> Path:
    """Write ``net`` as a real bundle (ORT: model.onnx; OpenVINO: model.xml + model.bin); with
    ``pixels`` (TinyNet only) a schema-2 bundle whose network takes uint8 pixels and normalises."""
    import onnx

    batch = fixed_batch if fixed_batch else "batch"
    model = net.onnx_model(batch, spec.input_size, spec) if pixels else net.onnx_model(batch, spec.input_size)

    def populate(staging: Path) -> dict[str, Any]:
        if runtime == "openvino":
            import openvino as ov

            onnx.save(model, staging / "tmp.onnx")
            ov.save_model(ov.convert_model(str(staging / "tmp.onnx")), str(staging / "model.xml"),
                          compress_to_fp16=False)
            (staging / "tmp.onnx").unlink()
            model_file = "model.xml"
        else:
            onnx.save(model, staging / "model.onnx")
            model_file = "model.onnx"
        shape = [fixed_batch or -1, *spec.input_size, 3] if pixels else [fixed_batch or -1, 3, *spec.input_size]
        io: dict[str, Any] = {"inputs": [{"name": name, "shape": shape, "dtype": "uint8" if pixels else "float32"}
                                         for name in net.inputs], "output": "score"}
        if max_batch is not None:
            io["max_batch"] = max_batch
        return {"edge_iqa_version": "0.1.0", "runtime": runtime, "precision": "fp32", "model_file": model_file,
                "io": io, "preprocess": spec.to_dict(), "output_transform": dict(transform),
                "model": {"name": "tiny_test_net", "family": "test", "inputs": list(net.inputs)},
                "target": {"name": f"test-{runtime}", **(target or {})}, **(extra or {})}

    return write_bundle(out_dir, populate)


def edit_manifest(bundle_dir: Path, **changes: Any) -> None:
    """Rewrite manifest.json with some top-level keys changed (checksums left as they are)."""
    path = bundle_dir / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def bundle_pair(root: Path, net: TinyNet | TinyDepthNet, **kwargs: Any) -> dict[str, Path]:
    """The same tiny network as an ONNX Runtime and an OpenVINO bundle (``kwargs``: build_bundle's)."""
    return {"onnxruntime": build_bundle(root / "ort", net, **kwargs),
            "openvino": build_bundle(root / "ov", net, runtime="openvino", **kwargs)}


@dataclass(frozen=True)
class StaleCache:
    """A compiled-model cache root holding what earlier runs left: an old network folder, a loose blob of
    the flat layout before network folders, and a folder another process used seconds ago."""

    root: Path
    old_network: Path
    loose_blob: Path
    recent_network: Path


def stale_compile_cache(root: Path, megabytes: int = 2) -> StaleCache:
    now = time.time()
    old, loose, recent = root / ("0" * 24), root / "1234567890.blob", root / ("f" * 24)
    for folder in (old, recent):
        folder.mkdir(parents=True)
        (folder / "network.blob").write_bytes(b"\0" * (megabytes << 20))
    loose.write_bytes(b"\0" * (megabytes << 20))
    os.utime(old, (now - 7200, now - 7200))
    os.utime(loose, (now - 3600, now - 3600))
    return StaleCache(root, old, loose, recent)
