"""Regression check of a report against a committed baseline, and JUnit XML for CI.

Checks, one per row x check (budgets from the suite's ``[budgets]``):

========================  =====================================================================
``status``                the row ran (fails when it errors and the baseline row did not)
``delta_srocc``           |SROCC(row) - SROCC(PyTorch FP32)| <= budget on the same images
``score_error``           p99 and max |score(row) - score(PyTorch FP32)| over the photos (MOS points)
                          <= ``p99_score_error`` / ``max_score_error``: single photos, not the ranking
``srocc``                 SROCC >= baseline SROCC - ``srocc_drop``
``throughput``            batch-1 images/s >= baseline x (1 - ``throughput_drop``)   (same machine)
``latency_p50``           batch-1 p50 <= baseline x (1 + ``latency_rise``)          (same machine)
``sensitivity``           no distortion type's tau moved toward 0 by more than the budget
========================  =====================================================================

With several evaluation sets, the accuracy checks (``delta_srocc``, ``score_error``, ``srocc``) run
on every set: unsuffixed on the primary (first) set, ``delta_srocc@NAME`` ... on the others.

A baseline belongs to one suite: it records the suite's name and :meth:`Suite.fingerprint`
(evaluation sets, samples, threads, speed protocol), and a report of another suite, or of the same
suite changed, is refused (:class:`BaselineMismatch`) rather than compared. Each suite keeps its
own baseline, ``bench/baselines/NAME.json`` (:meth:`Suite.default_baseline_path`).

Speed is compared only when the machine fingerprint (hardware only, see
:mod:`edge_iqa.bench.machine`) equals the baseline's; otherwise those checks are *skipped* with
the reason. Speed figures are medians over the suite's repeats, so one noisy repeat does not fail
a check; a budget is the noise a check tolerates on top of that.
"""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge_iqa.bench.suite import PYTORCH_EAGER, Budgets

BASELINE_SCHEMA = "edge-iqa-bench-baseline"
BASELINE_SCHEMA_VERSION = 2  # 2: suite_fingerprint and per-set figures
PASS, FAIL, SKIP = "pass", "fail", "skip"
ACCURACY_CHECKS = ("delta_srocc", "score_error", "srocc")


class BaselineMismatch(ValueError):
    """The baseline was written by another suite (or by this suite before it changed)."""


@dataclass(frozen=True)
class CheckResult:
    row: str
    check: str
    status: str  # pass | fail | skip
    message: str
    value: float | None = None
    limit: float | None = None

    @property
    def name(self) -> str:
        return f"{self.row}::{self.check}"


def dig(record: Any, *keys: str) -> Any:
    """``record[k1][k2]...``, or None where a level is missing (rows of failed runs lack sections)."""
    for key in keys:
        if not isinstance(record, dict) or key not in record:
            return None
        record = record[key]
    return record


def accuracy_summary(record: dict[str, Any] | None) -> dict[str, Any]:
    """SROCC, delta SROCC and |dscore| of one evaluation set (``{"accuracy", "drift"}``)."""
    return {
        "srocc": dig(record, "accuracy", "srocc"),
        "delta_srocc": dig(record, "drift", "delta_srocc"),
        "max_abs_dscore": dig(record, "drift", "max_abs_diff"),
        "p99_abs_dscore": dig(record, "drift", "p99_abs_diff"),
    }


def row_summary(row: dict[str, Any]) -> dict[str, Any]:
    """The numbers of a report row the baseline keeps (the primary set's at the top level)."""
    return {
        "status": row["status"],
        "error": row.get("error"),
        **accuracy_summary(row),
        "datasets": {name: accuracy_summary(record) for name, record in (row.get("datasets") or {}).items()},
        "images_per_s_bs1": dig(row, "speed", "throughput", "1", "images_per_s"),
        "images_per_s_bs1_repeats": dig(row, "speed", "throughput", "1", "images_per_s_repeats"),
        "latency_p50_ms": dig(row, "speed", "latency_bs1", "p50_ms"),
        "latency_p50_ms_repeats": dig(row, "speed", "latency_bs1", "p50_ms_repeats"),
    }


