"""TensorRT engines for a bundle: the build recipe, the builder, and the per-device engine cache.

Engines are specific to the GPU and the TensorRT version that built them, so a bundle carries the
ONNX graph and a *build recipe*; the engine is built on the device on first load (or by
``edge-iqa build-engine BUNDLE``) and cached next to the bundle under a key of GPU name +
TensorRT version + precision. A cached engine whose metadata names another GPU, TensorRT version,
precision or ONNX file is refused with :class:`~edge_iqa.errors.EngineMismatchError`.

Only this module and ``backends/tensorrt.py`` import ``tensorrt``; everything above the
``# --- needs TensorRT`` line is plain Python and is tested on machines without a GPU.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_iqa.errors import BackendUnavailableError, EngineMismatchError, ExportError

RECIPE_NAME = "build_recipe.json"
ENGINE_DIR = "engines"


@dataclass(frozen=True)
class BuildRecipe:
    """Everything needed to build the engine, for the runtime and for a person with trtexec."""

    onnx_file: str
    precision: str  # fp16 | int8 (int8 = explicit Q/DQ in the ONNX, FP16 for the rest)
    inputs: dict[str, list[int]]  # input name -> [C, H, W] (batch excluded)
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 16
    workspace_mib: int = 1024
    dla_core: int | None = None
    strongly_typed: bool = False
    timing_cache: str = "timing.cache"
    minimum_tensorrt: str = "10.3"
    builder_optimization_level: int = 3
    extra_trtexec_flags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "fp16", "int8"):
            raise ExportError(f"unknown TensorRT precision {self.precision!r}")
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ExportError(f"batch range must satisfy 1 <= min <= opt <= max, got "
                              f"{self.min_batch}/{self.opt_batch}/{self.max_batch}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["trtexec"] = self.trtexec_command()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildRecipe:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def shapes(self, batch: int) -> str:
        return ",".join(f"{name}:{batch}x{'x'.join(str(d) for d in dims)}" for name, dims in self.inputs.items())

    def trtexec_command(self, engine_file: str = "model.engine") -> str:
        """The equivalent ``trtexec`` command line (run in the bundle folder on the device)."""
        args = [
            "trtexec",
            f"--onnx={self.onnx_file}",
            f"--saveEngine={engine_file}",
            f"--minShapes={self.shapes(self.min_batch)}",
            f"--optShapes={self.shapes(self.opt_batch)}",
            f"--maxShapes={self.shapes(self.max_batch)}",
            f"--memPoolSize=workspace:{self.workspace_mib}M",
            f"--timingCacheFile={self.timing_cache}",
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
        if self.dla_core is not None:
            args += [f"--useDLACore={self.dla_core}", "--allowGPUFallback"]
        args += self.extra_trtexec_flags
        return shlex.join(args)


def read_recipe(bundle_dir: str | os.PathLike) -> BuildRecipe:
    path = Path(bundle_dir) / RECIPE_NAME
    if not path.is_file():
        raise ExportError(f"{path} is missing: this bundle was not exported for a TensorRT target")
    return BuildRecipe.from_dict(json.loads(path.read_text()))


@dataclass(frozen=True)
class EngineKey:
    """What an engine is valid for."""

    gpu_name: str
    compute_capability: str
    tensorrt_version: str
    precision: str
    onnx_sha256: str
    dla_core: int | None = None

    @property
    def slug(self) -> str:
        gpu = re.sub(r"[^A-Za-z0-9]+", "-", self.gpu_name).strip("-").lower()
        dla = f"-dla{self.dla_core}" if self.dla_core is not None else ""
        return f"{gpu}-sm{self.compute_capability.replace('.', '')}-trt{self.tensorrt_version}-{self.precision}{dla}"

    def mismatches(self, other: EngineKey) -> list[str]:
        return [f"{name}: engine has {getattr(other, name)!r}, this device needs {getattr(self, name)!r}"
                for name in self.__dataclass_fields__ if getattr(self, name) != getattr(other, name)]


def engine_paths(bundle_dir: str | os.PathLike, key: EngineKey) -> tuple[Path, Path]:
    """(engine file, metadata file) of the cache entry for ``key``."""
    folder = Path(bundle_dir) / ENGINE_DIR
    return folder / f"{key.slug}.engine", folder / f"{key.slug}.json"


def check_engine_metadata(metadata_path: Path, wanted: EngineKey) -> None:
    """Refuse an engine built for another GPU, TensorRT version, precision or ONNX graph."""
    if not metadata_path.is_file():
        raise EngineMismatchError(f"{metadata_path} is missing: the engine's origin is unknown; delete the "
                                  "engine and let edge-iqa rebuild it (edge-iqa build-engine BUNDLE)")
    recorded = EngineKey(**json.loads(metadata_path.read_text()))
    problems = wanted.mismatches(recorded)
    if problems:
        raise EngineMismatchError(
            f"{metadata_path.with_suffix('.engine').name} was built for another device or version ("
            + "; ".join(problems) + "). TensorRT engines are not portable: rebuild on this device with "
            "`edge-iqa build-engine BUNDLE` (or delete the engine; the runtime rebuilds it on load)"
        )


# --- needs TensorRT ------------------------------------------------------------------------------
def import_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailableError(
            "TensorRT is not installed: engines are built on the target device (Jetson: part of JetPack 6; "
            "desktop: pip install tensorrt). Install it there, or use the cpu/onnxruntime targets here"
        ) from exc
    if not hasattr(trt, "Builder"):
        raise BackendUnavailableError("the installed `tensorrt` package is a placeholder without the library; "
                                      "install TensorRT for this device (JetPack on Jetson)")
    return trt


def current_device_key(precision: str, onnx_sha256: str, dla_core: int | None = None) -> EngineKey:
    """The key of an engine built on this machine's GPU 0 with the installed TensorRT."""
    trt = import_tensorrt()
    from edge_iqa.runtime.cuda_memory import device_properties

    name, capability = device_properties()
    return EngineKey(name, capability, trt.__version__, precision, onnx_sha256, dla_core)


