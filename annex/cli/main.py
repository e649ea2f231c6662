"""The command line: the `condor_annex` group, its verbs, and the console scripts.

Each verb is a module of this package (parse, plan, show, ask, act, report); none imports boto3 or
troposphere before it runs, so `condor_annex --help` starts fast. The global options (--region,
--profile, --output, --yes, --debug) work before or after the command, as the aws CLI's do. Conversation
goes to stderr; results go to stdout in the --output format.
"""

from __future__ import annotations

import sys
from typing import ClassVar

import click

from .. import __version__
from . import autoscale, check, create, delete, extend, render, setup, status
from .options import EXAMPLE, examples, global_options

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
EPILOG = "\n\n".join(
    [
        examples(EXAMPLE, "condor_annex status", "condor_annex delete --project-id 'TheNeeds-MooreLab'"),
        EXIT_CODES,
        ENVIRONMENT,
    ]
)


# HTCondor's condor_annex spells its options with one dash; here is what each means in this one.
HTCONDOR_OPTIONS = {
    "-count": "--instances",
    "-annex-name": "--project-id",
    "-duration": "--duration",  # decimal hours; a bare number is hours here too
    "-aws-region": "--region",
    "-yes": "--yes",
    "-debug": "--debug",
    "-help": "--help",
    "-version": "--version",
}
HTCONDOR_COMMANDS = {"-status": "status", "-check-setup": "check-setup", "-setup": "setup"}
SPELLINGS = {"--count": "--instances"}  # the other tool's word, with this one's dashes
HELP = ("-h", "--help", "--version")
SET_UP = "the administrator's set-up decides it"
NOT_HERE = {
    "-slots": "condor_annex starts whole instances: use --instances N",
    "-tag": "an annex's resources are tagged with its project and owner",
    "-no-owner": "an annex runs only its owners' jobs: name each with --owner USER",
    "-config-dir": "the instances' configuration is made from your pool's (CONDOR_CONFIG)",
    "-aws-user-data": "the instances run the annex's own start-up; software goes into the image",
    "-aws-on-demand": f"on-demand or spot: {SET_UP} (condor_annex setup --spot-price)",
    "-aws-spot-fleet": f"on-demand or spot: {SET_UP} (condor_annex setup --spot-price)",
    "-aws-on-demand-instance-type": f"{SET_UP} (condor_annex setup --instance-types)",
    "-aws-on-demand-ami-id": f"{SET_UP} (condor_annex setup --ami)",
    "-aws-on-demand-key-name": "published annexes take no SSH key; a hand-made account's key pair HTCondorAnnex is used if it exists",
    "-aws-on-demand-security-group-ids": "each annex makes its own security group",
    "-aws-spot-fleet-config-file": f"{SET_UP} (condor_annex setup --instance-types, --spot-price)",
    "-aws-access-key-file": "AWS credentials come from your AWS profile: use --profile",
    "-aws-url": "for another AWS endpoint set AWS_ENDPOINT_URL",
    "-aws-lease-function-arn": "each annex's stack makes its own lease and instance profile",
    "-classad": "for every field use --output json (or --output text)",
}
NOT_HERE_ALIASES = {  # options NOT_HERE answers under one name
    "-aws-user-data-file": "-aws-user-data",
    "-aws-default-user-data": "-aws-user-data",
    "-aws-default-user-data-file": "-aws-user-data",
    "-aws-secret-key-file": "-aws-access-key-file",
    "-aws-ec2-url": "-aws-url",
    "-aws-events-url": "-aws-url",
    "-aws-lambda-url": "-aws-url",
    "-aws-s3-url": "-aws-url",
    "-aws-cwe-url": "-aws-url",
    "-aws-spot-fleet-lease-function-arn": "-aws-lease-function-arn",
    "-aws-on-demand-lease-function-arn": "-aws-lease-function-arn",
    "-aws-on-demand-instance-profile-arn": "-aws-lease-function-arn",
    "-aws-spot-fleet-role-arn": "-aws-lease-function-arn",
}


