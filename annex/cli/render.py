"""`condor_annex render`: print a template for review; needs no AWS account."""

from __future__ import annotations

import click

from ..names import MAX_REFERENCES
from .options import examples, global_options, reported
from .setup import settings_options

EXAMPLES = examples(
    "condor_annex render --references 2 --lint",
    "condor_annex render published --instance-types m7i.large,c7i.large,m6i.large --ami ami-0abcdef1234567890",
    "condor_annex render setup --format json",
)


@click.command("render", epilog=EXAMPLES)
@click.argument("which", type=click.Choice(["annex", "published", "setup"]), default="annex")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@click.option(
    "--references",
    type=click.IntRange(1, MAX_REFERENCES),
    default=MAX_REFERENCES,
    show_default=True,
    help="How many HTCondorAnnex-N references the annex uses.",
)
@click.option("--lint", is_flag=True, help="Also check the template with cfn-lint (findings on stderr).")
@settings_options
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


UNRESOLVED_AMI = "ami-00000000000000000"  # stands for the id `setup` resolves a parameter to


def chosen_template(which: str, references: int, settings: dict):
    from dataclasses import replace

    from ..admin.template import build_setup_template
    from ..config.setup import chosen_settings
    from ..template.annex import inline_template, published_template

    if which == "annex":
        return inline_template(references)
    chosen = chosen_settings(**settings)
    if not chosen.ami.startswith("ami-"):
        click.echo(f"render: the set-up resolves the AMI {chosen.ami} to an id when it runs; "
                   f"{UNRESOLVED_AMI} stands for it here (give --ami ami-... to see yours)", err=True)  # fmt: skip
        chosen = replace(chosen, ami=UNRESOLVED_AMI, ami_source=chosen.ami)
    if which == "setup":
        return build_setup_template(chosen)
    return published_template(chosen.published())
