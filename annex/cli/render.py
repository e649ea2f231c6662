"""`condor_annex render`: print a template for review; needs no AWS account."""

from __future__ import annotations

import click

from ..names import MAX_REFERENCES
from .options import examples, global_options, reported, setup_options

EXAMPLES = examples(
    "condor_annex render --references 2 --lint",
    "condor_annex render published --references 3 --instance-types m7i.large,c7i.large,m6i.large",
    "condor_annex render setup --format json",
)


@click.command("render", epilog=EXAMPLES)
@click.argument("which", type=click.Choice(["annex", "published", "setup"]), default="annex")
@click.option(
    "--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True
)
@click.option(
    "--references",
    type=click.IntRange(1, MAX_REFERENCES),
    default=MAX_REFERENCES,
    show_default=True,
    help="How many HTCondorAnnex-N references the annex uses.",
)
@click.option(
    "--lint", is_flag=True, help="Also check the template with cfn-lint (findings on stderr)."
)
@setup_options
@global_options
@reported
def command(which, fmt, references, lint, **settings):
    """Print a template for review; needs no AWS account.

    annex: the template a hand-prepared account deploys. published: what `setup` publishes for end users
    (give the same settings as to setup). setup: the set-up stack.
    """
    from ..template.render import render  # lazy: troposphere only when a template is asked for

    text = render(chosen_template(which, references, settings), fmt)
    click.echo(text, nl=False)
    if lint:
        from ..template.lint import lint_template  # cfn-lint takes a second to import

        findings = lint_template(text)
        for finding in findings:
            click.echo(f"cfn-lint: {finding}", err=True)
        return 1 if findings else 0
    return 0


def chosen_template(which: str, references: int, settings: dict):
    from ..admin.template import build_setup_template
    from ..config.setup import chosen_settings
    from ..template.annex import build_template

    if which == "annex":
        return build_template(references)
    chosen = chosen_settings(**settings)
    if which == "setup":
        return build_setup_template(chosen)
    return build_template(min(references, chosen.published().shapes.stop - 1), chosen.published())
