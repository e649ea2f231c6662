"""annex.pool.queue: reading condor_q -json and the schedd, ClassAd matching against an annex's
machines, and how many instances the idle jobs need. Queue files are written with classad2 as
condor_q -json prints them; the schedd is a recorded one (tests/support/recorded_schedd), and the
real bindings are run up to where they find no schedd (there is no HTCondor daemon here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import classad2
import pytest

from annex.errors import ConfigError, PoolError
from annex.pool import demand, queue
from annex.pool.demand import AnnexMachines, Demand, pack_count
from annex.pool.queue import Job, read_queue_json, read_schedd
from tests.support.job_ads import GIB, HELD, IDLE, SIZES, job_ad, mixed_jobs, noise, write_queue

RECORDED_SCHEDD = Path(__file__).parent / "support" / "recorded_schedd"


@pytest.fixture
def lab_a():
    return AnnexMachines("Lab A", ["alice"], SIZES)


def job(ad: classad2.ClassAd) -> Job:
    return Job.from_ad(ad, "test ad")


def demand_of(tmp_path: Path, ads, annex: AnnexMachines) -> Demand:
    return Demand.of(read_queue_json(write_queue(tmp_path / "queue.json", ads)), annex)


# --- reading condor_q -json -----------------------------------------------------------------------


def test_expressions_stay_expressions_and_are_evaluated_in_the_jobs_context(tmp_path):
    ad = job_ad(
        7,
        3,
        cpus=2,
        memory_mb="ifThenElse(MemoryUsage =!= undefined, MemoryUsage, 2048 * RequestCpus)",
    )
    (read,) = read_queue_json(write_queue(tmp_path / "q.json", [ad]))
    assert (read.cluster, read.proc, read.id, read.owner, read.status) == (
        7,
        3,
        "7.3",
        "alice",
        "idle",
    )
    assert (read.request_cpus, read.request_memory_mb) == (2, 4096)
    assert isinstance(read.ad.lookup("Requirements"), classad2.ExprTree)
    assert isinstance(read.ad.lookup("RequestMemory"), classad2.ExprTree)


def test_memory_usage_of_an_earlier_run_decides_request_memory(tmp_path):
    ad = job_ad(7, memory_mb="ifThenElse(MemoryUsage =!= undefined, MemoryUsage, 2048)")
    ad["ResidentSetSize"] = 5 * GIB * 1024  # KiB: the job used 5 GiB before it was evicted
    (read,) = read_queue_json(write_queue(tmp_path / "q.json", [ad]))
    assert read.request_memory_mb == 5 * GIB


def test_a_job_asking_for_nothing_gets_htcondors_defaults(tmp_path, lab_a):
    (read,) = read_queue_json(
        write_queue(tmp_path / "q.json", [job_ad(1, cpus=None, memory_mb=None)])
    )
    assert (read.request_cpus, read.request_memory_mb) == (1, 128)
    assert lab_a.matching_types(read) == ("c7i.large", "m7i.large", "m7i.xlarge", "m7i.2xlarge")


@pytest.mark.parametrize("text", ["", "\n", "[]", "[\n]\n"])
def test_an_empty_queue_holds_no_jobs(tmp_path, text):
    path = tmp_path / "q.json"
    path.write_text(text)
    assert read_queue_json(path) == []


def test_statuses_are_named(tmp_path):
    ads = [job_ad(n, status=status) for n, status in enumerate((1, 2, 3, 4, 5, 6, 7, 9), 1)]
    jobs = read_queue_json(write_queue(tmp_path / "q.json", ads))
    assert [j.status for j in jobs] == [
        "idle",
        "running",
        "removed",
        "completed",
        "held",
        "transferring output",
        "suspended",
        "status 9",
    ]


def test_a_missing_file_is_one_line_naming_it(tmp_path):
    path = tmp_path / "nowhere.json"
    with pytest.raises(PoolError) as error:
        read_queue_json(path)
    assert str(error.value) == f"the queue file {path} does not exist"


@pytest.mark.parametrize(
    "text, problem",
    [
        ("-- Schedd: ap.example.org : <10.0.0.1:9618?...\n", "it is not a JSON array of job ads"),
        ('{"ClusterId": 1}', "it is not a JSON array of job ads"),
        ("[1, 2]", "element 1 is not a job ad (a JSON object)"),
        (
            '[{"ClusterId": 1, "ProcId": 0, "JobStatus": 1}',
            "a ',' or ']' is missing after element 1",
        ),
        ('[{"ClusterId": 1, "ProcId": 0, "JobStatus": 1},]', "Expecting value"),
        (
            '[{"ClusterId": 1, "ProcId": 0, "JobStatus": 1}] trailing',
            "there is text after the closing ']'",
        ),
        ('[{"ClusterId": 1, "ProcId": 0}]', "ad 1 has no JobStatus"),
    ],
)
def test_a_file_that_is_not_condor_q_json_is_one_line_naming_it(tmp_path, text, problem):
    path = tmp_path / "q.json"
    path.write_text(text)
    with pytest.raises(PoolError) as error:
        read_queue_json(path)
    message = str(error.value)
    assert str(path) in message and problem in message and "\n" not in message


def test_binary_garbage_is_not_condor_q_json(tmp_path):
    path = tmp_path / "q.json"
    path.write_bytes(b"\xff\xfe\x00[")
    with pytest.raises(PoolError, match="is not condor_q -json output: it is not UTF-8 text"):
        read_queue_json(path)


@pytest.mark.parametrize("config_text", [None, "FOO = $(\n[ broken\n"])
def test_reading_a_queue_file_needs_no_pool_configuration(tmp_path, config_text):
    """classad2's parser imports htcondor2, which would read CONDOR_CONFIG: a missing one makes it
    complain on stderr and a malformed one exits the process. A fresh process makes that import."""
    config = tmp_path / "condor_config"
    if config_text is not None:
        config.write_text(config_text)
    write_queue(tmp_path / "q.json", [job_ad(1, memory_mb="1024 * RequestCpus", cpus=3)])
    code = (
        "import os, sys; from annex.pool.queue import read_queue_json\n"
        "jobs = read_queue_json(sys.argv[1])\n"
        "imported = 'htcondor2' in sys.modules\n"
        "print(jobs[0].request_memory_mb, imported, os.environ['CONDOR_CONFIG'])\n"
    )
    env = {**os.environ, "CONDOR_CONFIG": str(config)}
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "q.json")],
        env=env,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout.split() == ["3072", "True", str(config)]


def test_condor_history_json_jobs_are_read_and_never_idle(tmp_path, lab_a):
    jobs = read_queue_json(
        write_queue(tmp_path / "history.json", [job_ad(n, status=4) for n in range(3)])
    )
    assert [j.status for j in jobs] == ["completed"] * 3
    assert Demand.of(jobs, lab_a).idle_jobs == 0


# --- matching the annex ---------------------------------------------------------------------------


def test_requirements_naming_lab_a_match_lab_a_and_not_lab_b():
    requirements = '(TARGET.AnnexName == "Lab A") && (TARGET.Memory >= RequestMemory)'
    target = job(job_ad(1, memory_mb=4 * GIB, requirements=requirements))
    lab_a = AnnexMachines("Lab A", ["alice"], SIZES)
    lab_b = AnnexMachines("Lab B", ["alice"], SIZES)
    assert target.may_run_on(lab_a) and lab_a.is_targeted_by(target)
    assert lab_a.matching_types(target) == ("c7i.large", "m7i.large", "m7i.xlarge", "m7i.2xlarge")
    assert not target.may_run_on(lab_b) and lab_b.matching_types(target) == ()


def test_may_use_aws_without_an_annex_name_clause_matches(lab_a):
    opted_in = job(job_ad(1, annex=None, may_use_aws=True))
    assert opted_in.opted_in and not lab_a.is_targeted_by(opted_in)
    assert opted_in.may_run_on(lab_a)


def test_a_job_for_the_pools_own_machines_does_not_ask_for_the_annex(lab_a):
    plain = job(job_ad(1, annex=None))
    assert lab_a.matching_types(plain)  # the annex could run it ...
    assert not plain.may_run_on(lab_a)  # ... but it neither names the annex nor opted in


def test_opted_out_and_other_users_jobs_are_refused_by_start(lab_a):
    assert not job(job_ad(1, may_use_aws=False)).may_run_on(lab_a)
    assert not job(job_ad(2, may_use_aws=False, annex=None)).may_run_on(lab_a)
    assert not job(job_ad(3, owner="bob")).may_run_on(lab_a)
    assert not job(job_ad(4, owner="Alice")).may_run_on(lab_a)  # Owner is case-sensitive
    both = AnnexMachines("Lab A", ["alice", "bob"], SIZES)
    assert job(job_ad(3, owner="bob")).may_run_on(both)


def test_start_is_annex_condors_rule():
    annex = AnnexMachines("Lab A", [" alice ", "bob", "alice"], SIZES)
    assert (
        annex.start
        == '(TARGET.Owner =?= "alice" || TARGET.Owner =?= "bob") && (TARGET.MayUseAWS =!= FALSE)'
    )
    assert (
        demand.start_expression(['o"brien'])
        == '(TARGET.Owner =?= "o\\"brien") && (TARGET.MayUseAWS =!= FALSE)'
    )


def test_the_machine_ads_say_what_an_instance_advertises(lab_a):
    machine = lab_a.machines["m7i.xlarge"]
    assert (machine["Cpus"], machine["Memory"], machine["Arch"], machine["OpSys"]) == (
        4,
        16 * GIB,
        "X86_64",
        "LINUX",
    )
    assert (machine["AnnexName"], machine["IsAnnex"]) == ("Lab A", True)
    assert machine.lookup("START") == classad2.ExprTree(lab_a.start)


def test_a_job_too_big_for_every_type_matches_none_but_would_if_big_enough(lab_a):
    huge = job(job_ad(1, cpus=16, memory_mb=64 * GIB))
    assert lab_a.matching_types(huge) == () and lab_a.would_match_if_big_enough(huge)
    assert not huge.may_run_on(lab_a)


def test_memory_decides_the_matching_types(lab_a):
    assert lab_a.matching_types(job(job_ad(1, memory_mb=6 * GIB))) == (
        "m7i.large",
        "m7i.xlarge",
        "m7i.2xlarge",
    )
    assert lab_a.matching_types(job(job_ad(1, cpus=3))) == ("m7i.xlarge", "m7i.2xlarge")


def test_arch_is_matched_as_requirements_say():
    mixed = AnnexMachines(
        "Lab A", ["alice"], {"c7g.large": (2, 4 * GIB), "m7i.large": (2, 8 * GIB)}
    )
    assert mixed.machines["c7g.large"]["Arch"] == "aarch64"
    x86 = job(job_ad(1))
    assert mixed.matching_types(x86) == ("m7i.large",)
    arm_only = AnnexMachines("Lab A", ["alice"], {"c7g.large": (2, 4 * GIB)})
    assert not arm_only.would_match_if_big_enough(x86)  # not "too big": it can never run there


@pytest.mark.parametrize(
    "instance_type, arch",
    [
        ("m7i.large", "X86_64"),
        ("c7a.xlarge", "X86_64"),
        ("g4dn.xlarge", "X86_64"),
        ("m7g.large", "aarch64"),
        ("c6gn.large", "aarch64"),
        ("r8gd.large", "aarch64"),
        ("g5g.xlarge", "aarch64"),
        ("a1.large", "aarch64"),
        ("im4gn.large", "aarch64"),
    ],
)
def test_instance_arch(instance_type, arch):
    assert demand.instance_arch(instance_type) == arch


def test_a_request_memory_that_gives_no_number_matches_nothing(lab_a):
    broken = job(
        job_ad(1, memory_mb="NoSuchAttribute * 2")
    )  # undefined (an IntEnum, 2, in classad2)
    assert broken.request_memory_mb is None
    assert lab_a.matching_types(broken) == () and not lab_a.would_match_if_big_enough(broken)


@pytest.mark.parametrize(
    "args, field",
    [
        (("", ["alice"], SIZES), "project-id"),
        (("Lab A", [], SIZES), "owner"),
        (("Lab A", ["  "], SIZES), "owner"),
        (("Lab A", ["al\nice"], SIZES), "owner"),
        (("Lab A", ["alice"], {}), "instance-types"),
        (("Lab A", ["alice"], {"m7i.large": (2, 0)}), "instance-types"),
        (("Lab A", ["alice"], {"m7i.large": (2,)}), "instance-types"),
    ],
)
def test_bad_annex_shapes_are_refused_naming_the_field(args, field):
    with pytest.raises(ConfigError) as error:
        AnnexMachines(*args)
    assert error.value.field == field


# --- demand ---------------------------------------------------------------------------------------


def test_a_mixed_queue_counts_only_alices_idle_jobs_for_lab_a(tmp_path, lab_a):
    counted = [
        job_ad(1, cpus=2, memory_mb=4 * GIB),
        job_ad(2, annex=None, may_use_aws=True, memory_mb=3 * GIB),
    ]
    too_big = job_ad(3, cpus=16, memory_mb=64 * GIB)
    demand = demand_of(tmp_path, [*noise(), *counted, too_big], lab_a)
    assert [j.id for j in demand.jobs] == ["1.0", "2.0"]
    assert (demand.idle_jobs, demand.cpus, demand.memory_mb) == (2, 3, 7 * GIB)
    assert [j.id for j in demand.too_big] == ["3.0"] and demand.jobs_too_big == 1
    # 2 CPUs / 4 GiB fills a c7i.large; 1 CPU / 3 GiB fits the c7i.large too, but not beside it: 2.
    assert demand.instances_needed(SIZES) == 2


@pytest.mark.parametrize(
    "count, instances, cpus",
    [
        (0, 0, 0),
        # (1, 2G) + (2, 4G) on c7i.large: 2 instances (they do not share one); (1, 6G) one
        # m7i.large.
        (3, 3, 4),
        # 8 of each: c7i.large 8 for (2, 4G) + 4 for the pairs of (1, 2G) = 12; m7i.large 8;
        # m7i.xlarge 8; m7i.2xlarge 8: 36 instances; CPUs 8 × (1 + 2 + 1 + 4 + 8) = 128.
        (40, 36, 128),
        # 100 of each: c7i.large 100 + 50, and 100 each of the others: 450; CPUs 100 × 16 = 1600.
        (500, 450, 1600),
    ],
)
def test_queues_of_mixed_sizes_need_exactly(tmp_path, lab_a, count, instances, cpus):
    demand = demand_of(tmp_path, [*mixed_jobs(count), *noise()], lab_a)
    assert (demand.idle_jobs, demand.cpus, demand.jobs_too_big) == (count, cpus, 0)
    assert demand.instances_needed(SIZES) == instances


def test_each_job_goes_to_the_smallest_type_it_fits(lab_a):
    # A 1-CPU, 6 GiB job matches m7i.large and bigger; packed on m7i.large, two of them need two.
    demand = Demand.of([job(job_ad(n, memory_mb=6 * GIB)) for n in range(2)], lab_a)
    assert demand.instances_needed(SIZES) == 2
    assert (
        demand.instances_needed({"m7i.2xlarge": SIZES["m7i.2xlarge"]}) == 1
    )  # if only 2xlarge were allowed


def test_memory_is_packed_as_a_partitionable_slot_rounds_it(lab_a):
    def needed(*memory_mb):
        jobs = [job(job_ad(n, memory_mb=memory)) for n, memory in enumerate(memory_mb)]
        return Demand.of(jobs, lab_a).instances_needed(SIZES)

    assert needed(2000, 2000) == 1  # 2 × 2048 (rounded up to 128 MiB) = 4096: one c7i.large
    # 1030 + 3000 = 4030 MiB would share a c7i.large, but the slots are 1152 + 3072 = 4224 > 4096.
    assert needed(1030, 3000) == 2
    assert needed(3 * GIB, 3 * GIB) == 2  # CPUs fit two a c7i.large, memory does not


def test_pack_count_first_fit_decreasing():
    assert pack_count([], (2, 4096)) == 0
    assert pack_count([(1, 1024)] * 5, (2, 4096)) == 3
    assert pack_count([(1, 3000), (1, 1000), (1, 3000), (1, 1000)], (2, 4096)) == 2
    assert (
        pack_count([(4, 1024), (2, 1024), (2, 1024), (1, 1024), (1, 1024), (1, 1024)], (4, 8192))
        == 3
    )


def test_five_hundred_jobs_parse_match_and_pack(tmp_path, lab_a):
    jobs = read_queue_json(write_queue(tmp_path / "q.json", mixed_jobs(500)))
    assert len(jobs) == 500 and all(j.may_run_on(lab_a) for j in jobs)
    assert Demand.of(jobs, lab_a).instances_needed(SIZES) == 450


# --- the schedd -----------------------------------------------------------------------------------


def recorded_run(tmp_path: Path, ads, fail: str | None = None):
    """A runner that runs the real query script against the recorded schedd."""
    recorded = tmp_path / "schedd-ads.json"
    recorded.write_text("\n".join(ad.printJson() for ad in ads), encoding="utf-8")
    extra = {
        "PYTHONPATH": str(RECORDED_SCHEDD),
        "RECORDED_SCHEDD_ADS": str(recorded),
        "RECORDED_SCHEDD_LOG": str(tmp_path / "queries.log"),
        "RECORDED_SCHEDD_FAIL": fail or "",
    }
    return lambda argv, env, timeout: queue.run_bindings(argv, {**env, **extra}, timeout)


def queries(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "queries.log").read_text().splitlines()]


@pytest.fixture
def condor_config(tmp_path):
    """A configuration of a machine with no schedd running."""
    local = tmp_path / "condor-local"
    path = tmp_path / "condor_config"
    path.write_text(
        f"LOCAL_DIR = {local}\nLOG = $(LOCAL_DIR)/log\nSPOOL = $(LOCAL_DIR)/spool\n"
        "CONDOR_HOST = 127.0.0.1\n"
    )
    return str(path)


def test_the_recorded_schedd_answers_the_owners_idle_jobs(tmp_path, condor_config, lab_a):
    evicted = job_ad(5, memory_mb="ifThenElse(MemoryUsage =!= undefined, MemoryUsage, 2048)")
    evicted["ResidentSetSize"] = 5 * GIB * 1024
    ads = [*mixed_jobs(3), evicted, *noise()]
    jobs = read_schedd(condor_config, ["alice"], run=recorded_run(tmp_path, ads))
    assert [j.id for j in jobs] == ["100.0", "100.1", "100.2", "5.0", "9005.0", "9006.0", "9007.0"]
    assert all(j.is_idle and j.owner == "alice" for j in jobs)
    assert jobs[3].request_memory_mb == 5 * GIB  # MemoryUsage and ResidentSetSize were fetched too
    asked = queries(tmp_path)
    assert asked[0]["constraint"] == '(Owner == "alice") && (JobStatus == 1)'
    assert asked[0]["condor_config"] == condor_config
    assert asked[0]["projection"] == sorted(queue.PROJECTION)
    assert {"MemoryUsage", "DiskUsage"} <= set(asked[1]["projection"])
    assert "ResidentSetSize" in asked[2]["projection"] and len(asked) == 3
    assert Demand.of(jobs, lab_a).idle_jobs == 4


def test_the_schedd_query_takes_a_constraint(tmp_path, condor_config):
    ads = [job_ad(1), job_ad(2, status=HELD), job_ad(3, owner="bob", status=HELD)]
    jobs = read_schedd(
        condor_config, ["alice", "bob"], "JobStatus == 5", run=recorded_run(tmp_path, ads)
    )
    assert [j.id for j in jobs] == ["2.0", "3.0"]
    assert (
        queries(tmp_path)[0]["constraint"]
        == '(Owner == "alice" || Owner == "bob") && (JobStatus == 5)'
    )


def test_an_empty_schedd_answers_no_jobs(tmp_path, condor_config):
    assert (
        read_schedd(
            condor_config,
            ["alice"],
            run=recorded_run(tmp_path, [job_ad(1, status=IDLE, owner="bob")]),
        )
        == []
    )


def test_a_schedd_failure_is_one_line(tmp_path, condor_config):
    run = recorded_run(
        tmp_path, [], fail="Failed to fetch ads from schedd,\nerrmsg=CEDAR:6001:Failed to connect"
    )
    with pytest.raises(PoolError) as error:
        read_schedd(condor_config, ["alice"], run=run)
    assert str(error.value) == (
        "the schedd could not be queried: "
        "Failed to fetch ads from schedd, errmsg=CEDAR:6001:Failed to connect"
    )


def test_the_real_bindings_report_that_no_schedd_can_be_reached(condor_config):
    with pytest.raises(PoolError) as error:
        read_schedd(condor_config, ["alice"])
    assert str(error.value) == "the schedd could not be queried: Unable to locate local daemon."


def test_a_schedd_that_does_not_answer_in_time(condor_config):
    def slow(argv, env, timeout):
        return queue.run_bindings([sys.executable, "-c", "import time; time.sleep(30)"], env, 0.5)

    with pytest.raises(PoolError) as error:
        read_schedd(condor_config, ["alice"], run=slow)
    assert str(error.value) == "the schedd could not be queried: no answer within 0.5 seconds"


def test_a_crashing_query_process_reports_its_last_line(condor_config):
    def crash(argv, env, timeout):
        return subprocess.CompletedProcess(
            argv,
            1,
            "",
            "Traceback (most recent call last):\n  ...\n"
            "ModuleNotFoundError: No module named 'htcondor2'\n",
        )

    with pytest.raises(
        PoolError, match=r"queried: ModuleNotFoundError: No module named 'htcondor2'$"
    ):
        read_schedd(condor_config, ["alice"], run=crash)


def test_a_garbled_answer_is_not_condor_q_json(condor_config):
    def garbled(argv, env, timeout):
        return subprocess.CompletedProcess(argv, 0, "Segmentation fault?\n", "")

    with pytest.raises(PoolError, match=r"^the schedd's answer is not condor_q -json output"):
        read_schedd(condor_config, ["alice"], run=garbled)


def test_the_configuration_must_exist(tmp_path):
    with pytest.raises(PoolError, match="is not a file"):
        read_schedd(str(tmp_path / "missing_config"), ["alice"])
    with pytest.raises(PoolError, match="no HTCondor configuration"):
        read_schedd("", ["alice"])


def test_a_constraint_that_is_not_classad_is_refused(condor_config):
    with pytest.raises(ConfigError) as error:
        read_schedd(condor_config, ["alice"], "JobStatus == (")
    assert error.value.field == "constraint"
