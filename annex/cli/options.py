"""What every command shares: the global options (before or after the command), the one-line error
edge, confirmation, and the option groups several commands take. Nothing heavy is imported here, so
`condor_annex --help` starts fast."""

from __future__ import annotations

import functools
import sys

import click

from ..errors import AnnexError, ConfigError

EXAMPLE = "condor_annex --project-id 'TheNeeds-MooreLab' --expiry '2030-12-18 23:59' --instances 16"
# A request field's id (annex/errors.py ConfigError) → what the user typed; the rest is --field-id.
OPTION_FOR = {"name": "NAME", "collectors": "--collector", "max_ceiling_usd": "--max-ceiling",
              "project_argument": "PROJECT_ID"}  # fmt: skip


def examples(*lines: str) -> str:
    """An epilog click prints as written (\\b stops it re-wrapping), so examples can be copied."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def option_for(field: str) -> str:
    return OPTION_FOR.get(field, "--" + field.replace("_", "-"))


def message(error: AnnexError) -> str:
    """The error's one line, naming the option where the user's input was wrong."""
    if isinstance(error, ConfigError):
        return f"{option_for(error.field)} {error.problem}"
    return str(error)


def remember(ctx, param, value):
    """Global options, wherever they are given: a later (the command's) value wins."""
    if value not in (None, False):
        ctx.find_root().meta.setdefault("annex", {})[param.name] = value
    return value


def global_options(command):
    region_help = "AWS region (default: AWS_REGION, your AWS profile, else us-east-1)."
    options = [
        click.option("--region", expose_value=False, callback=remember, help=region_help),
        click.option(
            "--profile",
            expose_value=False,
            callback=remember,
            help="AWS profile (default: AWS_PROFILE).",
        ),
        click.option(
            "--output",
            type=click.Choice(["table", "json", "text"]),
            expose_value=False,
            callback=remember,
            help="Format of the result on stdout [table].",
        ),
        click.option(
            "--yes",
            is_flag=True,
            expose_value=False,
            callback=remember,
            help="Do not ask for confirmation.",
        ),
        click.option("--debug", is_flag=True, expose_value=False, callback=remember, help="Show tracebacks."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def given(name: str, default=None):
    return click.get_current_context().find_root().meta.get("annex", {}).get(name, default)


def output() -> str:
    return given("output", "table")


def reported(command):
    """Library errors become one line and a non-zero exit; a traceback only with --debug."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            code = command(*args, **kwargs)
        except AnnexError as error:
            if given("debug"):
                raise
            click.echo(f"condor_annex: {message(error)}", err=True)
            sys.exit(error.exit_code)
        except KeyboardInterrupt:
            region = click.get_current_context().find_root().meta.get("acting")
            click.echo(f"condor_annex: {interrupted(region)}", err=True)
            sys.exit(130)
        sys.exit(code or 0)

    return run


def interrupted(region: str | None) -> str:
    """What a Ctrl-C outside any wait leaves: nothing (before the first change), or something in
    `region` that the user can see, and finish with the same command."""
    if not region:
        return "interrupted; nothing was changed"
    return (
        f"interrupted while changing annexes in {region}; the same command finishes the job; "
        f"to see what exists: condor_annex status --region {region}"
    )


def acting(region: str) -> None:
    """From here on, an interrupt may leave something half-done (the message says how to go on)."""
    click.get_current_context().find_root().meta["acting"] = region


def proceed(ui, question: str, refused: str, region: str) -> bool:
    """Ask (unless --yes); on yes, from here on an interrupt may leave work half-done in `region`."""
    if not ui.confirm(question, given("yes")):
        ui.say(refused)
        return False
    acting(region)
    return True


def terminal():
    from .terminal import TerminalUi  # rich: only once a command talks to the terminal

    return TerminalUi()


def when_options(command):
    """--expiry or --duration: when an annex ends (create and extend take the same forms)."""
    duration_help = "Or how long from now: 8h, 90m, 2d, 1d12h, or 8 (hours, as HTCondor's)."
    command = click.option("--duration", help=duration_help)(command)
    expiry_help = "When the annex ends: '2030-12-18 23:59' (local), ISO 8601, a date (its end), or '+8h'."
    return click.option("--expiry", help=expiry_help)(command)


def money_options(command):
    """What the ceiling may assume, and what it must not exceed."""
    command = click.option("--budget", help="Refuse if the annex could cost more than this many USD.")(command)
    price_help = "USD per instance-hour to assume where AWS publishes no price."
    return click.option("--max-price", help=price_help)(command)
