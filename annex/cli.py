"""The command line: parse, plan, show, ask, act, report. No boto3 or troposphere here, and nothing heavy
imported before a command needs it, so `condor_annex --help` starts fast.

The global options (--region, --profile, --output, --yes, --debug) work before or after the command, as
the aws CLI's do. Conversation goes to stderr; results go to stdout in the --output format.
"""

from __future__ import annotations

import functools
import json
import sys

import click

from . import __version__
from .names import (
    DEFAULT_IDLE_MINUTES,
    DEFAULT_INSTANCE_TYPES,
    DEFAULT_MAX_CEILING_USD,
    DEFAULT_MAX_INSTANCES,
    DEFAULT_MAX_LEASE_HOURS,
    MAX_REFERENCES,
)

EXAMPLE = "condor_annex --project-id 'TheNeeds-MooreLab' --expiry '2030-12-18 23:59' --instances 16"
EXIT_CODES = """\b
Exit codes:
  0    done (also: nothing to delete; the lease already ends then)
  1    AWS, the set-up or the pool refused or failed; or you answered no
  2    bad input: an option or value (the message names it)
  130  interrupted (the message says what exists and how to go on)"""
ENVIRONMENT = """\b
Environment:
  AWS_PROFILE, AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE   which AWS credentials
  AWS_REGION, AWS_DEFAULT_REGION   the region (--region wins; default us-east-1)
  AWS_ENDPOINT_URL                 another AWS endpoint (e.g. a local stand-in)
  CONDOR_CONFIG                    the pool's HTCondor configuration
  XDG_CACHE_HOME                   where AWS's prices are cached for a day"""
GLOBALS = ("region", "profile", "output", "yes", "debug")


