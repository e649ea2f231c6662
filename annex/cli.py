"""The command line: parse, call the library, report. No boto3 or troposphere here, and none imported
before a command needs it, so `condor_annex --help` starts fast.

    condor_annex --project-id 'TheNeeds-MooreLab' --expiry '2030-12-18 23:59' --instances 16
"""

from __future__ import annotations

import functools
import json
import sys

import click

EXAMPLE = "condor_annex --project-id 'TheNeeds-MooreLab' --expiry '2030-12-18 23:59' --instances 16"


def reported(command):
    """Library errors become one line and a non-zero exit; a traceback only with --debug."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        from .errors import AnnexError

        debug = (click.get_current_context().find_root().params or {}).get("debug")
        try:
            code = command(*args, **kwargs)
        except AnnexError as error:
            if debug:
                raise
            click.echo(f"condor_annex: {error}", err=True)
            sys.exit(error.exit_code)
        except KeyboardInterrupt:
            click.echo("condor_annex: interrupted; nothing more was started", err=True)
            sys.exit(130)
        sys.exit(code or 0)

    return run


def create_options(command):
    options = [
        click.option("--project-id", required=True, help="Your project's name, as you like to write it."),
        click.option("--expiry", required=True, help="When the annex ends: '2030-12-18 23:59' (local time) or ISO 8601."),
        click.option("--instances", required=True, help="How many instances to launch."),
        click.option("--owner", "owners", multiple=True, help="Whose jobs may run (default: you). Repeat for more."),
        click.option("--idle", "idle_minutes", type=int, default=15, show_default=True, help="Minutes an instance may sit idle before it stops."),
        click.option("--token-file", help="An IDTOKEN for the annex, if the pool uses tokens rather than a pool password."),
        click.option("--max-price", type=float, help="USD per instance-hour to assume when AWS publishes no price."),
        click.option("--budget", type=float, help="Refuse if the annex could cost more than this many USD."),
        click.option("--region", help="AWS region (default: your AWS configuration, else us-east-1)."),
        click.option("--yes", is_flag=True, help="Do not ask for confirmation."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def run_create(ui_quiet=False, **kw):
    from .lifecycle import CreateRequest, create
    from .ui import Ui

    request = CreateRequest(
        project_id=kw["project_id"], expiry=kw["expiry"], instances=kw["instances"], region=kw["region"],
        owners=tuple(kw["owners"]), idle_seconds=kw["idle_minutes"] * 60, token_file=kw["token_file"],
        max_price=kw["max_price"], budget=kw["budget"], yes=kw["yes"],
    )
    return create(request, Ui(quiet=ui_quiet))


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]}, epilog=f"Example:\n\n    {EXAMPLE}")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.option("--project-id", hidden=True)
@click.option("--expiry", hidden=True)
@click.option("--instances", hidden=True)
@click.option("--owner", "owners", multiple=True, hidden=True)
@click.option("--idle", "idle_minutes", type=int, default=15, hidden=True)
@click.option("--token-file", hidden=True)
@click.option("--max-price", type=float, hidden=True)
@click.option("--budget", type=float, hidden=True)
@click.option("--region", hidden=True)
@click.option("--yes", is_flag=True, hidden=True)
@click.pass_context
def main(ctx, debug, **kw):
    """Rent AWS instances for your HTCondor pool until a deadline, and be sure they stop costing money.

    With --project-id, --expiry and --instances and no command, creates an annex (as `create`).
    """
    if ctx.invoked_subcommand:
        return
    if all(kw[k] is None for k in ("project_id", "expiry", "instances")):
        click.echo(ctx.get_help())
        return
    missing = [f"--{k.replace('_', '-')}" for k in ("project_id", "expiry", "instances") if kw[k] is None]
    if missing:
        raise click.UsageError(f"creating an annex needs {', '.join(missing)}")
    ctx.invoke(create_command, **kw)


@main.command("create", epilog=f"Example:\n\n    {EXAMPLE.replace('condor_annex', 'condor_annex create')}")
@create_options
@reported
def create_command(**kw):
    """Create an annex: instances that join your pool until the expiry."""
    return run_create(**kw)


@main.command("status", epilog="Example:\n\n    condor_annex status --project-id 'TheNeeds-MooreLab'")
@click.option("--project-id", help="Only this project's annex.")
@click.option("--region", help="AWS region.")
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@reported
def status_command(project_id, region, output):
    """Show every annex in the region: expiry, time left, instances, and what the pool sees."""
    from .lifecycle import status

    annexes = status(project_id, region)
    if output == "json":
        click.echo(json.dumps(annexes, indent=2, sort_keys=True))
    else:
        from .ui import print_status

        print_status(annexes)
    return 0


@main.command("extend", epilog="Example:\n\n    condor_annex extend --project-id 'TheNeeds-MooreLab' --expiry '2030-12-20 23:59'")
@click.option("--project-id", required=True, help="The annex's project.")
@click.option("--expiry", required=True, help="The new expiry.")
@click.option("--region", help="AWS region.")
@click.option("--max-price", type=float, help="USD per instance-hour to assume when AWS publishes no price.")
@click.option("--budget", type=float, help="Refuse if the annex could cost more than this many USD.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@reported
def extend_command(project_id, expiry, region, max_price, budget, yes):
    """Move an annex's lease to a new expiry (no instance is replaced)."""
    from .lifecycle import extend
    from .ui import Ui

    return extend(project_id, expiry, region, yes, Ui(), budget=budget, max_price=max_price)


