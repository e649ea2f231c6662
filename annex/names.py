"""One home for every name and default condor_annex shares with AWS, HTCondor and itself.

The CLI's option defaults, the templates, the policies and the lease code (by its environment) all read
them from here, so a name is changed in one place. Nothing here imports anything heavy.
"""

from __future__ import annotations

# --- what the administrator prepares (the seed's Quick Start, or `condor_annex setup`) ----------------
SETUP_NAME = "HTCondorAnnex"  # key pair; Name tag of the VPC and its subnets
REFERENCE_PREFIX = SETUP_NAME + "-"  # launch templates / launch configurations HTCondorAnnex-1..8
MAX_REFERENCES = 8
SETUP_STACK = "htcondor-annex-setup"
USER_GROUP = "HTCondorAnnexUsers"
USER_POLICY = "HTCondorAnnexUser"
ROLE_BOUNDARY_POLICY = "HTCondorAnnexRoleBoundary"
EXPORT_PREFIX = (
    SETUP_NAME + "-"
)  # the set-up stack's exports, imported by the published annex templates
PARAMETER_PREFIX = "/htcondor-annex/"
LIMITS_PARAMETER = PARAMETER_PREFIX + "limits"
SETUP_PATH = "/htcondor-annex-setup/"  # IAM path of the set-up's own roles and policies

# --- one annex -----------------------------------------------------------------------------------
STACK_PREFIX = "htcondor-annex-"
# A stack name leaves room for "<stack>-lease" (a Lambda function: 64 at most) and for the bucket
# "<stack>-<8 hex digits of the stack id>" (63 at most).
STACK_MAX = 54
ROLE_PATH = "/htcondor-annex/"  # IAM path of the roles annex stacks create
CONFIG_PREFIX = "annex/"  # where the instances find their configuration in the annex bucket
EXPIRY_KEY = CONFIG_PREFIX + "expiry"
LEAVING_PREFIX = (
    CONFIG_PREFIX + "leaving/"
)  # an instance that ends itself writes leaving/<instance id>
LEASE_SUFFIX = "-lease"  # the lease function, its rule and log group: <stack>-lease

# Stack tags (CloudFormation copies them onto the resources it creates).
TAG_PROJECT = "htcondor:AnnexName"  # the project id as the user typed it
TAG_EXPIRY = "htcondor:AnnexExpiry"
TAG_OWNER = "htcondor:AnnexOwner"  # the creator's aws:userid; the end-user policy requires it
TAG_OWNER_NAME = "htcondor:AnnexOwnerName"  # the creator's name, for people to read
TAG_INSTANCES = "htcondor:AnnexInstances"  # how many instances were asked for
TAG_CREDENTIAL = "htcondor:AnnexCredential"  # PASSWORD or IDTOKENS
TAG_BUDGET = "htcondor:AnnexBudgetUSD"
TAG_SETUP = "htcondor:AnnexSetup"

# --- defaults --------------------------------------------------------------------------------------
DEFAULT_REGION = "us-east-1"
DEFAULT_IDLE_MINUTES = 15  # HTCondor's own condor_annex used 15 minutes too
DEFAULT_COLLECTOR_PORT = 9618
DEFAULT_MAX_INSTANCES = 64
DEFAULT_MAX_LEASE_HOURS = 168
DEFAULT_MAX_CEILING_USD = 1000.0
DEFAULT_INSTANCE_TYPES = ("m7i.large", "c7i.large", "m6i.large", "c6i.large")
DEFAULT_AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
DEFAULT_LIMITS = {
    "max_instances": DEFAULT_MAX_INSTANCES,
    "max_lease_hours": DEFAULT_MAX_LEASE_HOURS,
    "max_ceiling_usd": DEFAULT_MAX_CEILING_USD,
}

# --- formats and AWS's limits ----------------------------------------------------------------------
INSTANCE_TYPE_PATTERN = r"^[a-z][a-z0-9-]*\.[a-z0-9]+$"
UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
TEMPLATE_BODY_MAX = 51_200  # CloudFormation's TemplateBody limit, in bytes
LAMBDA_RUNTIME = "python3.12"

# --- the set-up's own functions (named outside htcondor-annex-*, so no annex scope reaches them) -----
SWEEP_FUNCTION = SETUP_NAME + "Sweep"  # the account-level lease
PROBE_FUNCTION = SETUP_NAME + "Probe"  # can AWS reach the pool's collector?
SWEEP_MINUTES = 5
PROFILE_PROJECT_SETTING = (
    "htcondor_annex_project_id"  # an AWS profile's project, written by `setup add-user`
)
