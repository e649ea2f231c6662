"""Run condor_annex's command line in this process, as the console script would (annex.cli.entry), with
click's CliRunner isolation: stdin, stdout, stderr and the environment are the test's.

`run_cli(*args, env=..., input=..., width=..., tty=...)` returns the exit code, stdout and stderr. An
exception the program does not handle (what a user would see as a traceback) is written to stderr with
its traceback and exit code 1, as Python does.

`Sessions` stands in for `annex.lifecycle.session`: it hands out one FakeAws per region and records the
(region, profile) every command asked for.
"""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass, field

import click
from click.testing import CliRunner

from tests.support.fake_aws import FakeAws


@dataclass(repr=False)
class Ran:
    code: int
    stdout: str
    stderr: str
    exception: BaseException | None = None

    @property
    def errors(self) -> list[str]:
        """stderr's non-empty lines."""
        return [line for line in self.stderr.splitlines() if line.strip()]

    def __repr__(self) -> str:  # what pytest shows when an assertion about the run fails
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"

    __str__ = __repr__


def run_cli(*args: str, env: dict | None = None, input: str | None = None, width: int | None = None, tty: bool = False) -> Ran:
    """condor_annex ARGS. `width` narrows click's help and sets COLUMNS; `tty` makes stdout claim to be a
    terminal (the status table then fits COLUMNS)."""
    from annex.cli.main import entry

    env = dict(env or {})
    if width:
        env["COLUMNS"] = str(width)
    runner = CliRunner()
    with runner.isolation(input=input, env=env) as (out, err, _):
        if width:
            click.formatting.FORCED_WIDTH = width  # the isolation restores it
        if tty:
            sys.stdout.isatty = lambda: True
        code, exception = 0, None
        try:
            entry(list(args))
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        except BaseException as error:  # noqa: BLE001 - shown as Python shows an unhandled exception
            exception, code = error, 1
            traceback.print_exception(error, file=sys.stderr)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        return Ran(code, out.getvalue().decode(errors="replace"), err.getvalue().decode(errors="replace"), exception)


@dataclass
class Sessions:
    """annex.lifecycle.session's stand-in: FakeAws(region) per region asked for (AWS_REGION, else
    us-east-1, when none is given), made with `options`."""

    options: dict = field(default_factory=dict)
    asked: list = field(default_factory=list)  # (region, profile) per session made
    fakes: dict = field(default_factory=dict)  # region -> FakeAws

    def __call__(self, region: str | None, profile: str | None) -> FakeAws:
        self.asked.append((region, profile))
        chosen = region or os.environ.get("AWS_REGION") or "us-east-1"
        if chosen not in self.fakes:
            self.fakes[chosen] = FakeAws(chosen, profile, **self.options)
        return self.fakes[chosen]

    def __getitem__(self, region: str) -> FakeAws:
        if region not in self.fakes:
            self.fakes[region] = FakeAws(region, None, **self.options)
        return self.fakes[region]

    def install(self, monkeypatch) -> "Sessions":
        monkeypatch.setattr("annex.lifecycle.common.session", self)
        return self
