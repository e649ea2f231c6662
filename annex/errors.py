"""The project's own small exception tree: each carries a one-line message fit for the terminal."""

from __future__ import annotations


class AnnexError(Exception):
    """Anything condor_annex reports to the user as one line and a non-zero exit."""

    exit_code = 1


class ConfigError(AnnexError):
    """A field of the user's request is invalid; nothing has been created.

    `field` is the request's field id (`project_id`, `expiry`, ...). The library names no command-line
    option: the CLI maps the id to the option the user typed (annex/cli/options.py), so the same error
    reads `--instances ...` on the command line and `instances ...` anywhere else."""

    exit_code = 2

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field.replace('_', ' ')} {problem}")
        self.field = field
        self.problem = problem


class SetupError(AnnexError):
    """Something the administrator provides (set-up, VPC, subnets, references, key pair) is missing or
    wrong: the user cannot fix it with an option."""


class PoolError(AnnexError):
    """The pool's HTCondor configuration cannot serve an annex (no collector, no credential)."""


class AwsError(AnnexError):
    """AWS refused or failed a call; the message says which and why."""


class AccessDenied(AwsError):
    pass


class StackNotFound(AwsError):
    pass


class StackFailed(AwsError):
    """CloudFormation could not finish; the message names the resource and the reason it gave."""


class AnnexExists(AwsError):
    pass


class Interrupted(AnnexError):
    """Ctrl-C: the message says truthfully what exists and how to go on."""

    exit_code = 130
