"""The terminal the CLI talks to: rich on stderr (the library's Ui, annex/progress.py, plus confirm)."""

from __future__ import annotations

import contextlib
import sys
import time

from rich.console import Console
from rich.live import Live
from rich.prompt import Confirm
from rich.spinner import Spinner

from ..text import seconds
from .text import event_line


class Elapsed:
    """A progress line that shows the time passed every time it is drawn."""

    def __init__(self, what: str, typical: str):
        self.what, self.typical, self.start = what, typical, time.monotonic()

    def text(self) -> str:
        seconds = int(time.monotonic() - self.start)
        typical = f" ({self.typical})" if self.typical else ""
        return f"{self.what}: {seconds // 60}:{seconds % 60:02d}{typical}"

    def __rich__(self):
        return Spinner("dots", self.text())


class TerminalUi:
    """The terminal: rich on stderr."""

    def __init__(self, console=None):
        self.console = console or Console(stderr=True, highlight=False)

    def say(self, text: str) -> None:
        # rich wraps at word boundaries on a terminal; piped, a line stays whole (no width to fit)
        self.console.print(
            text, markup=False, highlight=False, soft_wrap=not self.console.is_terminal
        )

    @contextlib.contextmanager
    def working(self, what: str, typical: str = ""):
        progress = Elapsed(what, typical)
        with Live(progress, console=self.console, transient=True, refresh_per_second=4):
            yield
        self.say(f"{what}: done in {seconds(time.monotonic() - progress.start)}")

    def event(self, event: dict) -> None:
        line = event_line(event)
        if line:
            self.say(line)

    def confirm(self, question: str, yes: bool = False) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            self.say(f"{question} No terminal to ask on; pass --yes to go ahead.")
            return False
        return Confirm.ask(question, console=self.console, default=False)
