"""The native runtime (``edge_iqa/runtime/native``, libedgeiqa) from Python: building it with CMake and a
ctypes binding of its C API, for the parity tests and the native-vs-Python benchmark.

Firmware does not use this: it links ``libedgeiqa`` through ``edgeiqa.h`` (docs/integration.md).
The Python runtime does not need it either; nothing here is imported by ``edge_iqa.runtime``.

    lib = build_native(Path("build/native"))          # cmake configure + build (incremental)
    with NativeScorer.open(lib, "bundle", threads=2) as scorer:
        score = scorer.score(rgb)                      # HxWx3 uint8 RGB, like Scorer.score_one
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SOURCE_DIR = Path(__file__).resolve().parents[1] / "edge_iqa" / "runtime" / "native"
#: Set by .ci/run: the build folder CI made; the tests then require it instead of building their own.
BUILD_ENV = "EDGE_IQA_NATIVE_BUILD"

# edgeiqa_status
OK, ERR_ARGUMENT, ERR_BUNDLE, ERR_BACKEND_UNAVAILABLE, ERR_IMAGE, ERR_BUFFER_TOO_SMALL, ERR_INTERNAL = range(7)
PIXEL_RGB8, PIXEL_BGR8 = 0, 1


class NativeError(RuntimeError):
    """A C API call returned an error status; ``status`` is the edgeiqa_status, the text its message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"[status {status}] {message}")
        self.status = status
        self.message = message


class BuildError(RuntimeError):
    """CMake could not configure or build the native library (the message has the log's tail)."""


def missing_build_tools() -> list[str]:
    """What the build needs and this machine lacks (Debian: apt-get install cmake g++
    nlohmann-json3-dev libssl-dev libjpeg62-turbo-dev)."""
    missing = [tool for tool in ("cmake", "g++", "cc") if shutil.which(tool) is None]
    headers = {"nlohmann-json3-dev": "/usr/include/nlohmann/json.hpp", "libssl-dev": "/usr/include/openssl/evp.h",
               "libjpeg62-turbo-dev": "/usr/include/jpeglib.h"}
    missing += [package for package, header in headers.items() if not Path(header).is_file()]
    return missing


def build_native(build_dir: Path, *, sanitize: bool = False, jobs: int = 2) -> Path:
    """Configure and build the library, score_frames and the C test driver (incremental); returns build_dir."""
    build_dir = Path(build_dir)
    # The sanitizer build is for the C test driver: no sample program (no libjpeg needed).
    on_off = {True: "ON", False: "OFF"}
    flags = [f"-DEDGEIQA_SANITIZE={on_off[sanitize]}", f"-DEDGEIQA_BUILD_SAMPLE={on_off[not sanitize]}",
             f"-DCMAKE_BUILD_TYPE={'Debug' if sanitize else 'Release'}",
             # CMake asks this interpreter where the openvino wheel's SDK is (PATH's python3 may lack it).
             f"-DPython3_EXECUTABLE={sys.executable}"]
    steps = [["cmake", "-S", str(SOURCE_DIR), "-B", str(build_dir), *flags],
             ["cmake", "--build", str(build_dir), "-j", str(jobs)]]
    build_dir.mkdir(parents=True, exist_ok=True)
    # pytest-xdist workers share the build folder: one builds, the others wait and find it up to date.
    with open(build_dir / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, check=False)
            if done.returncode:
                raise BuildError(f"{' '.join(step)} failed:\n{(done.stdout + done.stderr)[-4000:]}")
    return build_dir


class _Frame(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("width", ctypes.c_int32), ("height", ctypes.c_int32),
                ("stride", ctypes.c_size_t), ("format", ctypes.c_int32)]


class _Options(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("threads", ctypes.c_int32), ("cache_dir", ctypes.c_char_p),
                ("device", ctypes.c_char_p)]


class _Info(ctypes.Structure):
    _fields_ = [("model", ctypes.c_char_p), ("runtime", ctypes.c_char_p), ("precision", ctypes.c_char_p),
                ("input_height", ctypes.c_int32), ("input_width", ctypes.c_int32), ("num_crops", ctypes.c_int32),
                ("max_batch", ctypes.c_int32), ("fixed_batch", ctypes.c_int32), ("cache_dir", ctypes.c_char_p)]


@dataclass(frozen=True)
class NativeInfo:
    model: str
    runtime: str
    precision: str
    input_size: tuple[int, int]
    num_crops: int
    max_batch: int
    fixed_batch: int
    cache_dir: str  # "" when none
    input_dtype: str  # what the network takes: "uint8" pixels or "float32" rows (edgeiqa_input_dtype)


