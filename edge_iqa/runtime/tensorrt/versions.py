"""Which TensorRT releases a bundle is made for.

TensorRT changed how precision is chosen: up to 10.11 a network is *weakly typed* and the builder
flags ``FP16``/``INT8`` pick the kernels' precision; from 10.12 those flags are deprecated and in
TensorRT 11 they are gone: every network is *strongly typed* and the precision is the ONNX graph's
own (FP16 weights and activations for FP16, int8 Q/DQ around FP16 for INT8). A bundle therefore
belongs to one *family*, and ``build-engine`` refuses a TensorRT outside its range.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_iqa.errors import CompatibilityError

#: First release whose precision flags are deprecated (strongly typed builds from here on).
STRONGLY_TYPED_FROM = (10, 12)
OLDEST_SUPPORTED = (10, 3)


def parse_version(version: str) -> tuple[int, ...]:
    """'10.3.0.26' -> (10, 3, 0, 26); '10.14.1.48.post1' -> (10, 14, 1, 48)."""
    parts = []
    for part in str(version).split("."):
        digits = "".join(ch for ch in part if ch.isdigit()) if part[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
    if len(parts) < 2:
        raise CompatibilityError(f"invalid TensorRT version {version!r}; use e.g. '10.3'")
    return tuple(parts)


def _text(version: tuple[int, ...]) -> str:
    return ".".join(str(v) for v in version)


@dataclass(frozen=True)
class TensorRTRange:
    """``minimum <= TensorRT < below``, and whether that family builds strongly typed networks."""

    minimum: str
    below: str

    @classmethod
    def for_version(cls, version: str) -> TensorRTRange:
        """The family of a profile's ``[tensorrt] version``: 10.3-10.11 (weakly typed), 10.12-10.x
        (strongly typed, flags deprecated) or one major release from 11 on (strongly typed only)."""
        wanted = parse_version(version)
        if wanted[:2] < OLDEST_SUPPORTED:
            raise CompatibilityError(f"TensorRT {version} is older than the oldest supported (10.3)")
        if wanted[:2] < STRONGLY_TYPED_FROM:
            below: tuple[int, ...] = STRONGLY_TYPED_FROM
        elif wanted[0] == 10:
            below = (11, 0)
        else:
            below = (wanted[0] + 1, 0)
        return cls(_text(wanted[:2]), _text(below))

    @property
    def strongly_typed(self) -> bool:
        return parse_version(self.minimum)[:2] >= STRONGLY_TYPED_FROM

    def contains(self, version: str) -> bool:
        return parse_version(self.minimum) <= parse_version(version) < parse_version(self.below)

    def __str__(self) -> str:
        return f">={self.minimum},<{self.below}"


def require_installed(installed: str, made_for: TensorRTRange, target: str) -> None:
    """Refuse a TensorRT outside the bundle's range before anything is parsed or built."""
    if made_for.contains(installed):
        return
    hint = target_for(installed)
    raise CompatibilityError(
        f"this bundle was exported for TensorRT {made_for} (target {target!r}), but TensorRT {installed} is "
        f"installed. Re-export it for this TensorRT: edge-iqa export --target {hint} "
        "(or install a TensorRT in the bundle's range)")


def target_for(installed: str) -> str:
    """The shipped profile made for an installed TensorRT (kept in step with targets/*.toml)."""
    version = parse_version(installed)[:2]
    if version < OLDEST_SUPPORTED:
        return "onnxruntime (TensorRT older than 10.3 is not supported)"
    if version < STRONGLY_TYPED_FROM:
        return "jetson"
    return "desktop-gpu-10" if version[0] == 10 else "desktop-gpu"
