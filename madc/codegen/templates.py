"""Loading and rendering the emitted-code templates (`codegen/*.j2`).

Installed, the templates are the package data `madc.templates`; in a source checkout that is
not installed they are read from the repository's `codegen/` folder.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2


def _template_text(name: str) -> str:
    try:
        from importlib.resources import files

        return files("madc.templates").joinpath(name).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        path = Path(__file__).resolve().parents[2] / "codegen" / name
        return path.read_text(encoding="utf-8")


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(_template_text),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )


def render(template: str, **context) -> str:
    """Render `template` (e.g. "reference.py.j2") with `context`."""
    return _environment().get_template(template).render(**context)
