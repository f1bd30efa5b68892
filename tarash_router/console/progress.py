"""What `tarash-router generate` shows while a job runs: a live panel on a terminal (with `rich`,
extra `cli`), plain lines otherwise (a pipe, a CI log, no `rich`). Everything goes to stderr so that
stdout carries only the result."""

from __future__ import annotations

import sys
import time
from typing import IO, Any, Protocol

LOG_LINES = 4  # provider log lines kept on screen


class Display(Protocol):
    def job(self, update: Any) -> None: ...
    def download(self, done: int, total: int | None) -> None: ...
    def close(self) -> None: ...


def open_display(stream: IO[str] | None = None, *, fancy: bool | None = None) -> Display:
    """The live display when `stream` is a terminal and `rich` is installed, else plain lines."""
    stream = stream or sys.stderr
    if fancy is None:
        fancy = stream.isatty()
    if fancy:
        try:
            return RichDisplay(stream)
        except ImportError:
            pass
    return PlainDisplay(stream)


def _log_text(entry: Any) -> str:
    return str(entry.get("message", entry)) if isinstance(entry, dict) else str(entry)


def _describe(update: Any) -> str:
    parts = [update.status]
    if update.queue_position is not None and update.status == "queued":
        parts.append(f"position {update.queue_position} in the queue")
    if update.progress_percent is not None and update.status != "completed":
        parts.append(f"{update.progress_percent}%")
    return ", ".join(parts)


class PlainDisplay:
    """One line per change of state, position or percent, and one per new provider log line."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.started = time.monotonic()
        self.last = ""
        self.logs_seen = 0
        self.reported_tenth = -1

    def _line(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {text}", file=self.stream, flush=True)

    def job(self, update: Any) -> None:
        described = _describe(update)
        if described != self.last:
            self.last = described
            self._line(described + (f"  (job {update.request_id})" if update.request_id else ""))
        logs = update.logs or []
        for entry in logs[self.logs_seen:] if len(logs) >= self.logs_seen else logs:
            self._line(f"log: {_log_text(entry)}")
        self.logs_seen = len(logs)

    def download(self, done: int, total: int | None) -> None:
        if total:
            tenth = done * 10 // total
            if tenth != self.reported_tenth and (tenth % 5 == 0):
                self.reported_tenth = tenth
                self._line(f"downloading: {done:,} of {total:,} bytes")

    def close(self) -> None:
        return None


class RichDisplay:
    """A panel redrawn in place: state, queue position, a percent bar, elapsed time, recent logs."""

    def __init__(self, stream: IO[str]) -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeElapsedColumn, TransferSpeedColumn

        self.console = Console(file=stream)
        self.progress = Progress("[progress.description]{task.description}", BarColumn(), "{task.percentage:>3.0f}%",
                                 TimeElapsedColumn(), console=self.console)
        self.task = self.progress.add_task("submitting", total=100)
        self.bytes = Progress("downloading", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                              console=self.console)
        self.download_task: Any = None
        self.logs: list[str] = []
        self.live = Live(self._render(), console=self.console, refresh_per_second=8, transient=False)
        self.live.start()

    def _render(self) -> Any:
        from rich.console import Group
        from rich.text import Text

        parts: list[Any] = [self.progress]
        parts += [Text(f"  {line}", style="dim") for line in self.logs[-LOG_LINES:]]
        if self.download_task is not None:
            parts.append(self.bytes)
        return Group(*parts)

    def job(self, update: Any) -> None:
        percent = 100 if update.status == "completed" else update.progress_percent
        if percent is None:
            self.progress.update(self.task, description=_describe(update))
        else:
            self.progress.update(self.task, description=_describe(update), completed=percent)
        logs = [_log_text(e) for e in update.logs or []]
        if logs:
            self.logs = logs if len(logs) >= len(self.logs) else self.logs + logs
        self.live.update(self._render())

    def download(self, done: int, total: int | None) -> None:
        if self.download_task is None:
            self.download_task = self.bytes.add_task("download", total=total)
            self.live.update(self._render())
        self.bytes.update(self.download_task, completed=done)

    def close(self) -> None:
        self.live.stop()


__all__ = ["Display", "PlainDisplay", "RichDisplay", "open_display"]
