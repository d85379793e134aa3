"""The bench's HTML pages from their Jinja2 templates (``templates/*.html.j2``), autoescaped:
every value a page shows is escaped unless a template says otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).parent / "templates"
_ENV = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,  # a misspelt name fails the render instead of showing nothing
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_page(template: str, **context: Any) -> str:
    """``templates/<template>`` rendered with ``context``."""
    return _ENV.get_template(template).render(**context)
