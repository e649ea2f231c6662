"""What the administrator sees of `setup` and its subcommands: plans and results as lines of text (pure
functions; the commands in annex/cli/setup.py say them)."""

from __future__ import annotations

from ..interface import tag_value
from ..names import PROJECT_ROLE_PATH, SETUP_STACK, TAG_PROJECT, USER_GROUP, USER_POLICY
from ..text import quote, usd

MOST_LINES = 6  # of one mapping's changes (prices, sizes); the rest are counted


# --- values ------------------------------------------------------------------------------------------------


def shown(name: str, value) -> str:
    """A setting's value as the summary writes it."""
    if value is None or value in ([], {}, ()):
        return "none" if name != "vpc_id" else "none (the set-up's own)"
    if name == "max_ceiling_usd":
        return usd(float(value))
    if name == "spot_price":
        return f"${value}/hour"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def entry(name: str, value) -> str:
    """One value of a mapping setting: a price or a size."""
    if value is None:
        return "none"
    if name == "prices":
        return f"${float(value):.4f}/hour"
    if name == "sizes" and isinstance(value, (list, tuple)) and len(value) == 2:
        return f"{value[0]} vCPUs, {value[1] / 1024:g} GiB"
    return str(value)


def change_lines(changes) -> list[str]:
    """`field: before → after` for every change; a mapping's changes one key a line."""
    lines = []
    for name, before, after in changes:
        if isinstance(before, dict) or isinstance(after, dict):
            old, new = before or {}, after or {}
            keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
            lines += [f"  {name} {k}: {entry(name, old.get(k))} → {entry(name, new.get(k))}" for k in keys[:MOST_LINES]]
            if len(keys) > MOST_LINES:
                lines.append(f"  {name}: and {len(keys) - MOST_LINES} more")
        else:
            lines.append(f"  {name}: {shown(name, before)} → {shown(name, after)}")
    return lines


# --- setup -------------------------------------------------------------------------------------------------


def setup_summary(plan) -> list[str]:
    if plan.unchanged:
        return [f"The set-up in {plan.region} (stack {SETUP_STACK}, account {plan.account}) already is what you ask."]
    where = f"(stack {SETUP_STACK}) in account {plan.account}, region {plan.region}"
    lines = []
    if plan.stale:
        lines.append(f"Stack {SETUP_STACK} is {plan.stack.status} from an earlier attempt: it is deleted first.")
    if plan.creates:
        lines += [f"condor_annex will create the set-up {where}:", *created_lines(plan)]
    else:
        lines += [f"condor_annex will update the set-up {where}:", *change_lines(plan.changes)]
        if plan.template_changed and not plan.changes:
            lines.append("  the set-up's template is another version's: it becomes this version's")
        if plan.upload and not plan.changes and not plan.template_changed:
            lines.append(f"  templates missing from bucket {plan.bucket} are uploaded again: {', '.join(plan.upload)}")
    lines += hand_made_lines(plan) + [f"  ! {note}" for note in plan.notes]
    if plan.creates:
        lines.append("  At rest none of this costs money; annexes are billed only while their instances run.")
    return lines


def created_lines(plan) -> list[str]:
    s, image = plan.settings, plan.image
    source = f", read now from {s.ami_source}" if s.ami_source else ""
    prepared = any(t.get("Key", "").lower() == "htcondor:annexprepared" for t in image.get("Tags") or [])
    vcpus = sorted({size[0] for size in s.sizes.values()})
    collectors = (f"{', '.join(s.collectors)} ({plan.collectors_from})" if s.collectors
                  else "none (add one with --collector HOST:PORT)")  # fmt: skip
    spot = f"spot at most ${s.spot_price}/hour" if s.spot_price else "spot at most AWS's cap (the on-demand price)"
    lines = [
        f"  network: {plan.network.describe()}",
        f"  image: {s.ami} ({image.get('Name') or 'no name'}, {image.get('Architecture', '?')}){source}",
        f"  {len(s.instance_types)} instance type(s), {'/'.join(map(str, vcpus)) or '?'} vCPUs: "
        f"{', '.join(s.instance_types)}",
        f"  markets: {', '.join(s.markets)}" + (f"; {spot}" if "spot" in s.markets else ""),
        f"  limits: {s.max_instances} instances, {s.max_lease_hours:g} hours, {usd(s.max_ceiling_usd)} per annex; "
        f"{s.max_annexes_per_user} annexes and {s.max_instances_per_user} instances per user; "
        f"{s.max_instances_per_account} instances in the account",
        "  collectors probed from AWS: " + collectors,
        f"  the published annex template (the only one end users may deploy), in bucket {plan.bucket}",
        "  a service role for annex stacks, a boundary for the projects' roles, the annexes' lease role, an",
        "  account-level lease, the admission function, a collector probe, and the end users' group",
        f"  {USER_GROUP} with the policy {USER_POLICY}; no launch template and no key pair",
    ]
    if not prepared:
        lines.append("  the image is not prepared: instances install HTCondor at boot, 1–3 minutes each "
                     "('condor_annex setup image' makes one that is)")  # fmt: skip
    return lines


