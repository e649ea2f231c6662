"""`condor_annex check-setup`."""

from __future__ import annotations

import json

import click

from .options import examples, given, global_options, output, reported, terminal


@click.command("check-setup", epilog=examples("condor_annex check-setup --region us-east-1"))
@click.option("--condor-config", help="The pool's HTCondor configuration [CONDOR_CONFIG].")
@global_options
@reported
def command(condor_config):
    """Check that an annex can be created from here: credentials, the set-up and its published template,
    the image, the vCPU quotas, the collector's last probe, limits, permissions, the pool. Changes nothing."""
    from ..admin.check import run_checks  # lazy: no boto3 at start-up
    from .text import check_line

    ui = terminal()
    pool = {"condor_config": condor_config} if condor_config else {}
    report = run_checks(given("region"), given("profile"), **pool)
    if output() == "json":
        click.echo(json.dumps([c.__dict__ for c in report.checks], indent=2))
    for check in report.checks:
        ui.say(check_line(check))
    ready = "An annex can be created from here."
    ui.say(ready if report.ready else "An annex cannot be created until the ✗ lines are fixed.")
    return 0 if report.ready else 1