def baseline_from_report(report: dict[str, Any]) -> dict[str, Any]:
    machine = report["machine"]
    return {
        "schema": BASELINE_SCHEMA,
        "schema_version": BASELINE_SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "suite": report["suite"]["name"],
        "suite_fingerprint": report.get("suite_fingerprint"),
        "dataset": copy.deepcopy(report["dataset"]),
        "datasets": copy.deepcopy(report.get("datasets") or {}),
        "machine": {k: machine.get(k) for k in ("fingerprint", "cpu", "logical_cores", "ram_gib", "gpus", "libraries")},
        "rows": {row["id"]: row_summary(row) for row in report["rows"]},
    }


def read_baseline(path: str | Path) -> dict[str, Any]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("schema") != BASELINE_SCHEMA or int(data.get("schema_version", 0)) > BASELINE_SCHEMA_VERSION:
        raise ValueError(f"{path}: not an edge-iqa bench baseline (schema {BASELINE_SCHEMA} <= v"
                         f"{BASELINE_SCHEMA_VERSION}); refresh it with `edge-iqa bench --update-baseline`")
    return data


def ensure_same_suite(report: dict[str, Any], baseline: dict[str, Any], path: str | Path) -> None:
    """Refuse a baseline written by another suite, or by this suite with other sets, samples,
    threads or speed protocol: its figures would not be comparable."""
    name, fingerprint = report["suite"]["name"], report.get("suite_fingerprint")
    then_name, then_fingerprint = baseline.get("suite"), baseline.get("suite_fingerprint")
    if then_name == name and then_fingerprint == fingerprint:
        return
    source = report["suite"].get("source") or "SUITE.toml"
    written_by = (f"suite {then_name!r} (fingerprint {then_fingerprint})" if then_fingerprint else
                  f"suite {then_name!r} before baselines recorded their suite's fingerprint")
    raise BaselineMismatch(
        f"baseline {path} was written by {written_by}, this run is suite "
        f"{name!r} (fingerprint {fingerprint}): a suite is compared only with a baseline written by the same suite "
        "with the same sets, samples, threads and speed protocol (command-line overrides such as --limit, "
        "--threads or --repeats change it). Use that suite's own baseline, or write one for this suite: "
        f"edge-iqa bench --suite {source} --update-baseline")


def write_baseline(report: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(baseline_from_report(report), indent=2) + "\n", encoding="utf-8")
    return path


def check_report(report: dict[str, Any], baseline: dict[str, Any] | None, budgets: Budgets) -> list[CheckResult]:
    """Every (row, check) result; a report with any ``fail`` is a regression."""
    baseline_rows = (baseline or {}).get("rows", {})
    same_machine = baseline is not None and dig(baseline, "machine", "fingerprint") == report["machine"]["fingerprint"]
    machine_note = ("no baseline" if baseline is None else
                    f"machine {report['machine']['fingerprint']} differs from the baseline's "
                    f"{dig(baseline, 'machine', 'fingerprint')}: speed not compared")
    primary = report.get("dataset", {}).get("name")
    extra_sets = [name for name, record in (report.get("datasets") or {}).items()
                  if name != primary and not record.get("skipped")]
    results: list[CheckResult] = []
    for row in report["rows"]:
        base = baseline_rows.get(row["id"])
        checks = _check_row(row, base, budgets, same_machine, machine_note)
        results.extend(_only_same_images(checks, *_same_images(report.get("dataset", {}),
                                                               (baseline or {}).get("dataset"))))
        for name in extra_sets:
            suffix = f"@{name}"
            if row["status"] != "ok":
                results.extend(CheckResult(row["id"], c + suffix, SKIP, "row failed") for c in ACCURACY_CHECKS)
                continue
            now = row_summary(row)["datasets"].get(name, {})
            then = dig(base, "datasets", name)
            checks = _accuracy_checks(row["id"], now, then, budgets, suffix)
            same = _same_images(report["datasets"][name], dig(baseline, "datasets", name)) if baseline else (True, "")
            results.extend(_only_same_images(checks, *same))
    return results


