"""annex-interruptions, the spot interruption service, run for real: a loopback IMDSv2 whose rebalance
recommendation and interruption notice a test switches on while the service polls it (every second here),
HTCondor's commands recorded (condor_config_val names the machine; condor_drain can be made to fail)."""

from __future__ import annotations

import subprocess
import time

import pytest

from instance_env import INSTANCE, MACHINE, ImdsServer, Instance

POLL = "1"
MARKER = "/var/lib/condor-annex/interruption"
GRACEFUL = f"condor_drain -graceful -reason condor_annex: AWS recommends rebalancing this spot instance {MACHINE}"
QUICK = f"condor_drain -quick -reason condor_annex: AWS interrupts this spot instance in two minutes {MACHINE}"
CANCEL = f"condor_drain -cancel {MACHINE}"


@pytest.fixture
def instance(tmp_path):
    # No AWS here: the service talks to the metadata service and HTCondor only.
    return Instance(tmp_path, {"HOME": str(tmp_path)})


class Service:
    """annex-interruptions running in the background against `imds`; stopped (by its own pid) on exit."""

    def __init__(self, instance, imds):
        self.instance = instance
        self.process = subprocess.Popen(
            [str(INSTANCE / "annex-interruptions")], env={**instance.env, "ANNEX_IMDS_URL": imds.url, "ANNEX_INTERRUPTION_POLL": POLL},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )
        self.output = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.process.poll() is None:
            self.process.terminate()
        self.output = self.process.communicate(timeout=30)[1]

    def drains(self) -> list[str]:
        return self.instance.calls("condor_drain")

    def wait_for(self, condition, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out; calls: {self.instance.calls()}"
            time.sleep(0.2)


def marker(instance) -> str | None:
    path = instance.path(MARKER)
    return path.read_text().strip() if path.exists() else None


def assert_it_left_ending_the_instance_to_aws(instance):
    assert not instance.calls("shutdown") and not instance.calls("poweroff")
    assert not instance.calls("aws")  # nor does it ask to leave the group


def test_a_rebalance_recommendation_drains_gracefully_once(instance):
    with ImdsServer() as imds, Service(instance, imds) as service:
        service.wait_for(lambda: imds.notice_requests >= 2)  # it polls; nothing is set yet
        imds.recommend_rebalance()
        service.wait_for(lambda: service.drains())
        polled = imds.notice_requests
        service.wait_for(lambda: imds.notice_requests >= polled + 4)  # a few polls more
        assert service.process.poll() is None  # still watching, for the interruption notice
    assert service.drains() == [GRACEFUL]
    assert instance.calls("condor_config_val") and instance.calls("condor_config_val")[0] == "condor_config_val FULL_HOSTNAME"
    assert marker(instance) == "rebalance"
    assert b"rebalance recommendation" in service.output
    assert_it_left_ending_the_instance_to_aws(instance)


def test_the_interruption_notice_vacates_the_jobs_at_once(instance):
    with ImdsServer() as imds, Service(instance, imds) as service:
        imds.announce_interruption()
        service.process.wait(timeout=20)  # nothing is left to do after it: it ends by itself
        assert service.process.returncode == 0
    assert service.drains() == [QUICK]
    assert marker(instance) == "interrupted"
    assert b'"action": "terminate"' in service.output
    assert_it_left_ending_the_instance_to_aws(instance)


def test_a_rebalance_then_the_interruption_drains_gracefully_then_quickly(instance):
    with ImdsServer() as imds, Service(instance, imds) as service:
        imds.recommend_rebalance()
        service.wait_for(lambda: service.drains())
        assert marker(instance) == "rebalance"
        imds.announce_interruption()
        service.process.wait(timeout=20)
    # the startd refuses a second drain while one is in progress: the graceful one is cancelled first
    assert service.drains() == [GRACEFUL, CANCEL, QUICK]
    assert marker(instance) == "interrupted"
    assert_it_left_ending_the_instance_to_aws(instance)


def test_without_a_notice_nothing_is_drained(instance):
    with ImdsServer() as imds, Service(instance, imds) as service:
        service.wait_for(lambda: imds.notice_requests >= 8)  # four polls of both notices
        assert service.process.poll() is None
    assert service.drains() == [] and marker(instance) is None
    assert_it_left_ending_the_instance_to_aws(instance)


def test_a_failing_drain_is_tried_again_at_the_next_poll(instance):
    instance.drain_fails.write_text("")
    with ImdsServer() as imds, Service(instance, imds) as service:
        imds.recommend_rebalance()
        service.wait_for(lambda: len(service.drains()) >= 3)
        assert marker(instance) == "rebalance"  # what AWS said is known at once, even while HTCondor fails
        instance.drain_fails.unlink()
        count = len(service.drains())
        service.wait_for(lambda: len(service.drains()) > count)
        polled = imds.notice_requests
        service.wait_for(lambda: imds.notice_requests >= polled + 4)
    assert set(service.drains()) == {GRACEFUL}
    assert b"failed; trying again" in service.output
    assert len(service.drains()) == count + 1  # once it worked, never again


def test_a_failing_quick_drain_is_tried_again_too(instance):
    instance.drain_fails.write_text("")
    with ImdsServer() as imds, Service(instance, imds) as service:
        imds.announce_interruption()
        service.wait_for(lambda: len(service.drains()) >= 2)
        assert service.process.poll() is None and marker(instance) == "interrupted"
        instance.drain_fails.unlink()
        service.process.wait(timeout=20)
    assert set(service.drains()) == {QUICK} and len(service.drains()) >= 3
    assert_it_left_ending_the_instance_to_aws(instance)


def test_an_expired_metadata_token_is_replaced(instance):
    with ImdsServer() as imds, Service(instance, imds) as service:
        service.wait_for(lambda: imds.notice_requests >= 2)
        tokens = imds.token_requests
        imds.expire_tokens()  # as when its TTL has passed: 401 until it asks for another
        imds.recommend_rebalance()
        service.wait_for(lambda: service.drains())
    assert imds.token_requests > tokens and service.drains() == [GRACEFUL]


def test_a_restarted_service_does_not_drain_again(instance):
    with ImdsServer() as imds:
        imds.recommend_rebalance()
        with Service(instance, imds) as service:
            service.wait_for(lambda: service.drains())
        with Service(instance, imds) as again:  # systemd restarts it, or the instance rebooted
            polled = imds.notice_requests
            again.wait_for(lambda: imds.notice_requests >= polled + 4)
        assert instance.calls("condor_drain") == [GRACEFUL]
        imds.announce_interruption()
        with Service(instance, imds) as last:
            last.process.wait(timeout=20)
        with Service(instance, imds) as after:  # its work is done: it ends at once
            after.process.wait(timeout=20)
    assert instance.calls("condor_drain") == [GRACEFUL, CANCEL, QUICK]
    assert b"nothing left to do" in after.output


def test_without_a_machine_name_it_drains_nothing_and_tries_again(instance):
    instance.env["ANNEX_TEST_HOSTNAME"] = ""
    with ImdsServer() as imds, Service(instance, imds) as service:
        imds.recommend_rebalance()
        service.wait_for(lambda: len(instance.calls("condor_config_val")) >= 2)
    assert service.drains() == [] and b"cannot tell this machine's name" in service.output
