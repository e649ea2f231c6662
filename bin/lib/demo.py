"""bin/demo's body: run condor_annex end to end against a moto server started as a real HTTP process."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/moto-api/data.json", timeout=1)
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("demo: the local moto server did not start")


def run(*args: str) -> None:
    print(f"\n$ {shlex.join(args)}", flush=True)
    done = subprocess.run([str(BIN / args[0]), *args[1:]])
    if done.returncode != 0:
        sys.exit(f"demo: {args[0]} exited {done.returncode}")


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="annex-demo-"))
    proc, url = start_moto()
    os.environ.update(
        AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="demo", AWS_SECRET_ACCESS_KEY="demo", AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(work / "aws-config"), AWS_SHARED_CREDENTIALS_FILE=str(work / "aws-credentials"),
        XDG_CACHE_HOME=str(work / "cache"),
    )
    os.environ.pop("AWS_PROFILE", None)
    try:
        from annex.sandbox import prepare_account, write_pool

        print(f"demo: a local stand-in for AWS (moto) is listening on {url}; nothing here touches a real account.")
        account = prepare_account()
        print(f"demo: prepared the account as the seed's Quick Start does by hand: key pair, VPC {account['vpc']}, "
              f"subnets {', '.join(account['subnets'])}, launch configurations HTCondorAnnex-1..3 with spot prices.")
        os.environ["CONDOR_CONFIG"] = str(write_pool(work / "condor"))
        print(f"demo: a personal-condor pool configuration with a pool password: CONDOR_CONFIG={os.environ['CONDOR_CONFIG']}")
        expiry = (datetime.now() + timedelta(days=2)).strftime("%Y-%m-%d 23:59")
        later = (datetime.now() + timedelta(days=3)).strftime("%Y-%m-%d 23:59")
        run("condor_annex", "--project-id", "TheNeeds-MooreLab", "--expiry", expiry, "--instances", "16", "--yes")
        run("condor_annex", "status")
        run("condor_annex", "extend", "--project-id", "TheNeeds-MooreLab", "--expiry", later, "--yes")
        run("condor_annex", "status", "--project-id", "TheNeeds-MooreLab", "--output", "json")
        run("condor_annex", "delete", "--project-id", "TheNeeds-MooreLab", "--yes")
        run("condor_annex", "status")
        print("\ndemo: done. To use a real account, unset AWS_ENDPOINT_URL and configure AWS credentials (aws configure).")
        return 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
