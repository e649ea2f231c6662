"""`condor_annex setup` (and `--delete`), and its subcommands add-user, add-project, remove-user,
remove-project and image: the administrator's. Each is a thin adapter: plan, show, ask, act, report."""

from __future__ import annotations

import contextlib

import click

from ..names import (
    DEFAULT_INSTANCE_TYPES,
    DEFAULT_MAX_ANNEXES_PER_USER,
    DEFAULT_MAX_CEILING_USD,
    DEFAULT_MAX_INSTANCES,
    DEFAULT_MAX_INSTANCES_PER_ACCOUNT,
    DEFAULT_MAX_INSTANCES_PER_USER,
    DEFAULT_MAX_LEASE_HOURS,
)
from ..text import usd
from .options import examples, given, global_options, proceed, reported, terminal

EXAMPLES = examples(
    "condor_annex setup --region us-east-1 --instance-types m7i.large,m6i.large --max-instances 32",
    "condor_annex setup --max-lease-hours 72 --dry-run      # a re-run changes only what is given",
    "condor_annex setup add-user needsmoore --project-id 'TheNeeds-MooreLab'",
    "condor_annex setup --delete --region us-east-1",
)
ADD_USER_EXAMPLES = (
    examples(
        "condor_annex setup add-user needsmoore --project-id 'TheNeeds-MooreLab'",
        "AWS_CONFIG_FILE=./needsmoore.htcondor-annex condor_annex status",
    )
    + "\n\n\b\nFor IAM Identity Center (SSO) or roles, make no user: see 'condor_annex setup add-project --help'."
)
KEPT = "[default on a first run: {}; a re-run keeps what is deployed]"
POSITIVE = click.FloatRange(min=0, min_open=True)
WHOLE = click.IntRange(1, 100_000)


SETTINGS_HELP = {
    "--instance-types": "Instance types annexes may launch, comma-separated or repeated (1 to 20). "
    + KEPT.format(",".join(DEFAULT_INSTANCE_TYPES[:3]) + ",…"),
    "--ami": "The instances' AMI: an id, or an SSM parameter naming one (read now, once). "
    + KEPT.format("the current Amazon Linux 2023"),
    "--markets": "spot, on-demand, or both. " + KEPT.format("both"),
    "--spot-price": "Most USD a spot instance-hour may cost ('none': AWS's cap, the on-demand price).",
    "--vpc-id": "Use this VPC (DNS on; subnets tagged Name=HTCondorAnnex, else its public ones). [a first "
    "run adopts the Quick Start's VPC tagged Name=HTCondorAnnex, else makes one]",
    "--max-instances": "Most instances one annex may have. " + KEPT.format(DEFAULT_MAX_INSTANCES),
    "--max-lease-hours": "Longest an annex may live, from its creation. " + KEPT.format(DEFAULT_MAX_LEASE_HOURS),
    "--max-ceiling": "Most USD one annex may cost. " + KEPT.format(usd(DEFAULT_MAX_CEILING_USD)),
    "--max-annexes-per-user": "Most annexes one user may have at once. " + KEPT.format(DEFAULT_MAX_ANNEXES_PER_USER),
    "--max-instances-per-user": "Most instances one user's annexes may have. "
    + KEPT.format(DEFAULT_MAX_INSTANCES_PER_USER),
    "--max-instances-per-account": "Most instances all annexes may have. "
    + KEPT.format(DEFAULT_MAX_INSTANCES_PER_ACCOUNT),
    "--collector": "A collector HOST:PORT the set-up probes from AWS (repeatable). [default on a first run: the "
    "pool's, from CONDOR_CONFIG]",
}
SETTINGS_TYPES = {
    "--instance-types": dict(multiple=True),
    "--markets": dict(multiple=True),
    "--max-instances": dict(type=WHOLE),
    "--max-lease-hours": dict(type=POSITIVE),
    "--max-ceiling": dict(type=POSITIVE),
    "--max-annexes-per-user": dict(type=WHOLE),
    "--max-instances-per-user": dict(type=WHOLE),
    "--max-instances-per-account": dict(type=WHOLE),
    "--collector": dict(multiple=True),
}
SETTINGS_NAMES = {"--max-ceiling": "max_ceiling_usd", "--collector": "collectors"}  # the settings' field names


def settings_options(command):
    """One option per settings field (annex/config/setup.py OPTION_FIELDS); none has a default here, so
    what is not given keeps what is deployed."""
    for option in reversed(SETTINGS_HELP):
        names = [option, SETTINGS_NAMES[option]] if option in SETTINGS_NAMES else [option]
        command = click.option(*names, help=SETTINGS_HELP[option], **SETTINGS_TYPES.get(option, {}))(command)
    return command


