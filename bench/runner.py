"""Run a suite: export (or reuse) each bundle, measure every row in its own process, compute the
metrics against MOS and against the PyTorch FP32 reference, and assemble the report dict.

Nothing in a row can crash the run: an export failure, a worker crash, a timeout or a missing
backend becomes a row with ``status = "error"`` and the message.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console

from edge_iqa.bench import sensitivity as sens
from edge_iqa.bench.accuracy import accuracy_record, drift_record
from edge_iqa.bench.dataset import EvalSet, load_eval_sets
from edge_iqa.bench.machine import describe_machine
from edge_iqa.bench.mos_scale import ScoreToMOS, checkpoint_mappings
from edge_iqa.bench.suite import PYTORCH_COMPILE, PYTORCH_EAGER, RowSpec, Suite

REPORT_SCHEMA = "edge-iqa-bench-report"
REPORT_SCHEMA_VERSION = 1
PROBE_IMAGES = 16  # evaluation images preprocessed once per row for the timing loops


@dataclass(frozen=True)
class Plan:
    """One row to measure: a PyTorch reference or a bundle (exported here or given)."""

    row_id: str
    kind: str  # "pytorch" | "bundle"
    target: str
    precision: str
    compile: bool = False
    spec: RowSpec | None = None


def default_work_dir(suite: Suite) -> Path:
    return Path(tempfile.gettempdir()) / "edge-iqa-bench" / suite.name


def plan_rows(suite: Suite) -> list[Plan]:
    plans = []
    if suite.pytorch_eager:
        plans.append(Plan(PYTORCH_EAGER, "pytorch", "pytorch", "fp32"))
    plans.extend(Plan(r.row_id, "bundle", Path(r.target).stem, r.precision, spec=r) for r in suite.rows)
    if suite.pytorch_compile:  # last: compiling can take long, the other rows should not wait for it
        plans.append(Plan(PYTORCH_COMPILE, "pytorch", "pytorch-compile", "fp32", compile=True))
    return plans


def prepare_weights(suite: Suite, work_dir: Path) -> Path | None:
    """The checkpoint every row uses. ``random_weights``: one seeded untrained model saved once, so
    PyTorch and every bundle share the very same weights."""
    if not suite.random_weights:
        return suite.checkpoint
    import torch

    from edge_iqa.export.pipeline import load_model_for_export
    from edge_iqa.models.checkpoint import save_checkpoint

    path = work_dir / "weights" / f"{suite.model}-random-seed0.safetensors"
    if not path.is_file():
        torch.manual_seed(0)
        model, spec, transform, _ = load_model_for_export(suite.model, None, random_weights=True)
        save_checkpoint(model, path, model_name=suite.model, preprocess=spec, output_transform=transform,
                        metadata={"note": "untrained (random head, ImageNet backbone), seed 0: bench smoke test"})
    return path


def export_row(suite: Suite, plan: Plan, checkpoint: Path | None, work_dir: Path, reuse: bool) -> tuple[Path, float]:
    """The bundle of a row: the suite's given folder, a reused one, or a fresh export."""
    assert plan.spec is not None
    if plan.spec.bundle is not None:
        return plan.spec.bundle, 0.0
    out = work_dir / "bundles" / plan.row_id.replace("/", "-")
    if reuse and (out / "manifest.json").is_file():
        return out, 0.0
    from edge_iqa.export.pipeline import export_bundle

    start = time.perf_counter()
    # Trained weights: the mixed-precision search runs as in `edge-iqa export`, but the bench never
    # refuses a row for its budget (it measures the drift itself). Random weights: record only.
    export_bundle(suite.model, plan.spec.target, plan.precision, checkpoint=checkpoint, out=out,
                  accuracy_gate=suite.accuracy_gate or not suite.random_weights,
                  allow_over_budget=not suite.accuracy_gate, quiet=True)
    return out, time.perf_counter() - start


def manifest_accuracy_control(bundle: Path) -> dict[str, Any] | None:
    """The export's mixed-precision record (budget, drift, layers kept in floating point) for the report."""
    try:
        return json.loads((Path(bundle) / "manifest.json").read_text()).get("accuracy_control")
    except (OSError, ValueError):
        return None


def run_worker(job: dict[str, Any], work_dir: Path, timeout_s: int) -> dict[str, Any]:
    """Measure one row in a fresh interpreter; every failure mode becomes an error result."""
    jobs = work_dir / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    name = job["row_id"].replace("/", "-")
    job_path, result_path = jobs / f"{name}.job.json", jobs / f"{name}.result.json"
    result_path.unlink(missing_ok=True)
    job_path.write_text(json.dumps(job))
    try:
        proc = subprocess.run([sys.executable, "-m", "edge_iqa.bench.worker", str(job_path), str(result_path)],
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"status": "error", "error": f"timed out after {timeout_s}s (suite row_timeout_s / compile_timeout_s)"}
    if result_path.is_file():
        result = json.loads(result_path.read_text())
        if proc.returncode != 0 and result.get("status") == "ok":
            result = {"status": "error", "error": f"worker exited with {proc.returncode}"}
        return result
    tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-5:]
    return {"status": "error", "error": f"worker exited with {proc.returncode} without a result: {' | '.join(tail)}"}


