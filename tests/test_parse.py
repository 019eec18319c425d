"""Parser: grammar loading, AST shape and spans, precedence, syntax diagnostics."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from madc import ast
from madc.errors import CompileError
from madc.parse import grammar_text, parse

ROOT = Path(__file__).resolve().parent.parent


def _expr(text: str):
    spec = parse(f"scan t\nlet z = {text}\n", "t.scan")
    return spec.statements[1].expr


def test_grammar_text_is_the_repository_grammar():
    assert grammar_text() == (ROOT / "grammar" / "scan.lark").read_text("utf-8")


def test_every_statement_kind_parses_with_spans():
    src = (
        "scan demo   # comment\n"
        "\n"
        "dims D = 8, N = 4\n"
        "heads N\n"
        "semiring mx over extended_reals {\n"
        "  add(x, y) = max(x, y)\n"
        "  mul(x, y) = x + y\n"
        "  zero = -inf\n"
        "  one = 0 }\n"
        "input x : [D]\n"
        "input s : []\n"
        "param A : [D, 2] init randn()\n"
        "let a = x\n"
        "state h : [D]\n"
        "h = a * h + x\n"
        "readout r = h\n"
        "output y = r\n"
    )
    spec = parse(src, "demo.scan")
    kinds = [type(s).__name__ for s in spec.statements]
    assert kinds == ["ScanDecl", "DimsDecl", "HeadsDecl", "SemiringDef", "InputDecl",
                     "InputDecl", "ParamDecl", "LetDecl", "StateDecl", "UpdateStmt",
                     "ReadoutDecl", "OutputDecl"]
    dims = spec.statements[1]
    assert [(d.name.name, d.value.value) for d in dims.dims] == [("D", 8.0), ("N", 4.0)]
    assert dims.dims[1].name.span.line == 3 and dims.dims[1].name.span.column == 13
    sr = spec.statements[3]
    assert sr.domain.name == "extended_reals"
    assert [type(i).__name__ for i in sr.items] == ["SemiringOp", "SemiringOp",
                                                    "SemiringConst", "SemiringConst"]
    assert spec.statements[5].shape == ()
    param = spec.statements[6]
    assert [d.value for d in param.shape] == ["D", 2]
    assert isinstance(param.init, ast.Call) and param.init.fn == "randn"
    assert spec.statements[9].span.line == 15


def test_precedence_and_associativity():
    e = _expr("a + b * c")
    assert e.op == "add" and e.y.op == "mul"
    e = _expr("a - b - c")
    assert e.op == "sub" and e.x.op == "sub"
    e = _expr("-x ** 2")
    assert isinstance(e, ast.Neg) and e.x.op == "pow"
    e = _expr("2 ** -x ** 2")  # right-associative, unary minus in the exponent
    assert e.op == "pow" and isinstance(e.y, ast.Neg) and e.y.x.op == "pow"
    e = _expr("a @ b ⊗ c ⊕ d")
    assert e.op == "oplus" and e.x.op == "otimes" and e.x.x.op == "matmul"
    e = _expr("(a + b) * c")
    assert e.op == "mul" and e.x.op == "add"


def test_calls_keywords_and_subscripts():
    e = _expr("sum(x[:, None] * y, axis=-1)")
    assert isinstance(e, ast.Call) and e.fn == "sum"
    assert [k.name for k in e.keywords] == ["axis"]
    assert isinstance(e.keywords[0].value, ast.Neg)
    sub = e.args[0].x
    assert isinstance(sub, ast.Subscript)
    assert isinstance(sub.items[0], ast.SliceAll) and sub.items[1].name == "None"
    assert _expr("f()").args == ()
    n = _expr("1.5e-3")
    assert isinstance(n, ast.Number) and n.value == 1.5e-3 and n.text == "1.5e-3"


def test_spans_cover_the_written_text():
    e = _expr("exp(x) + yy")
    assert (e.span.line, e.span.column, e.span.end_column) == (2, 9, 20)
    assert (e.x.fn_span.column, e.x.fn_span.end_column) == (9, 12)


def test_crlf_blank_lines_and_line_continuation():
    src = "scan t\r\n\r\n  # indented comment\r\nlet a = 1 + \\\n  2\r\n"
    spec = parse(src, "t.scan")
    assert spec.statements[1].expr.op == "add"


def test_syntax_errors_are_reported_per_line_in_words():
    src = "scan t\nlet = 3\nlet b = (1 + \nlet c = 2\ninput y : [D\n"
    with pytest.raises(CompileError) as info:
        parse(src, "t.scan")
    diags = info.value.diagnostics
    assert [d.span.line for d in diags] == [2, 3, 5]
    assert diags[0].code == "E0101" and diags[0].message == "unexpected '='"
    assert diags[0].hint == "expected a name"
    assert diags[2].hint == "expected ',', ']'"


def test_unexpected_character_and_end_of_file():
    with pytest.raises(CompileError) as info:
        parse('scan t\nlet a = "x"\n', "t.scan")
    d = info.value.diagnostics[0]
    assert (d.code, d.span.line, d.span.column) == ("E0102", 2, 9)
    assert "no strings" in d.hint
    with pytest.raises(CompileError) as info:
        parse("scan t\nsemiring s {\n add(x, y) = x\n", "t.scan")
    assert info.value.diagnostics[-1].code == "E0103"


def test_installed_wheel_ships_the_grammar(tmp_path):
    """A non-editable install, run from another directory, finds the grammar as package data."""
    # Build from a copy so the checkout gets no build/ or egg-info from this test.
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("madc", "grammar", "codegen", "ops"):
        if (ROOT / part).is_dir():
            shutil.copytree(ROOT / part, src / part, ignore=ignore)
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, src / part)
    target = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q",
         "--target", str(target), str(src)], capture_output=True, text=True, timeout=120)
    if build.returncode != 0:
        pytest.skip(f"cannot build the package here: {build.stderr[-300:]}")
    code = ("import madc.parse as p, importlib.resources as r;"
            f"assert p.__file__.startswith({str(target)!r}), p.__file__;"
            "assert r.files('madc.grammar').joinpath('scan.lark').is_file();"
            "s = p.parse('scan t\\nlet a = 1\\n', 't.scan'); print(type(s).__name__)")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, env={"PYTHONPATH": str(target)}, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "Spec"


def test_grammar_has_no_lalr_conflicts(caplog):
    """What `strict=True` enforces (it also needs the optional `interegular` package)."""
    import logging

    from lark import Lark, logger

    old = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        with caplog.at_level(logging.DEBUG, logger="lark"):
            Lark(grammar_text(), parser="lalr", debug=True)
    finally:
        logger.setLevel(old)
    assert not [r for r in caplog.records if "conflict" in r.getMessage().lower()]


def test_keywords_are_whole_words_only():
    spec = parse("scan scanner\nlet letx = states\nreadout output_ = h\n", "t.scan")
    assert spec.statements[0].name.name == "scanner"
    assert spec.statements[1].name.name == "letx"
    assert spec.statements[2].name.name == "output_"


def test_debug_env_prints_each_stage(tmp_path):
    code = "from madc.frontend import load_spec; load_spec('ops/hgrn.scan')"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={"MADC_DEBUG": "1", "PATH": "/usr/bin:/bin"}, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "--- madc: ast" in run.stderr and "--- madc: ir" in run.stderr
    assert "UpdateStmt(" in run.stderr and "Transition(structure='diagonal'" in run.stderr
