"""What the library may ask of whoever shows its progress. The CLI's is annex/cli/terminal.py's
`TerminalUi`; the tests' records what it is told."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol


class Ui(Protocol):
    def say(self, text: str) -> None: ...

    def working(self, what: str, typical: str = "") -> AbstractContextManager: ...

    def event(self, event: dict) -> None: ...
