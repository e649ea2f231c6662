"""Results on stdout, in the --output format (table, json, text); the conversation goes to stderr."""

from __future__ import annotations

import json
import shutil
import sys

import click

from .options import output


def emit_plan(data: dict) -> None:
    if output() == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    elif output() == "text":
        click.echo("\t".join(f"{k}={v}" for k, v in sorted(data.items())))


def emit_annex(aws, project_id: str) -> None:
    """The annex's record on stdout, in the --output format."""
    from ..lifecycle.status import collect  # lazy: the CLI starts without boto3

    emit_records(collect([aws], project_id, pool=False), aws.region)


def emit_records(records, where: str) -> None:
    from .text import status_notes, status_table, status_text

    if output() == "json":
        click.echo(json.dumps([r.to_json() for r in records], indent=2, sort_keys=True))
    elif output() == "text":
        for line in status_text(records):
            click.echo(line)
    elif not records:
        click.echo(f"No annexes in {where}.")
    else:
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
        for line in status_table(records, width):
            click.echo(line)
        for line in status_notes(records):
            click.echo(line, err=True)


def emit_deleted(plan, deleted: bool) -> None:
    """delete's result on stdout: what was (or was not) there, and whether it is gone."""
    record = {"project_id": plan.project_id, "region": plan.region,
              "stack": plan.stack.name if plan.stack else None, "deleted": deleted}  # fmt: skip
    if output() == "json":
        click.echo(json.dumps(record, indent=2, sort_keys=True))
    elif output() == "text":
        click.echo(f"{plan.project_id}\t{plan.region}\t{'deleted' if deleted else 'not found'}")
