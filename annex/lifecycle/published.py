"""The template an annex deploys: this version's inline template, or what the administrator's set-up
published (re-rendered here from the set-up's recorded settings, to compare with what is published)."""

from __future__ import annotations

from troposphere import Template

from ..aws.views import SetupView
from ..config.setup import settings_from
from ..errors import ConfigError, SetupError
from ..interface import key_of, published_key
from ..template.annex import build_template
from ..template.render import compact, render

SETUP_AGAIN = "an administrator runs 'condor_annex setup' again"


def template_for(setup: SetupView | None, references: int) -> Template:
    """The template this annex deploys, as this version renders it: inline, or what the set-up's settings
    publish (CloudFormation deploys the administrator's published copy, by URL)."""
    if setup is None:
        return build_template(references)
    settings = settings_from(setup.settings)
    if settings is None:
        raise SetupError(
            f"the set-up stack records no settings condor_annex can read; {SETUP_AGAIN}"
        )
    return build_template(references, settings.published())


def annex_template(
    setup: SetupView | None, references: int, template: Template
) -> tuple[str, str | None, list[str]]:
    """(template URL or body, service role, warnings). A set-up account deploys only the administrator's
    published templates, with the service role; a hand-made one deploys this version's template inline."""
    if setup is None:
        return compact(template), None, []
    url = setup.template_urls.get(references)
    if not url or not setup.service_role_arn:
        raise SetupError(
            f"the set-up publishes no annex template of {references} reference(s); {SETUP_AGAIN}"
        )
    warnings = []
    if key_of(url) != published_key(references, render(template, "yaml")):
        warnings.append(
            "the administrator's published templates come from another version of condor_annex "
            "('condor_annex check-setup' says more)"
        )
    return url, setup.service_role_arn, warnings


def published_key_for(setup: SetupView, references: int) -> str | None:
    """The key this version would publish for the set-up's settings (None when they cannot be read)."""
    try:
        return published_key(references, render(template_for(setup, references), "yaml"))
    except (SetupError, ConfigError, ValueError):
        return None