def dry_run_option(command):
    return click.option("--dry-run", is_flag=True, help="Show what would be done; change nothing.")(command)


@click.group("setup", invoke_without_command=True, epilog=EXAMPLES)
@settings_options
@click.option("--condor-config", help="The pool's HTCondor configuration, for its collector [CONDOR_CONFIG].")
@click.option("--delete", is_flag=True, help="Remove the set-up (refused while annexes or users exist).")
@dry_run_option
@global_options
@click.pass_context
def group(ctx, delete, dry_run, **kw):
    """One-time administrator set-up (one per account): the published annex template, service role, leases,
    admission, collector probe, the end users' group and limits. Run again to change a setting."""
    if ctx.invoked_subcommand:
        ctx.meta["setup_dry_run"] = dry_run
        return
    if delete:
        ctx.invoke(teardown, dry_run=dry_run)
    else:
        ctx.invoke(run_setup, dry_run=dry_run, **kw)


@contextlib.contextmanager
def positional_project():
    """add-project and remove-project take the project id as their argument, not as --project-id."""
    from ..errors import ConfigError

    try:
        yield
    except ConfigError as error:
        if error.field != "project_id":
            raise
        raise ConfigError("project_argument", error.problem) from None


def dry(dry_run: bool) -> bool:
    """--dry-run given to the subcommand or to `setup` before it."""
    return dry_run or bool(click.get_current_context().find_root().meta.get("setup_dry_run"))


@reported
def run_setup(dry_run, condor_config, **settings):
    from ..admin.setup import SetupRequest, execute_setup, plan_setup  # lazy: no boto3 at start-up
    from .setup_text import setup_done, setup_summary

    ui = terminal()
    request = SetupRequest(region=given("region"), profile=given("profile"), dry_run=dry_run,
                           condor_config=condor_config, **settings)  # fmt: skip
    plan = plan_setup(request)
    for line in setup_summary(plan):
        ui.say(line)
    if plan.unchanged:
        ui.say("Nothing to change.")
        return 0
    if dry_run:
        ui.say("Dry run: nothing was changed.")
        return 0
    if not proceed(ui, "Create the set-up?" if plan.creates else "Go ahead?", "Nothing was changed.", plan.region):
        return 1
    action = execute_setup(plan, ui)
    for line in setup_done(plan, action):
        ui.say(line)
    return 0


@reported
def teardown(dry_run):
    from ..admin.teardown import execute_teardown, plan_teardown  # lazy: no boto3 at start-up
    from .setup_text import teardown_done, teardown_summary

    ui = terminal()
    plan = plan_teardown(given("region"), given("profile"))
    if plan.nothing:
        ui.say(f"No set-up in {plan.region}; nothing to delete." + (f" ({plan.kept})" if plan.kept else ""))
        return 0
    for line in teardown_summary(plan):
        ui.say(line)
    if dry_run:
        ui.say("Dry run: nothing was deleted.")
        return 0
    if not proceed(ui, f"Delete the set-up in {plan.region}?", "Nothing was deleted.", plan.region):
        return 1
    for line in teardown_done(plan, execute_teardown(plan, ui)):
        ui.say(line)
    return 0


@group.command("add-user", epilog=ADD_USER_EXAMPLES)
@click.argument("name")
@click.option("--project-id", required=True, help="The project the user runs annexes for (and only that one).")
@click.option("--file", help="Where to write the user's AWS profile (mode 0600) [./NAME.htcondor-annex].")
@dry_run_option
@global_options
@reported
def add_user(name, project_id, file, dry_run):
    """Create an IAM user for an end user of one project, and write their AWS profile file; makes the
    project's instance role and profile when it has none."""
    from ..admin.users import execute_add_user, plan_add_user  # lazy: no boto3 at start-up
    from .setup_text import add_user_done, add_user_summary

    ui = terminal()
    plan = plan_add_user(name, project_id, file, given("region"), given("profile"))
    for line in add_user_summary(plan):
        ui.say(line)
    if dry(dry_run):
        ui.say("Dry run: nothing was created.")
        return 0
    if not proceed(ui, "Create the user?", "Nothing was created.", plan.region):
        return 1
    execute_add_user(plan)
    for line in add_user_done(plan):
        ui.say(line)
    return 0


