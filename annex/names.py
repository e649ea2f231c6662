"""One home for every name and default condor_annex shares with AWS, HTCondor and itself.

The CLI's option defaults, the templates, the policies and the lease code (by its environment) all read
them from here, so a name is changed in one place. Nothing here imports anything heavy. The names a
stack's parameters, outputs and exports carry are in annex/interface.py.
"""

from __future__ import annotations

# --- what the administrator prepares (the seed's Quick Start, or `condor_annex setup`) ----------------
SETUP_NAME = "HTCondorAnnex"  # key pair; Name tag of the VPC and its subnets
REFERENCE_PREFIX = SETUP_NAME + "-"  # launch templates / launch configurations HTCondorAnnex-1..8
MAX_REFERENCES = 8
MAX_INSTANCE_TYPES = 20  # what one annex's group may choose from (AutoScaling takes up to 40 overrides)
SETUP_STACK = "htcondor-annex-setup"
USER_GROUP = "HTCondorAnnexUsers"
USER_POLICY = "HTCondorAnnexUser"
ROLE_BOUNDARY_POLICY = "HTCondorAnnexRoleBoundary"
PARAMETER_PREFIX = "/htcondor-annex/"
LIMITS_PARAMETER = PARAMETER_PREFIX + "limits"
COLLECTOR_PARAMETER = PARAMETER_PREFIX + "collector"  # the probe's last answer, for every user to read
SETUP_PATH = "/htcondor-annex-setup/"  # IAM path of the set-up's own roles and policies
QUICK_START_PATH = "/htcondor-annex-quick-start/"  # the role a hand-made account's leases run with
QUICK_START_LEASE_ROLE = SETUP_NAME + "QuickStartLease"

# --- one annex -----------------------------------------------------------------------------------
STACK_PREFIX = "htcondor-annex-"
# A stack name leaves room for "<stack>-lease" (a Lambda function: 64 at most) and for the bucket
# "<stack>-<8 hex digits of the stack id>" (63 at most).
STACK_MAX = 54
PROJECT_ROLE_PATH = "/htcondor-annex/projects/"  # each project's instance role and profile, made once
CONFIG_PREFIX = "annex/"  # where the instances find their configuration in the annex bucket
EXPIRY_KEY = CONFIG_PREFIX + "expiry"
BUNDLE_KEY = CONFIG_PREFIX + "bundle.tar.gz"  # the bootstrap, the programs and the pool configuration
LEAVING_PREFIX = CONFIG_PREFIX + "leaving/"  # an instance that ends itself writes leaving/<instance id>
REPLACE_PREFIX = LEAVING_PREFIX + "replace/"  # ... or, told of a spot rebalance, asks to be replaced
STATE_PREFIX = "state/"  # what condor_annex itself keeps in the bucket (never read by instances)
AUTOSCALE_KEY = STATE_PREFIX + "autoscale.json"  # the last decision of `condor_annex autoscale`
LEASE_SUFFIX = "-lease"  # the lease function, its rule and log group: <stack>-lease

# Stack tags (CloudFormation copies them onto the resources it creates). Values are tag-safe
# (annex/interface.py `tag_value`): AWS refuses many characters a project id may hold.
TAG_PROJECT = "htcondor:AnnexName"  # the project id, tag-safe; the stack's ProjectId holds it as typed
TAG_EXPIRY = "htcondor:AnnexExpiry"
TAG_OWNER = "htcondor:AnnexOwner"  # the creator's aws:userid; the end-user policy requires it
TAG_OWNER_NAME = "htcondor:AnnexOwnerName"  # a hand-made account's creator, for people to read
TAG_CREDENTIAL = "htcondor:AnnexCredential"  # PASSWORD or IDTOKENS
TAG_BUDGET = "htcondor:AnnexBudgetUSD"
TAG_MAX_PRICE = "htcondor:AnnexMaxPriceUSD"  # the --max-price a ceiling assumed, for status's meter
TAG_SETUP = "htcondor:AnnexSetup"
TAG_STACK = "htcondor:AnnexStack"  # on instances and volumes: which annex launched them
# Every tag key an end user's create or update may carry: the user policy refuses any other, in any case.
USER_TAG_KEYS = (TAG_PROJECT, TAG_EXPIRY, TAG_OWNER, TAG_CREDENTIAL, TAG_BUDGET, TAG_MAX_PRICE)

# --- defaults --------------------------------------------------------------------------------------
DEFAULT_REGION = "us-east-1"
DEFAULT_IDLE_MINUTES = 15  # HTCondor's own condor_annex used 15 minutes too
DEFAULT_COLLECTOR_PORT = 9618
DEFAULT_MAX_INSTANCES = 64
DEFAULT_MAX_LEASE_HOURS = 168
DEFAULT_MAX_CEILING_USD = 1000.0
DEFAULT_MAX_ANNEXES_PER_USER = 3
DEFAULT_MAX_INSTANCES_PER_USER = 128
DEFAULT_MAX_INSTANCES_PER_ACCOUNT = 512
# Twelve current types of one size (2 vCPUs, 8 to 16 GiB, x86_64), as AWS advises: many pools, many zones.
DEFAULT_INSTANCE_TYPES = (
    "m7i.large", "m7i-flex.large", "m7a.large", "m6i.large", "m6a.large", "m6in.large",
    "m5.large", "m5a.large", "m5n.large", "r7i.large", "r6i.large", "r6a.large",
)  # fmt: skip
DEFAULT_AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
MARKETS = ("spot", "on-demand", "mixed")  # what a user may ask for, within the administrator's markets
DEFAULT_LIMITS = {
    "max_instances": DEFAULT_MAX_INSTANCES,
    "max_lease_hours": DEFAULT_MAX_LEASE_HOURS,
    "max_ceiling_usd": DEFAULT_MAX_CEILING_USD,
    "max_annexes_per_user": DEFAULT_MAX_ANNEXES_PER_USER,
    "max_instances_per_user": DEFAULT_MAX_INSTANCES_PER_USER,
    "max_instances_per_account": DEFAULT_MAX_INSTANCES_PER_ACCOUNT,
}

# --- formats and AWS's limits ----------------------------------------------------------------------
INSTANCE_TYPE_PATTERN = r"^[a-z][a-z0-9-]*\.[a-z0-9]+$"
UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
TEMPLATE_BODY_MAX = 51_200  # CloudFormation's TemplateBody limit, in bytes
TEMPLATE_ROOM = 45_000  # what condor_annex's largest template may take of it, so templates can grow
TAG_VALUE_MAX = 256
LAMBDA_RUNTIME = "python3.12"

# --- the set-up's own functions (named outside htcondor-annex-*, so no annex scope reaches them) -----
SWEEP_FUNCTION = SETUP_NAME + "Sweep"  # the account-level lease
PROBE_FUNCTION = SETUP_NAME + "Probe"  # can AWS reach the pool's collector?
ADMISSION_FUNCTION = SETUP_NAME + "Admission"  # may this annex be made (or changed)?
SWEEP_MINUTES = 5
PROBE_MINUTES = 10
PROFILE_PROJECT_SETTING = "htcondor_annex_project_id"  # an AWS profile's project, written by add-user