def not_here(word: str) -> click.UsageError:
    """One line for an option of HTCondor's condor_annex that this one does not have."""
    why = NOT_HERE.get(NOT_HERE_ALIASES.get(word, word)) or (
        "AWS settings come from your AWS profile and the administrator's set-up"
    )
    return click.UsageError(f"{word} (HTCondor's condor_annex) is not supported here: {why}")


def idle_minutes(hours: str) -> str:
    """HTCondor's -idle takes decimal hours; --idle takes whole minutes."""
    from fractions import Fraction

    from ..config.request import MOST_IDLE_MINUTES

    try:
        minutes = round(Fraction(hours.strip()) * 60)
    except (ValueError, ZeroDivisionError):
        minutes = None
    if minutes is None or not 1 <= minutes <= MOST_IDLE_MINUTES:
        raise click.UsageError(
            f"-idle takes hours, as HTCondor's condor_annex does: a minute to "
            f"{MOST_IDLE_MINUTES // 60} hours, e.g. -idle 0.25 (got {hours!r}); or --idle MINUTES"
        )
    return str(minutes)


def value_options(command: click.Command) -> set[str]:
    """Every option spelling, in `command` and below it, that takes a value (the word after it is a
    value, never an option to translate), HTCondor's own included."""
    found = {
        opt
        for param in command.params
        if isinstance(param, click.Option) and not param.is_flag and not param.count
        for opt in param.opts
    }
    for sub in getattr(command, "commands", {}).values():
        found |= value_options(sub)
    return found | {"--count", "-count", "-annex-name", "-duration", "-aws-region"}


def htcondor_habits(args: list[str], valued: set[str]) -> tuple[list[str], str | None]:
    """`args` with HTCondor condor_annex's spellings translated (`-count 4 -duration 2 -annex-name Foo`,
    `-status`, `--count`...), and the command such a spelling names (None: none does). Values are left
    alone; options HTCondor's tool has and this one does not are refused in one line."""
    out: list[str] = []
    command, i = None, 0
    while i < len(args):
        word, value = args[i], args[i + 1] if i + 1 < len(args) else None
        if word == "--":
            return out + args[i:], command
        if word == "-idle" and value is not None:
            out += ["--idle", idle_minutes(value)]
        elif word == "-owner" and value is not None:  # HTCondor's: -owner "big, little"
            out += [w for name in value.replace(",", " ").split() for w in ("--owner", name)]
        else:
            out += translated(word)
            if word in HTCONDOR_COMMANDS:
                command = HTCONDOR_COMMANDS[word]
                check_setup_words(word, args[i + 1 :])
            if word not in valued or value is None:
                i += 1
                continue
            out.append(value)  # the option's value, whatever it looks like
        i += 2
    return out, command or lease_form(args)


def translated(word: str) -> list[str]:
    """One word of the command line in this tool's spelling ([] for HTCondor's command flags)."""
    if word in HTCONDOR_COMMANDS:
        return []
    if word in HTCONDOR_OPTIONS or word in SPELLINGS:
        return [HTCONDOR_OPTIONS.get(word) or SPELLINGS[word]]
    if word.startswith("--count="):
        return ["--instances=" + word.split("=", 1)[1]]
    if word in NOT_HERE or word in NOT_HERE_ALIASES or word.startswith("-aws-"):
        raise not_here(word)
    return [word]


def check_setup_words(word: str, rest: list[str]) -> None:
    """HTCondor's `-setup` takes key files (or FROM INSTANCE); this one reads the AWS profile."""
    if word == "-setup" and rest and not rest[0].startswith("-") and rest[0] not in SETUP_COMMANDS:
        raise click.UsageError(
            f"-setup needs no key files here ({rest[0]!r}): condor_annex setup uses your AWS "
            "profile's credentials (--profile, AWS_PROFILE, AWS_CONFIG_FILE)"
        )


