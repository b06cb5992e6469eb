"""Run our TensorRT code path against one real bindings release (``python -m tests.tensorrt_api.drive``).

Imported in a fresh interpreter per release (the bindings of two releases cannot share a
process), with the stub libraries on LD_LIBRARY_PATH. For every shipped target profile whose
TensorRT range holds this release and every precision it offers, it runs the builder
(``build_serialized``), the version check, deserialisation and the backend (load, run, close)
with ``tensorrt`` replaced by the recorder, and prints one JSON report.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

INPUTS = {"image": [3, 64, 64]}


class _HostStream:
    """cuda-python is not part of this check: device memory is replaced by host no-ops."""

    handle = 0

    def synchronize(self) -> None: ...
    def close(self) -> None: ...


class _HostBuffer:
    ptr = 0

    def reserve(self, nbytes: int) -> None: ...
    def upload(self, array: np.ndarray, stream: Any) -> None: ...
    def download(self, out: np.ndarray, stream: Any) -> np.ndarray:
        return out
    def free(self) -> None: ...


def main(only_target: str | None = None) -> dict[str, Any]:
    """``only_target``: drive that profile's path whatever its range (the test's proof that a name
    missing from these bindings is caught: the weakly typed jetson path against TensorRT 11)."""
    import tensorrt_bindings as real

    from edge_iqa.export.targets import list_targets, load_target
    from edge_iqa.runtime.tensorrt import backend, builder, cuda_memory
    from edge_iqa.runtime.tensorrt.recipe import target_recipe
    from tests.tensorrt_api.recorder import ModuleProxy, Record

    cuda_memory.Stream, cuda_memory.DeviceBuffer = _HostStream, _HostBuffer  # type: ignore[misc]
    report: dict[str, Any] = {"version": real.__version__, "paths": [], "used": {}, "missing": [], "bad_calls": []}
    for name in list_targets():
        target = load_target(name)
        if only_target is not None:
            if name != only_target:
                continue
        elif target.tensorrt is None or not target.tensorrt.tensorrt_range.contains(real.__version__):
            continue
        for precision in target.precisions:
            record = Record()
            trt = ModuleProxy(real, record)
            recipe = target_recipe(INPUTS, precision, target)
            try:
                if only_target is None:
                    builder.check_tensorrt_version(trt, recipe)
                builder.build_serialized(trt, Path("model.onnx"), recipe, b"")
                engine = backend.deserialize(trt, b"", recipe)
                backend.import_tensorrt = lambda trt=trt: trt  # type: ignore[assignment]
                run = backend.TensorRTBackend(engine, Path("x.engine"), ("image",), "score", recipe.max_batch)
                out = run.run(np.zeros((recipe.max_batch, *INPUTS["image"]), dtype=np.float32))
                assert out.dtype == np.float32 and out.shape == (recipe.max_batch,)
                run.close()
            except Exception as exc:  # noqa: BLE001 - reported, and the test fails on it
                record.bad_calls.append(f"stopped at {type(exc).__name__}: {exc}")
            report["paths"].append(f"{name}/{precision}")
            report["used"][f"{name}/{precision}"] = sorted(record.used)
            report["missing"] += [f"{name}/{precision}: {m}" for m in record.missing]
            report["bad_calls"] += [f"{name}/{precision}: {m}" for m in record.bad_calls]
    return report


if __name__ == "__main__":
    json.dump(main(sys.argv[1] if len(sys.argv) > 1 else None), sys.stdout)
