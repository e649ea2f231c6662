"""The golden templates in templates/: what administrators review, kept in sync with the code by a test
(tests/test_template.py).

    ./bin/render-templates   (python -m tests.support.golden --write) regenerates them deliberately.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
INLINE_REFERENCES = (1, 8)  # the smallest and the largest hand-made account


def settings():
    """A default set-up, its AMI parameter standing for the id `setup` resolves it to, as
    `condor_annex render published|setup` prints it (annex/cli/render.py `UNRESOLVED_AMI`)."""
    from annex.cli.render import UNRESOLVED_AMI
    from annex.config.setup import SetupSettings

    default = SetupSettings()
    return replace(default, ami=UNRESOLVED_AMI, ami_source=default.ami)


def templates() -> dict:
    """File name → troposphere Template, for every golden template: the inline annex template (1 and 8
    references), what a default set-up publishes, and the set-up itself."""
    from annex.admin.template import build_setup_template
    from annex.template.annex import inline_template, published_template

    chosen = settings()
    found = {f"annex-{n}.yaml": inline_template(n) for n in INLINE_REFERENCES}
    found["published.yaml"] = published_template(chosen.published())
    found["setup.yaml"] = build_setup_template(chosen)
    return found


def rendered() -> dict[str, str]:
    """File name → rendered text (YAML, as `condor_annex render` prints it)."""
    from annex.template.render import render

    return {name: render(template, "yaml") for name, template in templates().items()}


def main(argv: list[str]) -> int:
    if argv != ["--write"]:
        print("usage: python -m tests.support.golden --write", file=sys.stderr)
        return 2
    TEMPLATES.mkdir(exist_ok=True)
    texts = rendered()
    for stale in sorted({p.name for p in TEMPLATES.glob("*.yaml")} - set(texts)):
        (TEMPLATES / stale).unlink()
        print(f"removed templates/{stale}")
    for name, text in texts.items():
        (TEMPLATES / name).write_text(text)
        print(f"wrote templates/{name} ({len(text.encode()):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
