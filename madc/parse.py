"""Stage 1: `.scan` text -> `ast.Spec`, syntax errors -> diagnostics.

The grammar is `grammar/scan.lark` (shipped in the wheel as `madc.grammar`). A Transformer whose
methods are named after the grammar's rules builds the frozen AST. Statements are line-based,
so after a syntax error the parser blanks the offending line and parses again: every broken
line of a file gets its own diagnostic.
"""

from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path

import lark
from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, VisitError

from madc import ast
from madc.errors import CompileError, Diagnostic
from madc.ir import Span

#: Syntax errors reported per file before giving up (later ones are usually knock-on errors).
MAX_SYNTAX_ERRORS = 20
#: Recovery reparses the file once per error; beyond this size only the first is reported.
RECOVERY_MAX_CHARS = 1 << 16

# How the parser's terminal names read in a message.
_TERMINAL_WORDS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "_NL": "end of line",
    "$END": "end of file",
}


_KEYWORDS = ("scan", "dims", "heads", "semiring", "input", "param", "let", "state", "readout",
             "output")


def grammar_text() -> str:
    """The grammar source: from the installed package data, or the repository's `grammar/`
    directory in an editable checkout."""
    try:
        return importlib.resources.files("madc.grammar").joinpath("scan.lark").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError, OSError):
        path = Path(__file__).resolve().parent.parent / "grammar" / "scan.lark"
        return path.read_text("utf-8")


@functools.lru_cache(maxsize=1)
def parser() -> Lark:
    """The LALR parser (built once per process). `strict=True` (no shift/reduce conflicts, no
    terminal collisions) needs the optional `interegular` package; without it the grammar is
    still LALR-conflict-free (lark raises on reduce/reduce conflicts regardless)."""
    try:
        import interegular  # noqa: F401
        strict = True
    except ImportError:
        strict = False
    return Lark(grammar_text(), parser="lalr", strict=strict, propagate_positions=True,
                maybe_placeholders=True)


def _span(path: str, obj) -> Span:
    """A span from a lark Token or Meta."""
    return Span(path, obj.line, obj.column, obj.end_line, obj.end_column)


def _join(path: str, first: Span, last: Span) -> Span:
    return Span(path, first.line, first.column, last.end_line, last.end_column)


