"""Minimal CUDA device memory for the TensorRT backend, over NVIDIA's cuda-python bindings.

No pycuda and no torch: the runtime on a Jetson needs only numpy, TensorRT and cuda-python
(JetPack's CUDA runtime underneath). cuda-python's major version must match the device's CUDA:
JetPack 6 is CUDA 12, so ``cuda-python>=12,<13`` (13.x needs driver >= 580); each TensorRT target
profile records its pin (``[tensorrt] cuda_python``) and the bundle's README repeats it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge_iqa.errors import BackendUnavailableError


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError as exc:
            raise BackendUnavailableError("cuda-python is not installed: pip install the version the bundle's "
                                          "README names (JetPack 6 / CUDA 12: 'cuda-python>=12,<13')") from exc
    return cudart


class CudaError(RuntimeError):
    """A failed CUDA runtime call; ``name`` is CUDA's error name (e.g. ``cudaErrorNoDevice``)."""

    def __init__(self, name: str) -> None:
        hint = (": the driver is older than this cuda-python needs; install the cuda-python major version "
                "of the device's CUDA (JetPack 6: 'cuda-python>=12,<13')" if name == "cudaErrorInsufficientDriver"
                else "")
        super().__init__(f"CUDA call failed: {name}{hint}")
        self.name = name


def _check(result: tuple) -> Any:
    cudart = _cudart()
    error, *values = result
    if error != cudart.cudaError_t.cudaSuccess:
        _, name = cudart.cudaGetErrorName(error)
        raise CudaError(name.decode() if isinstance(name, bytes) else str(name))
    return values[0] if len(values) == 1 else tuple(values)


def device_properties(device: int = 0) -> tuple[str, str]:
    """(GPU name, compute capability "major.minor") of ``device``."""
    props = _check(_cudart().cudaGetDeviceProperties(device))
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return name.rstrip("\x00"), f"{props.major}.{props.minor}"


class Stream:
    def __init__(self) -> None:
        self.handle = _check(_cudart().cudaStreamCreate())

    def synchronize(self) -> None:
        _check(_cudart().cudaStreamSynchronize(self.handle))

    def close(self) -> None:
        if self.handle is not None:
            _check(_cudart().cudaStreamDestroy(self.handle))
            self.handle = None


class DeviceBuffer:
    """A cudaMalloc'd buffer that grows on demand (batches vary up to the profile's maximum)."""

    def __init__(self, nbytes: int = 0) -> None:
        self.ptr, self.nbytes = 0, 0
        if nbytes:
            self.reserve(nbytes)

    def reserve(self, nbytes: int) -> None:
        if nbytes <= self.nbytes:
            return
        self.free()
        self.ptr = int(_check(_cudart().cudaMalloc(nbytes)))
        self.nbytes = nbytes

    def upload(self, array: np.ndarray, stream: Stream) -> None:
        array = np.ascontiguousarray(array)
        self.reserve(array.nbytes)
        kind = _cudart().cudaMemcpyKind.cudaMemcpyHostToDevice
        _check(_cudart().cudaMemcpyAsync(self.ptr, array.ctypes.data, array.nbytes, kind, stream.handle))

    def download(self, out: np.ndarray, stream: Stream) -> np.ndarray:
        kind = _cudart().cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(_cudart().cudaMemcpyAsync(out.ctypes.data, self.ptr, out.nbytes, kind, stream.handle))
        return out

    def free(self) -> None:
        if self.ptr:
            _check(_cudart().cudaFree(self.ptr))
            self.ptr, self.nbytes = 0, 0
