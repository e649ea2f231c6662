"""A user's first hour with delete (issue #21, item 3): whose annex it is, a mistyped project id, and
what "gone" means once CloudFormation says DELETE_COMPLETE. Through the CLI runner, against the
in-memory fake of AWS."""

from __future__ import annotations

import pytest

from annex.aws.views import Caller
from annex.errors import AwsError
from annex.interface import stack_name
from annex.lifecycle.delete import Deleted, DeleteRequest, execute_delete, plan_delete
from tests.support.cli import Sessions, run_cli
from tests.support.fake_aws import FakeAws
from tests.support.recording_ui import RecordingUi
from annex.standin.pool import write_pool

PROJECT = "TheNeeds-MooreLab"
BOB = Caller("123456789012", "arn:aws:iam::123456789012:user/bob", "AIDAFAKEBOB")


@pytest.fixture
def env(tmp_path):
    return {"CONDOR_CONFIG": str(write_pool(tmp_path / "pool")), "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "AWS_REGION": None, "AWS_DEFAULT_REGION": None, "AWS_PROFILE": None, "COLUMNS": None}


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setattr("annex.lifecycle.status.query_slots", lambda pool, ids=None, attributes=(): [])
    return Sessions().install(monkeypatch)


def keep_bucket_on_delete(fake, monkeypatch, status="DELETE_SKIPPED"):
    """The next delete goes through DELETE_IN_PROGRESS, the bucket's `status`, then DELETE_COMPLETE."""
    fake.script("delete", "DELETE_IN_PROGRESS", "DELETE_COMPLETE")
    delete = fake.delete_stack

    def delete_keeping_the_bucket(stack_id):
        delete(stack_id)
        fake.resource_event(stack_id, "Bucket", "AWS::S3::Bucket", status)

    monkeypatch.setattr(fake, "delete_stack", delete_keeping_the_bucket)


# --- (a) someone else's annex ------------------------------------------------------------------------------


def test_deleting_someone_elses_annex_names_the_owner_in_the_summary_and_the_question(aws, env):
    fake = aws["us-east-1"]
    fake.add_stack("Lab B", owner=BOB, owner_name="bob")
    ran = run_cli("delete", "--project-id", "Lab B", env=env)  # no terminal: the question is shown, not asked
    assert ran.code == 1, ran
    assert ran.errors[0].startswith("bob's annex 'Lab B' in us-east-1 (") and ran.errors[0].endswith(", made by bob):")
    assert "Delete bob's annex 'Lab B' in us-east-1? No terminal to ask on; pass --yes to go ahead." in ran.errors
    assert fake.mutations() == []


def test_deleting_ones_own_annex_asks_plainly(aws, env):
    aws["us-east-1"].add_stack("Lab B")
    ran = run_cli("delete", "--project-id", "Lab B", env=env)
    assert ran.errors[0].startswith("Annex 'Lab B' in us-east-1 (") and "made by" not in ran.errors[0]
    assert "Delete annex 'Lab B' in us-east-1? No terminal to ask on; pass --yes to go ahead." in ran.errors


# --- (b) a mistyped project id ------------------------------------------------------------------------------


def test_a_project_id_with_a_close_match_exits_2_and_deletes_nothing(aws, env):
    fake = aws["us-east-1"]
    fake.add_stack(PROJECT)
    ran = run_cli("delete", "--project-id", "TheNeeds-MooreLob", "--yes", env=env)
    assert ran.code == 2 and ran.stdout == "", ran
    assert ran.errors == ["condor_annex: no annex for project 'TheNeeds-MooreLob' in us-east-1; did you mean 'TheNeeds-MooreLab'?"]
    assert fake.mutations() == [] and fake.find_stack(stack_name(PROJECT)) is not None


@pytest.mark.parametrize("typed", ["THENEEDS-MOORELOB", "theneeds_moorelab", "TheNeeds-MooreLa"])
def test_close_matches_ignore_case(aws, env, typed):
    aws["us-east-1"].add_stack(PROJECT)
    ran = run_cli("delete", "--project-id", typed, "--yes", env=env)
    assert ran.code == 2 and f"did you mean {PROJECT!r}?" in ran.stderr, ran


def test_ids_that_differ_only_in_case_are_the_same_project(aws, env):
    """A project is one annex whatever the case it is typed in (create refuses a second): delete ends it,
    and says it by the id it was made with."""
    fake = aws["us-east-1"]
    fake.add_stack(PROJECT)
    ran = run_cli("delete", "--project-id", PROJECT.upper(), "--yes", env=env)
    assert ran.code == 0, ran
    assert ran.errors[0].startswith(f"Annex {PROJECT!r} in us-east-1 (")
    assert fake.find_stack(stack_name(PROJECT)) is None


def test_a_project_id_with_nothing_near_is_nothing_to_delete(aws, env):
    aws["us-east-1"].add_stack(PROJECT)
    ran = run_cli("delete", "--project-id", "Zebra Lab", "--yes", "--output", "json", env=env)
    assert ran.code == 0, ran
    assert ran.errors == ["No annex for project 'Zebra Lab' in us-east-1; to list them: condor_annex status --region us-east-1; "
                          "nothing to delete."]
    assert '"deleted": false' in ran.stdout
    assert aws["us-east-1"].mutations() == []


# --- (c) gone, as the stack tells it -----------------------------------------------------------------------


def test_gone_is_judged_by_the_stack_not_by_asking_s3(aws, env):
    """A user whose S3 rights came from the bucket's own policy gets 403 from HeadBucket once the
    stack has deleted that policy: the delete must never ask."""
    fake = aws["us-east-1"]
    fake.add_stack(PROJECT)
    fake.inject("bucket_exists", AwsError("looking up bucket b: AWS said 403: Forbidden"), times=10)
    ran = run_cli("delete", "--project-id", PROJECT, "--yes", env=env)
    assert ran.code == 0, ran
    assert fake.called("bucket_exists") == []
    assert f"Annex {PROJECT!r} in us-east-1 is gone: instances terminated, bucket and stack deleted." in ran.errors


def test_a_bucket_the_deletion_kept_is_said(aws, env, monkeypatch):
    fake = aws["us-east-1"]
    stack = fake.add_stack(PROJECT)
    keep_bucket_on_delete(fake, monkeypatch)
    ran = run_cli("delete", "--project-id", PROJECT, "--yes", env=env)
    assert ran.code == 0, ran
    assert f"Annex {PROJECT!r} in us-east-1 is gone: instances terminated, stack deleted." in ran.errors
    assert (f"  ! CloudFormation kept bucket {stack.bucket} (not deleted); to remove it: "
            f"aws s3 rb s3://{stack.bucket} --force --region us-east-1") in ran.errors
    assert fake.called("bucket_exists") == [] and fake.called("remaining_resources") == []


# --- the same, at the plan/execute level -------------------------------------------------------------------


@pytest.fixture
def fake():
    return FakeAws()


@pytest.fixture
def ui():
    return RecordingUi()


def test_plan_level_a_bucket_the_deletion_kept_is_said(fake, ui, monkeypatch):
    stack = fake.add_stack(PROJECT)
    keep_bucket_on_delete(fake, monkeypatch)
    deleted = execute_delete(plan_delete(DeleteRequest(PROJECT), aws=fake), ui)
    assert deleted.bucket_left == stack.bucket and fake.called("bucket_exists") == []
    assert fake.called("remaining_resources") == [], "a deleted stack's resources are never asked for"


def test_a_bucket_deleted_in_an_earlier_attempt_is_not_said_to_be_kept(fake, ui, monkeypatch):
    stack = fake.add_stack(PROJECT)
    fake.resource_event(stack.id, "Bucket", "AWS::S3::Bucket", "DELETE_FAILED")  # before this deletion began
    assert execute_delete(plan_delete(DeleteRequest(PROJECT), aws=fake), ui) == Deleted()
