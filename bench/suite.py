"""The benchmark suite as data: which model, targets, precisions, images and budgets (``bench/suite.toml``).

Relative paths in a suite file are read relative to the file's own folder, so the same suite works
from any working directory. ``edge-iqa bench`` options (``--limit``, ``--checkpoint``, ...) override
the file through :func:`Suite.with_overrides`.

A suite scores one or more evaluation sets (``[[datasets]]``; a single ``[dataset]`` table is one
set). The first set is the primary one: the main table, the Pareto plot and the unsuffixed
regression checks use it; every set gets its own accuracy, drift and |dscore| figures.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
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
    """One evaluation set. ``labels`` (and ``image_root``) are relative to ``folder`` when one is given,
    else to the suite file; ``folder_env`` names an environment variable that replaces ``folder``."""

    name: str = ""
    labels: Path | None = None
    image_root: Path | None = None
    folder: Path | None = None
    folder_env: str = ""
    optional: bool = False  # labels absent: the set is skipped with the reason (else the run stops)
    exclude_calibration: bool = True
    limit: int = 0  # 0: every image; N: a seeded sample of N
    seed: int = 0
    # The checkpoint's training-dataset mapping (edge_iqa.train.multi.DatasetMapping name, e.g.
    # "biq2021/train") that puts model scores on this set's MOS scale, for RMSE; "": scores as they are.
    mos_mapping: str = ""
    role: str = ""  # what the set measures and what it must not be used for (printed in the report)

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
    datasets: tuple[DatasetSpec, ...]
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

    @property
    def dataset(self) -> DatasetSpec:
        """The primary evaluation set (the first)."""
        return self.datasets[0]

    def with_overrides(self, **changes: Any) -> Suite:
        """A copy with top-level fields, or ``speed.repeats`` style dotted keys, changed;
        ``dataset.limit`` style keys change every evaluation set."""
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
            if part == "dataset":
                top["datasets"] = tuple(dataclasses.replace(d, **values) for d in top.get("datasets", self.datasets))
            else:
                top[part] = dataclasses.replace(getattr(self, part), **values)
        return dataclasses.replace(self, **top)

    def with_datasets(self, names: list[str] | None = None, limits: dict[str, int] | None = None) -> Suite:
        """Only the evaluation sets ``names`` (in the suite's order), and per-set ``limits``."""
        known = [d.name for d in self.datasets]
        unknown = sorted(set(names or []) - set(known)) + sorted(set(limits or {}) - set(known))
        if unknown:
            raise SuiteError(f"no evaluation set {', '.join(unknown)} in suite {self.name!r}; its sets are "
                             f"{', '.join(known)}")
        chosen = [d for d in self.datasets if names is None or d.name in names]
        if not chosen:
            raise SuiteError("no evaluation set selected; name at least one")
        limits = limits or {}
        return dataclasses.replace(self, datasets=tuple(
            dataclasses.replace(d, limit=limits[d.name]) if d.name in limits else d for d in chosen))

    def fingerprint(self) -> str:
        """Hash of what makes two runs' figures comparable: model, threads, evaluation sets (name,
        label file name, calibration exclusion, sample), speed protocol and sensitivity photos.
        Rows are not in it (a check compares the rows both runs have), nor the weights (the check's
        subject), budgets or paths (machine-specific)."""
        sets = [[d.name, d.labels.name if d.labels else None, d.exclude_calibration, d.limit, d.seed]
                for d in self.datasets]
        sens = self.sensitivity
        key = {"name": self.name, "model": self.model, "threads": self.threads, "datasets": sets,
               "speed": dataclasses.asdict(self.speed),
               "sensitivity": [sens.count, list(sens.types), sens.seed]}
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=list).encode()).hexdigest()[:16]

    def default_baseline_path(self) -> Path:
        """``baselines/NAME.json`` beside the suite file: each suite has its own baseline."""
        folder = Path(self.source).parent if self.source else Path("bench")
        return folder / "baselines" / f"{self.name}.json"

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
        "accuracy_gate", "row_timeout_s", "compile_timeout_s", "bootstrap_resamples", "rows", "dataset", "datasets",
        "speed", "sensitivity", "budgets"}


