"""`condor_annex check-setup`."""

from __future__ import annotations

import json

import click

from .options import examples, given, global_options, output, reported, terminal


@click.command("check-setup", epilog=examples("condor_annex check-setup --region us-east-1"))
@global_options
@reported
def command():
    """Check that an annex can be created from here: credentials, set-up, permissions, pool, collector."""
    from ..admin.check import run_checks  # lazy: no boto3 at start-up
    from .text import check_line

    ui = terminal()
    report = run_checks(given("region"), given("profile"))
    if output() == "json":
        click.echo(json.dumps([c.__dict__ for c in report.checks], indent=2))
    for check in report.checks:
        ui.say(check_line(check))
    ready = "An annex can be created from here."
    ui.say(ready if report.ready else "An annex cannot be created until the ✗ lines are fixed.")
    return 0 if report.ready else 1