@main.command("delete", epilog="Example:\n\n    condor_annex delete --project-id 'TheNeeds-MooreLab'")
@click.option("--project-id", required=True, help="The annex's project.")
@click.option("--region", help="AWS region.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@reported
def delete_command(project_id, region, yes):
    """End an annex now: terminate its instances, delete its bucket and stack."""
    from .lifecycle import delete
    from .ui import Ui

    return delete(project_id, region, yes, Ui())


@main.command("render", epilog="Example:\n\n    condor_annex render --format json --references 2 --lint")
@click.argument("which", type=click.Choice(["annex", "setup"]), default="annex")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@click.option("--references", type=click.IntRange(1, 8), default=8, show_default=True, help="How many HTCondorAnnex-N references the annex uses.")
@click.option("--lint", is_flag=True, help="Also check the template with cfn-lint (findings on stderr).")
@reported
def render_command(which, fmt, references, lint):
    """Print a template for review; needs no AWS account."""
    from .template import build_template_for, render

    if which == "setup":
        from .setup_template import build_setup_template

        text = render(build_setup_template(), fmt)
    else:
        text = render(build_template_for(references), fmt)
    click.echo(text, nl=False)
    if lint:
        from .lint import lint_template

        findings = lint_template(text)
        for finding in findings:
            click.echo(f"cfn-lint: {finding}", err=True)
        return 1 if findings else 0
    return 0


def entry(argv=None, prog_name="condor_annex", command=None):
    """The console script: click's usage errors, like the library's, become one line and exit 2."""
    command = command or main
    try:
        code = command.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo(f"{prog_name}: interrupted; nothing more was started", err=True)
        sys.exit(130)
    except click.ClickException as error:
        click.echo(f"{prog_name}: {error.format_message()} (see {prog_name} --help)", err=True)
        sys.exit(error.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


def deploy_main(argv=None):
    """`annex-deploy`: the create command under its own name."""
    entry(argv, prog_name="annex-deploy", command=create_command)


# --- administrator set-up (annex/setup.py) ---


@main.command(
    "setup",
    epilog="Example:\n\n    condor_annex setup --region us-east-1 --instance-types m7i.large,c7i.large --max-instances 32"
    "\n\n    condor_annex setup --delete --region us-east-1",
)
@click.option("--region", help="AWS region (default: your AWS configuration, else us-east-1).")
@click.option("--instance-types", multiple=True, help="Instance types for HTCondorAnnex-1..N, comma-separated or repeated (default: m7i.large, c7i.large, m6i.large, c6i.large).")
@click.option("--ami", help="AMI id, or a public SSM parameter naming one (default: the current Amazon Linux 2023).")
@click.option("--spot-price", help="Use spot instances, paying at most this many USD per instance-hour.")
@click.option("--vpc-id", help="Use this existing VPC (DNS on, public subnets) instead of creating one.")
@click.option("--max-instances", type=int, default=64, show_default=True, help="Most instances one annex may have.")
@click.option("--max-lease-hours", type=float, default=168, show_default=True, help="Longest lease, in hours from now.")
@click.option("--max-ceiling", type=float, default=1000.0, show_default=True, help="Most USD one annex may cost.")
@click.option("--key-file", help="Where to write the new HTCondorAnnex key pair's private key (default: ~/.ssh/HTCondorAnnex-REGION.pem).")
@click.option("--delete", is_flag=True, help="Remove the set-up (refused while annexes exist).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@reported
def setup_command(region, instance_types, ami, spot_price, vpc_id, max_instances, max_lease_hours, max_ceiling, key_file, delete, yes):
    """One-time administrator set-up: network, launch templates, service role, end-user group, limits."""
    from .setup import SetupRequest, delete_setup, setup
    from .ui import Ui

    if delete:
        return delete_setup(region, yes, Ui())
    request = SetupRequest(
        region=region, instance_types=tuple(instance_types), ami=ami, spot_price=spot_price, vpc_id=vpc_id,
        max_instances=max_instances, max_lease_hours=max_lease_hours, max_ceiling=max_ceiling, key_file=key_file, yes=yes,
    )
    return setup(request, Ui())


@main.command("check-setup", epilog="Example:\n\n    condor_annex check-setup --region us-east-1")
@click.option("--region", help="AWS region.")
@reported
def check_setup_command(region):
    """Check that an annex can be created from here: credentials, set-up, permissions, pool."""
    from .setup import check_setup
    from .ui import Ui

    return check_setup(region, Ui())
