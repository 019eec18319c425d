"""Property: any input ends in a verified ScanIR or a CompileError, never another exception.

Inputs: hypothesis-drawn edits of the zoo specs (token- and byte-level), random text over the
language's alphabet, and grammar-aware random specs (`madc.fuzz_frontend.generate_spec`).
"""

from __future__ import annotations

import random
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from madc import ir
from madc.errors import CompileError
from madc.frontend import load_spec
from madc.fuzz_frontend import _POOL, _TOKEN, generate_spec, run_front_end_fuzz, zoo_sources
from madc.verify import verify

ZOO = zoo_sources()
SETTINGS = settings(max_examples=200, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
_RENDERED = re.compile(r"^(\S.*?): error\[E\d{4}\]: .+", re.M)


def _ends_well(data) -> None:
    """The property itself: a verified IR or a well-formed CompileError."""
    try:
        result = load_spec(data, path="prop.scan") if isinstance(data, str) else data()
    except CompileError as err:
        assert err.diagnostics, "a CompileError without diagnostics"
        text = err.render()
        assert len(_RENDERED.findall(text)) == len(err.diagnostics), text
        for d in err.diagnostics:
            assert re.fullmatch(r"E\d{4}", d.code) and d.message
            if d.span is not None:
                assert 1 <= d.span.line and 1 <= d.span.column
        return
    assert isinstance(result, ir.ScanIR)
    verify(result)


edits = st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(["del", "dup", "swap",
                                                                     "pool"]),
                           st.sampled_from(_POOL)), min_size=1, max_size=5)


@SETTINGS
@given(st.sampled_from(ZOO), edits)
def test_token_edits_of_the_zoo(source, ops):
    toks = _TOKEN.findall(source)
    for pos, op, tok in ops:
        i = pos % len(toks)
        if op == "del":
            del toks[i]
        elif op == "dup":
            toks.insert(i, toks[i])
        elif op == "swap":
            j = (pos // 7) % len(toks)
            toks[i], toks[j] = toks[j], toks[i]
        else:
            toks[i] = tok
        if not toks:
            toks = ["\n"]
    _ends_well("".join(toks))


@SETTINGS
@given(st.sampled_from(ZOO), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6),
                                                st.sampled_from(["del", "dup", "move"])),
                                      min_size=1, max_size=4))
def test_line_edits_of_the_zoo(source, ops):
    lines = source.split("\n")
    for i, j, op in ops:
        i, j = i % len(lines), j % len(lines)
        if op == "del" and len(lines) > 1:
            del lines[i]
        elif op == "dup":
            lines.insert(j, lines[i])
        else:
            lines.insert(j, lines.pop(i))
    _ends_well("\n".join(lines))


@SETTINGS
@given(st.sampled_from(ZOO), st.lists(st.tuples(st.integers(0, 10**6), st.binary(max_size=4)),
                                      min_size=1, max_size=6), st.booleans())
def test_byte_edits_of_the_zoo(tmp_path_factory, source, ops, delete):
    buf = bytearray(source.encode("utf-8"))
    for pos, chunk in ops:
        i = pos % (len(buf) + 1)
        if delete and buf:
            del buf[i:i + len(chunk) + 1]
        else:
            buf[i:i] = chunk
    path = tmp_path_factory.mktemp("prop") / "edited.scan"
    path.write_bytes(bytes(buf))
    _ends_well(lambda: load_spec(path))


ALPHABET = st.sampled_from(list("abhxyzDNKV019.:,=[]()+-*/@{}#\n \t_") + ["⊕", "⊗", "**", "é"]
                           + ["scan ", "let ", "state ", "input ", "dims ", "semiring ",
                              "readout ", "output ", "param ", " init ", "heads ", "None"])


@SETTINGS
@given(st.lists(ALPHABET, max_size=80).map("".join))
def test_random_text(text):
    _ends_well(text)


@SETTINGS
@given(st.integers(0, 2**32 - 1))
def test_grammar_aware_random_specs(seed):
    _ends_well(generate_spec(random.Random(seed)))


def test_front_end_fuzz_run_is_clean(tmp_path):
    report = run_front_end_fuzz(90, 3, tmp_path, quiet=True)
    assert report.examples == 90 and report.failures == [] and int(report) == 0
    assert report.accepted >= 5 and report.refused >= 30
    assert report.accepted + report.refused == 90
    assert "90 inputs" in report.summary()


def test_front_end_fuzz_saves_failures(tmp_path, monkeypatch):
    """An internal error (planted here) is reported and saved with its input."""
    import madc.fuzz_frontend as ff

    def broken(data, scratch):
        raise ZeroDivisionError("planted")

    monkeypatch.setattr(ff, "run_one", broken)
    report = ff.run_front_end_fuzz(3, 0, tmp_path, quiet=True)
    assert int(report) == 1 and len(report.failures) == 3
    assert "ZeroDivisionError: planted" in report.failures[0].with_suffix(".txt").read_text()
    assert report.failures[0].read_bytes()
