"""bin/demo's body: run condor_annex end to end against a moto server started as a real HTTP process."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from annex.standin.account import linux_image, prepare_account
from annex.standin.pool import write_pool
from annex.standin.server import moto_server

BIN = Path(sys.executable).parent
PROJECT = "TheNeeds-MooreLab"


def run(*args: str, env: dict | None = None) -> None:
    shown = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items() if k == "AWS_CONFIG_FILE")
    print(f"\n$ {(shown + ' ') if shown else ''}{shlex.join(args)}", flush=True)
    done = subprocess.run([str(BIN / args[0]), *args[1:]], env=env)
    if done.returncode != 0:
        sys.exit(f"demo: {args[0]} exited {done.returncode}")


def point_at(url: str, work: Path) -> None:
    """boto3 (here and in the CLI's processes) reaches the local stand-in through the standard variables only."""
    os.environ.update(
        AWS_ENDPOINT_URL=url,
        AWS_ACCESS_KEY_ID="demo",
        AWS_SECRET_ACCESS_KEY="demo",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(work / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(work / "aws-credentials"),
        XDG_CACHE_HOME=str(work / "cache"),
        COLUMNS=os.environ.get("COLUMNS", "120"),
    )
    os.environ.pop("AWS_PROFILE", None)


def lifecycle(work: Path) -> str:
    account = prepare_account()
    print(
        f"demo: prepared the account as the seed's Quick Start does by hand: key pair, VPC {account['vpc']}, "
        f"subnets {', '.join(account['subnets'])}, launch templates HTCondorAnnex-1..3 with spot prices."
    )
    os.environ["CONDOR_CONFIG"] = str(write_pool(work / "condor"))
    print(
        f"demo: a personal-condor pool configuration with a pool password: CONDOR_CONFIG={os.environ['CONDOR_CONFIG']}"
    )
    expiry = (datetime.now() + timedelta(days=2)).strftime("%Y-%m-%d 23:59")
    later = (datetime.now() + timedelta(days=3)).strftime("%Y-%m-%d 23:59")
    run("condor_annex", "--project-id", PROJECT, "--expiry", expiry, "--instances", "16", "--yes")
    run("condor_annex", "status")
    run("condor_annex", "extend", "--project-id", PROJECT, "--expiry", later, "--yes")
    run("condor_annex", "status", "--project-id", PROJECT, "--output", "json")
    run("condor_annex", "delete", "--project-id", PROJECT, "--yes")
    run("condor_annex", "status")
    return account["vpc"]


def seed_prices(usd_per_hour: dict) -> None:
    """The stand-in has no Price List API: the set-up's on-demand prices (us-east-1 Linux list prices) are put
    in condor_annex's price cache, where a real account's answers would be kept."""
    from annex.money.prices import read_cache, write_cache

    now = time.time()
    write_cache(
        read_cache() | {f"us-east-1/{kind}": {"usd": usd, "fetched": now} for kind, usd in usd_per_hour.items()}
    )
    print(
        f"demo: (the stand-in has no Price List API: on-demand prices {usd_per_hour} USD/h are put in the price cache)"
    )


def administrators_way(work: Path, vpc: str) -> None:
    """The seed's proposed first-time set-up: an administrator's one command, a user file for the doctor,
    and the doctor running the lifecycle with nothing but that file (and only within the boundary)."""
    print("\ndemo: now the administrator's way: one set-up, then a low-privilege user for the doctor.")
    ec2 = aws_client("ec2")
    image = linux_image(ec2)
    for template in ec2.describe_launch_templates()["LaunchTemplates"]:  # the set-up makes its own references
        ec2.delete_launch_template(LaunchTemplateId=template["LaunchTemplateId"])
    print("demo: the administrator removed the hand-made launch templates; the set-up makes its own.")
    seed_prices({"m5.large": 0.096, "c5.large": 0.085})
    run(
        "condor_annex",
        "setup",
        "--vpc-id",
        vpc,
        "--ami",
        image,
        "--instance-types",
        "m5.large,c5.large",
        "--spot-price",
        "0.05",
        "--max-instances",
        "32",
        "--max-lease-hours",
        "72",
        "--yes",
    )
    iam = aws_client("iam")
    if "HTCondorAnnexUsers" not in {g["GroupName"] for g in iam.list_groups()["Groups"]}:
        print(
            "demo: (moto does not create IAM groups from templates: the demo makes HTCondorAnnexUsers as the stack would)"
        )
        iam.create_group(GroupName="HTCondorAnnexUsers")
        arn = next(
            o["OutputValue"]
            for o in aws_client("cloudformation").describe_stacks(StackName="htcondor-annex-setup")["Stacks"][0][
                "Outputs"
            ]
            if o["OutputKey"] == "UserPolicyArn"
        )
        iam.attach_group_policy(GroupName="HTCondorAnnexUsers", PolicyArn=arn)
    profile = work / "needsmoore.htcondor-annex"
    run("condor_annex", "setup", "add-user", "needsmoore", "--project-id", PROJECT, "--file", str(profile), "--yes")
    doctor = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    }
    doctor["AWS_CONFIG_FILE"] = str(profile)
    run("condor_annex", "create", "--duration", "2d", "--instances", "4", "--yes", env=doctor)
    run("condor_annex", "status", env=doctor)
    run("condor_annex", "delete", "--yes", env=doctor)
    run("condor_annex", "setup", "remove-user", "needsmoore", "--yes")
    run("condor_annex", "setup", "--delete", "--yes")


def aws_client(service: str):
    import boto3

    return boto3.client(service, region_name="us-east-1")


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="annex-demo-"))
    with moto_server() as url:
        print(f"demo: a local stand-in for AWS (moto) is listening on {url}; nothing here touches a real account.")
        point_at(url, work)
        administrators_way(work, lifecycle(work))
    print("\ndemo: done. To use a real account, unset AWS_ENDPOINT_URL and configure AWS credentials (aws configure).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