def lease_form(args: list[str]) -> str | None:
    """HTCondor's `-annex-name NAME -duration HOURS` without a count resets the lease: extend."""
    given = set(args)
    counted = given & {"-count", "--count", "--instances", "-slots"} or any(
        a.startswith(("--count=", "--instances=")) for a in args
    )
    return "extend" if {"-annex-name", "-duration"} <= given and not counted else None


class AnnexGroup(click.Group):
    """`condor_annex --project-id X --expiry Y --instances N` (the seed's form, no command) means `create`;
    HTCondor condor_annex's own spellings (`-count 4 -duration 2 -annex-name Foo`, `-status`,
    `-annex-name X status`) mean what they meant there. Both are translated here, before click sees the
    words."""

    VALUED: ClassVar[set[str]] = {"--region", "--profile", "--output"}

    def parse_args(self, ctx, args):
        rest, habit = htcondor_habits(list(args), value_options(self))
        start = self.own_options_end(rest)
        later = self.command_after_options(rest)
        if start < len(rest) and rest[start] in self.commands:
            pass  # a command, after (at most) the group's own options: as click reads it
        elif later is not None:  # a command after the command's options: it goes first
            rest = [rest[later], *rest[:later], *rest[later + 1 :]]
        elif habit:
            rest = [habit, *rest]
        elif start < len(rest) and rest[start].startswith("-") and rest[start] not in HELP:
            rest.insert(start, "create")  # an option of create's: the seed's form
        return super().parse_args(ctx, rest)

    def own_options_end(self, rest: list[str]) -> int:
        """Where the words the group itself takes (its global options) end."""
        i = 0
        while i < len(rest) and rest[i].startswith("-") and rest[i] not in HELP:
            if rest[i] in self.VALUED:
                i += 2
            elif rest[i] in ("--yes", "--debug") or rest[i].split("=", 1)[0] in self.VALUED:
                i += 1
            else:
                break
        return i

    def command_after_options(self, rest: list[str]) -> int | None:
        """The index of the first word that is no option or option's value, if it names a command."""
        valued, i = value_options(self), 0
        while i < len(rest) and rest[i] != "--":
            if not rest[i].startswith("-"):
                return i if rest[i] in self.commands else None
            i += 2 if rest[i] in valued else 1
        return None

    def format_commands(self, ctx, formatter):
        """Each command with its whole one-line description: click would cut it to fit the screen (and
        break words at hyphens); here it wraps, at word boundaries, under itself."""
        import textwrap  # only for --help

        rows = [
            (name, command.get_short_help_str(limit=1000))
            for name, command in ((n, self.get_command(ctx, n)) for n in self.list_commands(ctx))
            if command is not None and not command.hidden
        ]
        if not rows:
            return
        with formatter.section("Commands"):
            first = max(len(name) for name, _ in rows) + 2
            text_width = max(formatter.width - formatter.current_indent - first, 20)
            for name, text in rows:
                lines = textwrap.wrap(text, text_width, break_on_hyphens=False) or [""]
                margin = " " * formatter.current_indent
                formatter.write(f"{margin}{name.ljust(first)}{lines[0]}\n")
                for line in lines[1:]:
                    formatter.write(f"{margin}{' ' * first}{line}\n")


@click.group(
    cls=AnnexGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EPILOG,
)
@click.version_option(__version__, "--version", prog_name="condor_annex")
@global_options
def main():
    """Rent AWS instances for your HTCondor pool until a deadline, and be sure they stop costing money.

    With --project-id, --expiry (or --duration) and --instances and no command, creates an annex.
    HTCondor's condor_annex spellings work too: -annex-name, -count, -duration, -idle, -owner,
    -aws-region, -yes, -status, -check-setup, -setup.
    """


SETUP_COMMANDS = set(setup.group.commands)

for verb in (
    create.command,
    status.command,
    extend.command,
    delete.command,
    render.command,
    setup.group,
    check.command,
    autoscale.command,
):
    main.add_command(verb)


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
    entry(argv, prog_name="annex-deploy", command=create.command)
