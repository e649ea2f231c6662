"""Shared by the bench scripts: a moto server process on loopback (as tests/conftest.py starts one), an
environment that points boto3 at it through the standard AWS variables only, an account and pool prepared
with annex/standin/ (the stand-in), condor_annex run in this process, and a count of every AWS call it makes."""

from __future__ import annotations

import collections
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import boto3.session

from annex.standin.server import moto_server, reset_moto

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def local_aws():
    """A moto server for one bench run, this process pointed at it, and a scratch folder: yields (url, folder).
    The server's log goes to $BENCH_MOTO_LOG when set."""
    with (
        open(os.environ.get("BENCH_MOTO_LOG", os.devnull), "w") as log,
        moto_server(log=log) as url,
        tempfile.TemporaryDirectory(prefix="annex-bench-") as tmp,
    ):
        point_at(url, Path(tmp))
        yield url, Path(tmp)


def point_at(url: str, work: Path) -> dict:
    """Point this process (and its children) at the moto server, with fake credentials and no user config."""
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(
        AWS_ENDPOINT_URL=url,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(work / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(work / "aws-credentials"),
        XDG_CACHE_HOME=str(work / "cache"),
    )
    return dict(os.environ)


def fresh_account(url: str, work: Path) -> None:
    """A reset moto account prepared as the seed's Quick Start does, and a personal-condor pool configuration.

    annex/standin/account.py tags two /20 subnets (4,091 addresses each); moto starts all of a group's
    instances in its first subnet, so the tagged subnet here is one /18 (16,379 addresses) instead, as an
    administrator would size it for the largest annexes the raised limits allow."""
    from annex.aws.session import Aws
    from annex.names import DEFAULT_LIMITS, LIMITS_PARAMETER, SETUP_NAME
    from annex.standin.account import prepare_account
    from annex.standin.pool import write_pool

    reset_moto(url)
    made = prepare_account()
    ec2 = Aws().client("ec2")
    ec2.delete_tags(Resources=made["subnets"], Tags=[{"Key": "Name"}])
    zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    big = ec2.create_subnet(VpcId=made["vpc"], CidrBlock="10.42.64.0/18", AvailabilityZone=zone)["Subnet"]["SubnetId"]
    ec2.create_tags(Resources=[big], Tags=[{"Key": "Name", "Value": SETUP_NAME}])
    # The administrator's limits (annex/cost.py; default 64 instances per annex), raised as `condor_annex setup
    # --max-instances` would, so that annexes of 1,000 instances may be created.
    limits = {
        **DEFAULT_LIMITS,
        "max_instances": 5000,
        "max_ceiling_usd": 1_000_000,
        "max_annexes_per_user": 1000,
        "max_instances_per_user": 100_000,
        "max_instances_per_account": 100_000,
    }
    Aws().client("ssm").put_parameter(Name=LIMITS_PARAMETER, Type="String", Overwrite=True, Value=json.dumps(limits))
    os.environ["CONDOR_CONFIG"] = str(write_pool(work / "condor"))


def expiry(days: float = 2) -> str:
    return (datetime.now() + timedelta(days=days)).strftime("%Y-%m-%d %H:%M")


class Calls:
    """Counts AWS API calls per `service.Operation` (botocore's before-call: once per call, each page of a
    paginator is a call) and HTTP requests (before-send: retries included), for every client any boto3
    session makes while counting."""

    def __init__(self):
        self.calls = collections.Counter()
        self.requests = 0

    def _call(self, event_name, **_):
        self.calls[event_name.split(".", 1)[1]] += 1

    def _send(self, **_):
        self.requests += 1

    @contextlib.contextmanager
    def counting(self):
        original = boto3.session.Session.client
        counter = self

        def client(session, *args, **kwargs):
            made = original(session, *args, **kwargs)
            made.meta.events.register("before-call", counter._call)
            made.meta.events.register("before-send", counter._send)
            return made

        boto3.session.Session.client = client
        try:
            yield self
        finally:
            boto3.session.Session.client = original

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def run_cli(*args: str) -> tuple[int, str]:
    """condor_annex in this process (so its AWS calls can be counted): exit code and everything it printed."""
    from annex.cli.main import main

    out = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            main.main(args=list(args), prog_name="condor_annex")
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return code, out.getvalue()


def counted_cli(*args: str) -> tuple[Calls, float, str]:
    """Run one command, counting its AWS calls; exits the bench if the command fails. Each command starts
    as a new process would: with nothing remembered of an earlier command's Price List refusals."""
    from annex.money import prices

    prices._REFUSED.clear()
    calls = Calls()
    started = time.perf_counter()
    with calls.counting():
        code, output = run_cli(*args)
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"bench: condor_annex {' '.join(args)} exited {code}:\n{output[-3000:]}")
    return calls, seconds, output


def deploy(project_id: str, expiry_text: str, instances: int, aws=None) -> dict:
    """An annex as create makes it (the product's discovery, template, parameters and tags, and the
    hand-made account's IAM made once), in one stack operation and without the pool side or the bucket's
    objects, through one session, so a hundred take seconds. Returns what the benches need: config,
    names (.stack, .bucket), stack_id, stack, groups."""
    from annex.aws.session import Aws
    from annex.config.request import CreateInput, Market, make_config
    from annex.config.when import parse_expiry
    from annex.interface import stack_name, tag_value
    from annex.lifecycle.account import LEASE_POLICY_NAME, read_account
    from annex.lifecycle.create import stack_parameters, stack_tags
    from annex.names import PROJECT_ROLE_PATH, QUICK_START_LEASE_ROLE, QUICK_START_PATH, TAG_PROJECT
    from annex.template.annex import inline_template
    from annex.template.render import compact

    aws = aws or Aws()
    caller, name = aws.caller(), stack_name(project_id)
    account = read_account(aws, caller, name)
    when = parse_expiry(expiry_text)[0]
    config = make_config(project_id, when, instances, account.references, region=aws.region,
                         market=Market("spot", 0, 0, account.spot_cap))  # fmt: skip
    given = CreateInput(when, "", instances, "fixed", 900, "spot", None, None, None, None)
    identity = account.identity
    aws.iam.ensure_lambda_role(QUICK_START_LEASE_ROLE, QUICK_START_PATH, LEASE_POLICY_NAME, identity.lease_policy)
    aws.iam.ensure_instance_identity(identity.project_role, PROJECT_ROLE_PATH, {TAG_PROJECT: tag_value(project_id)})
    template = compact(inline_template(len(config.references)))
    parameters = stack_parameters(config, account, 9618, caller)
    stack_id = aws.stacks.create(name, template, parameters, stack_tags(config, caller, "PASSWORD", given, False))
    final = aws.stacks.wait(stack_id, lambda s: not s.endswith("_IN_PROGRESS"), first=0.05, longest=0.5)
    if final.status != "CREATE_COMPLETE":
        raise SystemExit(f"bench: annex {project_id} ended {final.status}: {final.reason}")
    return {
        "config": config,
        "names": SimpleNamespace(stack=name, bucket=final.bucket),
        "stack_id": stack_id,
        "stack": final,
        "groups": final.groups,
    }
