"""The template an annex deploys: this version's inline template (a hand-made account), or the one the
administrator's set-up published, which CloudFormation reads by URL. Its text is re-rendered here from the
set-up's recorded settings, to check the parameters against and to tell a set-up of another version."""

from __future__ import annotations

from troposphere import Template

from .. import interface as i
from ..template.annex import inline_template, published_template
from ..template.render import compact, render
from .account import Account


def local_template(account: Account, references: int) -> Template:
    """The template as this version renders it for the account."""
    if account.settings is None:
        return inline_template(references)
    return published_template(account.settings.published())


def annex_template(account: Account, references: int) -> tuple[str, str | None, Template, list[str]]:
    """(template URL or body, service role, the template as rendered here, warnings). A set-up account
    deploys only the administrator's published template, with the service role."""
    local = local_template(account, references)
    if account.setup is None:
        return compact(local), None, local, []
    url = account.setup.template_url
    warnings = []
    if i.key_of(url) != i.published_key(render(local, "yaml")):
        warnings.append("the administrator's published template comes from another version of condor_annex "
                        "('condor_annex check-setup' says more)")  # fmt: skip
    return url, account.setup.service_role_arn, local, warnings