def build_engine(bundle_dir: str | os.PathLike, recipe: BuildRecipe, key: EngineKey, verbose: bool = False) -> Path:
    """Build the engine described by ``recipe`` with the TensorRT Python API; cache it under ``key``.

    Mirrors :meth:`BuildRecipe.trtexec_command`: ONNX parser, builder config with precision flags
    (or a strongly typed network), one optimisation profile over the batch range, the bundle's
    timing cache (read and updated), optional DLA core with GPU fallback.
    """
    trt = import_tensorrt()
    bundle_dir = Path(bundle_dir)
    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if recipe.strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(bundle_dir / recipe.onnx_file)):
        errors = "\n  ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT {trt.__version__} could not parse {recipe.onnx_file}:\n  {errors}\n"
                          "Run `edge-iqa check BUNDLE` and export with the target made for this TensorRT version")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, recipe.workspace_mib << 20)
    config.builder_optimization_level = recipe.builder_optimization_level
    if not recipe.strongly_typed:
        if recipe.precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        if recipe.precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
    if recipe.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = recipe.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)

    profile = builder.create_optimization_profile()
    for name, dims in recipe.inputs.items():
        profile.set_shape(name, (recipe.min_batch, *dims), (recipe.opt_batch, *dims), (recipe.max_batch, *dims))
    config.add_optimization_profile(profile)

    cache_path = bundle_dir / ENGINE_DIR / recipe.timing_cache
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    timing_cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(timing_cache, ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError("TensorRT failed to build the engine; rerun with verbose=True (or trtexec --verbose) "
                          "to see which layer failed")
    engine_path, meta_path = engine_paths(bundle_dir, key)
    _write_atomically(engine_path, bytes(serialized))
    _write_atomically(cache_path, bytes(config.get_timing_cache().serialize()))
    _write_atomically(meta_path, (json.dumps(asdict(key), indent=2) + "\n").encode())
    return engine_path


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