def _only_same_images(checks: list[CheckResult], same: bool, note: str) -> list[CheckResult]:
    """SROCC on other images is not comparable: the baseline SROCC checks become skips."""
    if same:
        return checks
    return [CheckResult(c.row, c.check, SKIP, note) if c.check.split("@")[0] == "srocc" and c.status != SKIP else c
            for c in checks]


def _same_images(now: dict[str, Any], then: dict[str, Any] | None) -> tuple[bool, str]:
    if then is None:
        return True, ""
    if now.get("image_list_sha256") and then.get("image_list_sha256"):
        same = now["image_list_sha256"] == then["image_list_sha256"]
    else:
        same = now.get("images") == then.get("images") and Path(str(now.get("labels"))).name == \
            Path(str(then.get("labels"))).name
    return same, (f"the baseline scored other images ({then.get('images')} vs {now.get('images')}, "
                  "see dataset.image_list_sha256): SROCC not compared; use the baseline's --limit")


def _check_row(row: dict[str, Any], base: dict[str, Any] | None, budgets: Budgets, same_machine: bool,
               machine_note: str) -> list[CheckResult]:
    rid = row["id"]
    if row["status"] != "ok":
        if base is not None and base.get("status") != "ok":
            status = CheckResult(rid, "status", SKIP, f"errors as in the baseline: {row.get('error')}")
        else:
            status = CheckResult(rid, "status", FAIL, f"row failed: {row.get('error')}")
        skipped = [CheckResult(rid, c, SKIP, "row failed") for c in
                   ("delta_srocc", "score_error", "srocc", "throughput", "latency_p50", "sensitivity")]
        return [status, *skipped]
    out = [CheckResult(rid, "status", PASS, "ran")]
    now = row_summary(row)
    out += _accuracy_checks(rid, now, base, budgets)

    out.append(_speed_check(rid, "throughput", now["images_per_s_bs1"], (base or {}).get("images_per_s_bs1"),
                            budgets.throughput_drop, higher_is_better=True, same_machine=same_machine,
                            machine_note=machine_note))
    out.append(_speed_check(rid, "latency_p50", now["latency_p50_ms"], (base or {}).get("latency_p50_ms"),
                            budgets.latency_rise, higher_is_better=False, same_machine=same_machine,
                            machine_note=machine_note))

    sens = row.get("sensitivity")
    if not sens or "budget" not in sens:
        out.append(CheckResult(rid, "sensitivity", SKIP, "no sensitivity comparison (skipped or no reference)"))
    elif rid == PYTORCH_EAGER:
        out.append(CheckResult(rid, "sensitivity", SKIP, "the reference itself"))
    else:
        flagged = sens["flagged"]
        worst = sens["max_toward_zero"]
        message = (f"tau moved toward 0 by more than {sens['budget']} on: {', '.join(flagged)}" if flagged
                   else f"largest move of tau toward 0: {worst:.3f} <= {sens['budget']}")
        out.append(CheckResult(rid, "sensitivity", FAIL if flagged else PASS, message, worst, sens["budget"]))
    return out