@v_args(meta=True)
class _Builder(Transformer):
    """Lark tree -> AST. One method per grammar rule (or alias)."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def _s(self, meta) -> Span:
        return _span(self.path, meta)

    def _ident(self, tok: Token) -> ast.Ident:
        return ast.Ident(str(tok), _span(self.path, tok))

    def start(self, meta, children):
        return ast.Spec(self.path, tuple(children))

    # statements
    def scan_decl(self, meta, c):
        return ast.ScanDecl(self._ident(c[0]), self._s(meta))

    def dims_decl(self, meta, c):
        return ast.DimsDecl(tuple(c), self._s(meta))

    def dim_def(self, meta, c):
        return ast.DimDef(self._ident(c[0]), self.number(c[1], [c[1]]), self._s(meta))

    def heads_decl(self, meta, c):
        return ast.HeadsDecl(self._ident(c[0]), self._s(meta))

    def semiring_builtin(self, meta, c):
        domain = self._ident(c[1]) if c[1] is not None else None
        return ast.SemiringBuiltin(self._ident(c[0]), domain, self._s(meta))

    def semiring_def(self, meta, c):
        domain = self._ident(c[1]) if c[1] is not None else None
        items = tuple(x for x in c[2:] if x is not None)
        return ast.SemiringDef(self._ident(c[0]), domain, items, self._s(meta))

    def semiring_op(self, meta, c):
        params = (self._ident(c[1]), self._ident(c[2]))
        return ast.SemiringOp(self._ident(c[0]), params, c[3], self._s(meta))

    def semiring_const(self, meta, c):
        return ast.SemiringConst(self._ident(c[0]), c[1], self._s(meta))

    def input_decl(self, meta, c):
        return ast.InputDecl(self._ident(c[0]), c[1], self._s(meta))

    def param_decl(self, meta, c):
        return ast.ParamDecl(self._ident(c[0]), c[1], c[2], self._s(meta))

    def let_decl(self, meta, c):
        return ast.LetDecl(self._ident(c[0]), c[1], self._s(meta))

    def state_decl(self, meta, c):
        return ast.StateDecl(self._ident(c[0]), c[1], self._s(meta))

    def update(self, meta, c):
        return ast.UpdateStmt(self._ident(c[0]), c[1], self._s(meta))

    def readout_decl(self, meta, c):
        return ast.ReadoutDecl(self._ident(c[0]), c[1], self._s(meta))

    def output_decl(self, meta, c):
        return ast.OutputDecl(self._ident(c[0]), c[1], self._s(meta))

    def shape(self, meta, c):
        return tuple(x for x in c if x is not None)

    def dim_name(self, meta, c):
        return ast.ShapeDim(str(c[0]), _span(self.path, c[0]))

    def dim_int(self, meta, c):
        num = self.number(meta, c)
        value = int(num.value) if num.value.is_integer() else num.value
        return ast.ShapeDim(value, num.span)

    # expressions
    def number(self, meta, c):
        tok = c[0]
        text = str(tok)
        try:
            value = float(text)
        except OverflowError:  # pragma: no cover - float() returns inf instead
            value = float("inf")
        return ast.Number(value, text, _span(self.path, tok))

    def name(self, meta, c):
        return ast.Name(str(c[0]), _span(self.path, c[0]))

    def _bin(op):  # noqa: N805 - a method factory used in the class body
        def method(self, meta, c):
            return ast.BinOp(op, c[0], c[1], _join(self.path, c[0].span, c[1].span))

        method.__name__ = op
        return method

    add = _bin("add")
    sub = _bin("sub")
    oplus = _bin("oplus")
    mul = _bin("mul")
    div = _bin("div")
    matmul = _bin("matmul")
    otimes = _bin("otimes")
    pow = _bin("pow")

    def neg(self, meta, c):
        return ast.Neg(c[0], self._s(meta))

    def subscript(self, meta, c):
        return ast.Subscript(c[0], tuple(c[1:]), self._s(meta))

    def slice_all(self, meta, c):
        return ast.SliceAll(self._s(meta))

    def call(self, meta, c):
        args = c[1] if c[1] is not None else ()
        positional = tuple(a for a in args if not isinstance(a, ast.Keyword))
        keywords = tuple(a for a in args if isinstance(a, ast.Keyword))
        return ast.Call(str(c[0]), positional, keywords, self._s(meta), _span(self.path, c[0]))

    def arguments(self, meta, c):
        return tuple(c)

    def keyword_arg(self, meta, c):
        return ast.Keyword(str(c[0]), c[1], self._s(meta))


def _words(expected, lark_parser: Lark) -> str:
    """Expected terminals, in words: `a name`, `'='`, `end of line`."""
    names = set()
    for term in sorted(expected):
        if term in _TERMINAL_WORDS:
            names.add(_TERMINAL_WORDS[term])
            continue
        try:
            pattern = lark_parser.get_terminal(term).pattern
        except KeyError:
            names.add(term.lower())
            continue
        if pattern.type == "str":
            names.add(f"'{pattern.value}'")
        else:
            names.add(term.lower())
    ordered = sorted(names, key=lambda s: (not s.startswith("a "), s))
    if len(ordered) > 8:
        ordered = ordered[:8] + ["..."]
    return ", ".join(ordered)


def _printable(ch: str) -> str:
    if ch.isprintable() and ch not in "\t\r":
        return f"'{ch}'"
    return f"U+{ord(ch):04X}"


def _found(tok: Token) -> str:
    if tok.type == "_NL":
        return "end of line"
    if tok.type == "$END":
        return "end of file"
    return f"'{tok}'"


def _syntax_diagnostic(err: UnexpectedInput, path: str, source: str, p: Lark) -> Diagnostic:
    """A diagnostic for one lark error, saying what was expected in words."""
    if isinstance(err, UnexpectedCharacters):
        ch = source[err.pos_in_stream] if err.pos_in_stream < len(source) else "?"
        span = Span(path, err.line, err.column, err.line, err.column + 1)
        hint = None
        if ch in "\"'":
            hint = "the .scan language has no strings"
        elif ch == "\\":
            hint = "a backslash is only allowed at the very end of a line (line continuation)"
        return Diagnostic(span, "E0102", f"unexpected character {_printable(ch)}", hint)
    if isinstance(err, UnexpectedEOF):
        lines = source.splitlines() or [""]
        line = len(lines)
        span = Span(path, line, 1, line, len(lines[-1]) + 1)
        return Diagnostic(span, "E0103", "unexpected end of file",
                          f"expected {_words(err.expected, p)}")
    tok = err.token
    line = tok.line if tok.line is not None else 1
    col = tok.column if tok.column is not None else 1
    end_col = col + 1 if tok.type in ("_NL", "$END") else (tok.end_column or col + 1)
    span = Span(path, line, col, line, max(end_col, col + 1))
    expected = getattr(err, "expected", None) or getattr(err, "accepts", None) or set()
    message = f"unexpected {_found(tok)}"
    if tok.type == "$END":
        return Diagnostic(span, "E0103", "unexpected end of file",
                          f"expected {_words(expected, p)}")
    hint = f"expected {_words(expected, p)}"
    typo = _keyword_typo(source, line)
    if typo is not None:
        hint = f"did you mean `{typo}`? ({hint})"
    return Diagnostic(span, "E0101", message, hint)


def _keyword_typo(source: str, line: int) -> str | None:
    """The keyword the first word of `line` was probably meant to be (`lett` -> `let`)."""
    import difflib

    lines = source.splitlines()
    if not 1 <= line <= len(lines):
        return None
    words = lines[line - 1].split()
    if len(words) < 2 or not words[0].isidentifier() or words[0] in _KEYWORDS \
            or words[1] in ("=", "⊕"):
        return None
    close = difflib.get_close_matches(words[0], _KEYWORDS, n=1, cutoff=0.75)
    return close[0] if close else None


def _blank_line(source: str, line: int) -> str:
    """`source` with line `line` (1-based) replaced by spaces (length kept)."""
    lines = source.split("\n")
    if 1 <= line <= len(lines):
        lines[line - 1] = " " * len(lines[line - 1])
    return "\n".join(lines)


def parse(source: str, path: str = "<input>") -> ast.Spec:
    """Parse `.scan` source into an `ast.Spec`; raises `CompileError` with one diagnostic per
    broken line (up to `MAX_SYNTAX_ERRORS`)."""
    p = parser()
    text = source if source.endswith("\n") else source + "\n"
    diags: list[Diagnostic] = []
    tree = None
    while True:
        try:
            tree = p.parse(text)
            break
        except UnexpectedInput as err:
            diag = _syntax_diagnostic(err, path, text, p)
            if diags and diags[-1].span == diag.span:
                break
            diags.append(diag)
            limit = MAX_SYNTAX_ERRORS if len(text) <= RECOVERY_MAX_CHARS else 1
            if diag.code == "E0103" or len(diags) >= limit or diag.span is None:
                break
            text = _blank_line(text, diag.span.line)
    if diags:
        raise CompileError(diags, source, path)
    try:
        return _Builder(path).transform(tree)
    except VisitError as err:  # unwrap lark's wrapper: the real cause is what matters
        raise err.orig_exc from None
    except lark.exceptions.LarkError as err:  # pragma: no cover - defensive
        raise CompileError([Diagnostic(None, "E0101", f"cannot parse: {err}")], source,
                           path) from None