def examples(*lines: str) -> str:
    """An epilog click prints as written (\\b stops it re-wrapping), so examples can be copied."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def remember(ctx, param, value):
    """Global options, wherever they are given: a later (the command's) value wins."""
    if value not in (None, False):
        ctx.find_root().meta.setdefault("annex", {})[param.name] = value
    return value


def global_options(command):
    options = [
        click.option("--region", expose_value=False, callback=remember, help="AWS region (default: AWS_REGION, your AWS profile, else us-east-1)."),
        click.option("--profile", expose_value=False, callback=remember, help="AWS profile (default: AWS_PROFILE)."),
        click.option("--output", type=click.Choice(["table", "json", "text"]), expose_value=False, callback=remember, help="Format of the result on stdout [table]."),
        click.option("--yes", is_flag=True, expose_value=False, callback=remember, help="Do not ask for confirmation."),
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
        from .errors import AnnexError

        try:
            code = command(*args, **kwargs)
        except AnnexError as error:
            if given("debug"):
                raise
            click.echo(f"condor_annex: {error}", err=True)
            sys.exit(error.exit_code)
        except KeyboardInterrupt:
            acting = click.get_current_context().find_root().meta.get("acting")
            click.echo("condor_annex: interrupted; " + (f"'condor_annex status --region {acting}' shows what exists, and the same command finishes it"
                                                        if acting else "nothing was changed"), err=True)
            sys.exit(130)
        sys.exit(code or 0)

    return run


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
    from .ui import TerminalUi

    return TerminalUi()


class AnnexGroup(click.Group):
    """`condor_annex --project-id X --expiry Y --instances N` (the seed's form, no command) means `create`."""

    VALUED = {"--region", "--profile", "--output"}

    def parse_args(self, ctx, args):
        rest, i = list(args), 0
        while i < len(rest) and rest[i].startswith("-") and rest[i] not in ("-h", "--help", "--version"):
            if rest[i] in self.VALUED:
                i += 2
            elif rest[i] in ("--yes", "--debug") or "=" in rest[i] and rest[i].split("=", 1)[0] in self.VALUED:
                i += 1
            else:
                rest.insert(i, "create")  # an option of create's: the seed's form
                break
        return super().parse_args(ctx, rest)


@click.group(cls=AnnexGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog=examples(EXAMPLE, "condor_annex status", "condor_annex delete --project-id 'TheNeeds-MooreLab'") + "\n\n" + EXIT_CODES + "\n\n" + ENVIRONMENT)
@click.version_option(__version__, "--version", prog_name="condor_annex")
@global_options
def main():
    """Rent AWS instances for your HTCondor pool until a deadline, and be sure they stop costing money.

    With --project-id, --expiry (or --duration) and --instances and no command, creates an annex.
    """


def when_options(command):
    """--expiry or --duration: when an annex ends (create and extend take the same forms)."""
    command = click.option("--duration", help="Or how long from now: 8h, 90m, 2d, 1d12h.")(command)
    return click.option("--expiry", help="When the annex ends: '2030-12-18 23:59' (local), ISO 8601, a date (its end), or '+8h'.")(command)


def money_options(command):
    """What the ceiling may assume, and what it must not exceed."""
    command = click.option("--budget", help="Refuse if the annex could cost more than this many USD.")(command)
    return click.option("--max-price", help="USD per instance-hour to assume where AWS publishes no price.")(command)


# --- create --------------------------------------------------------------------------------------


@main.command("create", epilog=examples(EXAMPLE.replace("condor_annex", "condor_annex create"),
                                         "condor_annex create --project-id 'Lab A' --duration 8h --instances 4 --owner alice --owner bob",
                                         "condor_annex create --project-id 'Lab A' --duration 2d --instances 4 --dry-run --output json"))
@click.option("--project-id", help="Your project's name, as you like to write it (default: your AWS profile's).")
@when_options
@click.option("--instances", required=True, help="How many instances to launch.")
@click.option("--owner", "owners", multiple=True, help="Whose jobs may run (default: you). Repeat for more.")
@click.option("--idle", "idle_minutes", default=str(DEFAULT_IDLE_MINUTES), show_default=True, help="Minutes an instance may sit idle before it stops.")
@click.option("--token-file", help="An IDTOKEN for the instances (scoped to READ, ADVERTISE_STARTD, ADVERTISE_MASTER; ends with the lease).")
@money_options
@click.option("--dry-run", is_flag=True, help="Show what would be created, and create nothing.")
@global_options
@reported
def create_command(dry_run, **kw):
    """Create an annex: instances that join your pool until the expiry."""
    from .lifecycle import CreateRequest, execute_create, plan_create, unreachable_fix
    from .errors import PoolError
    from .ui import create_summary

    ui = terminal()
    request = CreateRequest(region=given("region"), profile=given("profile"), owners=tuple(kw.pop("owners")), **kw)
    plan = plan_create(request)
    for line in create_summary(plan):
        ui.say(line)
    if plan.collector.reachable is False:
        raise PoolError(unreachable_fix(plan.collector))
    if dry_run:
        emit_plan({"create": plan.stack, "region": plan.region, "instances": plan.config.instances, "most_usd": round(plan.ceiling.total, 2),
                   "expiry_utc": plan.parameters["Expiry"], "resume": plan.existing is not None})
        ui.say("Dry run: nothing was created.")
        return 0
    if not proceed(ui, "Finish creating this annex?" if plan.existing else "Create this annex?", "Nothing was created.", plan.region):
        return 1
    created = execute_create(plan, ui)
    where = f"--project-id {quote(plan.config.project_id)} --region {plan.region}"
    ui.say(f"Annex {plan.config.project_id!r} is up in {plan.region}: {created.launched} of {plan.config.instances} instances launched; "
           "they join the pool within a few minutes.")
    ui.say(f"  Watch it:     condor_annex status {where}")
    ui.say(f"  In the pool:  condor_status -annex-name {quote(plan.config.project_id)}")
    ui.say(f"  End it early: condor_annex delete {where}")
    emit_annex(plan.aws, plan.config.project_id)
    return 0


def quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def emit_plan(data: dict) -> None:
    if output() == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    elif output() == "text":
        click.echo("\t".join(f"{k}={v}" for k, v in sorted(data.items())))


def emit_annex(aws, project_id: str) -> None:
    """The annex's record on stdout, in the --output format."""
    from .status import collect

    emit_records(collect([aws], project_id, pool=False), aws.region)


def emit_records(records, where: str) -> None:
    from .ui import status_notes, status_table, status_text

    if output() == "json":
        click.echo(json.dumps([r.to_json() for r in records], indent=2, sort_keys=True))
    elif output() == "text":
        for line in status_text(records):
            click.echo(line)
    elif not records:
        click.echo(f"No annexes in {where}.")
    else:
        width = sys.stdout.isatty() and __import__("shutil").get_terminal_size().columns or None
        for line in status_table(records, width):
            click.echo(line)
        for line in status_notes(records):
            click.echo(line, err=True)


# --- status ---------------------------------------------------------------------------------------


@main.command("status", epilog=examples("condor_annex status", "condor_annex status --project-id 'TheNeeds-MooreLab' --output json",
                                         "condor_annex status --all-regions", "condor_annex status --watch"))
@click.option("--project-id", help="Only this project's annex.")
@click.option("--all-regions", is_flag=True, help="Every region enabled for the account.")
@click.option("--watch", type=click.IntRange(min=2), is_flag=False, flag_value=10, default=None, help="Redraw every N seconds (default 10) until Ctrl-C.")
@global_options
@reported
def status_command(project_id, all_regions, watch):
    """Show annexes: who made them, how long they have left, instances, the pool's view, money."""
    from .lifecycle import find_annex, not_found, session
    from .status import collect

    aws = session(given("region"), given("profile"))
    sessions = [aws] if not all_regions else regions_of(aws)
    where = "any region" if all_regions else aws.region
    while True:
        records = collect(sessions, project_id)
        if project_id and not records and not watch:
            from .errors import StackNotFound

            raise StackNotFound(not_found(aws, project_id) if find_annex(aws, project_id) is None else f"no annex for {project_id!r}")
        if watch:
            click.clear()
        emit_records(records, where)
        if not watch:
            return 0
        try:
            __import__("time").sleep(watch)
        except KeyboardInterrupt:
            return 0


def regions_of(aws):
    from concurrent.futures import ThreadPoolExecutor

    from .lifecycle import session

    profile = given("profile")  # click's context is not seen from the pool's threads
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda r: session(r, profile), aws.regions()))