def load_library(build_dir: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(Path(build_dir) / "libedgeiqa.so"))
    p, c_float_p, c_double_p = ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_double)
    frame_p, size_p = ctypes.POINTER(_Frame), ctypes.POINTER(ctypes.c_size_t)
    signatures: dict[str, tuple[Any, list[Any]]] = {
        "edgeiqa_version": (ctypes.c_char_p, []),
        "edgeiqa_last_error": (ctypes.c_char_p, []),
        "edgeiqa_options_init": (None, [ctypes.POINTER(_Options)]),
        "edgeiqa_open": (ctypes.c_int, [ctypes.c_char_p, ctypes.POINTER(_Options), ctypes.POINTER(p)]),
        "edgeiqa_close": (None, [p]),
        "edgeiqa_get_info": (ctypes.c_int, [p, ctypes.POINTER(_Info)]),
        "edgeiqa_model_name": (ctypes.c_char_p, [p]),
        "edgeiqa_precision": (ctypes.c_char_p, [p]),
        "edgeiqa_input_dtype": (ctypes.c_char_p, [p]),
        "edgeiqa_score": (ctypes.c_int, [p, frame_p, c_double_p]),
        "edgeiqa_score_batch": (ctypes.c_int, [p, frame_p, ctypes.c_size_t, c_double_p]),
        "edgeiqa_preprocess": (ctypes.c_int, [p, frame_p, c_float_p, ctypes.c_size_t, size_p]),
        "edgeiqa_preprocess_spec": (ctypes.c_int, [ctypes.c_char_p, frame_p, c_float_p, ctypes.c_size_t, size_p]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib


def _frame(image: np.ndarray, pixel_format: int = PIXEL_RGB8) -> tuple[_Frame, np.ndarray]:
    """An edgeiqa_frame viewing ``image`` (HxWx3 uint8; rows may be padded: any row stride)."""
    if image.ndim != 3 or image.dtype != np.uint8 or image.strides[1:] != (3, 1):
        image = np.ascontiguousarray(image, dtype=np.uint8)
    height, width = image.shape[:2]
    return _Frame(image.ctypes.data, width, height, image.strides[0], pixel_format), image


def _floats(array: np.ndarray) -> Any:
    return array.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


def _check(lib: ctypes.CDLL, status: int) -> None:
    if status != OK:
        raise NativeError(status, lib.edgeiqa_last_error().decode("utf-8", "replace"))


def preprocess_spec(lib: ctypes.CDLL, spec: Mapping[str, Any], image: np.ndarray) -> np.ndarray:
    """The native preprocessing of ``image`` under a PreprocessSpec dict: (num_crops, 3, H, W) float32."""
    frame, _keep = _frame(image)
    text = json.dumps(dict(spec)).encode()
    needed = ctypes.c_size_t(0)
    status = lib.edgeiqa_preprocess_spec(text, ctypes.byref(frame), None, 0, ctypes.byref(needed))
    if status != ERR_BUFFER_TOO_SMALL:
        _check(lib, status)
    out = np.empty(needed.value, dtype=np.float32)
    _check(lib, lib.edgeiqa_preprocess_spec(text, ctypes.byref(frame), _floats(out), out.size, None))
    h, w = spec["input_size"]
    return out.reshape(-1, 3, h, w)


class NativeScorer:
    """An edgeiqa_scorer: the native twin of ``edge_iqa.runtime.Scorer`` (thread-safe like it)."""

    def __init__(self, lib: ctypes.CDLL, handle: int) -> None:
        self.lib = lib
        self._handle = ctypes.c_void_p(handle)
        info = _Info()
        _check(lib, lib.edgeiqa_get_info(self._handle, ctypes.byref(info)))
        self.info = NativeInfo(info.model.decode(), info.runtime.decode(), info.precision.decode(),
                               (info.input_height, info.input_width), info.num_crops, info.max_batch, info.fixed_batch,
                               info.cache_dir.decode(), lib.edgeiqa_input_dtype(self._handle).decode())

    @classmethod
    def open(cls, build_dir: Path | ctypes.CDLL, bundle: str | os.PathLike, *, threads: int = 0,
             cache_dir: str | os.PathLike | None = None) -> NativeScorer:
        """cache_dir: None = the library's default cache (as the Python runtime's), "" = none."""
        lib = build_dir if isinstance(build_dir, ctypes.CDLL) else load_library(Path(build_dir))
        options = _Options()
        lib.edgeiqa_options_init(ctypes.byref(options))
        options.threads = threads
        options.cache_dir = None if cache_dir is None else str(cache_dir).encode()
        handle = ctypes.c_void_p()
        _check(lib, lib.edgeiqa_open(str(bundle).encode(), ctypes.byref(options), ctypes.byref(handle)))
        return cls(lib, handle.value)

    def score(self, image: np.ndarray, pixel_format: int = PIXEL_RGB8) -> float:
        frame, _keep = _frame(image, pixel_format)
        out = ctypes.c_double()
        _check(self.lib, self.lib.edgeiqa_score(self._handle, ctypes.byref(frame), ctypes.byref(out)))
        return out.value

    def score_batch(self, images: Sequence[np.ndarray]) -> np.ndarray:
        pairs = [_frame(image) for image in images]
        frames = (_Frame * len(pairs))(*[frame for frame, _ in pairs])
        out = np.empty(len(pairs), dtype=np.float64)
        _check(self.lib, self.lib.edgeiqa_score_batch(self._handle, frames, len(pairs),
                                                      out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))))
        return out

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """(num_crops, 3, H, W) float32 normalised rows (PreprocessSpec.apply), whatever the network takes."""
        frame, _keep = _frame(image)
        h, w = self.info.input_size
        out = np.empty((self.info.num_crops, 3, h, w), dtype=np.float32)
        _check(self.lib, self.lib.edgeiqa_preprocess(self._handle, ctypes.byref(frame), _floats(out), out.size, None))
        return out

    def close(self) -> None:
        if self._handle:
            self.lib.edgeiqa_close(self._handle)
            self._handle = ctypes.c_void_p()

    def __enter__(self) -> NativeScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