def hand_made_lines(plan) -> list[str]:
    if not plan.hand_made:
        return []
    return [f"  launch templates {', '.join(plan.hand_made)} (made by hand) are left alone: published annexes do not "
            "use them, and hand-made annexes running now keep working"]  # fmt: skip


def setup_done(plan, action: str) -> list[str]:
    if action == "unchanged":
        return [f"The set-up in {plan.region} is up to date: nothing to change."]
    return [
        f"The set-up is {'ready' if action == 'create' else 'updated'} in {plan.region}.",
        f"  Give a user access: condor_annex setup add-user NAME --project-id PROJECT --region {plan.region}",
        f"  Check it:           condor_annex check-setup --region {plan.region}",
    ]


# --- setup --delete ------------------------------------------------------------------------------------------


def teardown_summary(plan) -> list[str]:
    lines = [f"condor_annex will delete the set-up in {plan.region}:"]
    lines += [f"  {part}" for part in plan.parts()]
    if plan.kept:
        lines.append(f"  ! {plan.kept}")
    lines.append("  Launch templates made by hand and the HTCondorAnnex key pair, if any, are left alone.")
    return lines


def teardown_done(plan, removed: list[str]) -> list[str]:
    return [f"The set-up in {plan.region} is gone ({len(removed)} step(s): {'; '.join(removed)})."]


# --- users and projects ----------------------------------------------------------------------------------------


def identity_line(project) -> str:
    where = f"{PROJECT_ROLE_PATH}{project.identity}"
    if project.exists:
        return f"  project {project.project_id!r}: its instance role and profile {where} are there already"
    return f"  project {project.project_id!r}: its instance role and profile {where}, with the set-up's boundary"


def add_user_summary(plan) -> list[str]:
    return [
        f"condor_annex will, in {plan.region}:",
        identity_line(plan.project),
        f"  create IAM user {plan.name} in {USER_GROUP}, tagged {TAG_PROJECT}={tag_value(plan.project.project_id)}",
        f"  make its access key and write it, with the region and the project id, to {plan.file} (mode 0600)",
    ]


def add_user_done(plan) -> list[str]:
    return [
        f"User {plan.name} is ready. Send {plan.file} to them privately; they run:",
        f"  export AWS_CONFIG_FILE=/path/to/{plan.file.name}",
        "  condor_annex create --expiry '2030-12-18 23:59' --instances 16",
    ]


def add_project_lines(project, dry_run: bool) -> list[str]:
    state = "are there already" if project.exists else "would be made" if dry_run else "are made"
    return [
        f"Project {project.project_id!r}: its instance role and profile {PROJECT_ROLE_PATH}{project.identity} {state}.",
        f"  For people who come through IAM Identity Center (SSO) or a role: attach the managed policy {USER_POLICY}",
        f"  to their permission set or role, and tag it {TAG_PROJECT}={tag_value(project.project_id)}",
        "  (with SSO: a permission set's tag, or an attribute for access control mapped to that principal tag).",
    ]


def remove_user_summary(plan) -> list[str]:
    lines = [f"condor_annex will delete IAM user {plan.name}, its access keys and group memberships"
             + (f" (project {plan.project_id!r})" if plan.project_id else "") + "."]  # fmt: skip
    for stack in plan.annexes:
        end = f"condor_annex delete --project-id {quote(stack.project_id)} --region {plan.region}"
        lines.append(
            f"  ! their annex {stack.project_id!r} ({stack.name}) keeps running until its lease ends; "
            f"end it now with: {end}"
        )
    if plan.identity:
        lines.append(f"  project {plan.project_id!r} has no annex and no other user: its instance role and profile "
                     f"{plan.identity} go too")  # fmt: skip
    elif plan.kept:
        lines.append(f"  project {plan.project_id!r}'s instance role and profile are kept: {plan.kept}")
    return lines


def remove_project_summary(plan) -> list[str]:
    lines = [f"condor_annex will delete project {plan.project_id!r}'s instance role and profile {plan.identity}."]
    if plan.users:
        lines.append(f"  ! users {', '.join(plan.users)} work on it: they cannot create annexes until "
                     f"'condor_annex setup add-project {quote(plan.project_id)}' again")  # fmt: skip
    return lines


# --- setup image ------------------------------------------------------------------------------------------------


def image_summary(plan) -> list[str]:
    return [
        f"condor_annex will make a prepared image in {plan.region}:",
        f"  a builder {plan.instance_type} from {plan.base_ami} ({plan.base.get('Name') or 'no name'}) in subnet "
        f"{plan.subnet_id}: no key pair, no role, IMDSv2 required",
        "  it installs HTCondor and nftables (annex/instance/prepare-image.sh) and stops; the image is made of it,",
        f"  tagged htcondor:AnnexPrepared=true, and the builder is terminated (done, failed, or after {plan.minutes:g} "
        "minutes of silence)",
        "  usually 10-20 minutes; the builder costs cents, the image's snapshot a few cents a month",
    ]


def image_done(plan, made) -> list[str]:
    return [
        f"Image {made.image_id} is ready (HTCondor {made.version or 'installed'}). To use it:",
        f"  condor_annex setup --ami {made.image_id} --region {plan.region}",
    ]
