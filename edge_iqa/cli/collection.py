"""The command-line side of collections: ``edge-iqa score --out TABLE INPUT...`` (called by the
``score`` verb when ``--out`` is given) and ``edge-iqa report TABLE``. Exit status: 0 all scored,
1 some images failed (their errors are in the table), 2 usage or bundle error, 130 interrupted."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import typer

from edge_iqa.errors import EdgeIQAError

EXIT_SOME_FAILED = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def score_collection(inputs: Sequence[str], out: Path, source: Path | str, *, engine: str = "local",
                     address: str | None = None, workers: int | None = None, threads_per_worker: int | None = None,
                     batch_size: int = 8, shard_size: int = 1000, bundle_transfer: str = "auto",
                     stall_timeout: float | None = None) -> int:
    """Run the job, print the summary; returns the exit status. ``source``: a bundle folder (Path) or
    a model name (str), what :func:`edge_iqa.runtime.load` opens."""
    from edge_iqa.collection.job import CollectionJob, EngineOptions, run_job
    from edge_iqa.collection.progress import default_progress

    try:
        job = CollectionJob(tuple(str(item) for item in inputs), Path(out), source,
                            EngineOptions(engine, workers, threads_per_worker, address, bundle_transfer,
                                          **({"stall_timeout_s": stall_timeout} if stall_timeout is not None else {})),
                            batch_size=batch_size, shard_size=shard_size)
        result = run_job(job, default_progress())
    except EdgeIQAError as exc:
        return _error(str(exc))
    except KeyboardInterrupt:
        typer.echo(f"interrupted: the rows scored so far are kept in {out}.parts; rerun the same command to "
                   "resume", err=True)
        return EXIT_INTERRUPTED
    typer.echo(f"{out}: {result.new_rows:,} images scored now ({result.new_failed:,} failed) in "
               f"{result.seconds:.1f} s ({result.images_per_second:,.1f} images/s); {result.skipped:,} of "
               f"{result.inputs:,} inputs were already in the table")
    for line in result.summary.lines():
        typer.echo(line)
    return EXIT_SOME_FAILED if result.summary.failed else 0


def report_command(
    table: Path = typer.Argument(..., help="A scores table written by `edge-iqa score --out`."),
    out: Path = typer.Option(None, "--out", help="The HTML page to write (default: TABLE with .html)."),
    count: int = typer.Option(24, "--count", help="Images in each contact sheet (lowest and highest scored)."),
) -> None:
    """Write an HTML page of a scores table: histogram, lowest and highest scored images, errors."""
    from edge_iqa.collection.report import write_report

    try:
        page = write_report(table, out or table.with_suffix(".html"), count=count)
    except EdgeIQAError as exc:
        raise typer.Exit(_error(str(exc))) from exc
    typer.echo(str(page))


def _error(message: str) -> int:
    typer.echo(f"error: {message}", err=True)
    return EXIT_ERROR
