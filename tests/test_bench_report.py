"""Report files: schema-versioned JSON, Markdown table, self-contained HTML with embedded PNGs."""

from __future__ import annotations

import json

from edge_iqa.bench import regression
from edge_iqa.bench.report import TABLE_COLUMNS, goals, markdown_table, write_report
from edge_iqa.bench.suite import Budgets
from tests.helpers_bench import synthetic_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_report_files(tmp_path) -> None:
    report = synthetic_report(int8_blind_to="jpeg")
    report.pop("_mos"), report.pop("_raw")
    results = regression.check_report(report, None, Budgets())
    report["regression"] = {"baseline": None, **regression.results_record(results)}
    files = write_report(report, tmp_path / "out")

    data = json.loads(files["json"].read_text())
    assert data["schema"] == "edge-iqa-bench-report" and data["schema_version"] == 1
    for key in ("created", "suite", "machine", "dataset", "rows", "sensitivity", "goals", "regression"):
        assert key in data
    row = next(r for r in data["rows"] if r["id"] == "onnxruntime/int8")
    for key in ("accuracy", "drift", "speed", "sensitivity", "speedup_vs_pytorch", "size_mb", "memory", "load"):
        assert key in row
    assert {"fingerprint", "cpu", "logical_cores", "ram_gib", "libraries"} <= set(data["machine"])

    markdown = files["markdown"].read_text()
    assert "| " + " | ".join(TABLE_COLUMNS) + " |" in markdown
    assert markdown_table(data) in markdown
    int8_line = next(line for line in markdown.splitlines() if line.startswith("| onnxruntime | int8 |"))
    assert f"{row['accuracy']['srocc']:.4f}" in int8_line and "4.00x" in int8_line
    assert "error: ExportError: synthetic failure" in markdown
    assert "CPU export goals" in markdown and "## Regression check" in markdown

    page = files["html"].read_text()
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert "<table>" in page and "<th>SROCC</th>" in page
    assert page.count('src="data:image/png;base64,') == 2
    assert "http" not in page.split("<body>")[1].split("<h2>Machine")[0]  # nothing external to fetch

    for name in ("pareto", "sensitivity"):
        png = tmp_path / "out" / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5000


def test_goals_read_the_right_rows() -> None:
    report = synthetic_report(error_row=False)
    table = {(g["goal"][:4], g["row"]): g for g in goals(report)}
    assert table[("Open", "cpu/int8")]["met"] is None  # row not in this report: not claimed
    int8 = table[("|SRO", "onnxruntime/int8")]
    row = next(r for r in report["rows"] if r["id"] == "onnxruntime/int8")
    assert int8["value"] == abs(row["drift"]["delta_srocc"])
    assert int8["met"] == (int8["value"] <= 0.005)
