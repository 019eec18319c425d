"""Rendered diagnostics: golden files, the render format, and that every code is documented.

Each `tests/golden/diagnostics/NAME.scan` is refused; its rendered diagnostics must equal
`NAME.txt`. Refresh with `pytest tests/test_diagnostics.py --update-golden` and review the diff.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from madc.errors import CompileError, Diagnostic, render
from madc.frontend import load_spec
from madc.ir import Span

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "diagnostics"
CASES = sorted(GOLDEN.glob("*.scan"))


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_golden_diagnostics(case, update_golden):
    rel = case.relative_to(ROOT).as_posix()
    with pytest.raises(CompileError) as info:
        load_spec(case, path=rel)
    text = info.value.render() + "\n"
    expected = case.with_suffix(".txt")
    if update_golden:
        expected.write_text(text, encoding="utf-8")
    assert expected.exists(), f"missing golden file {expected}; run with --update-golden"
    assert text == expected.read_text(encoding="utf-8")


def test_golden_cases_cover_many_codes():
    codes = set()
    for txt in GOLDEN.glob("*.txt"):
        codes |= set(re.findall(r"error\[(E\d{4})\]", txt.read_text(encoding="utf-8")))
    assert len(codes) >= 20, sorted(codes)


def test_render_format():
    src = "scan t\nlet a = b + c\n"
    d = Diagnostic(Span("t.scan", 2, 9, 2, 14), "E0301", "bad", "do this")
    assert render([d], src) == ("t.scan:2:9: error[E0301]: bad\n"
                                "let a = b + c\n"
                                "        ^~~~~\n"
                                "  = hint: do this")
    no_span = Diagnostic(None, "E0004", "the spec is empty")
    assert render([no_span], src, "x.scan") == "x.scan: error[E0004]: the spec is empty"
    multi_line = Diagnostic(Span("t.scan", 1, 6, 2, 3), "E0101", "m")
    assert render([multi_line], src).splitlines()[2] == "     ^"
    tabbed = Diagnostic(Span("t.scan", 1, 3, 1, 4), "E0101", "m")
    assert render([tabbed], "\tx y\n").splitlines()[1:] == [" x y", "  ^"]
    err = CompileError([d, no_span], src, "t.scan")
    assert err.codes() == ["E0301", "E0004"]
    assert str(err) == err.render() and "\n\n" in err.render()


def test_every_code_is_documented_and_used():
    doc = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(E\d{4})` \|", doc, flags=re.M))
    used = set()
    for py in (ROOT / "madc").rglob("*.py"):
        used |= set(re.findall(r'"(E\d{4})"', py.read_text("utf-8")))
    assert used - documented == set(), "undocumented codes"
    assert documented - used == set(), "documented codes that nothing raises"
