"""What a run has made so far, and how to take each thing back: a failed or interrupted run removes what
it made, newest first, and says what (if anything) it could not remove."""

from __future__ import annotations

from ..errors import AnnexError
from ..text import short


class Undo:
    def __init__(self) -> None:
        self.steps: list[tuple[str, object]] = []

    def add(self, what: str, call) -> None:
        """`what` was made; `call()` removes it."""
        self.steps.append((what, call))

    def run(self) -> tuple[list[str], list[str]]:
        """Remove everything recorded, newest first: (removed, could not be removed, with why)."""
        removed, left = [], []
        for what, call in reversed(self.steps):
            try:
                call()
                removed.append(what)
            except (AnnexError, OSError) as error:
                left.append(f"{what} ({short(error, 120)})")
        self.steps.clear()
        return removed, left


def undone(removed: list[str], left: list[str]) -> str:
    """What a failed run's clean-up did, as a clause."""
    parts = []
    if removed:
        parts.append("removed what this run made (" + ", ".join(removed) + ")")
    if left:
        parts.append("could not remove " + "; ".join(left))
    return "; ".join(parts) or "nothing had been made yet"


def failed(error: AnnexError, removed: list[str], left: list[str]) -> AnnexError:
    """`error`, its message extended by what the clean-up did (same kind; a ConfigError, raised before
    anything is made, never reaches here)."""
    from ..errors import AwsError, ConfigError

    kind = AwsError if isinstance(error, ConfigError) else type(error)
    try:
        return kind(f"{error}; {undone(removed, left)}")
    except TypeError:  # a kind whose constructor takes other arguments
        return AwsError(f"{error}; {undone(removed, left)}")
