"""Diagnostics: one `Diagnostic(span, code, message, hint)` and one `CompileError`.

Every user mistake anywhere in the front end becomes a `Diagnostic`; a stage collects all of
its diagnostics and raises them together, once, as a `CompileError`. `render` prints them the
way a compiler does:

    ops/foo.scan:7:12: error[E0302]: cannot broadcast shapes [D] and [N]
    let y = x + B
            ^~~~~
      = hint: ...

The codes are listed, one line each, in `docs/errors.md`.
"""

from __future__ import annotations

from dataclasses import dataclass

from madc.ir import Span


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One error at `span` (None when the whole file is at fault). `code` is `E0xxx`."""

    span: Span | None
    code: str
    message: str
    hint: str | None = None


class CompileError(Exception):
    """A spec was refused. Carries every diagnostic of the file and, when known, the source
    text so `render()` can show the offending lines."""

    def __init__(self, diagnostics: list[Diagnostic] | tuple, source: str | None = None,
                 path: str | None = None):
        self.diagnostics = tuple(diagnostics)
        self.source = source
        self.path = path
        super().__init__(self.render())

    def render(self) -> str:
        """The diagnostics rendered as text (see `render`)."""
        return render(self.diagnostics, self.source, self.path)

    def codes(self) -> list[str]:
        """The diagnostic codes, in order (handy in tests)."""
        return [d.code for d in self.diagnostics]


def _source_line(source: str, line: int) -> str | None:
    lines = source.splitlines()
    if 1 <= line <= len(lines):
        return lines[line - 1]
    return None


def _caret(text: str, span: Span) -> str:
    start = max(span.column, 1)
    if span.end_line == span.line and span.end_column > span.column:
        width = span.end_column - span.column
    else:
        width = max(len(text) - start + 1, 1)
    width = max(1, min(width, max(len(text) - start + 1, 1)))
    return " " * (start - 1) + "^" + "~" * (width - 1)


def render_one(diag: Diagnostic, source: str | None = None, path: str | None = None) -> str:
    """One diagnostic: `path:line:col: error[CODE]: message`, the source line, a caret line
    under the span and `  = hint: ...` when there is a hint."""
    if diag.span is not None:
        where = f"{diag.span.path}:{diag.span.line}:{diag.span.column}"
    else:
        where = path or "<input>"
    out = [f"{where}: error[{diag.code}]: {diag.message}"]
    if diag.span is not None and source is not None:
        text = _source_line(source, diag.span.line)
        if text is not None:
            # Tabs are shown as one space so the caret stays under the right column.
            text = text.replace("\t", " ")
            out.append(text)
            out.append(_caret(text, diag.span))
    if diag.hint:
        out.append(f"  = hint: {diag.hint}")
    return "\n".join(out)


def render(diags, source: str | None = None, path: str | None = None) -> str:
    """All diagnostics, in order, separated by blank lines."""
    return "\n\n".join(render_one(d, source, path) for d in diags)