@group.command("add-project", epilog=examples("condor_annex setup add-project 'TheNeeds-MooreLab'"))
@click.argument("project_id", metavar="PROJECT_ID")
@dry_run_option
@global_options
@reported
def add_project(project_id, dry_run):
    """Make a project's instance role and profile only: for people who come through IAM Identity Center
    (SSO) or a role, who get the managed policy HTCondorAnnexUser and the principal tag htcondor:AnnexName."""
    from ..admin.users import add_project as make  # lazy: no boto3 at start-up
    from .setup_text import add_project_lines

    ui = terminal()
    with positional_project():
        done = make(project_id, given("region"), given("profile"), dry_run=dry(dry_run))
    for line in add_project_lines(done, dry(dry_run)):
        ui.say(line)
    return 0


@group.command("remove-user", epilog=examples("condor_annex setup remove-user needsmoore --yes"))
@click.argument("name")
@dry_run_option
@global_options
@reported
def remove_user(name, dry_run):
    """Delete an end user's access keys and the user; their running annexes are named (they end at their
    leases), and their project's role goes too when no annex and no other user needs it."""
    from ..admin.users import execute_remove_user, plan_remove_user  # lazy: no boto3 at start-up
    from .setup_text import remove_user_summary

    ui = terminal()
    plan = plan_remove_user(name, given("region"), given("profile"))
    if not plan.exists:
        ui.say(f"No IAM user {name}; nothing to delete.")
        return 0
    for line in remove_user_summary(plan):
        ui.say(line)
    if dry(dry_run):
        ui.say("Dry run: nothing was deleted.")
        return 0
    if not proceed(ui, f"Delete IAM user {name}?", "Nothing was deleted.", plan.region):
        return 1
    execute_remove_user(plan)
    ui.say(f"User {name} is gone." + (f" So are {plan.identity}'s instance role and profile." if plan.identity else ""))
    return 0


@group.command("remove-project", epilog=examples("condor_annex setup remove-project 'TheNeeds-MooreLab' --yes"))
@click.argument("project_id", metavar="PROJECT_ID")
@dry_run_option
@global_options
@reported
def remove_project(project_id, dry_run):
    """Delete a project's instance role and profile (refused while the project has an annex)."""
    from ..admin.users import (  # lazy: no boto3 at start-up
        execute_remove_project,
        plan_remove_project,
    )
    from .setup_text import remove_project_summary

    ui = terminal()
    with positional_project():
        plan = plan_remove_project(project_id, given("region"), given("profile"))
    if not plan.exists:
        ui.say(f"Project {plan.project_id!r} has no instance role or profile; nothing to delete.")
        return 0
    for line in remove_project_summary(plan):
        ui.say(line)
    if dry(dry_run):
        ui.say("Dry run: nothing was deleted.")
        return 0
    if not proceed(ui, "Delete them?", "Nothing was deleted.", plan.region):
        return 1
    execute_remove_project(plan)
    ui.say(f"Project {plan.project_id!r}'s instance role and profile are gone.")
    return 0


@group.command("image", epilog=examples("condor_annex setup image", "condor_annex setup image --base-ami ami-0abc… "
                                        "--subnet-id subnet-0abc…"))  # fmt: skip
@click.option("--base-ami", help="The image to start from: an id or an SSM parameter [the set-up's AMI].")
@click.option("--instance-type", help="The builder's type [t3.small, or t4g.small for arm64 images].")
@click.option("--subnet-id", help="Where the builder runs (it needs a way out to the internet) [the set-up's].")
@click.option("--wait-minutes", type=POSITIVE, default=40, show_default=True,
              help="How long the builder may take to say READY or FAILED.")  # fmt: skip
@dry_run_option
@global_options
@reported
def image(base_ami, instance_type, subnet_id, wait_minutes, dry_run):
    """Make, once, an image with HTCondor and the firewall tool installed, so that annex instances install
    nothing at boot; prints the 'setup --ami' command that uses it."""
    from ..admin.image import execute_image, plan_image  # lazy: no boto3 at start-up
    from .setup_text import image_done, image_summary

    ui = terminal()
    plan = plan_image(given("region"), given("profile"), base_ami=base_ami, instance_type=instance_type,
                      subnet_id=subnet_id, minutes=wait_minutes)  # fmt: skip
    for line in image_summary(plan):
        ui.say(line)
    if dry(dry_run):
        ui.say("Dry run: nothing was launched.")
        return 0
    if not proceed(ui, "Make the image?", "Nothing was launched.", plan.region):
        return 1
    made = execute_image(plan, ui)
    for line in image_done(plan, made):
        ui.say(line)
    click.echo(made.image_id)
    return 0
