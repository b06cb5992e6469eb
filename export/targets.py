"""Target profiles: what a deployment target needs from export, as data (``targets/*.toml``).

A profile names the runtime, the precisions it accepts, the attention form of the exported graph,
the thread/batch settings recorded for the runtime, the accuracy budget of quantization and the
calibration recipe. The shipped profiles live in the package ``edge_iqa.targets``; a user passes a
path to their own TOML file instead of a name. ``inherits = "other"`` starts from another profile
(a shipped name, or a file name relative to the inheriting file) and overrides its keys; tables
(``[quantization]``, ``[parity]``) merge key by key.
"""

from __future__ import annotations

import fnmatch
import sys
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from edge_iqa._compat import tomllib
from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.errors import TargetError
from edge_iqa.runtime.tensorrt.versions import TensorRTRange

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

RUNTIMES = ("onnxruntime", "openvino", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
INPUT_DTYPES = ("float32", "uint8")
ATTENTION_FORMS = ("onnx_attention", "ort_mha", "matmul_softmax")
CALIBRATION_METHODS = ("minmax", "mean_minmax", "percentile", "entropy")
# The standard ONNX Attention op exists from opset 23 on.
MIN_ATTENTION_OPSET = 23
TARGETS_PACKAGE = "edge_iqa.targets"

_TOP_KEYS = {"name", "description", "runtime", "precision", "precisions", "attention_form", "opset", "threads",
             "batch", "max_batch", "input_size", "input_dtype", "accuracy_budget", "max_score_error", "p99_score_error",
             "quantization", "parity", "inherits", "tensorrt"}
_QUANT_KEYS = {"method", "calibration_samples", "seed", "keep_fp", "sensitivity_images", "max_kept_blocks",
               "smooth_quant_alpha", "bias_correction", "calibration_selection", "model_type", "overflow_fix",
               "channel_alignment", "activation_equalization", "equalization_steps_per_octave", "score_correction",
               "qat_steps", "qat_learning_rate", "qat_distorted_share", "qat_activation_scales"}
# Bias correction after INT8 (the mean shift rounded weights give each output channel, taken out of its bias):
# NNCF's fast or full one for OpenVINO; for ONNX Runtime the fast, empirical one (export/bias_correction.py).
BIAS_CORRECTIONS = ("none", "fast", "full")
_BIAS_CORRECTIONS_BY_RUNTIME = {"openvino": BIAS_CORRECTIONS, "onnxruntime": ("none", "fast")}
# Which shipped images calibrate: a seeded random draw, or spread evenly over the MOS range.
CALIBRATION_SELECTIONS = ("random", "mos_spread")
# NNCF model type: "auto" = transformer when the graph has attention (Attention/Softmax ops).
MODEL_TYPES = ("auto", "transformer", "default")
# NNCF overflow fix (weights of the affected convolutions use 7 of 8 bits, for CPUs without VNNI).
OVERFLOW_FIXES = ("first_layer", "enable", "disable")
# "affine": the INT8 artifact's output gets the least-squares fit of the FP32 scores on the calibration
# photos appended (export/score_correction.py); ONNX Runtime and OpenVINO artifacts only.
SCORE_CORRECTIONS = ("none", "affine")
#: ONNX Runtime's fine-tuning: the activations' quantization scales kept as calibrated, or trained too.
QAT_ACTIVATION_SCALES = ("fixed", "trained")
_NNCF_ONLY = ("smooth_quant_alpha", "model_type", "overflow_fix", "channel_alignment")
_TENSORRT_KEYS = {"version", "workspace_mib", "opt_batch", "dla_core", "cuda_python"}
_PARITY_KEYS = {"images", "atol", "min_rank_agreement", "accuracy_images"}


@dataclass(frozen=True)
class QuantizationSpec:
    """Post-training quantization recipe. ``keep_fp``: PyTorch module paths (fnmatch patterns)
    whose layers stay in floating point; a pattern matching a module covers its submodules.

    When INT8 misses the accuracy budget, export keeps the most sensitive blocks in floating point
    (``edge_iqa.export.accuracy_control``): each block's sensitivity is measured on
    ``sensitivity_images`` held-out images, and at most ``max_kept_blocks`` blocks are given back."""

    method: str = "minmax"
    calibration_samples: int = 128
    seed: int = 0
    keep_fp: tuple[str, ...] = ()
    sensitivity_images: int = 32
    max_kept_blocks: int = 8
    # NNCF (OpenVINO) only: SmoothQuant alpha for the MatMuls of attention models (None: NNCF's
    # default, a negative value turns SmoothQuant off).
    smooth_quant_alpha: float | None = None
    # Bias correction after INT8: NNCF's fast or full one (OpenVINO), the fast empirical one (ONNX Runtime,
    # export/bias_correction.py), or none.
    bias_correction: str = "fast"
    # NNCF only: model type ("auto": transformer for graphs with attention) and overflow fix
    # (NNCF's default "first_layer" gives the first quantized convolutions 7-bit weights).
    model_type: str = "auto"
    overflow_fix: str = "first_layer"
    # NNCF only: channel alignment (cross-layer equalization of consecutive convolutions' channel
    # ranges, so one per-tensor activation scale fits every channel; off in NNCF by default).
    channel_alignment: bool = False
    # "random": the first calibration_samples of the seeded permutation; "mos_spread": evenly spaced
    # over the images sorted by MOS (every quality level calibrates), the rest held out as before.
    calibration_selection: str = "random"
    # Every runtime: SmoothQuant-style alpha of the exact rescaling of MobileNetV2's linear bottleneck
    # streams before INT8 (``edge_iqa.export.equalize``); 0 = off, (0, 1] = on.
    activation_equalization: float = 0.0
    # Its scales on the grid 2^(k / n): 1 = powers of two (the rescaled network bit-identical in float);
    # more evens the channels out further, the float scores then moving by float32 last bits.
    equalization_steps_per_octave: int = 1
    # Every runtime but TensorRT: "affine" appends ``slope * score + intercept``, fitted on the
    # calibration photos against FP32, to the INT8 artifact's output (``edge_iqa.export.score_correction``).
    score_correction: str = "none"
    # OpenVINO and ONNX Runtime: steps of quantization-aware fine-tuning of the INT8 network against the
    # FP32 model's scores on the calibration photos (``edge_iqa.export.qat``; 0 = post-training INT8
    # only), and its Adam learning rate (cosine-decayed to 0).
    qat_steps: int = 0
    qat_learning_rate: float = 1e-6
    # The share of the fine-tuning's crops given one random synthetic distortion (any of the 25 types of
    # ``edge_iqa.data.distortions`` at level 1-5) before the model sees them: photos of every quality,
    # made from the calibration photos, for the INT8 network to match the FP32 one on. 0 = none.
    qat_distorted_share: float = 0.0
    # ONNX Runtime: "trained" fine-tunes the activations' quantization scales with the weights (LSQ's
    # gradient; ``edge_iqa.export.qdq_network``), "fixed" keeps the calibrated ones.
    qat_activation_scales: str = "fixed"


@dataclass(frozen=True)
class ParitySpec:
    """The gate between PyTorch and the exported FP32 graph, on ``images`` held-out calibration
    images; the FP16/INT8 accuracy budget is checked on ``accuracy_images`` of them."""

    images: int = 32
    atol: float = 1e-3
    min_rank_agreement: float = 0.999
    accuracy_images: int = 128


@dataclass(frozen=True)
class TensorRTSpec:
    """How the device builds the engine: the TensorRT version the graph must parse on (decides the
    attention form and opset that are allowed, and the family of releases the bundle is made for:
    10.3-10.11 weakly typed, 10.12-10.x or one 11+ major strongly typed), workspace, the batch the
    engine is tuned for, an optional DLA core (Jetson Orin NX/AGX) with GPU fallback, and the
    cuda-python requirement matching the device's CUDA (JetPack 6: CUDA 12)."""

    version: str
    workspace_mib: int = 1024
    opt_batch: int = 1
    dla_core: int | None = None
    cuda_python: str = "cuda-python>=12,<13"

    @property
    def tensorrt_range(self) -> TensorRTRange:
        return TensorRTRange.for_version(self.version)

    @property
    def strongly_typed(self) -> bool:
        return self.tensorrt_range.strongly_typed


@dataclass(frozen=True)
class TargetProfile:
    name: str
    description: str
    runtime: str
    precision: str
    precisions: tuple[str, ...]
    attention_form: str
    opset: int = 23
    threads: int = 0
    batch: int = 1
    max_batch: int = 16
    input_size: tuple[int, int] | None = None
    # The image input of single-input models: "float32" rows the runtime normalises (N, 3, H, W), or
    # "uint8" pixels (N, H, W, 3) that the network scales and normalises itself (manifest schema 2).
    input_dtype: str = "float32"
    accuracy_budget: float = 0.01
    # Per-photo budgets on the output (MOS) scale: max and 99th-percentile |score(model) - score(FP32)|
    # over the validation photos; None = not budgeted.
    max_score_error: float | None = None
    p99_score_error: float | None = None
    quantization: QuantizationSpec = field(default_factory=QuantizationSpec)
    parity: ParitySpec = field(default_factory=ParitySpec)
    tensorrt: TensorRTSpec | None = None
    source: str = ""  # where the profile was read from (informational)

    def resolve_precision(self, precision: str | None) -> str:
        """The requested precision, or the profile's default; refused if the target lacks it."""
        chosen = precision or self.precision
        if chosen not in self.precisions:
            raise TargetError(f"target {self.name!r} does not offer precision {chosen!r}; "
                              f"choose one of {', '.join(self.precisions)}")
        return chosen

    def pixel_input(self, input_names: tuple[str, ...], spec: PreprocessSpec) -> bool:
        """Whether a model with these inputs and preprocessing is exported taking uint8 pixels:
        ``input_dtype = "uint8"``, a single image input (an image + depth network keeps float32 rows
        for both) and a spec that normalises. A model that normalises inside its own forward (TOPIQ,
        ``normalize = False``) keeps float32 rows: OpenVINO fuses the pixels' ``/ 255`` into the
        model's own normalisation, and the runtime could no longer rebuild the scaling exactly."""
        return self.input_dtype == "uint8" and tuple(input_names) == ("image",) and spec.normalize

    def keeps_fp(self, module_paths: list[str] | tuple[str, ...]) -> bool:
        """True when any of the module paths (a layer and its ancestors) matches ``keep_fp``."""
        return any(fnmatch.fnmatchcase(path, pattern)
                   for pattern in self.quantization.keep_fp for path in module_paths)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["precisions"] = list(self.precisions)
        data["input_size"] = list(self.input_size) if self.input_size else None
        data["quantization"]["keep_fp"] = list(self.quantization.keep_fp)
        return data


def list_targets() -> list[str]:
    """Names of the shipped target profiles."""
    root = resources.files(TARGETS_PACKAGE)
    return sorted(entry.name[: -len(".toml")] for entry in root.iterdir() if entry.name.endswith(".toml"))


def load_target(name_or_path: str | Path) -> TargetProfile:
    """A shipped profile by name (``cpu``) or a user's TOML file by path."""
    raw, source = _read_with_inheritance(str(name_or_path), base_dir=None, seen=())
    return _validate(raw, source)


def _read_one(ref: str, base_dir: Path | None) -> tuple[dict[str, Any], str, Path | None]:
    path = Path(ref)
    if base_dir is not None and not path.is_absolute() and (base_dir / path).is_file():
        path = base_dir / path
    if path.suffix == ".toml" or path.is_file():
        if not path.is_file():
            raise TargetError(f"target file {path} does not exist; pass a shipped target name "
                              f"({', '.join(list_targets())}) or the path of a TOML profile")
        text, source, parent = path.read_text(encoding="utf-8"), str(path), path.parent
    else:
        entry = resources.files(TARGETS_PACKAGE) / f"{ref}.toml"
        if not entry.is_file():
            raise TargetError(f"unknown target {ref!r}; shipped targets: {', '.join(list_targets())} "
                              "(see `edge-iqa targets`), or pass the path of your own TOML profile")
        text, source, parent = entry.read_text(encoding="utf-8"), f"{TARGETS_PACKAGE}/{ref}.toml", None
    try:
        return tomllib.loads(text), source, parent
    except tomllib.TOMLDecodeError as exc:
        raise TargetError(f"{source}: not valid TOML ({exc})") from exc


def _read_with_inheritance(ref: str, base_dir: Path | None, seen: tuple[str, ...]) -> tuple[dict[str, Any], str]:
    raw, source, parent_dir = _read_one(ref, base_dir)
    if source in seen:
        raise TargetError(f"target profiles inherit in a cycle: {' -> '.join([*seen, source])}")
    parent_ref = raw.pop("inherits", None)
    if parent_ref is None:
        return raw, source
    if not isinstance(parent_ref, str):
        raise TargetError(f"{source}: 'inherits' must be a target name or a file path")
    parent, _ = _read_with_inheritance(parent_ref, parent_dir, (*seen, source))
    return _merge(parent, raw), source


def _merge(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    merged = dict(parent)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _check_type(source: str, key: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    # bool is an int subclass: refuse `threads = true`.
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise TargetError(f"{source}: '{key}' must be {names}, got {value!r}")
    return value


def _choice(source: str, key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise TargetError(f"{source}: '{key}' is {value!r}; choose one of {', '.join(allowed)}")
    return value


def _validate(raw: dict[str, Any], source: str) -> TargetProfile:
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise TargetError(f"{source}: unknown keys {', '.join(unknown)}; allowed: {', '.join(sorted(_TOP_KEYS))}")
    for key in ("name", "runtime", "precision", "attention_form"):
        if key not in raw:
            raise TargetError(f"{source}: missing the required key '{key}'")
    name = _check_type(source, "name", raw["name"], str)
    runtime = _choice(source, "runtime", raw["runtime"], RUNTIMES)
    precisions = tuple(raw.get("precisions", [raw["precision"]]))
    for p in precisions:
        _choice(source, "precisions", p, PRECISIONS)
    precision = _choice(source, "precision", raw["precision"], PRECISIONS)
    if precision not in precisions:
        raise TargetError(f"{source}: default precision {precision!r} is not among precisions {list(precisions)}")
    form = _choice(source, "attention_form", raw["attention_form"], ATTENTION_FORMS)
    if form == "ort_mha" and runtime != "onnxruntime":
        raise TargetError(f"{source}: attention_form 'ort_mha' (com.microsoft.MultiHeadAttention) runs only in "
                          f"ONNX Runtime, not {runtime}; use 'onnx_attention' or 'matmul_softmax'")
    opset = _check_type(source, "opset", raw.get("opset", 23), int)
    if form in ("onnx_attention", "ort_mha") and opset < MIN_ATTENTION_OPSET:
        raise TargetError(f"{source}: attention_form {form!r} needs opset >= {MIN_ATTENTION_OPSET} (the ONNX "
                          f"Attention op), got {opset}; raise the opset or use 'matmul_softmax'")
    threads = _check_type(source, "threads", raw.get("threads", 0), int)
    batch = _check_type(source, "batch", raw.get("batch", 1), int)
    max_batch = _check_type(source, "max_batch", raw.get("max_batch", 16), int)
    if threads < 0 or batch < 1 or max_batch < batch:
        raise TargetError(f"{source}: need threads >= 0 and 1 <= batch <= max_batch, got threads={threads}, "
                          f"batch={batch}, max_batch={max_batch}")
    input_size = raw.get("input_size")
    if input_size is not None:
        if (not isinstance(input_size, list) or len(input_size) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 32 for v in input_size)):
            raise TargetError(f"{source}: 'input_size' must be [height, width], integers >= 32, got {input_size!r}")
        input_size = (input_size[0], input_size[1])
    input_dtype = _choice(source, "input_dtype", raw.get("input_dtype", "float32"), INPUT_DTYPES)
    if input_dtype == "uint8" and runtime == "tensorrt":
        raise TargetError(f"{source}: input_dtype 'uint8' is not offered for TensorRT (its uint8 network inputs "
                          "were never built or run here); use 'float32'")
    budget = float(_check_type(source, "accuracy_budget", raw.get("accuracy_budget", 0.01), (int, float)))
    if not 0 <= budget <= 1:
        raise TargetError(f"{source}: 'accuracy_budget' is a max |delta SROCC| in [0, 1], got {budget}")
    score_errors = {}
    for key in ("max_score_error", "p99_score_error"):
        value = raw.get(key)
        if value is not None:
            value = float(_check_type(source, key, value, (int, float)))
            if not value > 0:
                raise TargetError(f"{source}: '{key}' is a |score difference| on the MOS scale, > 0; got {value}")
        score_errors[key] = value
    return TargetProfile(
        name=name, description=str(raw.get("description", "")), runtime=runtime, precision=precision,
        precisions=precisions, attention_form=form, opset=opset, threads=threads, batch=batch,
        max_batch=max_batch, input_size=input_size, input_dtype=input_dtype, accuracy_budget=budget, **score_errors,
        quantization=_quantization(raw.get("quantization", {}), source, runtime),
        parity=_parity(raw.get("parity", {}), source), source=source,
        tensorrt=_tensorrt(raw.get("tensorrt"), source, runtime, form, opset, batch, max_batch),
    )


def _quantization(raw: Any, source: str, runtime: str) -> QuantizationSpec:
    raw = _check_type(source, "quantization", raw, dict)
    unknown = sorted(set(raw) - _QUANT_KEYS)
    if unknown:
        raise TargetError(f"{source}: unknown [quantization] keys {', '.join(unknown)}; "
                          f"allowed: {', '.join(sorted(_QUANT_KEYS))}")
    method = _choice(source, "quantization.method", raw.get("method", "minmax"), CALIBRATION_METHODS)
    if runtime == "tensorrt" and method == "percentile":
        raise TargetError(f"{source}: NVIDIA modelopt calibrates with 'minmax' or 'entropy', not 'percentile'")
    if runtime == "tensorrt" and method == "mean_minmax":
        raise TargetError(f"{source}: NVIDIA modelopt calibrates with 'minmax' or 'entropy', not 'mean_minmax'")
    if runtime == "openvino" and method == "entropy":
        raise TargetError(f"{source}: NNCF (OpenVINO) has no entropy calibration; use 'minmax' or 'percentile'")
    samples = _check_type(source, "quantization.calibration_samples", raw.get("calibration_samples", 128), int)
    if samples < 1:
        raise TargetError(f"{source}: 'quantization.calibration_samples' must be >= 1, got {samples}")
    keep = raw.get("keep_fp", [])
    if not isinstance(keep, list) or not all(isinstance(p, str) and p for p in keep):
        raise TargetError(f"{source}: 'quantization.keep_fp' must be a list of module-path patterns")
    sensitivity = _check_type(source, "quantization.sensitivity_images", raw.get("sensitivity_images", 32), int)
    max_kept = _check_type(source, "quantization.max_kept_blocks", raw.get("max_kept_blocks", 8), int)
    if sensitivity < 3 or max_kept < 0:
        raise TargetError(f"{source}: [quantization] needs sensitivity_images >= 3 (SROCC needs 3 scores) and "
                          f"max_kept_blocks >= 0, got {sensitivity} and {max_kept}")
    alpha = raw.get("smooth_quant_alpha")
    if alpha is not None:
        alpha = float(_check_type(source, "quantization.smooth_quant_alpha", alpha, (int, float)))
        if alpha > 1:
            raise TargetError(f"{source}: 'quantization.smooth_quant_alpha' must be <= 1 (negative: off), got {alpha}")
    if "bias_correction" in raw and runtime not in _BIAS_CORRECTIONS_BY_RUNTIME:
        raise TargetError(f"{source}: 'quantization.bias_correction' is an OpenVINO and ONNX Runtime setting; a "
                          f"{runtime} INT8 graph is quantized by its own tool: remove the key")
    bias = _choice(source, "quantization.bias_correction", raw.get("bias_correction", "fast"),
                   _BIAS_CORRECTIONS_BY_RUNTIME.get(runtime, BIAS_CORRECTIONS))
    equalization = float(_check_type(source, "quantization.activation_equalization",
                                     raw.get("activation_equalization", 0.0), (int, float)))
    if not 0 <= equalization <= 1:
        raise TargetError(f"{source}: 'quantization.activation_equalization' is an alpha in (0, 1] (0: off), "
                          f"got {equalization}")
    steps_per_octave = _check_type(source, "quantization.equalization_steps_per_octave",
                                   raw.get("equalization_steps_per_octave", 1), int)
    if steps_per_octave < 1:
        raise TargetError(f"{source}: 'quantization.equalization_steps_per_octave' is the equalization scales' "
                          f"grid, 2^(k / n), n >= 1 (1: powers of two), got {steps_per_octave}")
    correction = _choice(source, "quantization.score_correction", raw.get("score_correction", "none"),
                         SCORE_CORRECTIONS)
    if runtime == "tensorrt" and correction != "none":
        raise TargetError(f"{source}: score_correction is appended to ONNX Runtime and OpenVINO artifacts; a TensorRT "
                          "engine is built on the device from the Q/DQ graph: set score_correction = 'none'")
    qat_steps = _check_type(source, "quantization.qat_steps", raw.get("qat_steps", 0), int)
    qat_rate = float(_check_type(source, "quantization.qat_learning_rate", raw.get("qat_learning_rate", 1e-6),
                                 (int, float)))
    if qat_steps < 0 or not 0 < qat_rate < 1:
        raise TargetError(f"{source}: [quantization] needs qat_steps >= 0 (0: off) and 0 < qat_learning_rate < 1, "
                          f"got {qat_steps} and {qat_rate}")
    distorted = float(_check_type(source, "quantization.qat_distorted_share", raw.get("qat_distorted_share", 0.0),
                                  (int, float)))
    if not 0 <= distorted <= 1:
        raise TargetError(f"{source}: 'quantization.qat_distorted_share' is a share of the fine-tuning crops, "
                          f"in [0, 1] (0: none), got {distorted}")
    if runtime == "tensorrt" and qat_steps:
        raise TargetError(f"{source}: qat_steps fine-tunes OpenVINO and ONNX Runtime INT8 networks; a TensorRT engine "
                          "is built on the device from the Q/DQ graph: set qat_steps = 0")
    activation_scales = _choice(source, "quantization.qat_activation_scales",
                                raw.get("qat_activation_scales", "fixed"), QAT_ACTIVATION_SCALES)
    if activation_scales != "fixed" and runtime != "onnxruntime":
        raise TargetError(f"{source}: qat_activation_scales = 'trained' fine-tunes the scales of ONNX Runtime's Q/DQ "
                          f"graph; {runtime} keeps its calibrated scales: remove the key")
    nncf_only = [key for key in _NNCF_ONLY if key in raw]
    if runtime != "openvino" and nncf_only:
        raise TargetError(f"{source}: {', '.join(nncf_only)} are NNCF (OpenVINO) settings, not {runtime} ones")
    return QuantizationSpec(method=method, calibration_samples=samples,
                            seed=_check_type(source, "quantization.seed", raw.get("seed", 0), int), keep_fp=tuple(keep),
                            sensitivity_images=sensitivity, max_kept_blocks=max_kept, smooth_quant_alpha=alpha,
                            bias_correction=bias,
                            model_type=_choice(source, "quantization.model_type", raw.get("model_type", "auto"),
                                               MODEL_TYPES),
                            channel_alignment=_check_type(source, "quantization.channel_alignment",
                                                          raw.get("channel_alignment", False), bool),
                            overflow_fix=_choice(source, "quantization.overflow_fix",
                                                 raw.get("overflow_fix", "first_layer"), OVERFLOW_FIXES),
                            calibration_selection=_choice(source, "quantization.calibration_selection",
                                                          raw.get("calibration_selection", "random"),
                                                          CALIBRATION_SELECTIONS),
                            activation_equalization=equalization, score_correction=correction,
                            equalization_steps_per_octave=steps_per_octave,
                            qat_steps=qat_steps, qat_learning_rate=qat_rate,
                            qat_distorted_share=distorted, qat_activation_scales=activation_scales)


def _parity(raw: Any, source: str) -> ParitySpec:
    raw = _check_type(source, "parity", raw, dict)
    unknown = sorted(set(raw) - _PARITY_KEYS)
    if unknown:
        raise TargetError(f"{source}: unknown [parity] keys {', '.join(unknown)}; "
                          f"allowed: {', '.join(sorted(_PARITY_KEYS))}")
    images = _check_type(source, "parity.images", raw.get("images", 32), int)
    atol = float(_check_type(source, "parity.atol", raw.get("atol", 1e-3), (int, float)))
    agreement = float(_check_type(source, "parity.min_rank_agreement", raw.get("min_rank_agreement", 0.999),
                                  (int, float)))
    accuracy_images = _check_type(source, "parity.accuracy_images", raw.get("accuracy_images", 128), int)
    # Rank agreement and SROCC need at least 3 scores.
    if images < 3 or accuracy_images < 3 or atol <= 0 or not 0 <= agreement <= 1:
        raise TargetError(f"{source}: [parity] needs images >= 3, accuracy_images >= 3, atol > 0 and "
                          "min_rank_agreement in [0, 1]")
    return ParitySpec(images=images, atol=atol, min_rank_agreement=agreement, accuracy_images=accuracy_images)


def _tensorrt(raw: Any, source: str, runtime: str, form: str, opset: int, batch: int,
              max_batch: int) -> TensorRTSpec | None:
    """The ``[tensorrt]`` table: required for TensorRT targets, refused for the others. The graph
    the profile asks for must parse on that TensorRT version (checked here, before any export)."""
    if runtime != "tensorrt":
        if raw is not None:
            raise TargetError(f"{source}: a [tensorrt] table only applies to runtime = 'tensorrt'")
        return None
    if raw is None:
        raise TargetError(f"{source}: TensorRT targets need a [tensorrt] table with at least version = '10.3'")
    raw = _check_type(source, "tensorrt", raw, dict)
    unknown = sorted(set(raw) - _TENSORRT_KEYS)
    if unknown:
        raise TargetError(f"{source}: unknown [tensorrt] keys {', '.join(unknown)}; "
                          f"allowed: {', '.join(sorted(_TENSORRT_KEYS))}")
    version = str(_check_type(source, "tensorrt.version", raw.get("version"), str))
    from edge_iqa.errors import CompatibilityError
    from edge_iqa.runtime.tensorrt.static_check import opset_range, supported_ops

    try:
        TensorRTRange.for_version(version)
        low, high = opset_range(version)
        attention_parsed = "Attention" in supported_ops(version)
    except CompatibilityError as exc:
        raise TargetError(f"{source}: {exc}") from exc
    if not low <= opset <= high:
        raise TargetError(f"{source}: opset {opset} is outside TensorRT {version}'s parser range {low}..{high}")
    if form == "ort_mha" or (form == "onnx_attention" and not attention_parsed):
        raise TargetError(f"{source}: TensorRT {version} does not parse attention_form {form!r}; use "
                          "'matmul_softmax' (TensorRT fuses MatMul-Softmax-MatMul itself)"
                          + ("" if form == "ort_mha" else " or TensorRT >= 10.14 for 'onnx_attention'"))
    opt_batch = _check_type(source, "tensorrt.opt_batch", raw.get("opt_batch", batch), int)
    if not batch <= opt_batch <= max_batch:
        raise TargetError(f"{source}: tensorrt.opt_batch must lie in batch..max_batch ({batch}..{max_batch})")
    workspace = _check_type(source, "tensorrt.workspace_mib", raw.get("workspace_mib", 1024), int)
    if workspace < 64:
        raise TargetError(f"{source}: tensorrt.workspace_mib must be at least 64, got {workspace}")
    dla_core = raw.get("dla_core")
    if dla_core is not None and _check_type(source, "tensorrt.dla_core", dla_core, int) < 0:
        raise TargetError(f"{source}: tensorrt.dla_core must be >= 0 (omit it to run on the GPU)")
    if dla_core is not None and not batch == opt_batch == max_batch:
        raise TargetError(f"{source}: a DLA engine needs a static batch: set batch = max_batch = "
                          f"tensorrt.opt_batch (got {batch}/{opt_batch}/{max_batch}); with a batch range every "
                          "layer falls back to the GPU")
    cuda_python = _check_type(source, "tensorrt.cuda_python", raw.get("cuda_python", "cuda-python>=12,<13"), str)
    if not cuda_python.startswith("cuda-python"):
        raise TargetError(f"{source}: tensorrt.cuda_python is a pip requirement such as 'cuda-python>=12,<13'")
    return TensorRTSpec(version=version, workspace_mib=workspace, opt_batch=opt_batch, dla_core=dla_core,
                        cuda_python=cuda_python)
