"""`condor_annex setup` (and `--delete`), `setup add-user`, `setup remove-user`: the administrator's."""

from __future__ import annotations

import click

from ..names import SETUP_NAME, SETUP_STACK
from .options import examples, given, global_options, proceed, reported, setup_options, terminal

EXAMPLES = examples(
    "condor_annex setup --region us-east-1 --instance-types m7i.large,c7i.large --max-instances 32",
    "condor_annex setup add-user needsmoore --project-id 'TheNeeds-MooreLab'",
    "condor_annex setup --delete --region us-east-1",
)
ADD_USER_EXAMPLES = (
    examples(
        "condor_annex setup add-user needsmoore --project-id 'TheNeeds-MooreLab'",
        "AWS_CONFIG_FILE=./needsmoore.htcondor-annex condor_annex status",
    )
    + """

\b
For accounts that use IAM Identity Center (SSO) or roles: make no user; attach the managed policy
HTCondorAnnexUser to the permission set or role instead. The owner of an annex is then the session
(the person's SSO name); give each person their own session name."""
)
KEY_HELP = (
    "Where to write the new HTCondorAnnex key pair's private key [~/.ssh/HTCondorAnnex-REGION.pem]."
)


@click.group("setup", invoke_without_command=True, epilog=EXAMPLES)
@setup_options
@click.option(
    "--vpc-id", help="Use this existing VPC (DNS on, public subnets) instead of creating one."
)
@click.option("--key-file", help=KEY_HELP)
@click.option("--delete", is_flag=True, help="Remove the set-up (refused while annexes exist).")
@global_options
@click.pass_context
def group(ctx, delete, **kw):
    """One-time administrator set-up: network, published templates, service role, leases, end-user group, limits."""
    if ctx.invoked_subcommand:
        return
    ctx.invoke(teardown if delete else run_setup, **({} if delete else kw))


@reported
def run_setup(**kw):
    from ..admin.setup import SetupRequest, execute_setup, plan_setup  # lazy: no boto3 at start-up
    from .text import setup_summary

    ui = terminal()
    plan = plan_setup(SetupRequest(region=given("region"), profile=given("profile"), **kw))
    for line in setup_summary(plan):
        ui.say(line)
    if not proceed(
        ui,
        "Go ahead?" if plan.existing else "Create the set-up?",
        "Nothing was changed.",
        plan.region,
    ):
        return 1
    action = execute_setup(plan, ui)
    if action == "unchanged":
        ui.say(f"The set-up in {plan.region} is up to date: nothing to change.")
    else:
        ui.say(f"The set-up is {'ready' if action == 'create' else 'updated'} in {plan.region}.")
    ui.say(
        f"  Give a user access: condor_annex setup add-user NAME --project-id PROJECT --region {plan.region}"
    )
    ui.say(f"  Check it:           condor_annex check-setup --region {plan.region}")
    return 0


@reported
def teardown():
    from ..admin.setup import execute_teardown, plan_teardown  # lazy: no boto3 at start-up

    ui = terminal()
    plan = plan_teardown(given("region"), given("profile"))
    if plan.stack is None:
        ui.say(f"No set-up in {plan.region}; nothing to delete.")
        return 0
    question = (f"Delete the set-up in {plan.region} (stack {SETUP_STACK}, its network, roles, user group, limits, "
                f"and bucket {plan.bucket})?")  # fmt: skip
    if not proceed(ui, question, "Nothing was deleted.", plan.region):
        return 1
    execute_teardown(plan, ui)
    ui.say(f"The set-up in {plan.region} is gone. Key pair {SETUP_NAME} is kept (free; delete it with "
           f"'aws ec2 delete-key-pair --key-name {SETUP_NAME} --region {plan.region}').")  # fmt: skip
    return 0


@group.command("add-user", epilog=ADD_USER_EXAMPLES)
@click.argument("name")
@click.option(
    "--project-id",
    required=True,
    help="The project the user runs annexes for (written into the profile).",
)
@click.option(
    "--file", help="Where to write the user's AWS profile (mode 0600) [./NAME.htcondor-annex]."
)
@global_options
@reported
def add_user(name, project_id, file):
    """Create an IAM user for an end user, in the annex users' group, and write their AWS profile file."""
    from ..admin.users import execute_add_user, plan_add_user  # lazy: no boto3 at start-up

    ui = terminal()
    plan = plan_add_user(name, project_id, file, given("region"), given("profile"))
    ui.say(
        f"condor_annex will create IAM user {plan.name} in the group of annex users (project {plan.project_id!r}),"
    )
    ui.say(
        f"  make its access key and write it, with the region {plan.region}, to {plan.file} (mode 0600)."
    )
    if not proceed(ui, "Create the user?", "Nothing was created.", plan.region):
        return 1
    execute_add_user(plan)
    ui.say(f"User {plan.name} is ready. Send {plan.file} to them privately; they run:")
    ui.say(f"  export AWS_CONFIG_FILE=/path/to/{plan.file.name}")
    ui.say("  condor_annex create --expiry '2030-12-18 23:59' --instances 16")
    return 0


@group.command("remove-user", epilog=examples("condor_annex setup remove-user needsmoore --yes"))
@click.argument("name")
@global_options
@reported
def remove_user(name):
    """Delete an end user's access keys and the user (their annexes are left to their leases)."""
    from ..admin.users import remove_user as remove  # lazy: no boto3 at start-up

    ui = terminal()
    if not ui.confirm(f"Delete IAM user {name} and its access keys?", given("yes")):
        ui.say("Nothing was deleted.")
        return 1
    gone = remove(name, given("region"), given("profile"))
    ui.say(f"User {name} is gone." if gone else f"No IAM user {name}; nothing to delete.")
    return 0
