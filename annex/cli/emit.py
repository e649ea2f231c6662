"""Results on stdout, in the --output format (table, json, text); the conversation goes to stderr."""

from __future__ import annotations

import json
import shutil
import sys

import click

from .options import output


def screen_width() -> int | None:
    """The terminal's width when a person watches one (stdout or stderr is a terminal), so lines can be
    fitted to it; None when both are piped: a piped line is never wrapped."""
    if sys.stdout.isatty() or sys.stderr.isatty():
        return shutil.get_terminal_size().columns
    return None


def emit_plan(data: dict) -> None:
    if output() == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    elif output() == "text":
        click.echo("\t".join(f"{k}={v}" for k, v in sorted(data.items())))


def emit_annex(aws, project_id: str) -> None:
    """The annex's record on stdout, for --output json or text (a table says no more than the lines
    before it did, so none is drawn: it would cost a status's AWS calls)."""
    from ..lifecycle.status import collect  # lazy: the CLI starts without boto3

    if output() == "table":
        return
    emit_records(collect([aws], project_id, pool=False), aws.region)


def emit_records(records, where: str, elsewhere: str = "") -> None:
    """The records in the --output format. With none, the table says so on stdout, and `elsewhere` (where
    else to look) goes to stderr."""
    from .text import status_notes, status_table, status_text, wrapped

    if output() == "json":
        click.echo(json.dumps([r.to_json() for r in records], indent=2, sort_keys=True))
    elif output() == "text":
        for line in status_text(records):
            click.echo(line)
    elif not records:
        click.echo(f"No annexes in {where}.")
        if elsewhere:
            click.echo(elsewhere, err=True)
    else:
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
        for line in status_table(records, width):
            click.echo(line)
        for note in status_notes(records):
            for line in wrapped(note, screen_width()):
                click.echo(line, err=True)


def emit_deleted(plan, deleted: bool) -> None:
    """delete's result on stdout: what was (or was not) there, and whether it is gone."""
    record = {"project_id": plan.project_id, "region": plan.region,
              "stack": plan.stack.name if plan.stack else None, "deleted": deleted}  # fmt: skip
    if output() == "json":
        click.echo(json.dumps(record, indent=2, sort_keys=True))
    elif output() == "text":  # every field JSON has: project, region, deleted or not found, stack
        state = "deleted" if deleted else "not found"
        click.echo(f"{plan.project_id}\t{plan.region}\t{state}\t{record['stack'] or ''}")
