"""How fast condor_annex starts, side by side with the AWS CLI and a bare Python in one run.

    python bench/startup.py               # 15 interleaved repetitions of each command
    python bench/startup.py --repeat 5 --json

Each round runs every command once, in an order rotated per round, so drift in the machine's load hits
all of them alike. Reported: median and minimum wall time in ms, and the ratios to `aws --version` (the
AWS CLI the 2015 prototype shelled out to). Targets: `condor_annex --help` under half of `aws --version`,
`condor_annex render` under `aws --version`. It also reports which heavy modules (boto3, botocore,
troposphere, cfnlint, rich) each condor_annex command imports, and the slowest imports of `render`.

The programs are taken from this interpreter's bin directory (the virtualenv condor_annex is installed in);
`aws` there is the AWS CLI (`pip install awscli`). Without it, the script says so and measures the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
HEAVY = ("boto3", "botocore", "troposphere", "awacs", "cfnlint", "rich", "yaml")
MUST_NOT = {
    "--help": ("boto3", "botocore", "troposphere", "cfnlint", "rich"),
    "create --help": ("boto3", "botocore", "troposphere", "cfnlint", "rich"),
    "render": ("boto3", "botocore", "cfnlint"),
}

# Runs a condor_annex command in a child interpreter exactly as the console script does, then reports the
# heavy modules it left loaded.
PROBE = """
import json, sys
sys.argv = ["condor_annex", *json.loads(sys.argv[1])]
from annex.cli.main import main
try:
    main()
except SystemExit:
    pass
sys.stderr.write("\\nLOADED " + json.dumps(sorted(m for m in HEAVY if m in sys.modules)) + "\\n")
"""


def commands() -> tuple[dict[str, list[str]], str | None]:
    """The commands to time, and a note when the AWS CLI is missing."""
    found = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "condor_annex --help": [str(BIN / "condor_annex"), "--help"],
        "condor_annex render": [str(BIN / "condor_annex"), "render"],
    }
    aws = BIN / "aws"
    if aws.exists():
        found["aws --version"] = [str(aws), "--version"]
        return found, None
    return found, f"aws (the AWS CLI) is not installed in {BIN}; run `{BIN / 'pip'} install awscli` to compare with it"


def quiet_env(home: str) -> dict:
    """No user configuration: both CLIs read none, so their start-up is all that is measured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON"))}
    env.update(
        HOME=home, AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_DEFAULT_REGION="us-east-1"
    )
    return env


def time_once(argv: list[str], env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise SystemExit(f"startup: {' '.join(argv)} exited {done.returncode}: {done.stderr.decode()[-400:]}")
    return elapsed


def measure(cmds: dict[str, list[str]], repeat: int, env: dict) -> dict[str, list[float]]:
    names = list(cmds)
    for name in names:  # one untimed run each: the page cache and .pyc files are warm for all alike
        time_once(cmds[name], env)
    samples = {name: [] for name in names}
    for round_ in range(repeat):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(time_once(cmds[name], env))
    return samples


def loaded_modules(args: list[str], env: dict) -> list[str]:
    code = PROBE.replace("HEAVY", repr(list(HEAVY)))
    done = subprocess.run([sys.executable, "-c", code, json.dumps(args)], env=env, capture_output=True, text=True)
    line = [ln for ln in done.stderr.splitlines() if ln.startswith("LOADED ")]
    if not line:
        raise SystemExit(f"startup: could not probe condor_annex {' '.join(args)}: {done.stderr[-400:]}")
    return json.loads(line[-1][len("LOADED ") :])


def slowest_imports(args: list[str], env: dict, top: int = 8) -> list[tuple[str, float]]:
    """-X importtime for one command: cumulative import time (ms) per top-level package, each counted
    where it is first reached (not again inside itself), largest first."""
    code = PROBE.replace("HEAVY", "[]")
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code, json.dumps(args)], env=env, capture_output=True, text=True
    )
    rows = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            _, cumulative, name = line.split("|")
            if cumulative.strip().isdigit():
                depth = (len(name) - len(name.lstrip())) // 2
                rows.append((depth, name.strip().split(".")[0], int(cumulative) / 1000))
    totals, ancestors = {}, []
    for depth, package, ms in reversed(rows):  # parents are printed after their children
        del ancestors[depth:]
        if package not in ancestors:
            totals[package] = totals.get(package, 0) + ms
        ancestors.append(package)
    return sorted(totals.items(), key=lambda item: -item[1])[:top]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="interleaved rounds (default 15)")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line at the end")
    args = parser.parse_args(argv)

    cmds, missing = commands()
    with tempfile.TemporaryDirectory(prefix="annex-bench-") as home:
        env = quiet_env(home)
        samples = measure(cmds, args.repeat, env)
        loaded = {command: loaded_modules(command.split(), env) for command in MUST_NOT}
        imports = slowest_imports(["render"], env)

    figures = {
        name: {"median_ms": statistics.median(s), "min_ms": min(s), "runs": len(s)} for name, s in samples.items()
    }
    print(
        f"condor_annex start-up, {args.repeat} interleaved runs each (Python {sys.version.split()[0]}, {sys.executable})"
    )
    print(f"  {'command':<22} {'median ms':>10} {'min ms':>8}")
    for name, f in figures.items():
        print(f"  {name:<22} {f['median_ms']:>10.1f} {f['min_ms']:>8.1f}")

    ratios, targets = {}, {}
    if missing:
        print(f"\n  {missing}")
    else:
        aws = figures["aws --version"]
        for name, limit in (("condor_annex --help", 0.5), ("condor_annex render", 1.0)):
            ratio = figures[name]["median_ms"] / aws["median_ms"]
            ratios[f"{name} / aws --version"] = ratio
            targets[name] = ratio < limit
        print("\n  ratios of medians:")
        for name, ratio in ratios.items():
            print(f"    {name:<36} {ratio:5.2f}")
        print(
            f"    {'aws --version / python -c pass':<36} {aws['median_ms'] / figures['python -c pass']['median_ms']:5.2f}"
        )
        print(f"\n  target --help < 0.5 × aws --version: {'met' if targets['condor_annex --help'] else 'MISSED'}")
        print(f"  target render < 1.0 × aws --version: {'met' if targets['condor_annex render'] else 'MISSED'}")
    overhead = figures["condor_annex --help"]["median_ms"] - figures["python -c pass"]["median_ms"]
    print(f"  condor_annex --help over a bare interpreter: {overhead:.1f} ms")

    print("\n  heavy modules imported (of " + ", ".join(HEAVY) + "):")
    clean = {}
    for command, mods in loaded.items():
        bad = [m for m in mods if m in MUST_NOT[command]]
        clean[command] = not bad
        verdict = "ok" if not bad else "MUST NOT import " + ", ".join(bad)
        print(f"    condor_annex {command:<14} {', '.join(mods) or 'none':<34} {verdict}")
    print("\n  where `condor_annex render` spends its import time (-X importtime, cumulative ms per package):")
    for name, ms in imports:
        print(f"    {name:<40} {ms:7.1f}")
    if args.json:
        print(
            json.dumps(
                {
                    "figures": figures,
                    "ratios": ratios,
                    "targets": targets,
                    "aws_missing": missing,
                    "loaded": loaded,
                    "clean": clean,
                    "render_imports": imports,
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
