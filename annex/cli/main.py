"""The command line: the `condor_annex` group, its verbs, and the console scripts.

Each verb is a module of this package (parse, plan, show, ask, act, report); none imports boto3 or
troposphere before it runs, so `condor_annex --help` starts fast. The global options (--region,
--profile, --output, --yes, --debug) work before or after the command, as the aws CLI's do. Conversation
goes to stderr; results go to stdout in the --output format.
"""

from __future__ import annotations

import sys

import click

from .. import __version__
from . import check, create, delete, extend, render, setup, status
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
        examples(
            EXAMPLE, "condor_annex status", "condor_annex delete --project-id 'TheNeeds-MooreLab'"
        ),
        EXIT_CODES,
        ENVIRONMENT,
    ]
)


class AnnexGroup(click.Group):
    """`condor_annex --project-id X --expiry Y --instances N` (the seed's form, no command) means `create`."""

    VALUED = {"--region", "--profile", "--output"}

    def parse_args(self, ctx, args):
        rest, i = list(args), 0
        while (
            i < len(rest)
            and rest[i].startswith("-")
            and rest[i] not in ("-h", "--help", "--version")
        ):
            if rest[i] in self.VALUED:
                i += 2
            elif rest[i] in ("--yes", "--debug") or (
                "=" in rest[i] and rest[i].split("=", 1)[0] in self.VALUED
            ):
                i += 1
            else:
                rest.insert(i, "create")  # an option of create's: the seed's form
                break
        return super().parse_args(ctx, rest)


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
    """


for verb in (
    create.command,
    status.command,
    extend.command,
    delete.command,
    render.command,
    setup.group,
    check.command,
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
