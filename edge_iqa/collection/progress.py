"""What a job shows while it runs: a rich progress bar on a terminal (images/s, ETA), nothing
otherwise (a log file gets the summary only)."""

from __future__ import annotations

from typing import Any, Protocol


class Progress(Protocol):
    def start(self, total: int) -> None: ...

    def advance(self, rows: int, failed: int) -> None: ...

    def stop(self) -> None: ...


class SilentProgress:
    def start(self, total: int) -> None:
        pass

    def advance(self, rows: int, failed: int) -> None:
        pass

    def stop(self) -> None:
        pass


class BarProgress:
    """rich's bar on stderr: done/total, images/s, elapsed, ETA, failures so far."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self._bar: Any = None
        self._task: Any = None
        self._failed = 0

    @property
    def on_terminal(self) -> bool:
        return bool(self.console.is_terminal)

    def start(self, total: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[rate]}"),
                             TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                             TextColumn("[red]{task.fields[failed]}"), console=self.console, transient=False)
        self._task = self._bar.add_task("score", total=total, rate="", failed="")
        self._bar.start()

    def advance(self, rows: int, failed: int) -> None:
        self._failed += failed
        self._bar.advance(self._task, rows)
        speed = self._bar.tasks[0].speed
        self._bar.update(self._task, rate=f"{speed:,.1f} images/s" if speed else "",
                         failed=f"{self._failed} failed" if self._failed else "")

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def default_progress() -> Progress:
    bar = BarProgress()
    return bar if bar.on_terminal else SilentProgress()
