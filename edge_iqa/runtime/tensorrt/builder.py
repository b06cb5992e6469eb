"""Build a bundle's TensorRT engine on the device, with the TensorRT Python API.

Version-aware (:mod:`edge_iqa.runtime.tensorrt.versions`): a recipe for TensorRT 10.3-10.11 builds
a weakly typed network with the ``FP16`` (+ ``INT8`` for Q/DQ graphs) builder flags; a recipe for
10.12+ or 11.x builds a strongly typed network, where the ONNX graph itself carries the precision
(FP16 weights and activations, or int8 Q/DQ around FP16) and no precision flag is set (TensorRT 11
has none). The installed TensorRT is compared with the recipe's range first.

Not run on the project's machines (no NVIDIA GPU); every TensorRT name used here is checked against
the real Python bindings of each supported release by ``tests/test_tensorrt_api.py``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from edge_iqa.errors import BackendUnavailableError, ExportError
from edge_iqa.runtime.tensorrt.cache import EngineKey, engine_paths, timing_cache_path, write_atomically
from edge_iqa.runtime.tensorrt.recipe import BuildRecipe
from edge_iqa.runtime.tensorrt.versions import require_installed

log = logging.getLogger(__name__)


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


def check_tensorrt_version(trt: Any, recipe: BuildRecipe) -> None:
    """Refuse an installed TensorRT outside the range the bundle was exported for."""
    require_installed(trt.__version__, recipe.tensorrt_range, recipe.target)


def current_device_key(recipe: BuildRecipe, onnx_sha256: str) -> EngineKey:
    """The key of an engine built on this machine's GPU 0 with the installed TensorRT (which must be
    in the recipe's range)."""
    trt = import_tensorrt()
    check_tensorrt_version(trt, recipe)
    from edge_iqa.runtime.tensorrt.cuda_memory import device_properties

    name, capability = device_properties()
    return EngineKey(name, capability, trt.__version__, recipe.precision, onnx_sha256, recipe.dla_core)


def build_engine(bundle_dir: str | os.PathLike, recipe: BuildRecipe, key: EngineKey, verbose: bool = False) -> Path:
    """Build the engine described by ``recipe``; cache it (and its timing cache) under ``key``.

    The engine and its metadata are written before the timing cache, so a failure there never
    leaves an engine without metadata."""
    trt = import_tensorrt()
    check_tensorrt_version(trt, recipe)
    bundle_dir = Path(bundle_dir)
    cache_path = timing_cache_path(bundle_dir, key)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    engine, timing_cache = build_serialized(trt, bundle_dir / recipe.onnx_file, recipe,
                                            cache_path.read_bytes() if cache_path.is_file() else b"", verbose)
    engine_path, meta_path = engine_paths(bundle_dir, key)
    write_atomically(engine_path, engine)
    write_atomically(meta_path, key.to_json())
    write_atomically(cache_path, timing_cache)
    return engine_path


def build_serialized(trt: Any, onnx_path: Path, recipe: BuildRecipe, timing_cache: bytes,
                     verbose: bool = False) -> tuple[bytes, bytes]:
    """(serialized engine, updated timing cache): the part that talks to TensorRT. Mirrors
    :meth:`BuildRecipe.trtexec_command`."""
    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if recipe.strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "\n  ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT {trt.__version__} could not parse {onnx_path.name}:\n  {errors}\n"
                          "Run `edge-iqa check BUNDLE` and export with the target made for this TensorRT version")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, recipe.workspace_mib << 20)
    config.builder_optimization_level = recipe.builder_optimization_level
    _set_precision(trt, config, recipe)
    if recipe.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = recipe.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)

    profile = builder.create_optimization_profile()
    for name, dims in recipe.inputs.items():
        profile.set_shape(name, (recipe.min_batch, *dims), (recipe.opt_batch, *dims), (recipe.max_batch, *dims))
    if config.add_optimization_profile(profile) < 0:
        raise ExportError(f"TensorRT refused the optimisation profile {recipe.shapes(recipe.min_batch)} .. "
                          f"{recipe.shapes(recipe.max_batch)}; check the input names in build_recipe.json")
    _attach_timing_cache(config, timing_cache)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError("TensorRT failed to build the engine; rerun with verbose=True (or trtexec --verbose) "
                          "to see which layer failed")
    return bytes(serialized), bytes(config.get_timing_cache().serialize())


def _set_precision(trt: Any, config: Any, recipe: BuildRecipe) -> None:
    """Weakly typed (10.3-10.11): precision flags. Strongly typed: the graph's types decide; setting
    FP16/INT8 there is an error (10.12+) or impossible (11.x: the flags are gone)."""
    if not recipe.strongly_typed:
        if recipe.precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        if recipe.precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
    if recipe.precision == "fp32":
        # TF32 is on by default; the FP32 engine is the device's reference, so it runs true FP32.
        config.clear_flag(trt.BuilderFlag.TF32)


def _attach_timing_cache(config: Any, cached: bytes) -> None:
    """Use this key's timing cache; one TensorRT rejects (corrupt, or written by another build of
    the library) is dropped and the build starts from an empty cache instead of failing later."""
    cache = config.create_timing_cache(cached)
    if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
        return
    if cached:
        log.warning("the engine's timing cache was rejected by TensorRT; building with an empty one")
        cache = config.create_timing_cache(b"")
        if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
            return
    raise ExportError("TensorRT could not attach an empty timing cache to the builder config")
