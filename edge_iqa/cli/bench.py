"""``edge-iqa bench``: run a suite, write the report, check it against a baseline."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer


def _override_rows(suite, only: str | None, bundles: list[str]):  # type: ignore[no-untyped-def]
    from edge_iqa.bench.suite import SuiteError

    rows = list(suite.rows)
    for entry in bundles:
        if "=" not in entry:
            raise SuiteError(f"--bundle wants ROW=PATH (e.g. onnxruntime/int8=bundles/ort-int8), got {entry!r}")
        rid, path = entry.split("=", 1)
        matches = [i for i, r in enumerate(rows) if r.row_id == rid]
        if not matches:
            raise SuiteError(f"--bundle {rid}: no such row; rows are {', '.join(r.row_id for r in rows)}")
        rows[matches[0]] = dataclasses.replace(rows[matches[0]], bundle=Path(path))
    eager, compiled = suite.pytorch_eager, suite.pytorch_compile
    if only:
        wanted = {w.strip() for w in only.split(",") if w.strip()}
        rows = [r for r in rows if r.row_id in wanted]
        eager = eager and "pytorch/fp32" in wanted
        compiled = compiled and "pytorch-compile/fp32" in wanted
    return suite.with_overrides(rows=tuple(rows), pytorch_eager=eager, pytorch_compile=compiled)


def _set_limits(entries: list[str]) -> dict[str, int]:
    from edge_iqa.bench.suite import SuiteError

    limits = {}
    for entry in entries:
        name, _, count = entry.partition("=")
        if not count.strip().isdigit():
            raise SuiteError(f"--set-limit wants NAME=N (e.g. biq2021-test=20), got {entry!r}")
        limits[name.strip()] = int(count)
    return limits


def bench_command(
    suite_path: Path = typer.Option(None, "--suite", help="Suite TOML (default: the shipped bench/suite.toml)."),
    out: Path = typer.Option(None, "--out", help="Report folder (default: bench/reports/SUITE_NAME)."),
    baseline: Path = typer.Option(None, "--baseline",
                                  help="Baseline JSON to check against (exit 1 on a regression; default: the suite's "
                                       "baselines/NAME.json when it exists). It must come from the same suite."),
    junit: Path = typer.Option(None, "--junit", help="Write the checks as JUnit XML (one testcase per row x check)."),
    update_baseline: bool = typer.Option(False, "--update-baseline",
                                         help="Save this run as the suite's baseline (--baseline or the suite's "
                                              "baselines/NAME.json) instead of checking against it."),
    limit: int = typer.Option(None, "--limit", help="Score a seeded sample of N images of every evaluation set."),
    sets: str = typer.Option(None, "--sets", help="Only these evaluation sets, comma-separated (e.g. clive)."),
    set_limit: list[str] = typer.Option([], "--set-limit",
                                        help="NAME=N: a seeded sample of N images of one set (e.g. biq2021-test=20)."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Weights for every row (default: the suite's)."),
    random_weights: bool = typer.Option(False, "--random-weights", help="Untrained model: smoke tests only."),
    rows: str = typer.Option(None, "--rows", help="Only these row ids, comma-separated (e.g. pytorch/fp32,cpu/int8)."),
    bundle: list[str] = typer.Option([], "--bundle", help="ROW=PATH: measure an existing bundle for that row."),
    repeats: int = typer.Option(None, "--repeats", help="Speed repeats (medians over repeats)."),
    threads: int = typer.Option(None, "--threads", help="Intra-op threads of every row (0: library default)."),
    no_sensitivity: bool = typer.Option(False, "--no-sensitivity", help="Skip the distortion-sensitivity part."),
    sensitivity_photos: int = typer.Option(None, "--sensitivity-photos", help="Reference photos per distortion."),
    work_dir: Path = typer.Option(None, "--work-dir", help="Bundles, distorted images and job files."),
    reuse_bundles: bool = typer.Option(False, "--reuse-bundles", help="Reuse bundles already in the work dir."),
) -> None:
    """Benchmark accuracy, drift, speed and distortion sensitivity of every target x precision."""
    from rich.console import Console

    from edge_iqa.bench import regression
    from edge_iqa.bench.report import markdown_table, write_report
    from edge_iqa.bench.runner import run_suite
    from edge_iqa.bench.suite import SuiteError, load_suite

    console = Console(stderr=True)
    try:
        suite = load_suite(suite_path)
        suite = suite.with_overrides(**{"dataset.limit": limit, "speed.repeats": repeats, "threads": threads,
                                        "checkpoint": checkpoint, "sensitivity.count": sensitivity_photos})
        suite = suite.with_datasets([n.strip() for n in sets.split(",") if n.strip()] if sets else None,
                                    _set_limits(set_limit))
        baseline_path = baseline or suite.default_baseline_path()
        baseline_data = None
        if not update_baseline and (baseline is not None or baseline_path.is_file()):
            if not baseline_path.is_file():
                raise SuiteError(f"baseline {baseline_path} does not exist; create it with --update-baseline")
            try:  # refused before the run, not after an hour of measuring
                baseline_data = regression.read_baseline(baseline_path)
                regression.ensure_same_suite({"suite": suite.to_dict(), "suite_fingerprint": suite.fingerprint()},
                                             baseline_data, baseline_path)
            except ValueError as exc:
                raise SuiteError(str(exc)) from exc
        if random_weights:
            suite = suite.with_overrides(random_weights=True)
        if no_sensitivity:
            suite = suite.with_overrides(**{"sensitivity.enabled": False})
        suite = _override_rows(suite, rows, bundle)
        report = run_suite(suite, work_dir=work_dir, reuse_bundles=reuse_bundles, console=console)
    except SuiteError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc

    results = None
    if baseline_data is not None:
        results = regression.check_report(report, baseline_data, suite.budgets)
        report["regression"] = {"baseline": str(baseline_path), **regression.results_record(results)}
    elif junit is not None or update_baseline:  # absolute checks (delta SROCC, |dscore|, errors) need no baseline
        results = regression.check_report(report, None, suite.budgets)
        report["regression"] = {"baseline": None, "wrote_baseline": str(baseline_path) if update_baseline else None,
                                **regression.results_record(results)}

    out = out or Path("bench") / "reports" / suite.name
    files = write_report(report, out)
    print(markdown_table(report))  # plain Markdown: readable in a terminal and in CI logs
    console.print(f"report: {', '.join(str(p) for p in files.values())}")

    if update_baseline:
        path = regression.write_baseline(report, baseline_path)
        console.print(f"[bold]baseline updated[/bold]: {path}")
    if results is not None:
        if junit is not None:
            regression.write_junit(results, junit, f"edge-iqa-bench.{suite.name}")
            console.print(f"JUnit: {junit}")
        failed = regression.failures(results)
        for result in failed:
            console.print(f"[red]REGRESSION[/red] {result.name}: {result.message}")
        # Writing a baseline records the absolute checks in the report; only --junit makes them fail the run.
        if failed and (junit is not None or baseline_data is not None):
            raise typer.Exit(1)
        console.print(f"[green]no regression[/green] ({len(results)} checks, "
                      f"{sum(r.status == 'skip' for r in results)} skipped)")
