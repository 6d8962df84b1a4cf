"""The progress display of index builds and updates (rich), one bar per step."""
from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def progress_bars(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), disable=not enabled, transient=False) as progress:
        yield progress