def _fields(values: Any, cls: type, where: str, source: str, convert: dict[str, Any] | None = None) -> Any:
    if not isinstance(values, dict):
        raise SuiteError(f"{source}: {where} must be a table")
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise SuiteError(f"{source}: unknown {where} keys {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    values = dict(values)
    for name, fn in (convert or {}).items():
        if name in values:
            values[name] = fn(values[name])
    return cls(**values)


def _table(raw: dict[str, Any], key: str, cls: type, source: str, convert: dict[str, Any] | None = None) -> Any:
    return _fields(raw.get(key, {}), cls, f"[{key}]", source, convert)


def _datasets(raw: dict[str, Any], rel: Any, source: str) -> tuple[DatasetSpec, ...]:
    """``[[datasets]]`` (several sets) or ``[dataset]`` (one); paths resolved, names unique."""
    if "dataset" in raw and "datasets" in raw:
        raise SuiteError(f"{source}: give either [dataset] (one set) or [[datasets]] (several), not both")
    entries = raw["datasets"] if "datasets" in raw else [raw.get("dataset", {})]
    if not isinstance(entries, list) or not entries:
        raise SuiteError(f"{source}: [[datasets]] must hold at least one evaluation set")
    specs = []
    for index, entry in enumerate(entries):
        where = f"[[datasets]] #{index + 1}" if "datasets" in raw else "[dataset]"
        spec = _fields(entry, DatasetSpec, where, source)
        env_folder = os.environ.get(spec.folder_env) if spec.folder_env else None
        folder = Path(env_folder).expanduser() if env_folder else rel(spec.folder)

        def inside(value: Any, folder: Path | None = folder) -> Path | None:
            if value in (None, ""):
                return None
            path = Path(str(value)).expanduser()
            return path if path.is_absolute() or folder is None else folder / path

        labels = inside(spec.labels) if folder is not None else rel(spec.labels)
        root = inside(spec.image_root) if folder is not None else rel(spec.image_root)
        name = spec.name or (labels.parent.name if labels is not None else f"set{index + 1}")
        specs.append(dataclasses.replace(spec, name=name, labels=labels, image_root=root, folder=folder))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise SuiteError(f"{source}: evaluation set names must be unique, got {names}")
    return tuple(specs)


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

    datasets = _datasets(raw, rel, source)
    speed = _table(raw, "speed", SpeedSpec, source, {"batch_sizes": tuple, "concurrency": tuple})
    if speed.repeats < 1 or speed.iterations < 3 or 1 not in speed.batch_sizes:
        raise SuiteError(f"{source}: [speed] needs repeats >= 1, iterations >= 3 and batch size 1 in batch_sizes")
    sensitivity = _table(raw, "sensitivity", SensitivitySpec, source, {"references": rel, "types": tuple})
    budgets = _table(raw, "budgets", Budgets, source)
    return Suite(
        name=str(raw.get("name", Path(source).stem)), model=str(raw.get("model", "edge_hybrid_n")),
        rows=tuple(rows), datasets=datasets, checkpoint=rel(raw.get("checkpoint")),
        random_weights=bool(raw.get("random_weights", False)), threads=int(raw.get("threads", 2)),
        pytorch_eager=bool(raw.get("pytorch_eager", True)), pytorch_compile=bool(raw.get("pytorch_compile", True)),
        accuracy_gate=bool(raw.get("accuracy_gate", False)), row_timeout_s=int(raw.get("row_timeout_s", 1800)),
        compile_timeout_s=int(raw.get("compile_timeout_s", 0)),
        bootstrap_resamples=int(raw.get("bootstrap_resamples", 1000)),
        speed=speed, sensitivity=sensitivity, budgets=budgets, source=source,
    )
