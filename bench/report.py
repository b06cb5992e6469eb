"""Write a bench report: ``report.json`` (schema-versioned), ``report.md``, a self-contained
``report.html`` (inline CSS, plots embedded as base64 PNG), ``pareto.png`` (SROCC vs throughput)
and ``sensitivity.png`` (Kendall tau per distortion type)."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

from edge_iqa.bench.regression import dig
from edge_iqa.bench.suite import PYTORCH_EAGER

TABLE_COLUMNS = ("target", "precision", "status", "size (MB)", "SROCC", "Δ SROCC", "PLCC", "p50 (ms)", "p99 (ms)",
                 "images/s", "speed-up")

# The CPU-export issue's acceptance figures, computed from the rows of one run.
GOAL_SPEEDUP = 4.0
GOAL_INT8_DELTA = 0.005
GOAL_FP16_DELTA = 0.001




def print_json_report(report: dict[str, Any], path: Path | None, indent: int = 1) -> None:
    """A measuring script's result: printed, and written to ``path`` too when one is given (tools
    such as NNCF print progress bars on stdout, so redirecting stdout is not a clean report)."""
    text = json.dumps(report, indent=indent)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    print(text)


def _fmt(value: Any, digits: int = 4, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for row in report["rows"]:
        ok = row["status"] == "ok"
        status = "ok" if ok else f"error: {_short(row.get('error', ''))}"
        speedup = row.get("speedup_vs_pytorch")
        rows.append([
            row["target"], row["precision"], status,
            _fmt(row.get("size_mb"), 2) if ok else "–",
            _fmt(dig(row, "accuracy", "srocc")),
            _fmt(dig(row, "drift", "delta_srocc"), signed=True) if row["id"] != PYTORCH_EAGER else "(ref)",
            _fmt(dig(row, "accuracy", "plcc")),
            _fmt(dig(row, "speed", "latency_bs1", "p50_ms"), 1),
            _fmt(dig(row, "speed", "latency_bs1", "p99_ms"), 1),
            _fmt(dig(row, "speed", "throughput", "1", "images_per_s"), 1),
            f"{speedup:.2f}x" if speedup else "–",
        ])
    return rows


def _short(text: str, limit: int = 90) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def goals(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The CPU-export issue's three figures: OpenVINO INT8 speed-up over PyTorch FP32 eager at
    batch 1, |delta SROCC| of INT8, FP16 drift (|delta SROCC| and mean |score diff|)."""
    by_id = {row["id"]: row for row in report["rows"]}
    out = []
    ov_int8 = by_id.get("cpu/int8")
    speedup = ov_int8.get("speedup_vs_pytorch") if ov_int8 else None
    out.append({"goal": "OpenVINO INT8 images/s at batch 1 vs PyTorch FP32 eager", "row": "cpu/int8",
                "value": speedup, "target": f">= {GOAL_SPEEDUP}x",
                "met": None if speedup is None else speedup >= GOAL_SPEEDUP})
    for rid in ("cpu/int8", "onnxruntime/int8"):
        delta = dig(by_id.get(rid), "drift", "delta_srocc")
        out.append({"goal": "|SROCC(INT8) - SROCC(PyTorch FP32)|", "row": rid,
                    "value": None if delta is None else abs(delta), "target": f"<= {GOAL_INT8_DELTA}",
                    "met": None if delta is None else abs(delta) <= GOAL_INT8_DELTA})
    for name in extra_sets(report):  # issue 19: the INT8 bundle's drift on every evaluation set
        delta = dig(by_id.get("cpu/int8"), "datasets", name, "drift", "delta_srocc")
        out.append({"goal": f"|SROCC(INT8) - SROCC(PyTorch FP32)| on {name}", "row": "cpu/int8",
                    "value": None if delta is None else abs(delta), "target": f"<= {GOAL_INT8_DELTA}",
                    "met": None if delta is None else abs(delta) <= GOAL_INT8_DELTA})
    for rid in ("cpu/fp16", "onnxruntime/fp16"):
        delta = dig(by_id.get(rid), "drift", "delta_srocc")
        out.append({"goal": "FP16 drift |SROCC(FP16) - SROCC(PyTorch FP32)|", "row": rid,
                    "value": None if delta is None else abs(delta), "target": f"<= {GOAL_FP16_DELTA}",
                    "met": None if delta is None else abs(delta) <= GOAL_FP16_DELTA,
                    "mean_abs_score_diff": dig(by_id.get(rid), "drift", "mean_abs_diff")})
    return out


