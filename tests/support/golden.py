"""The golden templates in templates/: what administrators review, kept in sync with the code by a test.

    ./bin/render-templates   (python -m tests.support.golden --write) regenerates them deliberately.
"""

from __future__ import annotations

import sys
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def rendered() -> dict[str, str]:
    """File name → rendered text, for every golden template: the inline annex template (1 and 8 groups),
    what a default set-up publishes (1 and 4 groups), and the set-up itself."""
    from annex.admin.template import SetupSettings, build_setup_template
    from annex.template.render import render
    from annex.template.annex import build_template

    published = SetupSettings().published()
    texts = {f"annex-{n}.yaml": render(build_template(n), "yaml") for n in (1, 8)}
    texts |= {f"published-{n}.yaml": render(build_template(n, published), "yaml") for n in (1, 4)}
    texts["setup.yaml"] = render(build_setup_template(), "yaml")
    return texts


def main(argv: list[str]) -> int:
    if argv != ["--write"]:
        print("usage: python -m tests.support.golden --write", file=sys.stderr)
        return 2
    TEMPLATES.mkdir(exist_ok=True)
    for name, text in rendered().items():
        (TEMPLATES / name).write_text(text)
        print(f"wrote templates/{name} ({len(text):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