# --- extend ---------------------------------------------------------------------------------------


@main.command("extend", epilog=examples("condor_annex extend --project-id 'TheNeeds-MooreLab' --expiry '2030-12-20 23:59'",
                                         "condor_annex extend --project-id 'TheNeeds-MooreLab' --duration 12h"))
@click.option("--project-id", help="The annex's project (default: your AWS profile's).")
@when_options
@money_options
@click.option("--token-file", help="A new IDTOKEN, for an annex that joins with tokens.")
@click.option("--dry-run", is_flag=True, help="Show the change, and change nothing.")
@global_options
@reported
def extend_command(dry_run, **kw):
    """Move an annex's lease to a new expiry (no instance is replaced)."""
    from .config import format_time
    from .lifecycle import ExtendRequest, execute_extend, plan_extend
    from .ui import extend_summary

    ui = terminal()
    plan = plan_extend(ExtendRequest(region=given("region"), profile=given("profile"), **kw))
    if plan.same:
        ui.say(f"Annex {plan.stack.project_id!r} in {plan.stack.region} already ends then ({format_time(plan.new_expiry)}).")
    else:
        for line in extend_summary(plan):
            ui.say(line)
    if dry_run:
        ui.say("Dry run: nothing was changed.")
        return 0
    question = "Shorten the lease?" if plan.shortens else "Extend the lease?"
    if not plan.same and not proceed(ui, question, "Nothing was changed.", plan.stack.region):
        return 1
    acting(plan.stack.region)
    execute_extend(plan, ui)
    if not plan.same:
        ui.say(f"Annex {plan.stack.project_id!r} now ends at {format_time(plan.new_expiry)}.")
    emit_annex(plan.aws, plan.stack.project_id)
    return 0


# --- delete ---------------------------------------------------------------------------------------


@main.command("delete", epilog=examples("condor_annex delete --project-id 'TheNeeds-MooreLab'", "condor_annex delete --project-id 'TheNeeds-MooreLab' --region eu-west-1 --yes"))
@click.option("--project-id", help="The annex's project (default: your AWS profile's).")
@click.option("--dry-run", is_flag=True, help="Show what would end, and end nothing.")
@global_options
@reported
def delete_command(project_id, dry_run):
    """End an annex now: terminate its instances, delete its bucket and stack."""
    from .lifecycle import DeleteRequest, execute_delete, plan_delete
    from .status import collect
    from .ui import delete_summary

    ui = terminal()
    plan = plan_delete(DeleteRequest(project_id, given("region"), given("profile")))
    if plan.stack is None:
        ui.say(plan.missing[0].upper() + plan.missing[1:] + ".")
        emit_deleted(plan, deleted=False)
        return 0
    records = collect([plan.aws], plan.project_id, pool=False)
    for line in delete_summary(plan, records[0] if records else None):
        ui.say(line)
    if dry_run:
        ui.say("Dry run: nothing was deleted.")
        return 0
    if not proceed(ui, f"Delete annex {plan.project_id!r} in {plan.region}?", "Nothing was deleted.", plan.region):
        return 1
    execute_delete(plan, ui)
    ui.say(f"Annex {plan.project_id!r} in {plan.region} is gone: instances terminated, bucket and stack deleted.")
    emit_deleted(plan, deleted=True)
    return 0


