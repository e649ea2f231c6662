"""The project's own small exception tree: each carries a one-line message fit for the terminal."""


class AnnexError(Exception):
    """Anything condor_annex reports to the user as one line and a non-zero exit."""

    exit_code = 1


class ConfigError(AnnexError):
    """A field of the request is invalid; nothing has been created."""

    exit_code = 2

    def __init__(self, field: str, problem: str):
        super().__init__(f"--{field} {problem}")
        self.field = field
        self.problem = problem


class SetupError(AnnexError):
    """Something the administrator provides (VPC, subnets, references, key pair) is missing."""


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
