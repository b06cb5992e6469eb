"""The per-device engine cache next to a bundle: keys, file names, metadata checks, timing caches.

Engines are specific to the GPU and the TensorRT version that built them, so each is cached under a
key of GPU name + compute capability + TensorRT version + precision + ONNX checksum (+ DLA core),
and a cached engine whose metadata says otherwise is refused. Timing caches are per key too: a
cache from another GPU or TensorRT version is rejected by the builder (or, worse, accepted with
mismatched tactics). Plain Python (no TensorRT)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from edge_iqa.errors import EngineMismatchError

ENGINE_DIR = "engines"


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

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2) + "\n").encode()


def engine_paths(bundle_dir: str | os.PathLike, key: EngineKey) -> tuple[Path, Path]:
    """(engine file, metadata file) of the cache entry for ``key``."""
    folder = Path(bundle_dir) / ENGINE_DIR
    return folder / f"{key.slug}.engine", folder / f"{key.slug}.json"


def timing_cache_path(bundle_dir: str | os.PathLike, key: EngineKey) -> Path:
    """The timing cache of one engine key (never shared between GPUs or TensorRT versions)."""
    return Path(bundle_dir) / ENGINE_DIR / f"{key.slug}.timing.cache"


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


def write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
