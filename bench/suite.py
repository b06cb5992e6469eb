"""The benchmark suite as data: which model, targets, precisions, images and budgets (``bench/suite.toml``).

Relative paths in a suite file are read relative to the file's own folder, so the same suite works
from any working directory. ``edge-iqa bench`` options (``--limit``, ``--checkpoint``, ...) override
the file through :func:`Suite.with_overrides`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import tomllib

from edge_iqa.errors import EdgeIQAError

PRECISIONS = ("fp32", "fp16", "int8")
#: Row ids of the PyTorch reference rows (every speed-up is a ratio to ``PYTORCH_EAGER``).
PYTORCH_EAGER = "pytorch/fp32"
PYTORCH_COMPILE = "pytorch-compile/fp32"


class SuiteError(EdgeIQAError, ValueError):
    """The suite file is missing, malformed or names something that does not exist."""


@dataclass(frozen=True)
class RowSpec:
    """One (target, precision) row; ``bundle`` reuses an existing bundle folder instead of exporting."""

    target: str
    precision: str
    bundle: Path | None = None

    @property
    def row_id(self) -> str:
        return f"{Path(self.target).stem}/{self.precision}"


@dataclass(frozen=True)
class DatasetSpec:
    labels: Path | None = None
    image_root: Path | None = None
    exclude_calibration: bool = True
    limit: int = 0  # 0: every image; N: a seeded sample of N
    seed: int = 0


@dataclass(frozen=True)
class SpeedSpec:
    warmup: int = 5
    iterations: int = 30  # batch-1 calls per repeat for the latency percentiles
    repeats: int = 3  # medians over repeats are what the regression check compares
    batch_sizes: tuple[int, ...] = (1, 4, 16)
    sweep_images: int = 32  # images per repeat at each batch size
    concurrency: tuple[int, ...] = (1, 2)  # Python threads calling score() at once
    concurrent_images: int = 16  # images per thread


@dataclass(frozen=True)
class SensitivitySpec:
    enabled: bool = True
    references: Path | None = None
    count: int = 4
    types: tuple[str, ...] = ()  # empty: all 25
    seed: int = 0


@dataclass(frozen=True)
class Budgets:
    """Regression budgets (see :mod:`edge_iqa.bench.regression`)."""

    delta_srocc: float = 0.005  # |SROCC(row) - SROCC(PyTorch FP32)|
    srocc_drop: float = 0.01  # SROCC below the baseline's
    throughput_drop: float = 0.10  # batch-1 images/s below the baseline's (same machine only)
    latency_rise: float = 0.15  # batch-1 p50 above the baseline's (same machine only)
    sensitivity_tau: float = 0.2  # Kendall tau moving toward 0 vs PyTorch FP32, on any type
    max_score_error: float = 4.0  # max |score(row) - score(PyTorch FP32)| of one photo, MOS points
    p99_score_error: float = 2.0  # the same, 99th percentile over the photos


@dataclass(frozen=True)
class Suite:
    name: str
    model: str
    rows: tuple[RowSpec, ...]
    dataset: DatasetSpec
    checkpoint: Path | None = None
    random_weights: bool = False
    threads: int = 2
    pytorch_eager: bool = True
    pytorch_compile: bool = True
    accuracy_gate: bool = False  # the bench measures accuracy itself; export refuses nothing
    row_timeout_s: int = 1800
    compile_timeout_s: int = 0  # the torch.compile row's limit (0: row_timeout_s)
    bootstrap_resamples: int = 1000  # for the 95% CIs of SROCC/PLCC/KRCC/RMSE
    speed: SpeedSpec = field(default_factory=SpeedSpec)
    sensitivity: SensitivitySpec = field(default_factory=SensitivitySpec)
    budgets: Budgets = field(default_factory=Budgets)
    source: str = ""

    def with_overrides(self, **changes: Any) -> Suite:
        """A copy with top-level fields, or ``dataset.limit`` / ``speed.repeats`` style dotted keys, changed."""
        top: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        for key, value in changes.items():
            if value is None:
                continue
            if "." in key:
                part, name = key.split(".", 1)
                nested.setdefault(part, {})[name] = value
            else:
                top[key] = value
        for part, values in nested.items():
            top[part] = dataclasses.replace(getattr(self, part), **values)
        return dataclasses.replace(self, **top)

    def to_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, Path):
                return str(value)
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            return value

        return plain(dataclasses.asdict(self))


def default_suite_path() -> Path:
    return Path(str(resources.files("edge_iqa.bench") / "suite.toml"))


def load_suite(path: str | Path | None = None) -> Suite:
    """Read and validate a suite file (default: the shipped ``suite.toml``)."""
    path = Path(path) if path is not None else default_suite_path()
    if not path.is_file():
        raise SuiteError(f"suite file {path} does not exist; pass --suite PATH (see bench/suite.toml)")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"{path}: not valid TOML ({exc})") from exc
    return parse_suite(raw, base_dir=path.parent, source=str(path))


_TOP = {"name", "model", "checkpoint", "random_weights", "threads", "pytorch_eager", "pytorch_compile",
        "accuracy_gate", "row_timeout_s", "compile_timeout_s", "bootstrap_resamples", "rows", "dataset", "speed",
        "sensitivity", "budgets"}


def _table(raw: dict[str, Any], key: str, cls: type, source: str, convert: dict[str, Any] | None = None) -> Any:
    values = raw.get(key, {})
    if not isinstance(values, dict):
        raise SuiteError(f"{source}: [{key}] must be a table")
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise SuiteError(f"{source}: unknown [{key}] keys {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    values = dict(values)
    for name, fn in (convert or {}).items():
        if name in values:
            values[name] = fn(values[name])
    return cls(**values)


def parse_suite(raw: dict[str, Any], base_dir: Path, source: str = "<suite>") -> Suite:
    unknown = sorted(set(raw) - _TOP)
    if unknown:
        raise SuiteError(f"{source}: unknown keys {', '.join(unknown)}; allowed: {', '.join(sorted(_TOP))}")

    def rel(value: str | None) -> Path | None:
        if value in (None, ""):
            return None
        p = Path(str(value)).expanduser()
        return p if p.is_absolute() else (base_dir / p)

    rows: list[RowSpec] = []
    for entry in raw.get("rows", []):
        if not isinstance(entry, dict) or "target" not in entry:
            raise SuiteError(f"{source}: each [[rows]] needs a 'target' (a shipped name or a TOML path)")
        precisions = entry.get("precisions", [entry["precision"]] if "precision" in entry else list(PRECISIONS))
        bad = [p for p in precisions if p not in PRECISIONS]
        if bad:
            raise SuiteError(f"{source}: unknown precision(s) {bad} for target {entry['target']!r}; use {PRECISIONS}")
        bundle = rel(entry.get("bundle"))
        if bundle is not None and len(precisions) != 1:
            raise SuiteError(f"{source}: a row with 'bundle' must name exactly one 'precision'")
        target = entry["target"]
        if target.endswith(".toml"):
            target = str(rel(target))
        rows.extend(RowSpec(target, p, bundle) for p in precisions)
    ids = [r.row_id for r in rows]
    if len(set(ids)) != len(ids):
        raise SuiteError(f"{source}: duplicate rows {sorted({i for i in ids if ids.count(i) > 1})}")

    dataset = _table(raw, "dataset", DatasetSpec, source, {"labels": rel, "image_root": rel})
    speed = _table(raw, "speed", SpeedSpec, source, {"batch_sizes": tuple, "concurrency": tuple})
    if speed.repeats < 1 or speed.iterations < 3 or 1 not in speed.batch_sizes:
        raise SuiteError(f"{source}: [speed] needs repeats >= 1, iterations >= 3 and batch size 1 in batch_sizes")
    sensitivity = _table(raw, "sensitivity", SensitivitySpec, source, {"references": rel, "types": tuple})
    budgets = _table(raw, "budgets", Budgets, source)
    return Suite(
        name=str(raw.get("name", Path(source).stem)), model=str(raw.get("model", "edge_hybrid_n")),
        rows=tuple(rows), dataset=dataset, checkpoint=rel(raw.get("checkpoint")),
        random_weights=bool(raw.get("random_weights", False)), threads=int(raw.get("threads", 2)),
        pytorch_eager=bool(raw.get("pytorch_eager", True)), pytorch_compile=bool(raw.get("pytorch_compile", True)),
        accuracy_gate=bool(raw.get("accuracy_gate", False)), row_timeout_s=int(raw.get("row_timeout_s", 1800)),
        compile_timeout_s=int(raw.get("compile_timeout_s", 0)),
        bootstrap_resamples=int(raw.get("bootstrap_resamples", 1000)),
        speed=speed, sensitivity=sensitivity, budgets=budgets, source=source,
    )
