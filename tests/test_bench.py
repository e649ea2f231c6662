"""The bench scripts run, with tiny sizes, and print their figures: checked for counts and structure, never
for wall-clock time (docs/performance.md has the figures of full runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def bench(script: str, *args: str) -> tuple[str, dict]:
    """Run bench/<script> with --json; its printed report and its figures."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args, "--json"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    *report, figures = done.stdout.rstrip("\n").split("\n")
    return "\n".join(report), json.loads(figures)


def test_startup_times_each_command_and_help_imports_nothing_heavy():
    report, figures = bench("startup.py", "--repeat", "1")
    expected = {"python -c pass", "condor_annex --help", "condor_annex render"}
    assert expected <= set(figures["figures"])
    for name, f in figures["figures"].items():
        assert f["runs"] == 1 and 0 < f["min_ms"] <= f["median_ms"], name
        assert name in report
    if figures["aws_missing"] is None:
        assert set(figures["ratios"]) == {"condor_annex --help / aws --version", "condor_annex render / aws --version"}
        assert set(figures["targets"]) == {"condor_annex --help", "condor_annex render"}
    else:
        assert "pip" in figures["aws_missing"] and figures["aws_missing"] in report
    assert figures["loaded"]["--help"] == [] and figures["loaded"]["create --help"] == []  # neither boto3 nor troposphere
    assert not {"boto3", "botocore", "cfnlint"} & set(figures["loaded"]["render"])
    assert figures["clean"] == {"--help": True, "create --help": True, "render": True}
    assert figures["render_imports"] and "heavy modules imported" in report


@pytest.mark.aws  # the benchmark starts its own moto server
def test_aws_calls_are_counted_per_command_and_equal_across_sizes():
    report, figures = bench("aws_calls.py", "--sizes", "1", "3", "--annexes", "1", "2", "--annex-instances", "1")
    assert set(figures["by_size"]) == {"1", "3"}
    for size in ("1", "3"):
        commands = figures["by_size"][size]
        assert set(commands) == {"create", "status", "extend", "delete"}
        # create is one stack operation, asking for every instance from the start
        assert commands["create"]["calls"]["cloudformation.CreateStack"] == 1
        assert "cloudformation.UpdateStack" not in commands["create"]["calls"]
        assert commands["extend"]["calls"]["cloudformation.UpdateStack"] == 1
        assert commands["delete"]["calls"]["cloudformation.DeleteStack"] == 1
        assert commands["status"]["calls"]["cloudformation.ListStacks"] == 1  # never DescribeStacks of every stack
        for command in commands.values():
            assert command["total"] == sum(command["calls"].values()) <= command["requests"]
    assert figures["equal"] == {"create": True, "status": True, "extend": True, "delete": True}
    by_annexes = figures["status_by_annexes"]
    assert [by_annexes[n]["shown"] for n in ("1", "2")] == [1, 2]
    assert [by_annexes[n]["instances"] for n in ("1", "2")] == [1, 2]
    # per annex: its own stack's description, its group's scaling activities (why it is short, what was
    # interrupted), a look at its own bucket and the prices of its types; every other call is one page for both
    per_annex = ("cloudformation.DescribeStacks", "auto-scaling.DescribeScalingActivities", "s3.ListObjectsV2", "pricing.GetProducts")
    for call in per_annex[:3]:
        assert [by_annexes[n]["calls"][call] for n in ("1", "2")] == [1, 2]
    rest = [{k: v for k, v in by_annexes[n]["calls"].items() if k not in per_annex} for n in ("1", "2")]
    assert rest[0] == rest[1]
    assert "equal across sizes: yes" in report and "status, by number of annexes" in report


@pytest.mark.aws  # the benchmark starts its own moto server
def test_lease_calls_and_what_is_left():
    report, figures = bench("lease.py", "--sizes", "1", "3")
    results = figures["results"]
    assert set(results) == {"1", "3"}
    for size, r in results.items():
        assert r["before"]["running"] == int(size) and r["before"]["stack"] == "CREATE_COMPLETE"  # create is one stack operation
        assert r["after"]["running"] == 0 and r["after"]["stack"] == "DELETE_COMPLETE" and r["after"]["bucket"] is False
        assert r["calls"]["cloudformation.DeleteStack"] == 1
        assert r["total"] == sum(r["calls"].values()) and r["seconds"] > 0
        assert r["calls"]["auto-scaling.UpdateAutoScalingGroup"] == r["before"]["groups"] == 1  # one group, whatever the size
    assert figures["equal"] and figures["groups"] == [1]
    assert "calls equal across sizes: yes" in report


@pytest.mark.aws  # the benchmark starts its own moto server
def test_wait_sees_completion_and_returns():
    report, figures = bench("wait.py", "--delays", "0", "1")
    first, second = figures["results"]
    assert (first["delay"], second["delay"]) == (0, 1)
    assert first["polls"] == 1 and second["polls"] > 1  # backoff polls while the stack is "in progress"
    assert first["polls_total"] == first["polls"]  # one stack operation, one wait
    assert all(r["seen_after_complete"] >= 0 and r["then_to_return"] >= 0 for r in figures["results"])
    assert first["event_to_return"] is not None
    assert "each takes" in report and "its stack operation completing" in report


@pytest.mark.aws  # the benchmark starts its own moto server
def test_the_sweep_costs_the_same_few_calls_for_one_annex_or_ten():
    report, figures = bench("sweep.py", "--annexes", "1", "10")
    one, ten = figures["results"]["1"], figures["results"]["10"]
    assert one["none_due"] == ten["none_due"], "no call per annex when none is due"
    assert ten["none_due"] == {"cloudformation.ListStacks": 1, "resource-groups-tagging-api.GetResources": 1}
    assert len(one["ended"]) == len(ten["ended"]) == 1 and one["one_due_total"] == ten["one_due_total"] > ten["none_due_total"]
    assert ten["before_design"] == 11 and "before (1 + a DescribeStacks each)" in report