def make_job(suite: Suite, plan: Plan, bundle: Path | None, checkpoint: Path | None, evalsets: list[EvalSet],
             sensitivity_items: list[sens.SensitivityItem]) -> dict[str, Any]:
    """The worker's job: every set's images in one list (in set order; the parent splits the scores),
    timing probes from the primary set."""
    return {
        "row_id": plan.row_id, "kind": plan.kind, "bundle": str(bundle) if bundle else None, "model": suite.model,
        "checkpoint": str(checkpoint) if checkpoint else None, "compile": plan.compile, "threads": suite.threads,
        "images": [str(p) for evalset in evalsets for p in evalset.paths],
        "probe_images": [str(p) for p in evalsets[0].paths[:PROBE_IMAGES]],
        "sensitivity_images": [str(item.path) for item in sensitivity_items],
        "speed": {"warmup": suite.speed.warmup, "iterations": suite.speed.iterations,
                  "repeats": suite.speed.repeats, "batch_sizes": list(suite.speed.batch_sizes),
                  "sweep_images": suite.speed.sweep_images, "concurrency": list(suite.speed.concurrency),
                  "concurrent_images": suite.speed.concurrent_images},
    }


def run_suite(suite: Suite, *, work_dir: Path | None = None, reuse_bundles: bool = False,
              console: Console | None = None) -> dict[str, Any]:
    """Measure every row of ``suite``; returns the report dict (see :mod:`edge_iqa.bench.report`)."""
    console = console or Console(stderr=True)
    work_dir = Path(work_dir) if work_dir else default_work_dir(suite)
    work_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    machine = describe_machine()
    evalsets, skipped_sets = load_eval_sets(suite.datasets)
    sets_text = ", ".join(f"{e.name} {len(e.paths)} images ({e.excluded_calibration} calibration images excluded)"
                          for e in evalsets)
    console.print(f"[bold]edge-iqa bench[/bold] suite {suite.name!r}: {suite.model}, {sets_text}, work dir {work_dir}")
    for skipped in skipped_sets:
        console.print(f"[yellow]evaluation set {skipped.name} skipped[/yellow]: {skipped.reason}")
    skip = sens.skip_reason(suite.sensitivity)
    items = [] if skip else sens.prepare_images(suite.sensitivity, work_dir / "sensitivity")
    if skip:
        console.print(f"[yellow]sensitivity skipped[/yellow]: {skip}")
    checkpoint = prepare_weights(suite, work_dir)

    results: dict[str, dict[str, Any]] = {}
    for plan in plan_rows(suite):
        row: dict[str, Any] = {"id": plan.row_id, "kind": plan.kind, "target": plan.target,
                               "precision": plan.precision, "status": "ok"}
        bundle = None
        if plan.kind == "bundle":
            try:
                bundle, export_s = export_row(suite, plan, checkpoint, work_dir, reuse_bundles)
                row.update(bundle=str(bundle), export_s=export_s, accuracy_control=manifest_accuracy_control(bundle))
            except Exception as exc:  # noqa: BLE001 - an export failure is a row, not a crash
                row.update(status="error", stage="export", error=f"{type(exc).__name__}: {exc}")
        if row["status"] == "ok":
            with console.status(f"measuring {plan.row_id} ..."):
                timeout = suite.compile_timeout_s if plan.compile and suite.compile_timeout_s else suite.row_timeout_s
                result = run_worker(make_job(suite, plan, bundle, checkpoint, evalsets, items), work_dir, timeout)
            if result.get("status") != "ok":
                row.update(status="error", stage="run", error=result.get("error", "unknown error"))
            else:
                row.update({k: result[k] for k in ("load", "info", "speed", "memory")})
                row["_scores"], row["_sensitivity_scores"] = result["scores"], result["sensitivity_scores"]
        mark = "[green]ok[/green]" if row["status"] == "ok" else f"[red]error[/red] ({row['error'][:200]})"
        console.print(f"  {plan.row_id}: {mark}")
        results[plan.row_id] = row

    mappings = checkpoint_mappings(suite.model, checkpoint)
    rows = finish_rows(list(results.values()), evalsets, items, suite, mappings)
    return {
        "schema": REPORT_SCHEMA,
        "schema_version": REPORT_SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "suite": suite.to_dict(),
        "suite_fingerprint": suite.fingerprint(),
        "machine": machine,
        "dataset": evalsets[0].record(),
        "datasets": {**{e.name: e.record() for e in evalsets}, **{s.name: s.record() for s in skipped_sets}},
        "weights": {"checkpoint": str(checkpoint) if checkpoint else "embedded",
                    "random_weights": suite.random_weights, "sha256": weights_sha256(suite.model, checkpoint)},
        "sensitivity": {"skipped": skip, "types": sorted({i.type_name for i in items}),
                        "references": sorted({i.reference for i in items}), "levels": [1, 2, 3, 4, 5]},
        "rows": rows,
        "elapsed_s": time.perf_counter() - started,
    }


