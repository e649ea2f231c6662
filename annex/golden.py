"""The golden templates in templates/: what administrators review, kept in sync with the code by a test.

    python -m annex.golden --write     (or ./bin/render-templates) regenerates them deliberately.
"""

from __future__ import annotations

import sys
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def rendered() -> dict[str, str]:
    """File name → rendered text, for every golden template."""
    from .setup_template import build_setup_template
    from .template import build_template_for, render

    texts = {f"annex-{n}.yaml": render(build_template_for(n), "yaml") for n in (1, 8)}
    texts["setup.yaml"] = render(build_setup_template(), "yaml")
    return texts


def main(argv: list[str]) -> int:
    if argv != ["--write"]:
        print("usage: python -m annex.golden --write", file=sys.stderr)
        return 2
    TEMPLATES.mkdir(exist_ok=True)
    for name, text in rendered().items():
        (TEMPLATES / name).write_text(text)
        print(f"wrote templates/{name} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