def extra_sets(report: dict[str, Any]) -> list[str]:
    """The evaluation sets after the primary one that ran (skipped sets have no figures)."""
    primary = report.get("dataset", {}).get("name")
    return [name for name, record in (report.get("datasets") or {}).items()
            if name != primary and not record.get("skipped")]


def sets_table(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Every evaluation set: images, label file, what it is for, or why it was skipped."""
    body = []
    for index, (name, record) in enumerate((report.get("datasets") or {}).items()):
        if record.get("skipped"):
            body.append([name, "skipped", "–", f"{record.get('role', '')} **Skipped**: {record['skipped']}".strip()])
            continue
        images = f"{record['images']} of {record['label_rows']}"
        if record.get("excluded_calibration_images"):
            images += f" ({record['excluded_calibration_images']} calibration images excluded)"
        body.append([name + (" (primary)" if index == 0 else ""), images, f"`{Path(str(record['labels'])).name}`",
                     record.get("role") or ""])
    return ["set", "images", "labels", "what it measures"], body


# --- Markdown -----------------------------------------------------------------------------------------
def markdown_table(report: dict[str, Any]) -> str:
    """The main table (target, precision, status, size, SROCC, ... speed-up) as Markdown."""
    return _md_table(TABLE_COLUMNS, table_rows(report))


def _md_table(header: list[str] | tuple[str, ...], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _ci(row: dict[str, Any], name: str) -> str:
    value, ci = dig(row, "accuracy", name), dig(row, "accuracy", "ci", name)
    if value is None:
        return "–"
    return f"{value:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else f"{value:.4f}"


def accuracy_table(rows: list[dict[str, Any]], name: str | None = None) -> tuple[list[str], list[list[str]]]:
    """SROCC/PLCC/KRCC/RMSE with CIs, rank agreement and |dscore| of each row on one set (None: primary)."""
    def view(row: dict[str, Any]) -> dict[str, Any]:
        return row if name is None else (dig(row, "datasets", name) or {})

    header = ["row", "SROCC [95% CI]", "PLCC [95% CI]", "PLCC (logistic)", "KRCC [95% CI]", "RMSE [95% CI]",
              "rank agreement", "max |Δscore|", "p99 |Δscore|", "mean |Δscore|"]
    if name is not None:
        header.insert(2, "Δ SROCC")
    body = []
    for r in rows:
        v = view(r)
        cells = [r["id"], _ci(v, "srocc"), _ci(v, "plcc"), _fmt(dig(v, "accuracy", "plcc_logistic")), _ci(v, "krcc"),
                 _ci(v, "rmse"), _fmt(dig(v, "drift", "rank_agreement"), 5),
                 _fmt(dig(v, "drift", "max_abs_diff"), 4), _fmt(dig(v, "drift", "p99_abs_diff"), 4),
                 _fmt(dig(v, "drift", "mean_abs_diff"), 4)]
        if name is not None:
            cells.insert(2, _fmt(dig(v, "drift", "delta_srocc"), signed=True) if r["id"] != PYTORCH_EAGER else "(ref)")
        body.append(cells)
    return header, body


def detail_tables(report: dict[str, Any]) -> dict[str, tuple[list[str], list[list[str]]]]:
    ok_rows = [r for r in report["rows"] if r["status"] == "ok"]
    accuracy = accuracy_table(ok_rows)
    per_set = {f"accuracy@{name}": accuracy_table(ok_rows, name) for name in extra_sets(report)}
    sizes = sorted({int(s) for r in ok_rows for s in (dig(r, "speed", "throughput") or {})})
    conc = sorted({int(s) for r in ok_rows for s in (dig(r, "speed", "concurrency") or {})})
    speed = (["row", "p50 / p90 / p99 (ms)", *[f"img/s bs{s}" for s in sizes],
              *[f"img/s {c} thread{'s' if c > 1 else ''}" for c in conc], "end-to-end ms/img",
              "first score (s)", "peak RSS (MB)", "threads", "backend"],
             [[r["id"],
               " / ".join(_fmt(dig(r, "speed", "latency_bs1", k), 1) for k in ("p50_ms", "p90_ms", "p99_ms")),
               *[_fmt(dig(r, "speed", "throughput", str(s), "images_per_s"), 1) for s in sizes],
               *[_fmt(dig(r, "speed", "concurrency", str(c), "images_per_s"), 1) for c in conc],
               _fmt(dig(r, "speed", "end_to_end_ms_per_image"), 1),
               _fmt(dig(r, "load", "time_to_first_score_s"), 2), _fmt(dig(r, "memory", "peak_rss_mb_speed"), 0),
               _threads(r), _backend(r)] for r in ok_rows])
    tables = {"accuracy": accuracy, **per_set, "speed": speed}
    if mixed := mixed_precision_table(report):
        tables["mixed_precision"] = mixed
    types = report["sensitivity"]["types"]
    sens_rows = [r for r in ok_rows if r.get("sensitivity")]
    if types and sens_rows:
        header = ["distortion", *[r["id"] for r in sens_rows]]
        body = []
        for name in types:
            cells = [name]
            for r in sens_rows:
                rec = r["sensitivity"]["per_type"].get(name, {})
                cell = _fmt(rec.get("tau"), 2)
                if "delta_tau" in rec and r["id"] != PYTORCH_EAGER:
                    cell += f" ({rec['delta_tau']:+.2f}){' ⚠' if rec.get('flagged') else ''}"
                cells.append(cell)
            body.append(cells)
        tables["sensitivity"] = (header, body)
    return tables


def mixed_precision_table(report: dict[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    """INT8 rows whose export ran the accuracy-budget search (manifest ``accuracy_control``): budget,
    drift on the export's validation images before/after, blocks kept in floating point with their
    sensitivity (gain in rank agreement when given back alone) and the latency cost."""
    rows = [r for r in report["rows"] if r.get("accuracy_control")]
    if not rows:
        return None
    body = []
    for r in rows:
        c = r["accuracy_control"]
        gains = {s["block"]: s.get("gain_rank_agreement") for s in c.get("sensitivity") or []}
        kept = ", ".join(f"{b} ({gains[b]:+.3f})" if gains.get(b) is not None else b for b in c.get("kept_blocks", []))
        speed = c.get("speed_cost") or {}
        ratio = speed.get("final_vs_full_int8")
        body.append([r["id"], _fmt(c.get("budget")), _fmt(dig(c, "full_int8", "delta_srocc"), signed=True),
                     _fmt(dig(c, "final", "delta_srocc"), signed=True),
                     {True: "yes", False: "**no** (over budget)"}.get(c.get("within_budget"), "–"),
                     kept or "none", f"{ratio:.2f}x" if ratio else "–"])
    return (["row", "budget", "Δ SROCC full INT8", "Δ SROCC final", "within budget",
             "kept in FP (sensitivity)", "latency vs full INT8"], body)


def _threads(row: dict[str, Any]) -> str:
    """Threads the backend reports, else the suite's setting passed to it."""
    reported = dig(row, "info", "threads")
    setting = dig(row, "speed", "threads_setting")
    return str(reported) if reported is not None else f"{setting} (set)" if setting is not None else "–"


def _backend(row: dict[str, Any]) -> str:
    info = row.get("info") or {}
    name = info.get("backend", "?")
    version = info.get(name) or info.get("torch") or ""
    extra = " + compile" if info.get("compile") else ""
    return f"{name} {version}{extra}".strip()


def to_markdown(report: dict[str, Any], images: dict[str, str] | None = None) -> str:
    machine = report["machine"]
    data = report["dataset"]
    suite = report["suite"]
    primary = f" on `{data['name']}`" if data.get("name") else ""
    lines = [f"# edge-iqa benchmark: {suite['model']} ({suite['name']} suite)", "",
             f"{report['created']} · {data['images']} images from `{Path(data['labels']).name}` "
             f"({data['excluded_calibration_images']} calibration images excluded) · weights: "
             f"{report['weights']['checkpoint']} · threads per row: {suite['threads']}", "",
             _md_table(TABLE_COLUMNS, table_rows(report)), "",
             f"SROCC, Δ SROCC, PLCC{primary} (the primary set). Speed-up: batch-1 images/s relative to the PyTorch "
             "FP32 eager row of this run. Δ SROCC: against the PyTorch FP32 scores on the same images.", ""]
    if report.get("datasets"):
        lines += ["## Evaluation sets", "", _md_table(*sets_table(report)), ""]
    lines += ["## CPU export goals", "",
              _md_table(["goal", "row", "measured", "goal value", "met"],
                        [[g["goal"], g["row"], _fmt(g["value"], 4) if g["value"] is not None else "–", g["target"],
                          {True: "yes", False: "**no**", None: "–"}[g["met"]]] for g in goals(report)]), ""]
    titles = {"accuracy": f"Accuracy vs MOS{primary} (bootstrap 95% CI) and drift vs PyTorch FP32",
              **{f"accuracy@{name}": f"Accuracy vs MOS on `{name}` (bootstrap 95% CI) and drift vs PyTorch FP32"
                 for name in extra_sets(report)},
              "speed": "Speed", "sensitivity": "Distortion sensitivity: Kendall tau(level, score), "
                                               "(difference from PyTorch FP32), ⚠ = flagged",
              "mixed_precision": "Mixed precision at export: accuracy budget on the export's held-out "
                                 "validation images (sensitivity = rank-agreement gain), latency from the manifest"}
    for key, (header, body) in detail_tables(report).items():
        lines += [f"## {titles[key]}", "", _md_table(header, body), ""]
    notes = sorted({note for r in report["rows"] for name in (report.get("datasets") or {})
                    if (note := dig(r, "datasets", name, "accuracy", "rmse_note"))})
    lines += [f"RMSE: {note}" for note in notes] + ([""] if notes else [])
    if report["sensitivity"].get("skipped"):
        lines += [f"Sensitivity skipped: {report['sensitivity']['skipped']}", ""]
    for name, path in (images or {}).items():
        lines += [f"![{name}]({path})", ""]
    errors = [r for r in report["rows"] if r["status"] != "ok"]
    if errors:
        lines += ["## Errors", ""] + [f"- `{r['id']}` ({r.get('stage', '?')}): {r.get('error')}" for r in errors] + [""]
    regression = report.get("regression")
    if regression:
        verdict = "passed" if regression["passed"] else f"**{regression['failures']} regression(s)**"
        against = (f"Against `{regression['baseline']}`" if regression.get("baseline") else
                   f"This run wrote the suite's baseline `{regression['wrote_baseline']}` (absolute checks only)"
                   if regression.get("wrote_baseline") else "No baseline (absolute checks only)")
        lines += ["## Regression check", "", f"{against}: {verdict}, {regression['skipped']} skipped.", ""]
        lines += [f"- FAIL `{c['row']}::{c['check']}`: {c['message']}" for c in regression["checks"]
                  if c["status"] == "fail"]
        lines.append("")
    libs = ", ".join(f"{k} {v}" for k, v in machine["libraries"].items() if v)
    lines += ["## Machine", "",
              f"- CPU: {machine['cpu']} ({machine['logical_cores']} logical cores, {machine['usable_cores']} usable, "
              f"{machine.get('physical_cores')} physical), RAM {machine['ram_gib']} GiB, GPU: "
              f"{', '.join(machine['gpus']) or 'none'}",
              f"- {machine['os']}, Python {machine['python']}; {libs}",
              f"- load average at start: {machine.get('load_average_at_start')}; "
              f"fingerprint `{machine['fingerprint']}`",
              f"- speed protocol: {suite['speed']['warmup']} warm-up calls, {suite['speed']['repeats']} repeats x "
              f"{suite['speed']['iterations']} batch-1 calls (p50 = median of the repeats' medians), "
              f"{suite['speed']['sweep_images']} images per repeat for each batch size; "
              "time.perf_counter in-process; each row in a fresh process (peak RSS = VmHWM of the row's process)",
              f"- run time {report.get('elapsed_s', 0):.0f} s", ""]
    return "\n".join(lines)


# --- plots --------------------------------------------------------------------------------------------
def pareto_png(report: dict[str, Any], path: Path) -> Path | None:
    points = [(r["id"], dig(r, "speed", "throughput", "1", "images_per_s"), dig(r, "accuracy", "srocc"))
              for r in report["rows"] if r["status"] == "ok"]
    points = [p for p in points if p[1] and p[2] is not None]
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    front = _pareto_front([(x, y) for _, x, y in points])
    for rid, x, y in points:
        on_front = (x, y) in front
        ax.scatter([x], [y], s=60 if on_front else 35, c="tab:red" if on_front else "tab:blue", zorder=3)
        ax.annotate(rid, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    fx, fy = zip(*sorted(front), strict=True)
    ax.step(fx, fy, where="post", color="tab:red", alpha=0.5, label="Pareto front")
    ax.set_xlabel("throughput at batch 1 (images/s)")
    ax.set_ylabel("SROCC vs MOS")
    ax.set_title(f"{report['suite']['model']}: accuracy vs speed ({report['dataset']['images']} images)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _pareto_front(points: list[tuple[float, float]]) -> set[tuple[float, float]]:
    """Points no other point beats on both throughput and SROCC."""
    return {p for p in points if not any(q[0] >= p[0] and q[1] >= p[1] and q != p for q in points)}


def sensitivity_png(report: dict[str, Any], path: Path) -> Path | None:
    rows = [r for r in report["rows"] if r["status"] == "ok" and r.get("sensitivity")]
    types = report["sensitivity"]["types"]
    if not rows or not types:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(12, 4.8), dpi=110)
    width = 0.8 / len(rows)
    x = np.arange(len(types))
    for i, row in enumerate(rows):
        taus = [row["sensitivity"]["per_type"].get(t, {}).get("tau", np.nan) for t in types]
        ax.bar(x + (i - (len(rows) - 1) / 2) * width, taus, width, label=row["id"])
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks(x, types, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("Kendall tau(level, score)")
    ax.set_ylim(-1.05, 1.05)
    ax.set_title("Distortion sensitivity per type (−1: every level scored lower than the milder one)")
    ax.legend(fontsize=7, ncol=4, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# --- HTML ---------------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}th,td{border:1px solid #ccc;padding:.3rem .6rem}
th{background:#f2f2f2}td{text-align:right}td:first-child,td:nth-child(2),td:nth-child(3){text-align:left}
tr.error td{color:#a00}.fail{color:#a00;font-weight:bold}.pass{color:#080}img{max-width:100%}
code{background:#f6f6f6;padding:0 .2rem}.small{color:#666;font-size:.85rem}
"""


def _html_table(header: list[str] | tuple[str, ...], rows: list[list[str]], error_col: int | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cls = ' class="error"' if error_col is not None and row[error_col].startswith("error") else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def to_html(report: dict[str, Any], pngs: dict[str, Path]) -> str:
    suite, data = report["suite"], report["dataset"]
    parts = [f"<h1>edge-iqa benchmark: {html.escape(suite['model'])} ({html.escape(suite['name'])} suite)</h1>",
             f"<p class=small>{html.escape(report['created'])} · {data['images']} images · "
             f"{data['excluded_calibration_images']} calibration images excluded · machine "
             f"{html.escape(report['machine']['cpu'])} ({report['machine']['logical_cores']} cores)</p>",
             _html_table(TABLE_COLUMNS, table_rows(report), error_col=2),
             *([f"<h2>Evaluation sets</h2>{_html_table(*sets_table(report))}"] if report.get("datasets") else []),
             "<h2>CPU export goals</h2>",
             _html_table(["goal", "row", "measured", "goal value", "met"],
                         [[g["goal"], g["row"], _fmt(g["value"], 4), g["target"],
                           {True: "yes", False: "no", None: "–"}[g["met"]]] for g in goals(report)])]
    for key, (header, body) in detail_tables(report).items():
        parts += [f"<h2>{html.escape(key.replace('_', ' ').capitalize())}</h2>", _html_table(header, body)]
    for name, png in pngs.items():
        encoded = base64.b64encode(png.read_bytes()).decode("ascii")
        parts.append(f'<h2>{html.escape(name)}</h2>'
                     f'<img alt="{html.escape(name)}" src="data:image/png;base64,{encoded}">')
    regression = report.get("regression")
    if regression:
        cls, text = ("pass", "passed") if regression["passed"] else ("fail", f"{regression['failures']} regression(s)")
        parts.append(f'<h2>Regression check</h2><p class="{cls}">{text}</p>')
        parts.append(_html_table(["check", "status", "message"],
                                 [[f"{c['row']}::{c['check']}", c["status"], c["message"]]
                                  for c in regression["checks"]]))
    machine = json.dumps(report["machine"], indent=2)
    parts.append(f"<h2>Machine</h2><pre>{html.escape(machine)}</pre>")
    body = "\n".join(parts)
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>edge-iqa bench {html.escape(suite['name'])}"
            f"</title><style>{_CSS}</style></head><body>{body}</body></html>\n")


def write_report(report: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """All report files into ``out_dir``; returns {kind: path}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = {**report, "goals": goals(report)}
    pngs = {}
    if pareto_png(report, out / "pareto.png"):
        pngs["SROCC vs throughput"] = out / "pareto.png"
    if sensitivity_png(report, out / "sensitivity.png"):
        pngs["Distortion sensitivity"] = out / "sensitivity.png"
    files = {"json": out / "report.json", "markdown": out / "report.md", "html": out / "report.html"}
    files["json"].write_text(json.dumps(report, indent=2, default=_json_default) + "\n", encoding="utf-8")
    files["markdown"].write_text(to_markdown(report, {k: p.name for k, p in pngs.items()}), encoding="utf-8")
    files["html"].write_text(to_html(report, pngs), encoding="utf-8")
    return {**files, **{p.stem: p for p in pngs.values()}}


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__}")