def _accuracy_checks(rid: str, now: dict[str, Any], base: dict[str, Any] | None, budgets: Budgets,
                     suffix: str = "") -> list[CheckResult]:
    """delta SROCC vs PyTorch FP32, single-photo |dscore|, SROCC vs the baseline: on one evaluation set."""
    out = []
    delta = now.get("delta_srocc")
    if rid == PYTORCH_EAGER:
        out.append(CheckResult(rid, "delta_srocc" + suffix, SKIP, "the reference itself"))
    elif delta is None:
        out.append(CheckResult(rid, "delta_srocc" + suffix, SKIP, "no PyTorch FP32 reference scores"))
    else:
        ok = abs(delta) <= budgets.delta_srocc
        out.append(CheckResult(rid, "delta_srocc" + suffix, PASS if ok else FAIL,
                               f"|delta SROCC| {abs(delta):.4f} {'<=' if ok else '>'} {budgets.delta_srocc}",
                               abs(delta), budgets.delta_srocc))

    out.append(_score_error_check(rid, now, budgets, suffix))

    base_srocc = (base or {}).get("srocc")
    if now.get("srocc") is None or base_srocc is None:
        out.append(CheckResult(rid, "srocc" + suffix, SKIP,
                               "no baseline SROCC" if now.get("srocc") is not None else "no SROCC"))
    else:
        floor = base_srocc - budgets.srocc_drop
        ok = now["srocc"] >= floor
        out.append(CheckResult(rid, "srocc" + suffix, PASS if ok else FAIL,
                               f"SROCC {now['srocc']:.4f} vs baseline {base_srocc:.4f} (floor {floor:.4f})",
                               now["srocc"], floor))
    return out


def _score_error_check(rid: str, now: dict[str, Any], budgets: Budgets, suffix: str = "") -> CheckResult:
    """Single photos: p99 and max |dscore| on the model's output scale (MOS points of the model)."""
    p99, worst = now.get("p99_abs_dscore"), now.get("max_abs_dscore")
    if rid == PYTORCH_EAGER:
        return CheckResult(rid, "score_error" + suffix, SKIP, "the reference itself")
    if worst is None or p99 is None:
        return CheckResult(rid, "score_error" + suffix, SKIP, "no PyTorch FP32 reference scores")
    ok = p99 <= budgets.p99_score_error and worst <= budgets.max_score_error
    ratio = max(p99 / budgets.p99_score_error, worst / budgets.max_score_error)
    return CheckResult(rid, "score_error" + suffix, PASS if ok else FAIL,
                       f"|dscore| p99 {p99:.2f} (budget {budgets.p99_score_error:g}), max {worst:.2f} (budget "
                       f"{budgets.max_score_error:g}) MOS points", ratio, 1.0)


def _speed_check(rid: str, check: str, value: float | None, base: float | None, budget: float, *,
                 higher_is_better: bool, same_machine: bool, machine_note: str) -> CheckResult:
    if not same_machine:
        return CheckResult(rid, check, SKIP, machine_note)
    if value is None or base is None:
        return CheckResult(rid, check, SKIP, "not in the baseline" if value is not None else "not measured")
    limit = base * (1 - budget) if higher_is_better else base * (1 + budget)
    ok = value >= limit if higher_is_better else value <= limit
    change = (value / base - 1) * 100
    unit = "images/s" if higher_is_better else "ms"
    return CheckResult(rid, check, PASS if ok else FAIL,
                       f"{value:.2f} {unit} vs baseline {base:.2f} ({change:+.1f}%, limit {limit:.2f})", value, limit)


def failures(results: list[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.status == FAIL]


def results_record(results: list[CheckResult]) -> dict[str, Any]:
    return {"passed": not failures(results), "failures": len(failures(results)),
            "skipped": sum(r.status == SKIP for r in results), "checks": [asdict(r) for r in results]}


def write_junit(results: list[CheckResult], path: str | Path, suite_name: str = "edge-iqa-bench") -> Path:
    """One ``<testcase>`` per row x check; ``<failure>`` / ``<skipped>`` carry the message."""
    suite = ET.Element("testsuite", name=suite_name, tests=str(len(results)),
                       failures=str(len(failures(results))), errors="0",
                       skipped=str(sum(r.status == SKIP for r in results)))
    for result in results:
        case = ET.SubElement(suite, "testcase", classname=f"edge_iqa.bench.{result.row}", name=result.check)
        if result.status == FAIL:
            ET.SubElement(case, "failure", message=result.message, type="regression").text = result.message
        elif result.status == SKIP:
            ET.SubElement(case, "skipped", message=result.message)
        else:
            ET.SubElement(case, "system-out").text = result.message
    root = ET.Element("testsuites", name=suite_name)
    root.append(suite)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path