def finish_rows(rows: list[dict[str, Any]], evalsets: list[EvalSet], items: list[sens.SensitivityItem],
                suite: Suite, mappings: dict[str, ScoreToMOS] | None = None) -> list[dict[str, Any]]:
    """Metrics of every measured row: vs MOS and vs the PyTorch FP32 scores per evaluation set (the
    primary set's also as ``accuracy`` / ``drift``), speed-up vs PyTorch."""
    reference = next((r for r in rows if r["id"] == PYTORCH_EAGER and r["status"] == "ok"), None)
    ref_parts = split_scores(reference["_scores"], evalsets) if reference else None
    ref_taus = sens.tau_by_type(items, reference["_sensitivity_scores"]) if reference and items else None
    ref_rate = throughput_bs1(reference) if reference else None
    for row in rows:
        if row["status"] != "ok":
            continue
        parts = split_scores(row.pop("_scores"), evalsets)
        sens_scores = row.pop("_sensitivity_scores")
        row["datasets"] = {}
        for index, evalset in enumerate(evalsets):
            row["datasets"][evalset.name] = set_metrics(parts[index], None if ref_parts is None else ref_parts[index],
                                                        evalset, suite, mappings or {})
        row["accuracy"] = row["datasets"][evalsets[0].name]["accuracy"]
        row["drift"] = row["datasets"][evalsets[0].name]["drift"]
        if items:
            taus = sens.tau_by_type(items, sens_scores)
            row["sensitivity"] = (sens.compare(ref_taus, taus, suite.budgets.sensitivity_tau) if ref_taus
                                  else {"per_type": {k: {"tau": v} for k, v in taus.items()}, "flagged": []})
        rate = throughput_bs1(row)
        row["speedup_vs_pytorch"] = rate / ref_rate if rate and ref_rate else None
        row["size_mb"] = row["info"].get("size_bytes", 0) / 1e6
    for row in rows:
        row.pop("_scores", None)
        row.pop("_sensitivity_scores", None)
    return rows


def split_scores(scores: list[float], evalsets: list[EvalSet]) -> list[Any]:
    """A worker's one score list cut back into its evaluation sets (the job listed them in order)."""
    import numpy as np

    sizes = [len(e.paths) for e in evalsets]
    if len(scores) != sum(sizes):
        raise ValueError(f"{len(scores)} scores for {sum(sizes)} evaluation images")
    return np.split(np.asarray(scores, dtype=np.float64), np.cumsum(sizes)[:-1])


def set_metrics(scores: Any, reference: Any, evalset: EvalSet, suite: Suite,
                mappings: dict[str, ScoreToMOS]) -> dict[str, Any]:
    """One set's accuracy (scores on its MOS scale where the checkpoint says how; else RMSE is
    dropped when the set names a mapping the checkpoint lacks) and drift (raw scores)."""
    mapping = mappings.get(evalset.mos_mapping) if evalset.mos_mapping else None
    on_mos_scale = mapping.apply(scores) if mapping else scores
    accuracy = accuracy_record(on_mos_scale, evalset.mos, n_resamples=suite.bootstrap_resamples)
    if evalset.mos_mapping and mapping is None:
        accuracy["rmse"] = None
        accuracy.get("ci", {}).pop("rmse", None)
        accuracy["rmse_note"] = (f"the checkpoint has no {evalset.mos_mapping!r} mapping: scores are not on this "
                                 "set's MOS scale, RMSE not reported")
    accuracy["mos_mapping"] = mapping.record() if mapping else None
    drift = drift_record(scores, reference, evalset.mos) if reference is not None else None
    return {"accuracy": accuracy, "drift": drift}


def weights_sha256(model: str, checkpoint: Path | None) -> str | None:
    """sha256 of the weights every row used (the embedded file for ``None``): which model a report measured."""
    from edge_iqa.checksums import sha256_file
    from edge_iqa.models import get_model_info
    from edge_iqa.models.checkpoint import packaged_weights_path

    try:
        default = get_model_info(model).default_weights
        path = checkpoint or (packaged_weights_path(default) if default else None)
        return sha256_file(path) if path else None
    except Exception:  # noqa: BLE001 - a report without the hash is still a report
        return None


def throughput_bs1(row: dict[str, Any]) -> float | None:
    try:
        return float(row["speed"]["throughput"]["1"]["images_per_s"])
    except (KeyError, TypeError):
        return None
