"""The build recipe a TensorRT bundle carries (``build_recipe.json``): everything the device needs to
build the engine, for the runtime and for a person with trtexec. Plain Python (no TensorRT)."""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_iqa.errors import ExportError
from edge_iqa.runtime.tensorrt.versions import TensorRTRange

if TYPE_CHECKING:
    from edge_iqa.export.targets import TargetProfile

RECIPE_NAME = "build_recipe.json"
MODEL_FILE = "model.onnx"  # the graph the device builds from
TRTEXEC_TIMING_CACHE = "model.timing.cache"


@dataclass(frozen=True)
class BuildRecipe:
    """How to build the engine. ``tensorrt_minimum``/``tensorrt_below``: the TensorRT range the bundle
    was exported for (:class:`TensorRTRange`); it decides weakly typed (precision flags, 10.3-10.11)
    or strongly typed (precision from the graph, 10.12+ and 11.x) builds."""

    onnx_file: str
    precision: str  # fp32 | fp16 | int8 (int8 = explicit Q/DQ in the ONNX, FP16 for the rest)
    inputs: dict[str, list[int]]  # input name -> [C, H, W] (batch excluded)
    tensorrt_minimum: str = "10.3"
    tensorrt_below: str = "10.12"
    target: str = "jetson"
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 16
    workspace_mib: int = 1024
    dla_core: int | None = None
    builder_optimization_level: int = 3
    extra_trtexec_flags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "fp16", "int8"):
            raise ExportError(f"unknown TensorRT precision {self.precision!r}")
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ExportError(f"batch range must satisfy 1 <= min <= opt <= max, got "
                              f"{self.min_batch}/{self.opt_batch}/{self.max_batch}")
        if self.dla_core is not None and not self.min_batch == self.opt_batch == self.max_batch:
            # A dynamic profile sends every layer back to the GPU while the engine says "dla".
            raise ExportError("a DLA engine needs a static batch (min = opt = max), got "
                              f"{self.min_batch}/{self.opt_batch}/{self.max_batch}")
        if self.dla_core is not None and self.precision == "fp32":
            raise ExportError("the DLA runs FP16 and INT8 only; export fp16 or int8 for a DLA target")

    @property
    def tensorrt_range(self) -> TensorRTRange:
        return TensorRTRange(self.tensorrt_minimum, self.tensorrt_below)

    @property
    def strongly_typed(self) -> bool:
        return self.tensorrt_range.strongly_typed

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["strongly_typed"] = self.strongly_typed
        data["trtexec"] = self.trtexec_command()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildRecipe:
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known}
        if "tensorrt_minimum" not in data and "minimum_tensorrt" in data:
            # Recipes written before the range was recorded: the family of their minimum version.
            made_for = TensorRTRange.for_version(data["minimum_tensorrt"])
            values.update(tensorrt_minimum=made_for.minimum, tensorrt_below=made_for.below)
        return cls(**values)

    def shapes(self, batch: int) -> str:
        return ",".join(f"{name}:{batch}x{'x'.join(str(d) for d in dims)}" for name, dims in self.inputs.items())

    def trtexec_command(self, engine_file: str = "model.engine") -> str:
        """The equivalent ``trtexec`` command line for this recipe's TensorRT range (run in the
        bundle folder on the device). trtexec 11 has no ``--fp16``/``--int8``: strongly typed
        recipes pass ``--stronglyTyped`` and the graph carries the precision."""
        args = [
            "trtexec",
            f"--onnx={self.onnx_file}",
            f"--saveEngine={engine_file}",
            f"--minShapes={self.shapes(self.min_batch)}",
            f"--optShapes={self.shapes(self.opt_batch)}",
            f"--maxShapes={self.shapes(self.max_batch)}",
            f"--memPoolSize=workspace:{self.workspace_mib}M",
            f"--timingCacheFile={TRTEXEC_TIMING_CACHE}",
            f"--builderOptimizationLevel={self.builder_optimization_level}",
        ]
        if self.strongly_typed:
            args.append("--stronglyTyped")
        elif self.precision == "fp16":
            args.append("--fp16")
        elif self.precision == "int8":
            # Explicit quantization: Q/DQ in the graph set the INT8 layers; --fp16 lets the rest
            # (head, first conv, softmax) run in FP16 instead of FP32.
            args += ["--int8", "--fp16"]
        if self.precision == "fp32":
            args.append("--noTF32")  # the FP32 engine is the device's reference: no TF32 rounding
        if self.dla_core is not None:
            args += [f"--useDLACore={self.dla_core}", "--allowGPUFallback"]
        args += self.extra_trtexec_flags
        return shlex.join(args)


def read_recipe(bundle_dir: str | os.PathLike) -> BuildRecipe:
    path = Path(bundle_dir) / RECIPE_NAME
    if not path.is_file():
        raise ExportError(f"{path} is missing: this bundle was not exported for a TensorRT target")
    return BuildRecipe.from_dict(json.loads(path.read_text()))


def target_recipe(inputs: dict[str, list[int]], precision: str, target: TargetProfile) -> BuildRecipe:
    """The recipe a TensorRT target profile asks for, given the graph's inputs ([C, H, W] each)."""
    spec = target.tensorrt
    if spec is None:
        raise ExportError(f"target {target.name!r} is not a TensorRT target")
    made_for = spec.tensorrt_range
    return BuildRecipe(onnx_file=MODEL_FILE, precision=precision, inputs=inputs,
                       tensorrt_minimum=made_for.minimum, tensorrt_below=made_for.below, target=target.name,
                       min_batch=target.batch if spec.dla_core is not None else 1, opt_batch=spec.opt_batch,
                       max_batch=target.max_batch, workspace_mib=spec.workspace_mib, dla_core=spec.dla_core)
