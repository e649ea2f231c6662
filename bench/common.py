"""Shared by the bench scripts: a moto server process on loopback (as tests/conftest.py starts one), an
environment that points boto3 at it through the standard AWS variables only, an account and pool prepared
with annex.sandbox, condor_annex run in this process, and a count of every AWS call it makes."""

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

import boto3.session

from annex.sandbox import moto_server, reset_moto

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def local_aws():
    """A moto server for one bench run, this process pointed at it, and a scratch folder: yields (url, folder).
    The server's log goes to $BENCH_MOTO_LOG when set."""
    with open(os.environ.get("BENCH_MOTO_LOG", os.devnull), "w") as log, moto_server(log=log) as url, \
            tempfile.TemporaryDirectory(prefix="annex-bench-") as tmp:
        point_at(url, Path(tmp))
        yield url, Path(tmp)


def point_at(url: str, work: Path) -> dict:
    """Point this process (and its children) at the moto server, with fake credentials and no user config."""
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(
        AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(work / "aws-config"), AWS_SHARED_CREDENTIALS_FILE=str(work / "aws-credentials"),
        XDG_CACHE_HOME=str(work / "cache"),
    )
    return dict(os.environ)


def fresh_account(url: str, work: Path) -> None:
    """A reset moto account prepared as the seed's Quick Start does, and a personal-condor pool configuration.

    annex.sandbox tags two /24 subnets (251 addresses each); moto starts all of a group's instances in its
    first subnet, so for 1,000 instances the tagged subnet here is one /18 (16,379 addresses) instead, as
    an administrator would size it for annexes that large."""
    from annex.aws import SETUP_NAME, Aws
    from annex.sandbox import prepare_account, write_pool

    reset_moto(url)
    made = prepare_account()
    ec2 = Aws().client("ec2")
    ec2.delete_tags(Resources=made["subnets"], Tags=[{"Key": "Name"}])
    zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    big = ec2.create_subnet(VpcId=made["vpc"], CidrBlock="10.42.64.0/18", AvailabilityZone=zone)["Subnet"]["SubnetId"]
    ec2.create_tags(Resources=[big], Tags=[{"Key": "Name", "Value": SETUP_NAME}])
    # The administrator's limits (annex/cost.py; default 64 instances per annex), raised as `condor_annex setup
    # --max-instances` would, so that annexes of 1,000 instances may be created.
    limits = {"max_instances": 5000, "max_lease_hours": 168, "max_ceiling_usd": 1_000_000}
    Aws().client("ssm").put_parameter(Name="/htcondor-annex/limits", Type="String", Overwrite=True, Value=json.dumps(limits))
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
    from annex.cli import main

    out = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            main.main(args=list(args), prog_name="condor_annex")
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return code, out.getvalue()


def counted_cli(*args: str) -> tuple[Calls, float, str]:
    """Run one command, counting its AWS calls; exits the bench if the command fails."""
    calls = Calls()
    started = time.perf_counter()
    with calls.counting():
        code, output = run_cli(*args)
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"bench: condor_annex {' '.join(args)} exited {code}:\n{output[-3000:]}")
    return calls, seconds, output


def deploy(project_id: str, expiry_text: str, instances: int, aws=None) -> dict:
    """An annex as create makes it (the product's discovery, template, parameters and tags), without the
    pool side and through one session, so a hundred take seconds; returns what the benches need."""
    from annex.aws import Aws
    from annex.config import annex_names, make_config, parse_expiry
    from annex.lifecycle import stack_parameters, stack_tags
    from annex.template import build_template, compact

    aws = aws or Aws()
    network, refs = aws.discover_network(), aws.discover_references()
    config = make_config(project_id, parse_expiry(expiry_text), instances, refs, region=aws.region)
    names = annex_names(config.project_id, aws.account_id(), aws.region)
    stack_id = aws.create_stack(names.stack, compact(build_template(config)),
                                stack_parameters(config, names, network, 9618), stack_tags(config))
    final = aws.wait(stack_id, lambda s: not s.endswith("_IN_PROGRESS"), first=0.05, longest=0.5)
    if final["StackStatus"] != "CREATE_COMPLETE":
        raise SystemExit(f"bench: annex {project_id} ended {final['StackStatus']}: {final.get('StackStatusReason')}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in final.get("Outputs", [])}
    return {"config": config, "names": names, "stack_id": stack_id,
            "groups": [g for g in outputs.get("GroupNames", "").split(",") if g]}
