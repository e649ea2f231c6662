"""The terminal the CLI talks to: rich on stderr (the library's Ui, annex/progress.py, plus confirm)."""

from __future__ import annotations

import contextlib
import sys
import time

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner

from ..text import seconds
from .emit import screen_width
from .text import event_line, wrapped

YES, NO = ("y", "yes"), ("n", "no", "")  # an empty answer takes the default: no


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
        # fitted here, at word boundaries with wrapped lines indented; piped, a line stays whole
        for line in wrapped(text, screen_width()):
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)

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
        prompt = f"{question} [y/n] (n): "
        while True:
            try:
                said = answer(self.console.input(prompt, markup=False))
            except EOFError:  # the input ended: nobody said yes
                return False
            if said is not None:
                return said
            self.say("Please answer y or n (yes or no).")


def answer(text: str) -> bool | None:
    """A yes/no answer in any case ('y', 'Yes', 'NO'); an empty one is no; None for anything else."""
    word = text.strip().lower()
    return True if word in YES else False if word in NO else None
