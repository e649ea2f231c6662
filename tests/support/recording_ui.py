"""A `Ui` (annex/ui.py) that records what the library says, instead of drawing it on a terminal."""

from __future__ import annotations

import contextlib

from annex.cli.text import event_line


class RecordingUi:
    """Keeps every line said, every phase waited through and every stack event seen. `confirm` answers
    `answer` (or yes, when --yes was given) and remembers the question."""

    def __init__(self, answer: bool = True):
        self.answer = answer
        self.lines: list[str] = []
        self.phases: list[tuple[str, str]] = []  # (what, typical), in order
        self.events: list[dict] = []
        self.questions: list[str] = []
        self.open = 0  # phases still under way (an interrupt leaves them open)

    def say(self, text: str) -> None:
        self.lines.append(text)

    @contextlib.contextmanager
    def working(self, what: str, typical: str = ""):
        self.phases.append((what, typical))
        self.open += 1
        yield
        self.open -= 1
        self.lines.append(f"{what}: done")

    def event(self, event: dict) -> None:
        self.events.append(event)
        line = event_line(event)
        if line:
            self.lines.append(line)

    def confirm(self, question: str, yes: bool = False) -> bool:
        self.questions.append(question)
        return True if yes else self.answer

    @property
    def text(self) -> str:
        return "\n".join(self.lines)