def emit_deleted(plan, deleted: bool) -> None:
    """delete's result on stdout: what was (or was not) there, and whether it is gone."""
    record = {"project_id": plan.project_id, "region": plan.region, "stack": plan.stack.name if plan.stack else None, "deleted": deleted}
    if output() == "json":
        click.echo(json.dumps(record, indent=2, sort_keys=True))
    elif output() == "text":
        click.echo(f"{plan.project_id}\t{plan.region}\t{'deleted' if deleted else 'not found'}")


# --- render ---------------------------------------------------------------------------------------


def setup_options(command):
    options = [
        click.option("--instance-types", multiple=True, help=f"Instance types of HTCondorAnnex-1..N, comma-separated or repeated [{','.join(DEFAULT_INSTANCE_TYPES)}]."),
        click.option("--ami", help="AMI id, or a public SSM parameter naming one [the current Amazon Linux 2023]."),
        click.option("--spot-price", help="Use spot instances, paying at most this many USD per instance-hour."),
        click.option("--max-instances", type=click.IntRange(1, 10_000), default=DEFAULT_MAX_INSTANCES, show_default=True, help="Most instances one annex may have."),
        click.option("--max-lease-hours", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_MAX_LEASE_HOURS, show_default=True, help="Longest an annex may live, from its creation."),
        click.option("--max-ceiling", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_MAX_CEILING_USD, show_default=True, help="Most USD one annex may cost."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@main.command("render", epilog=examples("condor_annex render --references 2 --lint", "condor_annex render published --references 3 --instance-types m7i.large,c7i.large,m6i.large",
                                         "condor_annex render setup --format json"))
@click.argument("which", type=click.Choice(["annex", "published", "setup"]), default="annex")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@click.option("--references", type=click.IntRange(1, MAX_REFERENCES), default=MAX_REFERENCES, show_default=True, help="How many HTCondorAnnex-N references the annex uses.")
@click.option("--lint", is_flag=True, help="Also check the template with cfn-lint (findings on stderr).")
@setup_options
@global_options
@reported
def render_command(which, fmt, references, lint, **settings):
    """Print a template for review; needs no AWS account.

    annex: the template a hand-prepared account deploys. published: what `setup` publishes for end users
    (give the same settings as to setup). setup: the set-up stack.
    """
    from .render import render
    from .template import build_template

    if which == "annex":
        template = build_template(references)
    else:
        from .admin.setup import SetupRequest  # it imports boto3: not for the annex template

        chosen = SetupRequest(**settings).settings()
        if which == "setup":
            from .admin.template import build_setup_template

            template = build_setup_template(chosen)
        else:
            template = build_template(min(references, chosen.published().shapes.stop - 1), chosen.published())
    text = render(template, fmt)
    click.echo(text, nl=False)
    if lint:
        from .lint import lint_template

        findings = lint_template(text)
        for finding in findings:
            click.echo(f"cfn-lint: {finding}", err=True)
        return 1 if findings else 0
    return 0


# --- the administrator ----------------------------------------------------------------------------


@main.group("setup", invoke_without_command=True,
            epilog=examples("condor_annex setup --region us-east-1 --instance-types m7i.large,c7i.large --max-instances 32",
                            "condor_annex setup add-user needsmoore --project-id 'TheNeeds-MooreLab'", "condor_annex setup --delete --region us-east-1"))
@setup_options
@click.option("--vpc-id", help="Use this existing VPC (DNS on, public subnets) instead of creating one.")
@click.option("--key-file", help="Where to write the new HTCondorAnnex key pair's private key [~/.ssh/HTCondorAnnex-REGION.pem].")
@click.option("--delete", is_flag=True, help="Remove the set-up (refused while annexes exist).")
@global_options
@click.pass_context
def setup_group(ctx, delete, **kw):
    """One-time administrator set-up: network, published templates, service role, leases, end-user group, limits."""
    if ctx.invoked_subcommand:
        return
    ctx.invoke(teardown if delete else run_setup, **({} if delete else kw))


@reported
def run_setup(**kw):
    from .admin.setup import SetupRequest, execute_setup, plan_setup
    from .ui import setup_summary

    ui = terminal()
    plan = plan_setup(SetupRequest(region=given("region"), profile=given("profile"), **kw))
    for line in setup_summary(plan):
        ui.say(line)
    if not proceed(ui, "Go ahead?" if plan.existing else "Create the set-up?", "Nothing was changed.", plan.region):
        return 1
    action = execute_setup(plan, ui)
    if action == "unchanged":
        ui.say(f"The set-up in {plan.region} is up to date: nothing to change.")
    else:
        ui.say(f"The set-up is {'ready' if action == 'create' else 'updated'} in {plan.region}.")
    ui.say(f"  Give a user access: condor_annex setup add-user NAME --project-id PROJECT --region {plan.region}")
    ui.say(f"  Check it:           condor_annex check-setup --region {plan.region}")
    return 0


@reported
def teardown():
    from .admin.setup import execute_teardown, plan_teardown
    from .names import SETUP_NAME, SETUP_STACK

    ui = terminal()
    plan = plan_teardown(given("region"), given("profile"))
    if plan.stack is None:
        ui.say(f"No set-up in {plan.region}; nothing to delete.")
        return 0
    if not proceed(ui, f"Delete the set-up in {plan.region} (stack {SETUP_STACK}, its network, roles, user group, limits, and bucket {plan.bucket})?", "Nothing was deleted.", plan.region):
        return 1
    execute_teardown(plan, ui)
    ui.say(f"The set-up in {plan.region} is gone. Key pair {SETUP_NAME} is kept (free; delete it with "
           f"'aws ec2 delete-key-pair --key-name {SETUP_NAME} --region {plan.region}').")
    return 0


@setup_group.command("add-user", epilog=examples("condor_annex setup add-user needsmoore --project-id 'TheNeeds-MooreLab'",
                                                  "AWS_CONFIG_FILE=./needsmoore.htcondor-annex condor_annex status") + """

\b
For accounts that use IAM Identity Center (SSO) or roles: make no user; attach the managed policy
HTCondorAnnexUser to the permission set or role instead. The owner of an annex is then the session
(the person's SSO name); give each person their own session name.""")
@click.argument("name")
@click.option("--project-id", required=True, help="The project the user runs annexes for (written into the profile).")
@click.option("--file", help="Where to write the user's AWS profile (mode 0600) [./NAME.htcondor-annex].")
@global_options
@reported
def add_user_command(name, project_id, file):
    """Create an IAM user for an end user, in the annex users' group, and write their AWS profile file."""
    from .admin.users import execute_add_user, plan_add_user

    ui = terminal()
    plan = plan_add_user(name, project_id, file, given("region"), given("profile"))
    ui.say(f"condor_annex will create IAM user {plan.name} in the group of annex users (project {plan.project_id!r}),")
    ui.say(f"  make its access key and write it, with the region {plan.region}, to {plan.file} (mode 0600).")
    if not proceed(ui, "Create the user?", "Nothing was created.", plan.region):
        return 1
    execute_add_user(plan)
    ui.say(f"User {plan.name} is ready. Send {plan.file} to them privately; they run:")
    ui.say(f"  export AWS_CONFIG_FILE=/path/to/{plan.file.name}")
    ui.say("  condor_annex create --expiry '2030-12-18 23:59' --instances 16")
    return 0


@setup_group.command("remove-user", epilog=examples("condor_annex setup remove-user needsmoore --yes"))
@click.argument("name")
@global_options
@reported
def remove_user_command(name):
    """Delete an end user's access keys and the user (their annexes are left to their leases)."""
    from .admin.users import remove_user

    ui = terminal()
    if not ui.confirm(f"Delete IAM user {name} and its access keys?", given("yes")):
        ui.say("Nothing was deleted.")
        return 1
    ui.say(f"User {name} is gone." if remove_user(name, given("region"), given("profile")) else f"No IAM user {name}; nothing to delete.")
    return 0


@main.command("check-setup", epilog=examples("condor_annex check-setup --region us-east-1"))
@global_options
@reported
def check_setup_command():
    """Check that an annex can be created from here: credentials, set-up, permissions, pool, collector."""
    from .admin.check import run_checks
    from .ui import check_line

    ui = terminal()
    report = run_checks(given("region"), given("profile"))
    if output() == "json":
        click.echo(json.dumps([c.__dict__ for c in report.checks], indent=2))
    for check in report.checks:
        ui.say(check_line(check))
    ui.say("An annex can be created from here." if report.ready else "An annex cannot be created until the ✗ lines are fixed.")
    return 0 if report.ready else 1


# --- entry points ---------------------------------------------------------------------------------


def entry(argv=None, prog_name="condor_annex", command=None):
    """The console script: click's usage errors, like the library's, become one line and exit 2."""
    command = command or main
    try:
        code = command.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo(f"{prog_name}: interrupted; nothing was changed", err=True)
        sys.exit(130)
    except click.ClickException as error:
        click.echo(f"{prog_name}: {error.format_message()} (see {prog_name} --help)", err=True)
        sys.exit(error.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


def deploy_main(argv=None):
    """`annex-deploy`: the create command under its own name (the prototype's)."""
    entry(argv, prog_name="annex-deploy", command=create_command)
